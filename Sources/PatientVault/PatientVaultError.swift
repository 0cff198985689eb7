import VaultCrypto
import VaultStorage

/// The one error type of PatientVault's public API.
///
/// Errors carry a ``Code`` (an open-ended set, like GRDB's `DatabaseError`)
/// and identifiers that help a host act on them: the vault's pseudonymous
/// id, a document id, the access rule that decided, and, for a failure of
/// the store as a whole (never beside a vault or document id), a segment
/// and offset.
/// They never carry patient identifiers in clear, titles, clinical content
/// or key bytes.
public struct PatientVaultError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Equal when every public field is.
    public static func == (a: PatientVaultError, b: PatientVaultError) -> Bool {
        (a.code, a.message, a.vaultID, a.documentID) == (b.code, b.message, b.vaultID, b.documentID)
            && (a.rule, a.segment, a.offset) == (b.rule, b.segment, b.offset)
    }

    /// Hashes every public field.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(vaultID)
        hasher.combine(documentID)
        hasher.combine(rule)
        hasher.combine(segment)
        hasher.combine(offset)
    }

    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The code's name.
        public var description: String { name }

        /// An identifier (INS, RPPS, FINESS, document id) is malformed or
        /// its check digits are wrong.
        public static let invalidIdentifier = Code("invalidIdentifier")
        /// An argument is invalid: empty title, oversized metadata,
        /// inconsistent dates, an expiry in the past, a version out of
        /// range, a bad audit page. Nothing of the operation is written; on
        /// an existing vault the refusal itself is audited (rule
        /// ``AccessRule/invalidRequest``), like every other refusal.
        public static let invalidArgument = Code("invalidArgument")
        /// No vault exists for this patient.
        public static let unknownVault = Code("unknownVault")
        /// A vault already exists for this patient.
        public static let vaultAlreadyExists = Code("vaultAlreadyExists")
        /// No such document (or version), or not one this principal may see:
        /// the two are deliberately indistinguishable.
        public static let unknownDocument = Code("unknownDocument")
        /// The version asked for has been replaced; ask for the current one
        /// or opt in to history.
        public static let deprecatedVersion = Code("deprecatedVersion")
        /// The access decision denied the operation; ``PatientVaultError/rule`` says which rule.
        public static let accessDenied = Code("accessDenied")
        /// A concurrent operation changed the document first (two
        /// replacements of the same version).
        public static let conflict = Code("conflict")
        /// The master key does not open this store.
        public static let wrongMasterKey = Code("wrongMasterKey")
        /// The store is open in another process or handle.
        public static let storeLocked = Code("storeLocked")
        /// Bytes on disk are damaged or were altered (checksum or
        /// authentication failure, broken chain).
        public static let corrupted = Code("corrupted")
        /// The document's key was destroyed: it was erased.
        public static let erased = Code("erased")
        /// The vault was destroyed (its retention had ended): its tombstone
        /// remains, nothing of it reads.
        public static let vaultDestroyed = Code("vaultDestroyed")
        /// A write or `fdatasync` failed; the store acknowledges nothing more
        /// (reads included, since each needs its audit entry) until it is
        /// closed and reopened, and `close()` reports this code too.
        ///
        /// **The outcome of the call that got this error is unknown**: its
        /// atomic group may or may not have reached the disk. Do not retry
        /// blindly (a deposit retried could exist twice). Close, reopen
        /// (recovery keeps or drops each group whole), then look: the
        /// document (``VaultStore/documents(for:matching:as:purpose:secret:)``),
        /// the vault (``VaultStore/vaultInfo(for:as:purpose:secret:)``), or the
        /// policy change in the audit trail is there or not.
        public static let durabilityLost = Code("durabilityLost")
        /// The disk is full; nothing of the failed operation was written.
        public static let diskFull = Code("diskFull")
        /// Another I/O failure.
        public static let io = Code("io")
        /// The store was closed.
        public static let closed = Code("closed")
        /// Files of an unknown format version.
        public static let unsupportedFormat = Code("unsupportedFormat")
        /// The operation was cancelled before it was acknowledged; nothing
        /// of it is visible.
        public static let cancelled = Code("cancelled")
        /// The cryptographic library could not initialise or allocate
        /// guarded memory.
        public static let cryptoUnavailable = Code("cryptoUnavailable")
        /// The caller's own content sequence (a streamed deposit or
        /// replacement) threw: an upload that broke off, a file that could
        /// not be read. Nothing of the document is visible; the attempt is
        /// in the trail as `abandoned`. The caller's error, not the store's.
        public static let contentSourceFailed = Code("contentSourceFailed")
        /// The store's log does not extend a checkpoint the host trusts
        /// (``VaultStore/verify(against:)``): the folder was rolled back,
        /// records were cut, dropped, rewritten or reordered, or the
        /// checkpoint is of another store.
        public static let checkpointNotExtended = Code("checkpointNotExtended")
        /// The database server that keeps the store's records (the
        /// PostgreSQL engine) could not be reached, or refused the
        /// connection (TLS, authentication); nothing of the failed call
        /// was acknowledged. Retry later.
        public static let unavailable = Code("unavailable")

        /// The HTTP status a service built on the store answers with:
        ///
        /// | code | status |
        /// |---|---|
        /// | `invalidIdentifier`, `invalidArgument`, `contentSourceFailed` | 400 Bad Request |
        /// | `accessDenied` | 403 Forbidden |
        /// | `unknownVault`, `unknownDocument` | 404 Not Found (a document the caller may not see is "not found" too) |
        /// | `vaultAlreadyExists`, `conflict` | 409 Conflict |
        /// | `deprecatedVersion`, `erased`, `vaultDestroyed` | 410 Gone |
        /// | `diskFull` | 507 Insufficient Storage |
        /// | `storeLocked`, `closed`, `durabilityLost`, `cancelled`, `unavailable` | 503 Service Unavailable (retry after the store is reopened; for `durabilityLost`, check before retrying a write) |
        /// | `wrongMasterKey`, `corrupted`, `io`, `unsupportedFormat`, `cryptoUnavailable`, `checkpointNotExtended` | 500 Internal Server Error |
        public var httpStatus: Int {
            switch self {
            case .invalidIdentifier, .invalidArgument, .contentSourceFailed: 400
            case .accessDenied: 403
            case .unknownVault, .unknownDocument: 404
            case .vaultAlreadyExists, .conflict: 409
            case .deprecatedVersion, .erased, .vaultDestroyed: 410
            case .diskFull: 507
            case .storeLocked, .closed, .durabilityLost, .cancelled, .unavailable: 503
            default: 500
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// A short explanation without patient data.
    public var message: String
    /// The vault concerned, by the public id the API shows (``VaultInfo/vaultID``,
    /// never the stream id its records carry on disk), if any. Always nil
    /// for the codes a refused or unknown caller gets (``Code/accessDenied``,
    /// ``Code/unknownVault``, ``Code/unknownDocument``,
    /// ``Code/invalidArgument``, ``Code/invalidIdentifier``,
    /// ``Code/vaultAlreadyExists``): a refusal tells nothing about the vault.
    public var vaultID: String?
    /// The document concerned, if any.
    public var documentID: DocumentID?
    /// The access rule that denied, for ``Code/accessDenied``.
    public var rule: AccessRule?
    /// The segment file concerned, for storage errors that name no vault
    /// and no document (an error that names either names no place in the
    /// files: a log line would otherwise lead from the public ids to the
    /// vault's frames on disk).
    public var segment: UInt32?
    /// The byte offset concerned, with ``segment``.
    public var offset: UInt64?
    /// Whether the message is the storage layer's (which may name key
    /// slots, segments, records by number): scrubbed of them once the
    /// error concerns a vault or a document (``withoutFileLocations()``).
    /// Not part of equality, hashing or the coded form.
    var fromStorage = false

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, vaultID: String? = nil, documentID: DocumentID? = nil,
        rule: AccessRule? = nil, segment: UInt32? = nil, offset: UInt64? = nil
    ) {
        self.code = code
        self.message = message
        self.vaultID = Self.refusals.contains(code) ? nil : vaultID
        self.documentID = documentID
        self.rule = rule
        self.segment = segment
        self.offset = offset
    }

    /// The codes whose errors never name a vault.
    static let refusals: Set<Code> = [
        .accessDenied, .unknownVault, .unknownDocument, .invalidArgument, .invalidIdentifier, .vaultAlreadyExists,
    ]

    /// A one-line description, safe to log.
    public var description: String {
        var s = "PatientVaultError.\(code): \(message)"
        if let vaultID { s += " [vault \(vaultID)]" }
        if let documentID { s += " [document \(documentID)]" }
        if let rule { s += " [rule \(rule)]" }
        if let segment { s += " [segment \(segment)" + (offset.map { " offset \($0)" } ?? "") + "]" }
        return s
    }
}

