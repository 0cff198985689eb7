import Foundation

// Codable: stable JSON for the values a service returns. Whatever the
// encoder's strategies, the JSON is the same: identifiers are strings
// (a document id as 32 lowercase hex digits, an INS as its 15 characters),
// hashes are lowercase hex, dates are ISO 8601 strings in UTC with
// milliseconds (`2023-11-14T22:13:20.000Z`), enumerations are their case
// names, a principal is an object tagged by `kind`. Decoding validates
// what it reads like the initialisers do (an INS with a wrong key, a
// malformed hash, an unknown kind are `DecodingError.dataCorrupted`).
// The shapes are documented in Documentation/Interop.md and pinned by
// golden tests.

/// The ISO 8601 form of the JSON's dates.
package enum JSONDate {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let seconds = Date.ISO8601FormatStyle()

    /// ISO 8601 with milliseconds, rounded to the nearest millisecond
    /// (Foundation's style truncates the binary fraction, so 0.61 s became
    /// ".609" and a date did not survive its own round trip). The store's
    /// clock readings are whole milliseconds (`Configuration.currentTime()`),
    /// so every date it records decodes to the same `Date`.
    ///
    /// Nil for a date that is not finite: it has no ISO 8601 form (and
    /// Foundation's style, given one, traps on some platforms and writes a
    /// date of another year on others).
    package static func format(_ date: Date) -> String? {
        let t = date.timeIntervalSince1970
        guard t.isFinite else { return nil }
        guard abs(t) < 1e14 else { return style.format(date) }
        let ms = Int64((t * 1000).rounded())
        let (whole, fraction) = (ms.floorDivided(by: 1000), ms - ms.floorDivided(by: 1000) * 1000)
        var text = seconds.format(Date(timeIntervalSince1970: Double(whole)))
        guard text.last == "Z" else { return style.format(date) }
        text.removeLast()
        let digits = String(fraction)
        return text + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    /// The text of `date` for the JSON field `key` of `c`.
    /// - Throws: `EncodingError.invalidValue` for a date that is not finite.
    static func encode<K: CodingKey>(_ date: Date, _ key: K, in c: KeyedEncodingContainer<K>) throws -> String {
        guard let text = format(date) else {
            // The value is the seconds, not the `Date`: describing a date
            // that is not a number traps too (`Date.description`).
            throw EncodingError.invalidValue(
                date.timeIntervalSince1970, EncodingError.Context(codingPath: c.codingPath + [key], debugDescription: "a date that is not finite has no ISO 8601 form"))
        }
        return text
    }

    /// `date` rounded to the nearest millisecond: what a decoded date is.
    static func milliseconds(_ date: Date) -> Date {
        let t = date.timeIntervalSince1970
        guard t.isFinite, abs(t) < 1e14 else { return date }
        return Date(timeIntervalSince1970: (t * 1000).rounded() / 1000)
    }

    static func decode<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>) throws -> Date {
        let text = try c.decode(String.self, forKey: key)
        guard let date = try? style.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an ISO 8601 date with milliseconds")
        }
        return milliseconds(date)
    }

    static func decodeIfPresent<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>) throws -> Date? {
        try c.contains(key) && !c.decodeNil(forKey: key) ? decode(key, in: c) : nil
    }
}

/// Lowercase hex for byte strings.
enum JSONHex {
    static func decode<K: CodingKey>(_ key: K, in c: KeyedDecodingContainer<K>) throws -> [UInt8] {
        let text = try c.decode(String.self, forKey: key)
        guard let bytes = bytes(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not lowercase hex")
        }
        return bytes
    }

    static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}

/// An identifier whose JSON form is one string: its ``canonicalText``,
/// read back through its validating initialiser.
///
/// ``DocumentID``, ``INS``, ``RPPSNumber``, ``FINESSNumber`` and
/// ``SystemPrincipal`` conform; their `Codable` implementation is this
/// protocol's.
public protocol StringIdentifier: Codable {
    /// Validates `text` as the identifier's own initialiser does.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    init(_ text: String) throws(PatientVaultError)
    /// The text the identifier is written as, which ``init(_:)`` reads back.
    var canonicalText: String { get }
}

