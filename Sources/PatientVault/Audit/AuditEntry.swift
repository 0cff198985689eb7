import Foundation
import VaultCrypto
import VaultStorage

/// Whether an audited operation was allowed.
public enum AuditOutcome: String, Hashable, Sendable {
    /// The decision allowed it.
    case allowed
    /// The decision denied it.
    case denied
    /// The decision allowed it, but it was not carried out: the caller's
    /// content failed or its task was cancelled, a concurrent write won, or
    /// the disk refused the operation's records. Nothing but the entry was
    /// recorded.
    case abandoned
}

/// Why an access was made, as the audit trail records it.
public enum AuditPurpose: String, Hashable, Sendable, CaseIterable {
    /// Ordinary care by a professional or organisation.
    case care
    /// Break-glass access in an emergency.
    case emergency
    /// The patient or a representative using their own record.
    case personalAccess
    /// Reviewing the audit trail.
    case audit
    /// Events the store records on its own.
    case system
}

/// One entry of a vault's audit trail: who did what, when, on whose
/// behalf, with which outcome and why. Identifiers and hashes only: never
/// clinical content, titles or document bytes, so an entry survives the
/// erasure of the documents it mentions.
public struct AuditEntry: Hashable, Sendable {
    /// Position in the vault's chain, from 0 (0 in a legal representative's
    /// view, which carries no positions).
    public var sequence: UInt64
    /// When (the configured clock).
    public var time: Date
    /// Who acted (with profession, for professionals).
    public var actor: Principal
    /// On whose behalf: the patient, when a legal representative acts.
    public var onBehalfOf: Principal?
    /// What was attempted.
    public var action: VaultAction
    /// The vault, by the public id the API shows (``VaultInfo/vaultID``),
    /// not the stream id its records carry on disk; empty for store-level
    /// entries (reviews, statistics).
    public var vaultID: String
    /// The document concerned, if any.
    public var document: DocumentID?
    /// Its version, if one was concerned.
    public var version: Int?
    /// Allowed or denied.
    public var outcome: AuditOutcome
    /// The rule that decided.
    public var rule: AccessRule
    /// Why the access was made.
    public var purpose: AuditPurpose
    /// The legal basis, where one applies.
    public var legalBasis: String?
    /// Whether the access used break-glass.
    public var isBreakGlass: Bool
    /// A secret access (`CONNEXION_SECRETE`): hidden from legal representatives.
    public var isSecretAccess: Bool
    /// Whom a change of access concerned (a public RPPS or FINESS number,
    /// or "representative"), if any.
    public var target: String?
    /// Keyed BLAKE2b-256 of a break-glass reason (the reason itself is not
    /// kept: it could carry clinical detail). The host holding the reason
    /// can check it against this value through the store.
    public var reasonHash: [UInt8]?
    /// The matrix version in force.
    public var matrixVersion: String
    /// The chain hash of the previous entry (32 zero bytes for the first;
    /// empty in a legal representative's view).
    public var previousHash: [UInt8]

