import Foundation

/// The operations that pass the access decision (and are audited).
public enum VaultAction: String, Hashable, Sendable, CaseIterable {
    /// Creating a patient's vault (decided on the creation channel).
    case createVault
    /// Reading a vault's information (``VaultInfo``).
    case readVaultInfo
    /// Depositing a new document.
    case deposit
    /// Listing the documents of a vault.
    case listDocuments
    /// Reading one version's metadata.
    case readMetadata
    /// Reading a document's content (whole or streamed).
    case readContent
    /// Listing every version of a document.
    case listVersions
    /// Depositing a new version that replaces a document's current one.
    case replace
    /// Authorising a professional or organisation.
    case authorise
    /// Revoking an authorisation.
    case revoke
    /// Blocking a professional.
    case block
    /// Lifting a block.
    case unblock
    /// Designating, or removing, the médecin traitant.
    case setMedecinTraitant
    /// Adding a professional to the care team, or removing one.
    case updateCareTeam
    /// Naming a legal representative.
    case nameRepresentative
    /// Removing a legal representative.
    case removeRepresentative
    /// Opposing, or allowing again, break-glass access in advance.
    case setBreakGlassOpposition
    /// The author's release of a document hidden from the patient.
    case releaseToPatient
    /// The store's own release of a hidden document after one month.
    case automaticRelease
    /// The store's 2-week notice of a hidden document not yet released.
    case hiddenDocumentNotice
    /// Reading a vault's audit trail.
    case readAuditTrail
    /// Verifying a vault's audit trail hash chain.
    case verifyAuditTrail
    /// "Who could read this document at T", "what could this professional see at T".
    case queryAccessHistory
    /// A reviewer reads what one professional did across vaults.
    case reviewActivity
    /// A reviewer reads the store's statistics.
    case readStatistics
    /// Erasing a document: every version's key destroyed, a tombstone
    /// left (CSP R1111-51).
    case erase
    /// Closing a vault at the patient's request.
    case closeVault
    /// Closing a vault on the patient's death.
    case recordDeath
    /// Reopening a closed vault during its retention period.
    case reopenVault
    /// Giving an heir read access to a deceased patient's vault.
    case authoriseHeir
    /// Destroying a vault whose retention has ended.
    case destroyVault
    /// Replacing the store's checkpoint signing key (store-level).
    case rotateSigningKey
    /// Wrapping the store's root key under a new master key (store-level).
    case rotateMasterKey
    /// Removing the bytes of erased documents and destroyed vaults from
    /// the store's files (store-level; ``VaultStore/compact(as:progress:)``).
    case compact
    /// Reading every record of the store's files and writing back each
    /// damaged byte whose value is proven (store-level;
    /// ``VaultStore/scrub(as:progress:)``).
    case scrub
    /// Taking the vault out of the store, with its trail and proofs
    /// (``VaultStore/exportVault(for:as:secret:)``): the patient's right to their data.
    case exportVault
    /// Bringing a vault's export into this store
    /// (``VaultStore/importVault(_:trusting:as:secret:)``).
    case importVault
    /// Giving a vault a new document-key wrapping key
    /// (``VaultStore/rotateVaultKey(for:as:secret:)``).
    case rotateVaultKey

    /// Reads of clinical data (documents or their listing).
    var readsDocuments: Bool {
        switch self {
        case .readVaultInfo, .listDocuments, .readMetadata, .readContent, .listVersions: return true
        default: return false
        }
    }

    /// Operations that write the vault (their entry is always durable with them).
    var isWrite: Bool {
        switch self {
        case .createVault, .deposit, .replace, .releaseToPatient, .automaticRelease, .hiddenDocumentNotice, .erase, .closeVault,
             .recordDeath, .reopenVault, .authoriseHeir, .destroyVault, .importVault, .rotateVaultKey:
            return true
        default: return managesAccess
        }
    }

    /// Writes a closed vault refuses (rule ``AccessRule/vaultClosed``):
    /// every change of its documents or its access, and closing it again.
    var isRefusedWhenClosed: Bool {
        switch self {
        case .deposit, .replace, .erase, .releaseToPatient, .closeVault, .recordDeath, .importVault, .rotateVaultKey: return true
        default: return managesAccess
        }
    }

