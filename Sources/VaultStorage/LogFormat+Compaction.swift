import VaultCrypto

// MARK: - Compacted frames and the compaction intent

extension LogFormat {
    /// The frame's payload was removed by compaction: what remains at the
    /// start of its payload is a *compacted body* (``encodeCompactedBody(leaf:prefix:)``),
    /// zeros after it. The frame keeps its place, length, sequence number,
    /// stream and chain link, so no reference, cursor, index or chain
    /// changes; its MAC (the flag is in the bytes it covers) says the
    /// engine that holds the log key compacted it.
    static let flagCompacted: UInt8 = 8

    /// Bytes of a compacted body before its kept prefix:
    /// `keep(4) reserved(4) leaf(32)`.
    static let compactedBodyHeaderSize = 40
    /// Bytes of a compacted body besides its kept prefix: the header and
    /// the tag after the prefix.
    static let compactedBodyOverhead = compactedBodyHeaderSize + macSize

    /// A compacted body: `keep(4) reserved(4) leaf(32) prefix(keep)
    /// tag(16)`: the record's Merkle leaf hash (``MerkleLog``: what the
    /// payload hashed to, kept so that a verification re-reading the log
    /// still finds every leaf), the payload's first `keep` bytes, and the
    /// log key's MAC of both for the frame's place
    /// (``compactedBodyTag(leaf:prefix:salt:offset:lsn:authenticator:)``):
    /// the frame header's MAC covers only the body's CRC, which anyone can
    /// recompute.
    static func encodeCompactedBody(leaf: [UInt8], prefix: ArraySlice<UInt8>, tag: [UInt8]) -> [UInt8] {
        precondition(leaf.count == 32 && tag.count == macSize)
        var w = ByteWriter(capacity: compactedBodyOverhead + prefix.count)
        w.write(UInt32(prefix.count))
        w.write(UInt32(0))
        w.write(bytes: leaf)
        w.write(bytes: Array(prefix))
        w.write(bytes: tag)
        return w.bytes
    }

    /// The MAC of a compacted body: the log key's tag of `"PVCB" salt
    /// offset(8) lsn(8) leaf prefix` (zeros without an authenticator, as
    /// frame headers).
    static func compactedBodyTag(
        leaf: [UInt8], prefix: ArraySlice<UInt8>, salt: [UInt8], offset: UInt64, lsn: UInt64, authenticator: (any LogAuthenticator)?
    ) -> [UInt8] {
        guard let authenticator else { return [UInt8](repeating: 0, count: macSize) }
        var w = ByteWriter(capacity: 4 + salt.count + 16 + leaf.count + prefix.count)
        w.write(bytes: Array("PVCB".utf8))
        w.write(bytes: salt)
        w.write(offset)
        w.write(lsn)
        w.write(bytes: leaf)
        w.write(bytes: Array(prefix))
        return w.bytes.withUnsafeBytes { authenticator.tag($0) }
    }

    /// The leaf hash, kept prefix and tag of a compacted payload (body,
    /// then zeros to the payload's length); nil if it is not one the
    /// encoder writes. The tag is not checked here
    /// (``compactedBodyIsAuthentic(_:salt:offset:lsn:authenticator:)``).
    static func decodeCompactedPayload(_ payload: UnsafeRawBufferPointer) -> (leaf: [UInt8], prefix: [UInt8], tag: [UInt8])? {
        guard payload.count >= compactedBodyOverhead else { return nil }
        let keep = Int(payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian)
        guard payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == 0,
              keep <= payload.count - compactedBodyOverhead,
              payload[(compactedBodyOverhead + keep)...].allSatisfy({ $0 == 0 })
        else { return nil }
        let end = compactedBodyHeaderSize + keep
        return (Array(payload[8..<40]), Array(payload[40..<end]), Array(payload[end..<(end + macSize)]))
    }

    /// Whether a compacted body's tag is the log key's for its frame.
    /// Always true without an authenticator.
    static func compactedBodyIsAuthentic(
        _ body: (leaf: [UInt8], prefix: [UInt8], tag: [UInt8]), salt: [UInt8], offset: UInt64, lsn: UInt64,
        authenticator: (any LogAuthenticator)?
    ) -> Bool {
        guard authenticator != nil else { return true }
        let expected = compactedBodyTag(leaf: body.leaf, prefix: body.prefix[...], salt: salt, offset: offset, lsn: lsn, authenticator: authenticator)
        var difference: UInt8 = 0
        for (a, b) in zip(expected, body.tag) { difference |= a ^ b }
        return difference == 0 && body.tag.count == expected.count
    }