// MARK: - JSON

extension PatientVaultError.Code {
    /// Every code this version of the library can produce.
    public static let all: [PatientVaultError.Code] = [
        .invalidIdentifier, .invalidArgument, .unknownVault, .vaultAlreadyExists, .unknownDocument, .deprecatedVersion,
        .accessDenied, .conflict, .wrongMasterKey, .storeLocked, .corrupted, .erased, .vaultDestroyed, .durabilityLost, .diskFull, .io,
        .closed, .unsupportedFormat, .cancelled, .cryptoUnavailable, .contentSourceFailed, .checkpointNotExtended, .unavailable,
    ]
}

extension PatientVaultError: Codable {
    private enum Keys: String, CodingKey {
        case code, message, httpStatus, vaultID, documentID, rule, segment, offset
    }

    /// The stable JSON of an error, for a service's response body:
    /// `{"code":"accessDenied","httpStatus":403,"message":"...","rule":"notAuthorised"}`,
    /// with `vaultID`, `documentID`, `rule`, `segment` and `offset` only when
    /// set. Like the error itself, it carries no patient data.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(code.description, forKey: .code)
        try c.encode(message, forKey: .message)
        try c.encode(code.httpStatus, forKey: .httpStatus)
        try c.encodeIfPresent(vaultID, forKey: .vaultID)
        try c.encodeIfPresent(documentID, forKey: .documentID)
        try c.encodeIfPresent(rule?.rawValue, forKey: .rule)
        try c.encodeIfPresent(segment, forKey: .segment)
        try c.encodeIfPresent(offset, forKey: .offset)
    }

    /// Decodes what ``encode(to:)`` writes: a code this version knows
    /// (``Code/all``), a rule it knows, and an `httpStatus` that is the
    /// code's; anything else is `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let name = try c.decode(String.self, forKey: .code)
        guard let code = Code.all.first(where: { $0.description == name }) else {
            throw DecodingError.dataCorruptedError(forKey: .code, in: c, debugDescription: "unknown error code")
        }
        guard try c.decode(Int.self, forKey: .httpStatus) == code.httpStatus else {
            throw DecodingError.dataCorruptedError(forKey: .httpStatus, in: c, debugDescription: "not the code's HTTP status")
        }
        var rule: AccessRule?
        if let text = try c.decodeIfPresent(String.self, forKey: .rule) {
            guard let r = AccessRule(rawValue: text) else {
                throw DecodingError.dataCorruptedError(forKey: .rule, in: c, debugDescription: "unknown rule")
            }
            rule = r
        }
        self.init(
            code, try c.decode(String.self, forKey: .message), vaultID: try c.decodeIfPresent(String.self, forKey: .vaultID),
            documentID: try c.decodeIfPresent(DocumentID.self, forKey: .documentID), rule: rule,
            segment: try c.decodeIfPresent(UInt32.self, forKey: .segment), offset: try c.decodeIfPresent(UInt64.self, forKey: .offset))
        if vaultID == nil, try c.decodeIfPresent(String.self, forKey: .vaultID) != nil {
            throw DecodingError.dataCorruptedError(forKey: .vaultID, in: c, debugDescription: "a refusal never names a vault")
        }
    }
}