extension StringIdentifier {
    /// Decodes one string, validated as ``init(_:)`` validates it; anything
    /// else is `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        do {
            try self.init(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "\(Self.self): \(error)")
        }
    }

    /// Encodes ``canonicalText`` as one string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(canonicalText)
    }
}

// MARK: - Identifiers

/// A document id is 32 lowercase hex digits.
extension DocumentID: StringIdentifier {}
/// An INS is its 15 characters (personal data: send it only where it belongs).
extension INS: StringIdentifier {}
/// An RPPS number is its 11 digits.
extension RPPSNumber: StringIdentifier {}
/// A FINESS number is its 9 characters.
extension FINESSNumber: StringIdentifier {}
/// A system principal is its identifier.
extension SystemPrincipal: StringIdentifier {}

// MARK: - Enumerations: their case names

extension DocumentCategory: Codable {}
extension CreationChannel: Codable {}
extension ReplacementReason: Codable {}
extension Profession: Codable {}
extension OrganisationKind: Codable {}
extension LegalRepresentative.Relationship: Codable {}
extension VaultAction: Codable {}
extension AccessRule: Codable {}
extension AuditOutcome: Codable {}
extension AuditPurpose: Codable {}
extension ClosureReason: Codable {}

/// `{"system": "http://loinc.org", "code": "11488-4"}`
extension DocumentTypeCode: Codable {
    private enum Keys: String, CodingKey { case system, code }

    /// Decodes `{"system": …, "code": …}` (both keys required).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(system: try c.decode(String.self, forKey: .system), code: try c.decode(String.self, forKey: .code))
    }

    /// Encodes `{"system": …, "code": …}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(system, forKey: .system)
        try c.encode(code, forKey: .code)
    }
}

/// The names of the flags set, in a fixed order:
/// `["maskedFromProfessionals", "hiddenFromPatient", "hiddenFromLegalRepresentatives"]`.
extension ConfidentialityFlags: Codable {
    private static let names: [(String, ConfidentialityFlags)] = [
        ("maskedFromProfessionals", .maskedFromProfessionals), ("hiddenFromPatient", .hiddenFromPatient),
        ("hiddenFromLegalRepresentatives", .hiddenFromLegalRepresentatives),
    ]

    /// Decodes an array of flag names, in any order; an unknown name is
    /// `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        var flags: ConfidentialityFlags = []
        for name in try c.decode([String].self) {
            guard let flag = Self.names.first(where: { $0.0 == name })?.1 else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown confidentiality flag")
            }
            flags.insert(flag)
        }
        self = flags
    }

    /// Encodes the names of the flags set, in this order:
    /// `maskedFromProfessionals`, `hiddenFromPatient`,
    /// `hiddenFromLegalRepresentatives`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(Self.names.filter { contains($0.1) }.map(\.0))
    }
}

// MARK: - Principals

/// `{"rpps": "10101234567", "profession": "doctor", "speciality": "cardiology"}`
/// (no `speciality` key when there is none).
extension HealthProfessional: Codable {
    private enum Keys: String, CodingKey { case rpps, profession, speciality }

    /// Decodes `rpps`, `profession` and the optional `speciality`, validated
    /// as ``HealthProfessional/init(rpps:profession:speciality:)`` validates
    /// them; an invalid value is `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let rpps = try c.decode(RPPSNumber.self, forKey: .rpps)
        let profession = try c.decode(Profession.self, forKey: .profession)
        do {
            try self.init(rpps: rpps, profession: profession, speciality: try c.decodeIfPresent(String.self, forKey: .speciality))
        } catch let error as PatientVaultError {
            throw DecodingError.dataCorruptedError(forKey: .speciality, in: c, debugDescription: "\(error)")
        }
    }

    /// Encodes `rpps`, `profession`, and `speciality` when there is one.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(rpps, forKey: .rpps)
        try c.encode(profession, forKey: .profession)
        try c.encodeIfPresent(speciality, forKey: .speciality)
    }
}

// `Organisation` and `LegalRepresentative` use the synthesized form, in
// Principal.swift (synthesis needs the declaring file).

