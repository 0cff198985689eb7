import VaultStorage

/// A record of the store's compaction stream: what compaction must remove,
/// written in the same atomic group as the erasure or destruction that
/// makes it removable (so nothing erased is ever forgotten by compaction,
/// whatever crashes), or how far compaction went.
///
/// Sealed under the lifecycle key. It names no place in the engine's
/// files: a version record is found again in its vault's stream by its
/// header (document id, unmasked with the store's ``HeaderMask``), a chunk by the reference its version
/// record sealed (the engine's sequence-number reference), which the
/// erasure destroys the keys to read; so the ticket keeps those.
enum CompactionTicket: Hashable, Sendable {
    /// An erased document: its version records (in the vault's stream) and
    /// their chunks.
    case erasedDocument(vault: StreamID, document: DocumentID, chunks: [RecordReference])
    /// A destroyed vault: every record of its stream and of its audit
    /// trail's stream, and these chunks of its documents.
    case destroyedVault(vault: StreamID, chunks: [RecordReference])
    /// Every ticket whose record's sequence number is at most `through`
    /// was compacted.
    case done(through: UInt64)

    /// Chunk references per ticket record, at most (20 bytes each): a
    /// document or vault with more gets several tickets.
    static let chunksPerTicket = 1024

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        switch self {
        case .erasedDocument(let vault, let document, let chunks):
            w.write(UInt8(1))
            w.write(bytes: vault.bytes)
            w.write(bytes: document.bytes)
            Self.write(chunks, to: &w)
        case .destroyedVault(let vault, let chunks):
            w.write(UInt8(2))
            w.write(bytes: vault.bytes)
            Self.write(chunks, to: &w)
        case .done(let through):
            w.write(UInt8(3))
            w.write(through)
        }
        return w.bytes
    }

    private static func write(_ chunks: [RecordReference], to w: inout ByteWriter) {
        w.write(UInt32(chunks.count))
        for chunk in chunks { chunk.write(to: &w) }
    }

    static func decode(_ bytes: [UInt8]) throws -> CompactionTicket {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            func chunks() throws -> [RecordReference] {
                let count = Int(try r.read(UInt32.self))
                guard count <= chunksPerTicket, count * RecordReference.byteCount <= r.remaining else { throw ByteReader.Malformed() }
                return try (0..<count).map { _ in try RecordReference(from: &r) }
            }
            let ticket: CompactionTicket
            switch try r.read(UInt8.self) {
            case 1:
                let vault = StreamID(bytes: try r.read(count: StreamID.byteCount))
                let document = DocumentID(bytes: try r.read(count: 16))
                ticket = .erasedDocument(vault: vault, document: document, chunks: try chunks())
            case 2:
                let vault = StreamID(bytes: try r.read(count: StreamID.byteCount))
                ticket = .destroyedVault(vault: vault, chunks: try chunks())
            case 3:
                ticket = .done(through: try r.read())
            default:
                throw ByteReader.Malformed()
            }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return ticket
        }
    }

    /// The tickets for an erased document or a destroyed vault, its chunks
    /// split over as many as needed (at least one).
    static func tickets(_ make: ([RecordReference]) -> CompactionTicket, chunks: [RecordReference]) -> [CompactionTicket] {
        guard !chunks.isEmpty else { return [make([])] }
        return stride(from: 0, to: chunks.count, by: chunksPerTicket).map {
            make(Array(chunks[$0..<min($0 + chunksPerTicket, chunks.count)]))
        }
    }

    /// The record, sealed under the store's lifecycle key.
    func sealed(keys: StoreKeys) throws -> EngineRecord {
        let header = RecordHeader(kind: .compaction, sequence: 0, document: nil, version: 0, keySlot: nil)
        return EngineRecord(
            stream: keys.compactionStream,
            payload: try RecordCodec.seal(header: header, body: encoded(), key: keys.lifecycle, stream: keys.compactionStream))
    }
}