    /// Changes to who may access the vault.
    var managesAccess: Bool {
        switch self {
        case .authorise, .revoke, .block, .unblock, .setMedecinTraitant, .updateCareTeam, .nameRepresentative,
             .removeRepresentative, .setBreakGlassOpposition:
            return true
        default: return false
        }
    }
}

/// The rule that decided an access, kept with denials and in the audit trail.
public enum AccessRule: String, Hashable, Sendable, CaseIterable {
    // Allowing rules.
    /// The principal is the patient who holds the vault.
    case patientIsHolder
    /// A legal representative the vault names.
    case legalRepresentative
    /// The patient's médecin traitant.
    case medecinTraitant
    /// A professional or organisation the patient authorised, grant active.
    case authorisedByPatient
    /// A member of the patient's care team.
    case careTeam
    /// The author of the document (always sees their own).
    case authorOfDocument
    /// Break-glass: emergency access with a stated reason (CSP L1111-17 I).
    case breakGlass
    /// Professionals and organisations may deposit without the patient's
    /// consent to read (CSP L1111-17 III).
    case depositByAuthor
    /// The insurer deposits the reimbursement history.
    case insurerDeposit
    /// The creation channel fits the principal.
    case creationChannelFits
    /// A document hidden from the patient, visible one month after deposit (CSP R1111-53).
    case hiddenDocumentReleasedByTime
    /// A reviewer named in the configuration.
    case configuredReviewer
    /// A doctor records the patient's death (or corrects that record).
    case certifiesDeath
    /// An heir given access after the patient's death.
    case heirOfDeceased
    /// The store's own scheduled events.
    case systemEvent

    // Denying rules.
    /// Insurers, employers and complementary insurers never read (CSP L1111-18).
    case forbiddenClass
    /// Nothing authorises this principal (the default).
    case notAuthorised
    /// The principal's authorisation has expired.
    case grantExpired
    /// The principal's authorisation was revoked.
    case grantRevoked
    /// The patient blocked this professional.
    case blockedByPatient
    /// Break-glass refused: the patient opposed it in advance.
    case breakGlassOpposed
    /// The profession × category matrix does not allow this category.
    case professionMatrix
    /// `MASQUE_PS`: masked from professionals other than author and médecin traitant.
    case maskedFromProfessionals
    /// `INVISIBLE_PATIENT`: hidden from the patient until released.
    case hiddenFromPatient
    /// `INVISIBLE_REPRESENTANTS_LEGAUX`: hidden from legal representatives.
    case hiddenFromLegalRepresentatives
    /// The creation channel does not fit the principal.
    case creationChannelMismatch
    /// The insurer deposits reimbursement data only.
    case insurerDepositsReimbursementOnly
    /// Only the author replaces a document.
    case onlyAuthorReplaces
    /// Only the patient or a representative manages access.
    case onlyPatientManagesAccess
    /// Only the author releases a hidden document.
    case onlyAuthorReleases
    /// Only the document's author erases it: the patient their own
    /// deposits, a professional theirs at the patient's request (CSP R1111-51).
    case onlyAuthorErases
    /// The vault is closed: read-only until it is reopened or destroyed
    /// (CSP L1111-18).
    case vaultClosed
    /// Only a doctor the patient let in (médecin traitant, authorised,
    /// care team; not blocked) records the patient's death.
    case onlyDoctorCertifiesDeath
    /// Not a reviewer named in the configuration.
    case notAReviewer
    /// The document does not exist (as far as this principal can tell).
    case unknownDocument
    /// The request itself was invalid (a bad argument): refused before any
    /// decision on the vault, nothing of it written but its audit entry.
    case invalidRequest
    /// A vault creation for a patient who already has a vault: refused,
    /// and recorded in that vault's trail (the patient sees who tried).
    case vaultAlreadyExists