/// An object tagged by `kind` (``Principal/kind``):
/// `{"kind": "patient", "ins": …}`, `{"kind": "representative", "ins": …,
/// "relationship": …}`, `{"kind": "professional" or "emergencyRegulator",
/// "rpps": …, "profession": …, "speciality"?: …}`, `{"kind":
/// "organisation", "finess": …, "organisationKind": …}`, `{"kind":
/// "insurer", "employer", "complementaryInsurer" or "auditReviewer",
/// "identifier": …}`, `{"kind": "system"}`.
extension Principal: Codable {
    private enum Keys: String, CodingKey {
        case kind, ins, relationship, rpps, profession, speciality, finess, organisationKind, identifier
    }

    /// Decodes the object for its `kind`, validating each identifier; an
    /// unknown `kind` is `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "patient": self = .patient(try c.decode(INS.self, forKey: .ins))
        case "representative": self = .representative(try LegalRepresentative(from: decoder))
        case "professional": self = .professional(try HealthProfessional(from: decoder))
        case "emergencyRegulator": self = .emergencyRegulator(try HealthProfessional(from: decoder))
        case "organisation":
            self = .organisation(Organisation(
                finess: try c.decode(FINESSNumber.self, forKey: .finess),
                kind: try c.decode(OrganisationKind.self, forKey: .organisationKind)))
        case "insurer": self = .insurer(try c.decode(SystemPrincipal.self, forKey: .identifier))
        case "employer": self = .employer(try c.decode(SystemPrincipal.self, forKey: .identifier))
        case "complementaryInsurer": self = .complementaryInsurer(try c.decode(SystemPrincipal.self, forKey: .identifier))
        case "auditReviewer": self = .auditReviewer(try c.decode(SystemPrincipal.self, forKey: .identifier))
        case "system": self = .system
        default: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown principal kind")
        }
    }

    /// Encodes `kind` and the fields of that kind, in one flat object.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(kind, forKey: .kind)
        switch self {
        case .patient(let ins): try c.encode(ins, forKey: .ins)
        case .representative(let r): try r.encode(to: encoder)
        case .professional(let p), .emergencyRegulator(let p): try p.encode(to: encoder)
        case .organisation(let o):
            try c.encode(o.finess, forKey: .finess)
            try c.encode(o.kind, forKey: .organisationKind)
        case .insurer(let s), .employer(let s), .complementaryInsurer(let s), .auditReviewer(let s):
            try c.encode(s, forKey: .identifier)
        case .system: break
        }
    }
}

// MARK: - Documents and vaults

/// `{"state": "current"}`, `{"state": "superseded", "by": 2}`,
/// `{"state": "enteredInError", "correctedBy": 2}`.
extension DocumentStatus: Codable {
    private enum Keys: String, CodingKey { case state, by, correctedBy }

    /// Decodes the object for its `state`; an unknown state is
    /// `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        switch try c.decode(String.self, forKey: .state) {
        case "current": self = .current
        case "superseded": self = .superseded(by: try c.decode(Int.self, forKey: .by))
        case "enteredInError": self = .enteredInError(correctedBy: try c.decode(Int.self, forKey: .correctedBy))
        default: throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "unknown document status")
        }
    }

    /// Encodes `state`, with `by` or `correctedBy` when replaced.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .current: try c.encode("current", forKey: .state)
        case .superseded(let by):
            try c.encode("superseded", forKey: .state)
            try c.encode(by, forKey: .by)
        case .enteredInError(let by):
            try c.encode("enteredInError", forKey: .state)
            try c.encode(by, forKey: .correctedBy)
        }
    }
}

/// The draft's fields; optional ones are absent when nil.
extension DocumentDraft: Codable {
    private enum Keys: String, CodingKey {
        case typeCode, category, title, createdAt, serviceStart, serviceEnd, mimeType, confidentiality
    }