    /// An entry with every field, as the store writes it; public so that a
    /// host's tests can fake a trail (the store itself never takes one).
    public init(
        sequence: UInt64, time: Date, actor: Principal, onBehalfOf: Principal?, action: VaultAction, vaultID: String,
        document: DocumentID?, version: Int?, outcome: AuditOutcome, rule: AccessRule, purpose: AuditPurpose,
        legalBasis: String?, isBreakGlass: Bool, isSecretAccess: Bool, target: String?, reasonHash: [UInt8]?,
        matrixVersion: String, previousHash: [UInt8]
    ) {
        self.sequence = sequence
        self.time = time
        self.actor = actor
        self.onBehalfOf = onBehalfOf
        self.action = action
        self.vaultID = vaultID
        self.document = document
        self.version = version
        self.outcome = outcome
        self.rule = rule
        self.purpose = purpose
        self.legalBasis = legalBasis
        self.isBreakGlass = isBreakGlass
        self.isSecretAccess = isSecretAccess
        self.target = target
        self.reasonHash = reasonHash
        self.matrixVersion = matrixVersion
        self.previousHash = previousHash
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(sequence)
        w.write(date: time)
        w.write(principal: actor)
        if let onBehalfOf { w.write(UInt8(1)); w.write(principal: onBehalfOf) } else { w.write(UInt8(0)) }
        w.write(string: action.rawValue)
        w.write(string: vaultID)
        if let document { w.write(UInt8(1)); w.write(bytes: document.bytes) } else { w.write(UInt8(0)) }
        // Versions are validated (1...UInt32.max) before any entry is built.
        w.write(version.flatMap { UInt32(exactly: $0) } ?? 0)
        let outcomeByte: UInt8 = switch outcome {
        case .denied: 0
        case .allowed: 1
        case .abandoned: 2
        }
        w.write(outcomeByte)
        w.write(string: rule.rawValue)
        w.write(string: purpose.rawValue)
        w.write(optionalString: legalBasis)
        w.write(UInt8((isBreakGlass ? 1 : 0) | (isSecretAccess ? 2 : 0)))
        w.write(optionalString: target)
        w.write(lengthPrefixed: reasonHash ?? [])
        w.write(string: matrixVersion)
        w.write(bytes: previousHash)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> AuditEntry {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let sequence: UInt64 = try r.read()
            let time = try r.readDate()
            let actor = try r.readPrincipal()
            let onBehalf: Principal? = switch try r.read(UInt8.self) {
            case 0: nil
            case 1: try r.readPrincipal()
            default: throw ByteReader.Malformed()
            }
            guard let action = VaultAction(rawValue: try r.readString(limit: Limits.enumName)) else { throw ByteReader.Malformed() }
            let vaultID = try r.readString(limit: Limits.publicVaultID)
            let document: DocumentID? = switch try r.read(UInt8.self) {
            case 0: nil
            case 1: DocumentID(bytes: try r.read(count: 16))
            default: throw ByteReader.Malformed()
            }
            let version = Int(try r.read(UInt32.self))
            let outcome: AuditOutcome = switch try r.read(UInt8.self) {
            case 0: .denied
            case 1: .allowed
            case 2: .abandoned
            default: throw ByteReader.Malformed()
            }
            guard let rule = AccessRule(rawValue: try r.readString(limit: Limits.enumName)),
                  let purpose = AuditPurpose(rawValue: try r.readString(limit: Limits.enumName))
            else { throw ByteReader.Malformed() }
            let basis = try r.readOptionalString(limit: Limits.auditText)
            let flags: UInt8 = try r.read()
            guard flags & ~3 == 0 else { throw ByteReader.Malformed() }
            let target = try r.readOptionalString(limit: Limits.auditText)
            let reason = try r.readLengthPrefixed(limit: 32)
            guard reason.isEmpty || reason.count == 32 else { throw ByteReader.Malformed() }
            let matrix = try r.readString(limit: Limits.matrixVersion)
            let previous = try r.read(count: 32)
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return AuditEntry(
                sequence: sequence, time: time, actor: actor, onBehalfOf: onBehalf, action: action, vaultID: vaultID,
                document: document, version: version == 0 ? nil : version, outcome: outcome, rule: rule, purpose: purpose,
                legalBasis: basis, isBreakGlass: flags & 1 != 0, isSecretAccess: flags & 2 != 0, target: target,
                reasonHash: reason.isEmpty ? nil : reason, matrixVersion: matrix, previousHash: previous)
        }
    }

    /// The chain hash of this entry: keyed BLAKE2b-256 over its encoding
    /// (which includes the previous hash).
    func chainHash(key: SymmetricKey) -> [UInt8] {
        Self.chainHash(of: encoded(), key: key)
    }