// MARK: - Mapping from the lower layers

extension PatientVaultError {
    /// Translates any error of the layers below into the public error.
    package static func wrapping(_ error: any Error, vaultID: String? = nil, documentID: DocumentID? = nil) -> PatientVaultError {
        switch error {
        case let e as PatientVaultError:
            // A storage failure wrapped earlier without ids: once it
            // concerns a vault or a document, it names no place in the files.
            if e.fromStorage && (vaultID != nil || documentID != nil || e.vaultID != nil || e.documentID != nil) {
                return e.withoutFileLocations()
            }
            return e
        case let e as StorageError:
            let code: Code
            switch e.code {
            case .locked: code = .storeLocked
            case .corrupted, .invalidLocation, .keySlotEmpty: code = .corrupted
            case .keySlotDestroyed: code = .erased
            case .diskFull: code = .diskFull
            case .durabilityLost: code = .durabilityLost
            case .closed: code = .closed
            case .tooLarge: code = .invalidArgument
            case .unsupportedFormat: code = .unsupportedFormat
            case .unavailable: code = .unavailable
            case .wrongKey: code = .wrongMasterKey
            default: code = .io
            }
            // The system's errno, when there is one, says what the disk did.
            let message = e.errno.map { e.message + " (errno \($0))" } ?? e.message
            var wrapped = PatientVaultError(code, message, vaultID: vaultID, documentID: documentID, segment: e.segment, offset: e.offset)
            wrapped.fromStorage = true
            // An error that names a vault or a document names no place in
            // the files: a log line would otherwise lead from the public
            // ids to the vault's frames and stream on disk.
            return vaultID == nil && documentID == nil ? wrapped : wrapped.withoutFileLocations()
        case let e as CryptoError:
            if e.code == .authenticationFailed {
                return PatientVaultError(
                    .corrupted, "stored data failed authentication (altered, moved or wrong key)",
                    vaultID: vaultID, documentID: documentID)
            }
            return PatientVaultError(.cryptoUnavailable, e.message, vaultID: vaultID, documentID: documentID)
        case is ByteReader.Malformed:
            return PatientVaultError(.corrupted, "a stored record is malformed", vaultID: vaultID, documentID: documentID)
        case is CancellationError:
            return PatientVaultError(.cancelled, "cancelled", vaultID: vaultID, documentID: documentID)
        default:
            return PatientVaultError(.io, "unexpected failure: \(type(of: error))", vaultID: vaultID, documentID: documentID)
        }
    }
}