    /// Decodes the draft's fields; `serviceStart`, `serviceEnd` and
    /// `confidentiality` may be absent (absent flags are none). Decoding does
    /// not validate the draft: a deposit does.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            typeCode: try c.decode(DocumentTypeCode.self, forKey: .typeCode), category: try c.decode(DocumentCategory.self, forKey: .category),
            title: try c.decode(String.self, forKey: .title), createdAt: try JSONDate.decode(.createdAt, in: c),
            serviceStart: try JSONDate.decodeIfPresent(.serviceStart, in: c), serviceEnd: try JSONDate.decodeIfPresent(.serviceEnd, in: c),
            mimeType: try c.decode(String.self, forKey: .mimeType),
            confidentiality: try c.decodeIfPresent(ConfidentialityFlags.self, forKey: .confidentiality) ?? [])
    }

    /// Encodes the draft's fields, leaving out `serviceStart` and `serviceEnd`
    /// when nil (`confidentiality` is always present).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode([
            .typeCode: typeCode, .category: category, .title: title, .createdAt: try JSONDate.encode(createdAt, .createdAt, in: c),
            .serviceStart: try serviceStart.map { try JSONDate.encode($0, .serviceStart, in: c) },
            .serviceEnd: try serviceEnd.map { try JSONDate.encode($0, .serviceEnd, in: c) },
            .mimeType: mimeType, .confidentiality: confidentiality,
        ])
    }
}

/// `id`, `version`, `draft`, `author`, `depositedAt`, `size`,
/// `contentHash` (hex), `replaces` (`{"version", "reason"}`, absent for a
/// first version), `status`.
extension DocumentMetadata: Codable {
    private enum Keys: String, CodingKey { case id, version, draft, author, depositedAt, size, contentHash, replaces, status }
    private enum ReplacesKeys: String, CodingKey { case version, reason }

    /// Decodes `id`, `version`, `draft`, `author`, `depositedAt`, `size`,
    /// `contentHash` (lowercase hex) and `status`, and `replaces` when
    /// present (it is absent for a first version).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            id: try c.decode(DocumentID.self, forKey: .id), version: try c.decode(Int.self, forKey: .version),
            draft: try c.decode(DocumentDraft.self, forKey: .draft), author: try c.decode(Principal.self, forKey: .author),
            depositedAt: try JSONDate.decode(.depositedAt, in: c), size: try c.decode(Int64.self, forKey: .size),
            contentHash: try JSONHex.decode(.contentHash, in: c), status: try c.decode(DocumentStatus.self, forKey: .status))
        if c.contains(.replaces) {
            let r = try c.nestedContainer(keyedBy: ReplacesKeys.self, forKey: .replaces)
            replaces = (try r.decode(Int.self, forKey: .version), try r.decode(ReplacementReason.self, forKey: .reason))
        }
    }

    /// Encodes `id`, `version`, `draft`, `author`, `depositedAt`, `size`,
    /// `contentHash` (lowercase hex) and `status`, and `replaces` for a
    /// replacing version only.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode([
            .id: id, .version: version, .draft: draft, .author: author, .depositedAt: try JSONDate.encode(depositedAt, .depositedAt, in: c),
            .size: size, .contentHash: hexEncoded(contentHash),
        ])
        if let replaces {
            var r = c.nestedContainer(keyedBy: ReplacesKeys.self, forKey: .replaces)
            try r.encode(replaces.version, forKey: .version)
            try r.encode(replaces.reason, forKey: .reason)
        }
        try c.encode(status, forKey: .status)
    }
}

/// `vaultID`, `createdBy`, `channel`, `createdAt`, `documentCount`; for a
/// closed vault also `closure` (`{"reason", "closedAt", "closedBy"}`,
/// `closedBy` absent when nil) and `retainedUntil`, each absent when nil.
extension VaultInfo: Codable {
    private enum Keys: String, CodingKey { case vaultID, createdBy, channel, createdAt, documentCount, closure, retainedUntil }
    private enum ClosureKeys: String, CodingKey { case reason, closedAt, closedBy }

