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
    /// How far the activity copies are written (``ActivityWriter``).
    case activityMark = 8
}

extension RecordKind {
    /// The size class a sealed body is padded to (a multiple of this), so
    /// that record sizes tell less: audit entries and their activity copies
    /// pad to 512 bytes (every entry the API can produce but the largest
    /// principals fits one class, so a break-glass entry looks like any
    /// other), vault records and metadata to 256, statistics to 64.
    var paddingBlock: Int {
        switch self {
        case .auditEntry, .activityEntry: return 512
        case .vaultCreated, .vaultEvent, .documentVersion: return 256
        case .statistics, .activityMark: return 64
        case .contentChunk: return 1
        }
    }
}

/// ISO/IEC 7816-4 padding of sealed bodies: `0x80`, then zeros to the next
/// multiple of the block (always at least one byte). Removing it refuses
/// anything else, so a body decodes only in the one form it was written.
enum RecordPadding {
    static func pad(_ body: [UInt8], block: Int) -> [UInt8] {
        var out = body
        let total = (body.count / block + 1) * block
        out.reserveCapacity(total)
        out.append(0x80)
        out.append(contentsOf: repeatElement(0, count: total - out.count))
        return out
    }

    static func unpad(_ padded: [UInt8], block: Int) throws -> [UInt8] {
        guard !padded.isEmpty, padded.count % block == 0 else { throw ByteReader.Malformed() }
        var end = padded.count - 1
        while end >= 0 && padded[end] == 0 { end -= 1 }
        guard end >= 0, padded[end] == 0x80, padded.count - end <= block else { throw ByteReader.Malformed() }
        return Array(padded[..<end])
    }

    /// How many zero bytes pad a content of `size` bytes whose last chunk
    /// holds `last` of them: to the next power of two from 256 bytes to
    /// 4 KiB, then to the next multiple of 4 KiB, never past a chunk. The
    /// content's exact size is sealed in its metadata; on disk it shows
    /// only in these classes.
    static func contentPadding(last: Int, chunkSize: Int) -> Int {
        var target = 256
        while target < last && target < 4096 { target *= 2 }
        if last > 4096 { target = (last + 4095) / 4096 * 4096 }
        return max(0, min(target, chunkSize) - last)
    }
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