/// Runs `body`, translating lower-layer errors into ``PatientVaultError``.
@inline(__always)
func translatingErrors<R>(vaultID: String? = nil, documentID: DocumentID? = nil, _ body: () throws -> R) throws(PatientVaultError) -> R {
    do { return try body() } catch { throw PatientVaultError.wrapping(error, vaultID: vaultID, documentID: documentID) }
}

/// ``translatingErrors(vaultID:documentID:_:)`` for `async` work.
func translatingErrorsAsync<R>(
    vaultID: String? = nil, documentID: DocumentID? = nil, _ body: () async throws -> R
) async throws(PatientVaultError) -> R {
    do { return try await body() } catch { throw PatientVaultError.wrapping(error, vaultID: vaultID, documentID: documentID) }
}

extension PatientVaultError {
    /// The error without the storage layer's places: no segment or offset,
    /// and every number of a storage message (key slots, segments, records,
    /// leaves) replaced by `N`, but an `errno`. For an error that concerns a
    /// vault or a document: a host logs it beside the patient or the ids
    /// it asked about, and a place in the files would lead from them to
    /// the vault's frames and stream on disk.
    func withoutFileLocations() -> PatientVaultError {
        var e = self
        e.segment = nil
        e.offset = nil
        guard fromStorage else { return e }
        var scrubbed = ""
        var inNumber = false
        var rest = Substring(message)
        while let c = rest.first {
            // An errno stays: it says what the disk did, not where.
            if rest.hasPrefix("errno ") {
                scrubbed += "errno "
                rest = rest.dropFirst(6)
                while let d = rest.first, d.isASCII, d.isNumber {
                    scrubbed.append(d)
                    rest = rest.dropFirst()
                }
                inNumber = false
                continue
            }
            if c.isASCII && c.isNumber {
                if !inNumber { scrubbed += "N" }
                inNumber = true
            } else {
                scrubbed.append(c)
                inNumber = false
            }
            rest = rest.dropFirst()
        }
        e.message = scrubbed
        return e
    }
}