    /// The legal source of the rule, where one applies.
    public var legalBasis: String? {
        switch self {
        case .forbiddenClass: return "CSP L1111-18"
        case .breakGlass, .breakGlassOpposed: return "CSP L1111-17 I"
        case .depositByAuthor, .insurerDeposit: return "CSP L1111-17 III"
        case .authorisedByPatient, .blockedByPatient, .grantExpired, .grantRevoked, .careTeam: return "CSP L1111-17 I"
        case .hiddenFromPatient, .hiddenDocumentReleasedByTime: return "CSP R1111-53"
        case .professionMatrix: return "Arrêté du 26 octobre 2023"
        case .onlyAuthorErases: return "CSP R1111-51"
        case .vaultClosed: return "CSP L1111-18"
        default: return nil
        }
    }
}

/// Why an access is made. Break-glass needs a reason.
public enum AccessPurpose: Hashable, Sendable {
    /// Ordinary care (the default).
    case care
    /// Break-glass (*bris de glace*): a patient who cannot express their
    /// will faces an immediate risk, or the SAMU regulator on a call. The
    /// reason is required; the audit trail keeps its keyed BLAKE2b hash
    /// (not the text, which could carry clinical detail).
    case breakGlass(reason: BreakGlassReason)
}

/// The stated reason of a break-glass access, validated when created.
///
/// 1 to 1,024 UTF-8 bytes, at least 4 letters or digits (Unicode general
/// categories L and N, Hangul fillers excluded), and no control or format
/// characters: a reason made of NUL, U+2060 WORD JOINER, U+FEFF, U+3164
/// HANGUL FILLER, U+2800 blank Braille, lone combining marks or symbols
/// alone is no reason.
public struct BreakGlassReason: Hashable, Sendable {
    /// The reason as the professional stated it. Only its keyed hash is stored.
    public let text: String

    /// Validates a reason.
    /// - Throws: ``PatientVaultError/Code/invalidArgument``.
    public init(_ text: String) throws(PatientVaultError) {
        guard Limits.isPrintable(text, maximum: Limits.breakGlassReason) else {
            throw PatientVaultError(
                .invalidArgument,
                "a break-glass reason is 1 to \(Limits.breakGlassReason) UTF-8 bytes without control or format characters")
        }
        // Letters and digits (Unicode general categories L and N), not
        // merely non-blank scalars: fillers (U+3164), blank Braille
        // (U+2800), lone combining marks and symbols state no reason.
        let meaningful = text.unicodeScalars.filter { BreakGlassReason.isLetterOrDigit($0) }.count
        guard meaningful >= Limits.breakGlassReasonLettersOrDigits else {
            throw PatientVaultError(
                .invalidArgument, "a break-glass reason has at least \(Limits.breakGlassReasonLettersOrDigits) letters or digits")
        }
        self.text = text
    }

    /// Whether `scalar` is a letter or a digit (general categories L and N),
    /// other than the Hangul fillers, which Unicode classes as letters
    /// although they draw nothing.
    static func isLetterOrDigit(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x115F, 0x1160, 0x3164, 0xFFA0: return false
        default: break
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }
}

/// The outcome of the access decision.
public struct AccessDecision: Hashable, Sendable {
    /// Whether the operation may proceed.
    public var isAllowed: Bool
    /// The rule that decided.
    public var rule: AccessRule
    /// Whether the access relies on break-glass (flagged in the audit trail).
    public var isBreakGlass: Bool = false

    static func allow(_ rule: AccessRule, breakGlass: Bool = false) -> AccessDecision {
        AccessDecision(isAllowed: true, rule: rule, isBreakGlass: breakGlass)
    }
    static func deny(_ rule: AccessRule) -> AccessDecision { AccessDecision(isAllowed: false, rule: rule) }
}