    /// The chain hash of an entry already encoded.
    static func chainHash(of encoded: [UInt8], key: SymmetricKey) -> [UInt8] {
        BLAKE2b.hash(encoded, key: key)
    }
}

/// A filter and page of a vault's audit trail.
public struct AuditQuery: Hashable, Sendable {
    /// Only entries by this actor.
    public var actor: Principal?
    /// Only these actions.
    public var actions: Set<VaultAction>?
    /// Only entries in this time range.
    public var between: ClosedRange<Date>?
    /// Entries to skip (newest first), for paging.
    public var offset: Int
    /// Page size (1...100,000).
    public var limit: Int

    /// Creates a query (newest first).
    public init(actor: Principal? = nil, actions: Set<VaultAction>? = nil, between: ClosedRange<Date>? = nil, offset: Int = 0, limit: Int = 100) {
        (self.actor, self.actions, self.between, self.offset, self.limit) = (actor, actions, between, offset, limit)
    }

    func matches(_ e: AuditEntry) -> Bool {
        if let actor, e.actor != actor { return false }
        if let actions, !actions.contains(e.action) { return false }
        if let between, !between.contains(e.time) { return false }
        return true
    }

    func validate() throws(PatientVaultError) {
        guard offset >= 0, (1...100_000).contains(limit) else {
            throw PatientVaultError(.invalidArgument, "an audit page has an offset ≥ 0 and 1 to 100,000 entries")
        }
    }
}

/// The result of verifying a vault's audit chain.
public struct AuditVerification: Hashable, Sendable {
    /// Entries checked: the whole chain, withheld entries included.
    public var entries: Int
    /// The chain hash of the newest entry (hex): a value the host can
    /// publish elsewhere and compare later.
    public var headHash: String
    /// How many of ``entries`` the caller's own view of the trail
    /// (``VaultStore/auditTrail(for:matching:as:secret:)``) withholds now: for the
    /// patient, the entries about a document hidden from them
    /// (`INVISIBLE_PATIENT`) until it is released; 0 for reviewers. They
    /// were verified like every other entry.
    public var withheld: Int
    /// For a verification anchored to a checkpoint
    /// (``VaultStore/verifyAuditTrail(for:as:anchoredTo:secret:)``), how many of
    /// the trail's entries the checkpoint covers, each proven unchanged
    /// since it was signed; nil without an anchor.
    public var anchoredEntries: Int?

    /// A verification's result.
    public init(entries: Int, headHash: String, withheld: Int = 0, anchoredEntries: Int? = nil) {
        self.entries = entries
        self.headHash = headHash
        self.withheld = withheld
        self.anchoredEntries = anchoredEntries
    }
}

/// Something the host may want to tell the patient about.
public struct VaultNotification: Hashable, Sendable {
    /// The kinds of event.
    public enum Kind: Hashable, Sendable {
        /// A document was deposited in the vault.
        case newDocument(DocumentID)
        /// A professional or organisation accessed the vault for the first time.
        case firstAccess(Principal)
        /// A break-glass access.
        case breakGlass(Principal)
        /// A document hidden from the patient has not been released after two weeks.
        case hiddenDocumentNotice(DocumentID)
        /// Who may access the vault changed.
        case authorisationChanged(VaultAction)
        /// A document was erased (its tombstone remains).
        case documentErased(DocumentID)
    }

    /// The patient to notify (in memory only; never logged).
    public var patient: INS
    /// The vault's pseudonymous id.
    public var vaultID: String
    /// What happened.
    public var kind: Kind
    /// When.
    public var time: Date
    /// Whether a legal representative must not be told: it comes from the
    /// patient's secret access (`CONNEXION_SECRETE`), or concerns a
    /// document hidden from representatives (`INVISIBLE_REPRESENTANTS_LEGAUX`;
    /// a first access made by reading one). A host that relays the
    /// patient's notifications to their representatives (a minor's
    /// parents) leaves these out; the patient gets them all.
    public var hiddenFromRepresentatives: Bool = false
}
