import VaultCrypto

// MARK: - Compacted frames and the compaction intent

extension LogFormat {
    /// The frame's payload was removed by compaction: what remains at the
    /// start of its payload is a *compacted body* (``encodeCompactedBody(keep:digest:prefix:)``),
    /// zeros after it. The frame keeps its place, length, sequence number,
    /// stream and chain link, so no reference, cursor, index or chain
    /// changes; its MAC (the flag is in the bytes it covers) says the
    /// engine that holds the log key compacted it.
    static let flagCompacted: UInt8 = 8

    /// Bytes of a compacted body before its kept prefix:
    /// `keep(4) reserved(4) digest(32)`.
    static let compactedBodyHeaderSize = 40

    /// A compacted body: `keep(4) reserved(4) digest(32) prefix(keep)`,
    /// the digest being the BLAKE2b-256 of the payload as written (what
    /// its Merkle leaf commits to), the prefix its first `keep` bytes.
    static func encodeCompactedBody(digest: [UInt8], prefix: ArraySlice<UInt8>) -> [UInt8] {
        precondition(digest.count == 32)
        var w = ByteWriter(capacity: compactedBodyHeaderSize + prefix.count)
        w.write(UInt32(prefix.count))
        w.write(UInt32(0))
        w.write(bytes: digest)
        w.write(bytes: Array(prefix))
        return w.bytes
    }

    /// The digest and kept prefix of a compacted payload (body, then zeros
    /// to the payload's length); nil if it is not one the encoder writes.
    static func decodeCompactedPayload(_ payload: UnsafeRawBufferPointer) -> (digest: [UInt8], prefix: [UInt8])? {
        guard payload.count >= compactedBodyHeaderSize else { return nil }
        let keep = Int(payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian)
        guard payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == 0,
              keep <= payload.count - compactedBodyHeaderSize,
              payload[(compactedBodyHeaderSize + keep)...].allSatisfy({ $0 == 0 })
        else { return nil }
        return (Array(payload[8..<40]), Array(payload[40..<(40 + keep)]))
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
    /// from its payload, or, compacted, from the digest its body keeps.
    /// nil for a compacted payload the encoder cannot have written.
    static func leafHash(of header: FrameHeader, payload: UnsafeRawBufferPointer) -> [UInt8]? {
        guard header.isCompacted else { return MerkleLog.leafHash(stream: header.stream, payload: payload) }
        guard let body = decodeCompactedPayload(payload) else { return nil }
        return MerkleLog.leafHash(stream: header.stream, payloadDigest: body.digest)
    }

    // MARK: Intent

    /// The redo log of a compaction batch: written and synced before the
    /// batch rewrites any frame, removed once the rewritten segments are
    /// synced. Recovery finds it after a crash and writes every frame in
    /// it again (each write is the same bytes: idempotent).
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

    /// `magic(8) version(4) count(4)`, then per frame `segment(4)
    /// frameLength(4) offset(8) length(4) reserved(4) bytes(length)`, then
    /// the CRC-32C of everything before it (4).
    static func encodeCompactionIntent(_ rewrites: [CompactionRewrite]) -> [UInt8] {
        var w = ByteWriter(capacity: 20 + rewrites.reduce(0) { $0 + 24 + $1.bytes.count })
        w.write(bytes: compactionIntentMagic)
        w.write(version)
        w.write(UInt32(rewrites.count))
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

    /// The frames of an intent; nil if the file is not one the encoder
    /// wrote whole (a crash while it was written, before it was synced:
    /// then no frame was rewritten yet).
    static func decodeCompactionIntent(_ bytes: [UInt8]) -> [CompactionRewrite]? {
        guard bytes.count >= 20 else { return nil }
        let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)])) == crc else { return nil }
        return bytes.withUnsafeBytes { raw -> [CompactionRewrite]? in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]))
            guard (try? r.read(count: 8)) == compactionIntentMagic, (try? r.read(UInt32.self)) == version,
                  let count = try? r.read(UInt32.self)
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

extension MerkleLog {
    /// The leaf hash of a record from the BLAKE2b-256 of its payload (what
    /// a compacted record keeps): the same as ``leafHash(stream:payload:)``
    /// of the payload it was.
    package static func leafHash(stream: StreamID?, payloadDigest: [UInt8]) -> [UInt8] {
        precondition(payloadDigest.count == 32)
        var data = [UInt8](repeating: 0, count: leafDataSize)
        data.withUnsafeMutableBytes { out in
            writeLeafData(stream: stream, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: out)
            payloadDigest.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[48..<80]).copyMemory(from: $0) }
        }
        var hash = [UInt8](repeating: 0, count: MerkleTree.hashSize)
        data.withUnsafeBytes { d in
            hash.withUnsafeMutableBytes { h in
                MerkleTree.hash(prefix: 0, d, UnsafeRawBufferPointer(start: nil, count: 0), into: h)
            }
        }
        return hash
    }

    /// BLAKE2b-256 of a payload: what its leaf data holds.
    package static func payloadDigest(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBytes { BLAKE2b.hash(payload, key: nil, into: $0) }
        return out
    }
}