/// Everything the decision may look at.
public struct AccessRequest: Sendable {
    /// What is attempted.
    public var action: VaultAction
    /// Who attempts it.
    public var principal: Principal
    /// Why.
    public var purpose: AccessPurpose
    /// The patient who holds the vault (nil for requests about no vault).
    public var holder: INS?
    /// Who may access the vault at ``time``.
    public var policy: VaultPolicy
    /// The document concerned (its current version), if any.
    public var document: DocumentMetadata?
    /// When the document's current period of being hidden from the patient
    /// began (the deposit of the first version of its unbroken run of hidden
    /// versions, across replacements; a visible version or a release ends a
    /// run): the one-month rule counts from it. nil: from the document's own
    /// deposit time.
    public var hiddenSince: Date?
    /// The category of a deposit (or of a replacement's new version).
    public var category: DocumentCategory?
    /// The channel of a vault creation.
    public var channel: CreationChannel?
    /// Whether the principal authored at least one document of the vault.
    public var principalAuthoredAny: Bool
    /// Whether the configuration names the principal as an audit reviewer.
    public var isConfiguredReviewer: Bool
    /// The matrix in force.
    public var matrix: AccessMatrix
    /// When (the configured clock's now, or a past time for history queries).
    public var time: Date

    /// Creates a request.
    public init(
        action: VaultAction, principal: Principal, purpose: AccessPurpose = .care, holder: INS?,
        policy: VaultPolicy = VaultPolicy(), document: DocumentMetadata? = nil, hiddenSince: Date? = nil,
        category: DocumentCategory? = nil,
        channel: CreationChannel? = nil, principalAuthoredAny: Bool = false, isConfiguredReviewer: Bool = false,
        matrix: AccessMatrix = .default2023, time: Date
    ) {
        self.action = action
        self.principal = principal
        self.purpose = purpose
        self.holder = holder
        self.policy = policy
        self.document = document
        self.hiddenSince = hiddenSince
        self.category = category
        self.channel = channel
        self.principalAuthoredAny = principalAuthoredAny
        self.isConfiguredReviewer = isConfiguredReviewer
        self.matrix = matrix
        self.time = time
    }
}

/// The single access decision every operation passes through: a pure
/// function of the request (principal, vault policy, document, purpose,
/// time). Deny by default. `Documentation/AccessModel.md` states the rules
/// and their order.
public enum AccessPolicy {
    /// A hidden document becomes visible to the patient this long after
    /// its deposit (CSP R1111-53).
    public static let hiddenDocumentReleaseDelay: TimeInterval = 30 * 86_400
    /// The patient is notified of an unreleased hidden document this long
    /// after its deposit.
    public static let hiddenDocumentNoticeDelay: TimeInterval = 14 * 86_400

    /// Decides.
    public static func decide(_ q: AccessRequest) -> AccessDecision {
        let decision = decideIgnoringClosure(q)
        // A closed vault is read-only (its closure to a death, its
        // reopening, heirs and its destruction excepted). Checked after the
        // other rules, so that only those who could write learn that it is
        // closed.
        if decision.isAllowed, let closure = q.policy.closure, q.action.isRefusedWhenClosed,
           !(q.action == .recordDeath && closure.reason == .patientRequest)
        {
            return .deny(.vaultClosed)
        }
        return decision
    }

