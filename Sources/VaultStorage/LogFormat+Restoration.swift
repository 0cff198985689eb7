/// Single flipped bytes, restored where something beyond the CRC proves
/// the value: the CRC's algebra (``CRC32C/singleByteErrors(syndrome:count:)``)
/// lists the candidates, and a candidate is taken only if it is the one
/// that passes every check of its structure, including one a CRC cannot
/// fake (a MAC, or a salt that other CRCs in the file confirm). The file
/// keeps its damage; the value is restored in memory each time it is read.
extension LogFormat {
    /// ``CRC32C/singleByteRepairs(of:covered:seed:storedAt:)``.
    static func singleByteCandidates(
        _ bytes: [UInt8], covered: Range<Int>, seed: UInt32 = 0, storedAt: Int
    ) -> [[UInt8]] {
        CRC32C.singleByteRepairs(of: bytes, covered: covered, seed: seed, storedAt: storedAt)
    }

    /// ``decodeKeySlot(_:number:salt:magic:tombstone:)``, or, for a slot
    /// that fails its checksum, the one candidate
    /// with a single byte restored that decodes (a live value, or a
    /// tombstone whose MAC verifies). The caller's own check of the value
    /// (the wrapped key's authentication) proves it.
    static func decodeKeySlotRestoring(
        _ bytes: [UInt8], number: UInt64, salt: [UInt8], magic expected: UInt32 = keySlotLive, tombstone: [UInt8]? = nil
    ) throws -> [UInt8] {
        do {
            return try decodeKeySlot(bytes, number: number, salt: salt, magic: expected, tombstone: tombstone)
        } catch let error as StorageError where error.code == .corrupted && bytes.count == keySlotSize {
            // The magic is outside the CRC: a damaged one proves nothing
            // and is never restored.
            let candidates = singleByteCandidates(bytes, covered: 8..<keySlotSize, seed: CRC32C.checksum(salt), storedAt: 4)
            var outcome: Result<[UInt8], StorageError>?
            var count = 0
            for candidate in candidates {
                do {
                    outcome = .success(try decodeKeySlot(candidate, number: number, salt: salt, magic: expected, tombstone: tombstone))
                    count += 1
                } catch let e as StorageError where e.code == .keySlotDestroyed {
                    outcome = .failure(e)
                    count += 1
                } catch {}
            }
            guard count == 1, let outcome else { throw error }
            return try outcome.get()
        }
    }

    /// The salt of a key file header with one byte restored: the one
    /// candidate that is a valid header and whose salt `confirms` (other
    /// slots' CRCs, which cover the salt, pass under it).
    static func restoredKeyFileHeader(_ bytes: [UInt8], confirms: ([UInt8]) -> Bool) -> [UInt8]? {
        guard bytes.count == keySlotSize else { return nil }
        var found: [UInt8]?
        var count = 0
        for candidate in singleByteCandidates(bytes, covered: 0..<(keySlotSize - 4), storedAt: keySlotSize - 4) {
            guard let salt = try? decodeKeyFileHeader(candidate), confirms(salt) else { continue }
            found = salt
            count += 1
        }
        return count == 1 ? found : nil
    }

    /// A frame header (its first ``frameHeaderSize`` bytes, read at
    /// `offset` of a segment of this `salt`) with its one damaged byte
    /// restored: the one candidate whose CRC and MAC pass (a magic one
    /// byte off ``frameMagic``, outside the CRC, set back, or one of the
    /// single-byte errors the CRC's algebra lists). Nil without an
    /// authenticator (a CRC alone proves no repair), or if there is not
    /// exactly one.
    static func restoredFrameHeader(
        _ header: [UInt8], salt: [UInt8], offset: UInt64, authenticator: (any LogAuthenticator)?
    ) -> [UInt8]? {
        guard authenticator != nil, header.count >= frameHeaderSize else { return nil }
        let bytes = Array(header[0..<frameHeaderSize])
        var candidates: [[UInt8]] = []
        let magic = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian }
        if magic != frameMagic {
            guard (0..<4).filter({ ((magic ^ frameMagic) >> (8 * $0)) & 0xFF != 0 }).count == 1 else { return nil }
            var candidate = bytes
            withUnsafeBytes(of: frameMagic.littleEndian) { candidate.replaceSubrange(0..<4, with: $0) }
            candidates.append(candidate)
        } else {
            candidates = singleByteCandidates(bytes, covered: 8..<frameHeaderSize, seed: CRC32C.checksum(salt), storedAt: 4)
        }
        var found: [UInt8]?
        var count = 0
        for candidate in candidates {
            let genuine = candidate.withUnsafeBytes { raw in
                decodeFrameHeader(raw, salt: salt) != nil
                    && frameIsAuthentic(raw, salt: salt, offset: offset, authenticator: authenticator)
            }
            if genuine {
                found = candidate
                count += 1
            }
        }
        return count == 1 ? found : nil
    }
}
