import VaultStorage

/// The body of an activity-stream record: copies of one actor's audit
/// entries (or one store-level entry of a reviewer), oldest first.
///
/// `u16 count (1…maximumCopies) || count × (vault(32) || u32 length ||
/// entry)`: the vault's pseudonym (zeros for a store-level entry), then the
/// entry's encoding (``AuditEntry``). A batch of the ``ActivityWriter``
/// seals all the copies of one actor in one record (at most
/// ``maximumCopies``, at most ``maximumBodySize`` bytes), so a reviewer's
/// index costs one frame per actor per batch, not one per copy. The
/// decoder accepts exactly what the encoder writes: no empty batch, no
/// entry longer than ``maximumEntrySize``, no trailing bytes.
struct ActivityBatch: Equatable {
    static let maximumCopies = 64
    static let maximumBodySize = 32 << 10
    /// Larger than any entry the store can write (every field is bounded).
    static let maximumEntrySize = 8 << 10
    /// What one copy adds besides its entry.
    static let copyOverhead = StreamID.byteCount + 4

    /// A copy: the vault it was made in (nil for a store-level entry) and
    /// the entry's encoding.
    struct Copy: Equatable {
        var vault: StreamID?
        var entry: [UInt8]
    }

    var copies: [Copy]

    /// The encoded size of `copies`.
    static func encodedCount(entrySizes: some Sequence<Int>) -> Int {
        2 + entrySizes.reduce(0) { $0 + copyOverhead + $1 }
    }

    /// Writes the batch of `copies` at the start of `out` (exactly
    /// ``encodedCount(entrySizes:)`` bytes).
    static func write(_ copies: some Collection<(vault: StreamID?, entry: [UInt8])>, into out: UnsafeMutableRawBufferPointer) {
        precondition((1...maximumCopies).contains(copies.count), "an activity batch holds 1 to \(maximumCopies) copies")
        out.storeBytes(of: UInt16(copies.count).littleEndian, toByteOffset: 0, as: UInt16.self)
        var offset = 2
        for copy in copies {
            (copy.vault ?? StreamID(w0: 0, w1: 0, w2: 0, w3: 0))
                .write(into: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
            out.storeBytes(of: UInt32(copy.entry.count).littleEndian, toByteOffset: offset + StreamID.byteCount, as: UInt32.self)
            offset += copyOverhead
            copy.entry.withUnsafeBytes {
                if $0.count > 0 { out.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            offset += copy.entry.count
        }
    }

    func encoded() -> [UInt8] {
        let count = Self.encodedCount(entrySizes: copies.map(\.entry.count))
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            Self.write(copies.map { (vault: $0.vault, entry: $0.entry) }, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    static func decode(_ bytes: [UInt8]) throws -> ActivityBatch {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let count = Int(try r.read(UInt16.self))
            guard (1...maximumCopies).contains(count) else { throw ByteReader.Malformed() }
            var copies: [Copy] = []
            copies.reserveCapacity(count)
            for _ in 0..<count {
                let words = (w0: try r.read(UInt64.self), w1: try r.read(UInt64.self), w2: try r.read(UInt64.self), w3: try r.read(UInt64.self))
                let vault = StreamID(w0: words.w0, w1: words.w1, w2: words.w2, w3: words.w3)
                let length = Int(try r.read(UInt32.self))
                guard length <= maximumEntrySize else { throw ByteReader.Malformed() }
                let isStoreLevel = vault == StreamID(w0: 0, w1: 0, w2: 0, w3: 0)
                copies.append(Copy(vault: isStoreLevel ? nil : vault, entry: try r.read(count: length)))
            }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return ActivityBatch(copies: copies)
        }
    }
}