    private static func decideIgnoringClosure(_ q: AccessRequest) -> AccessDecision {
        let p = q.principal
        let isHolder: Bool = if case .patient(let ins) = p { ins == q.holder } else { false }
        let isRepresentative: Bool = if case .representative(let r) = p { q.policy.representatives[r.ins] != nil } else { false }
        let patientSide = isHolder || isRepresentative
        let patientSideRule: AccessRule = isHolder ? .patientIsHolder : .legalRepresentative

        // A doctor who records (or corrects) a death is one the patient
        // let in: the médecin traitant, an authorised doctor or one of the
        // care team, not blocked. The profession judged is the one the
        // patient's designation recorded, not the one the caller claims
        // (a nurse of the care team who calls as a doctor is a nurse).
        let isDoctorOfThePatient: Bool = {
            guard case .professional(let pro) = p, pro.profession == .doctor else { return false }
            let policy = q.policy
            if let mt = policy.medecinTraitant, mt.rpps == pro.rpps { return mt.profession == .doctor }
            if policy.blocked.contains(pro.rpps) { return false }
            if let grant = policy.grants[.professional(pro.rpps)], grant.isActive(at: q.time),
               grant.grantee.healthProfessional?.profession == .doctor
            {
                return true
            }
            return policy.careTeam[pro.rpps]?.profession == .doctor
        }()

        switch q.action {
        case .createVault:
            guard let channel = q.channel else { return .deny(.creationChannelMismatch) }
            return channelFits(channel, principal: p, holder: q.holder) ? .allow(.creationChannelFits) : .deny(.creationChannelMismatch)

        case .deposit:
            switch p {
            case .insurer:
                return q.category == .reimbursement ? .allow(.insurerDeposit) : .deny(.insurerDepositsReimbursementOnly)
            case .employer, .complementaryInsurer: return .deny(.forbiddenClass)
            case .professional, .emergencyRegulator, .organisation: return .allow(.depositByAuthor)
            case .patient, .representative: return patientSide ? .allow(patientSideRule) : .deny(.notAuthorised)
            case .auditReviewer, .system: return .deny(.notAuthorised)
            }

        case .replace:
            // The new version is judged as a deposit of its category is
            // (the insurer replaces reimbursement data with reimbursement
            // data only), then on authorship and blocking.
            var asDeposit = q
            asDeposit.action = .deposit
            asDeposit.document = nil
            let deposit = decide(asDeposit)
            guard deposit.isAllowed else { return deposit }
            if p.isForbiddenClass, !(q.document?.author == p && p.isInsurer) { return .deny(.forbiddenClass) }
            guard let document = q.document else { return .deny(.unknownDocument) }
            guard document.author == p else { return .deny(.onlyAuthorReplaces) }
            // A blocked author no longer writes in the vault either.
            if let pro = p.healthProfessional, q.policy.blocked.contains(pro.rpps), q.policy.medecinTraitant?.rpps != pro.rpps {
                return .deny(.blockedByPatient)
            }
            return .allow(.authorOfDocument)

        case .releaseToPatient:
            guard let document = q.document else { return .deny(.unknownDocument) }
            return document.author == p ? .allow(.authorOfDocument) : .deny(.onlyAuthorReleases)

        case .closeVault:
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            return patientSide ? .allow(patientSideRule) : .deny(.onlyPatientManagesAccess)

        case .recordDeath:
            return isDoctorOfThePatient ? .allow(.certifiesDeath) : .deny(.onlyDoctorCertifiesDeath)

        case .reopenVault:
            // Whoever may make the closure may undo it: the patient theirs,
            // a doctor a death recorded by mistake.
            if q.policy.closure?.reason == .death {
                return isDoctorOfThePatient ? .allow(.certifiesDeath) : .deny(.onlyDoctorCertifiesDeath)
            }
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            return patientSide ? .allow(patientSideRule) : .deny(.onlyPatientManagesAccess)

        case .authoriseHeir, .destroyVault:
            // The operator's decision (its data-protection officer), on the
            // heirs' request or once retention has ended; destruction also
            // by the store's own daily job.
            if case .system = p, q.action == .destroyVault { return .allow(.systemEvent) }
            if case .auditReviewer = p { return q.isConfiguredReviewer ? .allow(.configuredReviewer) : .deny(.notAReviewer) }
            return p.isForbiddenClass ? .deny(.forbiddenClass) : .deny(.notAReviewer)

        case .erase:
            // The patient erases what they deposited; a professional or an
            // organisation what they wrote, at the patient's request (the
            // caller states the reason). Nobody erases another's document.
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            guard let document = q.document else { return .deny(.unknownDocument) }
            guard document.author == p else { return .deny(.onlyAuthorErases) }
            switch p {
            // A patient or representative acts on this patient's vault only.
            case .patient, .representative: return patientSide ? .allow(patientSideRule) : .deny(.notAuthorised)
            default: return .allow(.authorOfDocument)
            }

        case .authorise, .revoke, .block, .unblock, .setMedecinTraitant, .updateCareTeam, .nameRepresentative,
             .removeRepresentative, .setBreakGlassOpposition:
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            return patientSide ? .allow(patientSideRule) : .deny(.onlyPatientManagesAccess)

        case .readAuditTrail:
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            return patientSide ? .allow(patientSideRule) : .deny(.notAuthorised)

        case .rotateVaultKey:
            // The patient, or the operator's reviewer (a suspected exposure).
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            if case .auditReviewer = p { return q.isConfiguredReviewer ? .allow(.configuredReviewer) : .deny(.notAReviewer) }
            if isRepresentative { return .deny(.notAuthorised) }
            return patientSide ? .allow(patientSideRule) : .deny(.notAuthorised)

        case .exportVault, .importVault:
            // The patient's own: a representative's view of the trail
            // leaves entries out, so their export could not be checked whole.
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            if isRepresentative { return .deny(.notAuthorised) }
            return patientSide ? .allow(patientSideRule) : .deny(.notAuthorised)

        case .verifyAuditTrail, .queryAccessHistory:
            if p.isForbiddenClass { return .deny(.forbiddenClass) }
            // Verification counts every entry, secret accesses included:
            // not for representatives, whose view leaves those out.
            if isRepresentative && q.action == .verifyAuditTrail { return .deny(.notAuthorised) }
            if patientSide { return .allow(patientSideRule) }
            if case .auditReviewer = p { return q.isConfiguredReviewer ? .allow(.configuredReviewer) : .deny(.notAReviewer) }
            return .deny(.notAuthorised)

        case .reviewActivity, .readStatistics, .rotateSigningKey, .rotateMasterKey, .compact, .scrub:
            if case .auditReviewer = p { return q.isConfiguredReviewer ? .allow(.configuredReviewer) : .deny(.notAReviewer) }
            return p.isForbiddenClass ? .deny(.forbiddenClass) : .deny(.notAReviewer)

        case .automaticRelease, .hiddenDocumentNotice:
            if case .system = p { return .allow(.systemEvent) }
            return .deny(.notAuthorised)

        case .readVaultInfo, .listDocuments, .readMetadata, .readContent, .listVersions:
            return decideRead(q, isHolder: isHolder, isRepresentative: isRepresentative)
        }
    }