    /// Decodes `vaultID`, `createdBy`, `channel`, `createdAt` and
    /// `documentCount`, and `closure` and `retainedUntil` when present.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            vaultID: try c.decode(String.self, forKey: .vaultID), createdBy: try c.decode(Principal.self, forKey: .createdBy),
            channel: try c.decode(CreationChannel.self, forKey: .channel), createdAt: try JSONDate.decode(.createdAt, in: c),
            documentCount: try c.decode(Int.self, forKey: .documentCount))
        if c.contains(.closure), try !c.decodeNil(forKey: .closure) {
            let r = try c.nestedContainer(keyedBy: ClosureKeys.self, forKey: .closure)
            closure = VaultClosure(
                reason: try r.decode(ClosureReason.self, forKey: .reason), closedAt: try JSONDate.decode(.closedAt, in: r),
                closedBy: try r.decodeIfPresent(Principal.self, forKey: .closedBy))
        }
        retainedUntil = try JSONDate.decodeIfPresent(.retainedUntil, in: c)
    }

    /// Encodes `vaultID`, `createdBy`, `channel`, `createdAt` and
    /// `documentCount`, and `closure` and `retainedUntil` when not nil (a
    /// closed vault's).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode([
            .vaultID: vaultID, .createdBy: createdBy, .channel: channel, .createdAt: try JSONDate.encode(createdAt, .createdAt, in: c),
            .documentCount: documentCount,
        ])
        if let closure {
            var r = c.nestedContainer(keyedBy: ClosureKeys.self, forKey: .closure)
            try r.encode(closure.reason, forKey: .reason)
            try r.encode(try JSONDate.encode(closure.closedAt, .closedAt, in: r), forKey: .closedAt)
            try r.encodeIfPresent(closure.closedBy, forKey: .closedBy)
        }
        if let retainedUntil { try c.encode(try JSONDate.encode(retainedUntil, .retainedUntil, in: c), forKey: .retainedUntil) }
    }
}

// MARK: - Audit entries

/// Every field of the entry; optional ones absent when nil; `reasonHash`
/// and `previousHash` as hex (`previousHash` empty in a representative's
/// view).
extension AuditEntry: Codable {
    private enum Keys: String, CodingKey {
        case sequence, time, actor, onBehalfOf, action, vaultID, document, version, outcome, rule, purpose, legalBasis
        case isBreakGlass, isSecretAccess, target, reasonHash, matrixVersion, previousHash
    }

    /// Decodes every field; optional ones may be absent. Hashes are checked to
    /// be lowercase hex, not verified against the chain.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            sequence: try c.decode(UInt64.self, forKey: .sequence), time: try JSONDate.decode(.time, in: c),
            actor: try c.decode(Principal.self, forKey: .actor), onBehalfOf: try c.decodeIfPresent(Principal.self, forKey: .onBehalfOf),
            action: try c.decode(VaultAction.self, forKey: .action), vaultID: try c.decode(String.self, forKey: .vaultID),
            document: try c.decodeIfPresent(DocumentID.self, forKey: .document), version: try c.decodeIfPresent(Int.self, forKey: .version),
            outcome: try c.decode(AuditOutcome.self, forKey: .outcome), rule: try c.decode(AccessRule.self, forKey: .rule),
            purpose: try c.decode(AuditPurpose.self, forKey: .purpose), legalBasis: try c.decodeIfPresent(String.self, forKey: .legalBasis),
            isBreakGlass: try c.decode(Bool.self, forKey: .isBreakGlass), isSecretAccess: try c.decode(Bool.self, forKey: .isSecretAccess),
            target: try c.decodeIfPresent(String.self, forKey: .target),
            reasonHash: c.contains(.reasonHash) ? try JSONHex.decode(.reasonHash, in: c) : nil,
            matrixVersion: try c.decode(String.self, forKey: .matrixVersion), previousHash: try JSONHex.decode(.previousHash, in: c))
    }

    /// Encodes every field; optional ones are left out when nil.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode([
            .sequence: sequence, .time: try JSONDate.encode(time, .time, in: c), .actor: actor, .onBehalfOf: onBehalfOf, .action: action,
            .vaultID: vaultID, .document: document, .version: version, .outcome: outcome, .rule: rule, .purpose: purpose,
            .legalBasis: legalBasis, .isBreakGlass: isBreakGlass, .isSecretAccess: isSecretAccess, .target: target,
            .reasonHash: reasonHash.map(hexEncoded), .matrixVersion: matrixVersion, .previousHash: hexEncoded(previousHash),
        ])
    }
}

extension KeyedEncodingContainer {
    /// Encodes each value under its key, in the order given, leaving out
    /// the nil ones (as `encodeIfPresent` does): a type's fields as one table.
    fileprivate mutating func encode(_ fields: KeyValuePairs<Key, (any Encodable)?>) throws {
        for case let (key, value?) in fields { try encode(value, forKey: key) }
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (dates before 1970).
    fileprivate func floorDivided(by d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