    /// The payload CRC of a compacted frame: its body, then zeros to the
    /// payload's length and the frame's padding.
    static func compactedPayloadCRC(body: [UInt8], payloadLength: Int) -> UInt32 {
        var crc = CRC32C.checksum(body)
        var zeros = frameLength(payloadCount: payloadLength) - frameHeaderSize - body.count
        let block = [UInt8](repeating: 0, count: 64 << 10)
        block.withUnsafeBytes { z in
            while zeros > 0 {
                let n = min(zeros, z.count)
                crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: z[0..<n]), continuing: crc)
                zeros -= n
            }
        }
        return crc
    }

    /// The Merkle leaf hash of a frame whose header and payload checked:
    /// of its payload, or, compacted, the one its body keeps. nil for a
    /// compacted payload the encoder cannot have written, or whose tag is
    /// not the log key's for this frame.
    static func leafHash(
        of header: FrameHeader, payload: UnsafeRawBufferPointer, salt: [UInt8], offset: UInt64, authenticator: (any LogAuthenticator)?
    ) -> [UInt8]? {
        guard header.isCompacted else { return MerkleLog.leafHash(stream: header.stream, payload: payload) }
        guard let body = decodeCompactedPayload(payload),
              compactedBodyIsAuthentic(body, salt: salt, offset: offset, lsn: header.lsn, authenticator: authenticator)
        else { return nil }
        return body.leaf
    }

    // MARK: Intent

    /// The redo log of a compaction batch: written and synced before the
    /// batch rewrites any frame, voided (its magic overwritten) once the
    /// rewritten segments are synced. The file stays, so that a batch
    /// costs no directory sync; what a longer earlier batch left after the
    /// intent's length is never read. Recovery finds a valid intent after a
    /// crash and writes every frame in it again (the same bytes: a voiding
    /// lost to a power cut only makes it do so once more).
    static let compactionIntentFileName = "compaction.intent"
    static let compactionIntentMagic: [UInt8] = Array("PVCINT01".utf8)

    /// One frame to rewrite: where, and the bytes of its new header and
    /// compacted body (the rest of the frame becomes zeros).
    struct CompactionRewrite: Sendable, Equatable {
        var segment: UInt32
        var offset: UInt64
        var frameLength: UInt32
        var bytes: [UInt8]
    }

    /// Bytes of an intent before its frames: `magic(8) version(4) count(4)
    /// length(8)`.
    static let compactionIntentHeaderSize = 24

    /// `magic(8) version(4) count(4) length(8)` (the intent's length, its
    /// CRC included), then per frame `segment(4) frameLength(4) offset(8)
    /// length(4) reserved(4) bytes(length)`, then the CRC-32C of everything
    /// before it (4).
    static func encodeCompactionIntent(_ rewrites: [CompactionRewrite]) -> [UInt8] {
        let length = compactionIntentHeaderSize + rewrites.reduce(0) { $0 + 24 + $1.bytes.count } + 4
        var w = ByteWriter(capacity: length)
        w.write(bytes: compactionIntentMagic)
        w.write(version)
        w.write(UInt32(rewrites.count))
        w.write(UInt64(length))
        for r in rewrites {
            w.write(r.segment)
            w.write(r.frameLength)
            w.write(r.offset)
            w.write(UInt32(r.bytes.count))
            w.write(UInt32(0))
            w.write(bytes: r.bytes)
        }
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// The length an intent file's first bytes give (what to read and
    /// decode), or nil if they are not an intent's.
    static func compactionIntentLength(_ header: [UInt8]) -> Int? {
        guard header.count >= compactionIntentHeaderSize, Array(header[0..<8]) == compactionIntentMagic else { return nil }
        let length = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian }
        guard length >= UInt64(compactionIntentHeaderSize + 4), length <= 1 << 32 else { return nil }
        return Int(length)
    }

    /// The frames of an intent; nil if the bytes are not one the encoder
    /// wrote whole (a crash while it was written, before it was synced:
    /// then no frame was rewritten yet).
    static func decodeCompactionIntent(_ bytes: [UInt8]) -> [CompactionRewrite]? {
        guard bytes.count >= compactionIntentHeaderSize + 4, compactionIntentLength(bytes) == bytes.count else { return nil }
        let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)])) == crc else { return nil }
        return bytes.withUnsafeBytes { raw -> [CompactionRewrite]? in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]))
            guard (try? r.read(count: 8)) == compactionIntentMagic, (try? r.read(UInt32.self)) == version,
                  let count = try? r.read(UInt32.self), (try? r.read(UInt64.self)) != nil
            else { return nil }
            var rewrites: [CompactionRewrite] = []
            for _ in 0..<count {
                guard let segment = try? r.read(UInt32.self), let frameLength = try? r.read(UInt32.self),
                      let offset = try? r.read(UInt64.self), let length = try? r.read(UInt32.self),
                      (try? r.read(UInt32.self)) == 0, Int(length) <= r.remaining,
                      let body = try? r.read(count: Int(length))
                else { return nil }
                rewrites.append(CompactionRewrite(segment: segment, offset: offset, frameLength: frameLength, bytes: body))
            }
            return r.remaining == 0 ? rewrites : nil
        }
    }
}

extension LogFormat.FrameHeader {
    var isCompacted: Bool { flags & LogFormat.flagCompacted != 0 }
}