    /// The read rules, in order: forbidden classes; authorisation or
    /// break-glass; blocking; the matrix; the confidentiality flags.
    private static func decideRead(_ q: AccessRequest, isHolder: Bool, isRepresentative: Bool) -> AccessDecision {
        let p = q.principal
        let policy = q.policy
        // 1. Forbidden classes, whatever the grants.
        if p.isForbiddenClass { return .deny(.forbiddenClass) }
        let isAuthor = q.document.map { $0.author == p } ?? false
        let professional = p.healthProfessional
        let isMedecinTraitant = professional.map { policy.medecinTraitant?.rpps == $0.rpps } ?? false
        // Authorship of a document opens that document (and a listing of
        // what the author wrote), never the vault's own information.
        let authorOfSomething = q.document == nil && q.principalAuthoredAny && q.action != .readVaultInfo
        // The profession the matrix judges: the one the patient's own
        // designation recorded (médecin traitant, grant, care team), not
        // the one the caller claims; the claim counts only for authors and
        // break-glass, which no designation backs.
        var profession = professional?.profession
        // Whether what authorises came from a representative's designation:
        // it does not open documents hidden from representatives.
        var designatedByRepresentative = false

        // 2. Authorisation, or break-glass.
        var basis: AccessRule
        var breakGlass = false
        switch p {
        case .patient(let ins):
            if isHolder {
                basis = .patientIsHolder
            } else if policy.closure?.reason == .death, policy.heirs.contains(ins) {
                basis = .heirOfDeceased
            } else {
                return .deny(.notAuthorised)
            }
        case .representative:
            guard isRepresentative else { return .deny(.notAuthorised) }
            basis = .legalRepresentative
        case .professional(let pro), .emergencyRegulator(let pro):
            let grant = policy.grants[.professional(pro.rpps)]
            // Only a reader whom representatives alone designated is kept
            // from documents hidden from them: any designation the patient
            // made (médecin traitant, grant, care team) opens them, whichever
            // basis is named.
            let activeGrant = grant.flatMap { $0.isActive(at: q.time) ? $0 : nil }
            let designatedByPatient = (isMedecinTraitant && policy.medecinTraitant != nil && !policy.medecinTraitantSetByRepresentative)
                || (activeGrant.map { !$0.grantedByRepresentative } ?? false)
                || (policy.careTeam[pro.rpps] != nil && !policy.careTeamAddedByRepresentative.contains(pro.rpps))
            if isMedecinTraitant, let mt = policy.medecinTraitant {
                basis = .medecinTraitant
                profession = mt.profession
                designatedByRepresentative = !designatedByPatient
            } else if let grant = activeGrant {
                basis = .authorisedByPatient
                profession = grant.grantee.healthProfessional?.profession ?? pro.profession
                designatedByRepresentative = !designatedByPatient
            } else if let member = policy.careTeam[pro.rpps] {
                basis = .careTeam
                profession = member.profession
                designatedByRepresentative = !designatedByPatient
            } else if isAuthor {
                basis = .authorOfDocument
            } else if case .breakGlass = q.purpose, !policy.breakGlassOpposed {
                // Before authorship of other documents: a listing by
                // break-glass shows every document, so it is judged (and
                // flagged, and notified) as break-glass.
                basis = .breakGlass
                breakGlass = true
            } else if authorOfSomething {
                basis = .authorOfDocument
            } else if case .breakGlass = q.purpose {
                return .deny(.breakGlassOpposed)
            } else {
                return lapsed(grant, at: q.time)
            }
        case .organisation(let o):
            let grant = policy.grants[.organisation(o.finess)]
            if let grant, grant.isActive(at: q.time) {
                basis = .authorisedByPatient
                designatedByRepresentative = grant.grantedByRepresentative
            } else if isAuthor || authorOfSomething {
                basis = .authorOfDocument
            } else {
                return lapsed(grant, at: q.time)
            }
        case .insurer, .employer, .complementaryInsurer, .auditReviewer, .system:
            return .deny(.notAuthorised)
        }

        // 3. Blocking (the médecin traitant cannot be blocked).
        if let professional, policy.blocked.contains(professional.rpps), !isMedecinTraitant {
            return .deny(.blockedByPatient)
        }
        guard let document = q.document else { return .allow(basis, breakGlass: breakGlass) }

        // 4. The profession × category matrix (the author sees their own).
        if !isAuthor {
            if let profession, !q.matrix.allows(profession, document.category) {
                return .deny(.professionMatrix)
            }
            if case .organisation = p, !q.matrix.organisations.contains(document.category) {
                return .deny(.professionMatrix)
            }
        }

        // 5. Confidentiality flags, with the author and médecin traitant overrides.
        let flags = document.confidentiality
        if !isAuthor {
            if flags.contains(.maskedFromProfessionals), professional != nil || isOrganisation(p), !isMedecinTraitant {
                return .deny(.maskedFromProfessionals)
            }
            if flags.contains(.hiddenFromLegalRepresentatives), isRepresentative || designatedByRepresentative {
                return .deny(.hiddenFromLegalRepresentatives)
            }
            // A release covers the versions deposited before it. The month
            // counts from the start of the document's hidden period, across
            // replacements (CSP R1111-53): replacing it does not restart it.
            let released = policy.released[document.id].map { $0 >= document.depositedAt } ?? false
            // An heir sees what the patient saw.
            if flags.contains(.hiddenFromPatient), isHolder || isRepresentative || basis == .heirOfDeceased, !released {
                let since = q.hiddenSince ?? document.depositedAt
                guard q.time >= since.addingTimeInterval(hiddenDocumentReleaseDelay) else {
                    return .deny(.hiddenFromPatient)
                }
                return .allow(.hiddenDocumentReleasedByTime)
            }
        }
        return .allow(basis, breakGlass: breakGlass)
    }

    /// The denial for a principal with no active grant: says whether a
    /// former grant was revoked or expired.
    private static func lapsed(_ grant: Grant?, at time: Date) -> AccessDecision {
        if let grant, grant.revokedAt.map({ time >= $0 }) == true { return .deny(.grantRevoked) }
        if let grant, grant.until.map({ time >= $0 }) == true { return .deny(.grantExpired) }
        return .deny(.notAuthorised)
    }

    private static func isOrganisation(_ p: Principal) -> Bool {
        if case .organisation = p { return true }
        return false
    }

    private static func channelFits(_ channel: CreationChannel, principal: Principal, holder: INS?) -> Bool {
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
