import VaultStorage

/// The kinds of record the domain layer writes.
enum RecordKind: UInt8 {
    /// First record of a vault's stream (sequence 0).
    case vaultCreated = 1
    /// One version of a document: metadata and content descriptor.
    case documentVersion = 2
    /// A chunk of large content (not in the vault's stream; reached by
    /// location from its document version).
    case contentChunk = 3
    /// A change of who may access the vault, or an access event the vault
    /// must remember (first access, hidden-document notice).
    case vaultEvent = 4
    /// An entry of the vault's audit trail (in the vault's audit stream).
    case auditEntry = 5
    /// A copy of an audit entry in the acting professional's activity
    /// stream, for reviewers.
    case activityEntry = 6
    /// A record of the store's statistics stream.
    case statistics = 7
}

/// The clear, authenticated header of every domain record.
///
/// `format(1) kind(1) reserved(2) version(4) sequence(8) document(16)
/// keySlot(8) reserved(8)`: 48 bytes. With the vault's pseudonym it is the
/// associated data of the record's encryption, so a record moved to another
/// vault, position, document or version fails authentication.
struct RecordHeader: Equatable {
    static let size = 48
    static let formatVersion: UInt8 = 1

    var kind: RecordKind
    /// Position: index in the vault's stream, or chunk index for a chunk.
    var sequence: UInt64
    var document: DocumentID?
    var version: UInt32
    var keySlot: KeySlot?

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.write(Self.formatVersion)
        w.write(kind.rawValue)
        w.write(UInt16(0))
        w.write(version)
        w.write(sequence)
        w.write(bytes: document?.bytes ?? [UInt8](repeating: 0, count: 16))
        w.write(keySlot?.number ?? 0)
        w.write(UInt64(0))
        return w.bytes
    }

    /// The associated data: header bytes then the vault's pseudonym.
    func associatedData(vault: StreamID) -> [UInt8] {
        encoded() + vault.bytes
    }

    static func decode(_ payload: [UInt8]) throws -> RecordHeader {
        try payload.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            guard try r.read(UInt8.self) == formatVersion else {
                throw PatientVaultError(.unsupportedFormat, "unknown record format")
            }
            guard let kind = RecordKind(rawValue: try r.read()) else { throw ByteReader.Malformed() }
            // Reserved bytes must be zero: they are part of the associated
            // data, and a header is only accepted in its one encoding.
            guard try r.read(UInt16.self) == 0 else { throw ByteReader.Malformed() }
            let version: UInt32 = try r.read()
            let sequence: UInt64 = try r.read()
            let doc = try r.read(count: 16)
            let slot: UInt64 = try r.read()
            guard try r.read(UInt64.self) == 0 else { throw ByteReader.Malformed() }
            return RecordHeader(
                kind: kind, sequence: sequence,
                document: doc.allSatisfy { $0 == 0 } ? nil : DocumentID(bytes: doc),
                version: version, keySlot: slot == 0 ? nil : KeySlot(slot))
        }
    }
}
