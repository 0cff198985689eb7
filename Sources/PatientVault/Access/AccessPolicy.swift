/// The operations that pass the access decision.
public enum VaultAction: String, Hashable, Sendable, CaseIterable {
    case createVault
    case readVaultInfo
    case deposit
    case listDocuments
    case readMetadata
    case readContent
    case listVersions
    case replace
}

/// The rule that decided an access, kept with denials (and, later, in the
/// audit trail).
public enum AccessRule: String, Hashable, Sendable, CaseIterable {
    /// Allowed: the principal is the patient who holds the vault.
    case patientIsHolder
    /// Allowed: the principal is the author of the document.
    case authorOfDocument
    /// Allowed: professionals and organisations may deposit without the
    /// patient's consent to read (CSP L1111-17 III).
    case depositByAuthor
    /// Allowed: the creation channel fits the principal.
    case creationChannelFits
    /// Denied: insurers may never read (CSP L1111-18).
    case forbiddenClass
    /// Denied: the creation channel does not fit the principal.
    case creationChannelMismatch
    /// Denied: the insurer deposits reimbursement data only.
    case insurerDepositsReimbursementOnly
    /// Denied: only the author (or the patient, for their own deposits)
    /// replaces a document.
    case onlyAuthorReplaces
    /// Denied: nothing authorises this principal (the default).
    case notAuthorised
}

/// The outcome of the access decision.
public struct AccessDecision: Hashable, Sendable {
    /// Whether the operation may proceed.
    public var isAllowed: Bool
    /// The rule that decided.
    public var rule: AccessRule

    static func allow(_ rule: AccessRule) -> AccessDecision { AccessDecision(isAllowed: true, rule: rule) }
    static func deny(_ rule: AccessRule) -> AccessDecision { AccessDecision(isAllowed: false, rule: rule) }
}

/// What the decision may know of a vault.
struct VaultAccessContext {
    /// The patient who holds the vault.
    var holder: INS
    /// Whether the principal authored at least one document in the vault.
    var principalAuthoredAny: Bool
}

/// The single access decision every operation passes through: a pure
/// function of principal, action, vault and document. Deny by default.
///
/// This is the first, deliberately narrow rule set: the patient and the
/// author are allowed, everyone else is denied; insurers never read. The
/// full DMP rules (grants, blocking, the profession × category matrix,
/// confidentiality flags, break-glass) replace the body of this function
/// without changing its callers.
enum AccessPolicy {
    static func decide(
        _ action: VaultAction, by principal: Principal, vault: VaultAccessContext,
        document: DocumentMetadata? = nil, category: DocumentCategory? = nil,
        channel: CreationChannel? = nil
    ) -> AccessDecision {
        let isHolder: Bool = if case .patient(let ins) = principal { ins == vault.holder } else { false }
        let isInsurer: Bool = if case .insurer = principal { true } else { false }

        switch action {
        case .createVault:
            guard let channel else { return .deny(.creationChannelMismatch) }
            return channelFits(channel, principal: principal, holder: vault.holder)
                ? .allow(.creationChannelFits) : .deny(.creationChannelMismatch)

        case .deposit:
            if isInsurer {
                return category == .reimbursement ? .allow(.depositByAuthor) : .deny(.insurerDepositsReimbursementOnly)
            }
            if isHolder { return .allow(.patientIsHolder) }
            if case .patient = principal { return .deny(.notAuthorised) }
            return .allow(.depositByAuthor)

        case .replace:
            if isInsurer { return .deny(.forbiddenClass) }
            guard let document else { return .deny(.notAuthorised) }
            return document.author == principal ? .allow(.authorOfDocument) : .deny(.onlyAuthorReplaces)

        case .readVaultInfo, .listDocuments, .readMetadata, .readContent, .listVersions:
            if isInsurer { return .deny(.forbiddenClass) }
            if isHolder { return .allow(.patientIsHolder) }
            if let document {
                return document.author == principal ? .allow(.authorOfDocument) : .deny(.notAuthorised)
            }
            // Vault level: an author may look for their own documents.
            return vault.principalAuthoredAny ? .allow(.authorOfDocument) : .deny(.notAuthorised)
        }
    }

    private static func channelFits(_ channel: CreationChannel, principal: Principal, holder: INS) -> Bool {
        switch (channel, principal) {
        case (.patientOnline, .patient(let ins)): return ins == holder
        case (.pharmacy, .professional(let p)): return p.profession == .pharmacist
        case (.pharmacy, .organisation(let o)): return o.kind == .pharmacy
        case (.insurerAgent, .insurer): return true
        case (.healthProfessional, .professional): return true
        case (.establishment, .organisation(let o)): return o.kind != .pharmacy
        default: return false
        }
    }
}
