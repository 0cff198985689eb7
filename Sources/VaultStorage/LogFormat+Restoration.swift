/// Single flipped bytes, restored where something beyond the CRC proves
/// the value: the CRC's algebra (``CRC32C/singleByteErrors(syndrome:count:)``)
/// lists the candidates, and a candidate is taken only if it is the one
/// that passes every check of its structure, including one a CRC cannot
/// fake (a MAC, or a salt that other CRCs in the file confirm). These
/// helpers restore in memory; recovery writes back what it restores in the
/// log it replays, reads do not write.
extension LogFormat {
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
            // The magic is outside the CRC: restored below, from what the
            // value is.
            let repair = CRC32C.uniqueSingleByteRepair(of: bytes, covered: 8..<keySlotSize, seed: CRC32C.checksum(salt), storedAt: 4) {
                candidate -> Result<[UInt8], StorageError>? in
                do {
                    return .success(try decodeKeySlot(candidate, number: number, salt: salt, magic: expected, tombstone: tombstone))
                } catch let e as StorageError where e.code == .keySlotDestroyed {
                    return .failure(e)
                } catch {
                    return nil
                }
            }
            if let repair { return try repair.result.get() }
            if let candidate = keySlotWithMagicRestored(bytes, number: number, salt: salt, magic: expected, tombstone: tombstone) {
                return try decodeKeySlot(candidate, number: number, salt: salt, magic: expected, tombstone: tombstone)
            }
            throw error
        }
    }

    /// The value of journal-key slot `number` (`bytes` failing its checks)
    /// with one damaged byte restored: the one candidate the CRC's algebra,
    /// or the magic's, gives that decodes as a journal key (40 bytes, the
    /// zeros around it zeros), if the byte changed is not in the epoch
    /// (bytes 24..<32 of the slot), which nothing proves; the key bytes are
    /// proven by use (the manifests sealed under the key open with it).
    static func restoredJournalKeySlot(_ bytes: [UInt8], number: UInt64, salt: [UInt8]) -> [UInt8]? {
        guard bytes.count == keySlotSize else { return nil }
        let epoch = 24..<32
        let accepted = { (candidate: [UInt8]) -> [UInt8]? in
            guard let value = try? decodeKeySlot(candidate, number: number, salt: salt, magic: keySlotJournalKey),
                  value.count == 40, candidate[17..<24].allSatisfy({ $0 == 0 }), candidate[64...].allSatisfy({ $0 == 0 }),
                  candidate[epoch] == bytes[epoch]
            else { return nil }
            return value
        }
        if let repair = CRC32C.uniqueSingleByteRepair(
            of: bytes, covered: 8..<keySlotSize, seed: CRC32C.checksum(salt), storedAt: 4, accepts: accepted)
        {
            return repair.result
        }
        return keySlotWithMagicRestored(bytes, number: number, salt: salt, magic: keySlotJournalKey, tombstone: nil).flatMap(accepted)
    }

    /// `bytes` (a key slot's) with one damaged byte of its magic, which the
    /// CRC does not cover, restored, when the rest passes its CRC and names
    /// slot `number`, and the value says which magic it had: the genuine
    /// tombstone of the slot (`tombstone`, a MAC) is a tombstone's; any
    /// other value, the kind byte (the magics' last, the one they differ
    /// in) intact, is `expected`'s (a live slot's, proven by the caller's
    /// unwrap; a journal key's, proven by the manifests it opens), unless a
    /// tombstone could not be told apart (no `tombstone` given for a
    /// live slot). nil otherwise.
    static func keySlotWithMagicRestored(
        _ bytes: [UInt8], number: UInt64, salt: [UInt8], magic expected: UInt32, tombstone: [UInt8]?
    ) -> [UInt8]? {
        guard bytes.count == keySlotSize else { return nil }
        let magic = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).littleEndian }
        // A magic that is one of the three is not damage of another (they
        // differ in one byte): a tombstone whose value is not genuine is
        // tampering, never a live slot.
        guard ![keySlotLive, keySlotTombstone, keySlotJournalKey].contains(magic) else { return nil }
        func oneByteFrom(_ target: UInt32) -> Bool {
            (0..<4).filter { (magic >> (8 * $0)) & 0xFF != (target >> (8 * $0)) & 0xFF }.count == 1
        }
        func with(_ target: UInt32) -> [UInt8] {
            var candidate = bytes
            withUnsafeBytes(of: target.littleEndian) { candidate.replaceSubrange(0..<4, with: $0) }
            return candidate
        }
        if let tombstone, oneByteFrom(keySlotTombstone) {
            do {
                _ = try decodeKeySlot(with(keySlotTombstone), number: number, salt: salt, magic: expected, tombstone: tombstone)
            } catch let e as StorageError where e.code == .keySlotDestroyed {
                return with(keySlotTombstone)
            } catch {}
        }
        // The kind byte (the magics' last, the one they differ in) of a
        // key slot is restored to a tombstone only, above, which the MAC
        // proves: to read it as a live slot would be a guess (a forged
        // tombstone whose kind byte is off would pass for one).
        // A journal key's slot (1 or 2) holds nothing else: its number,
        // under the CRC, fixes its kind.
        let kindByte = (magic >> 24) & 0xFF != (expected >> 24) & 0xFF && expected != keySlotJournalKey
        guard tombstone != nil || expected == keySlotJournalKey, oneByteFrom(expected), !kindByte,
              (try? decodeKeySlot(with(expected), number: number, salt: salt, magic: expected, tombstone: tombstone)) != nil
        else { return nil }
        return with(expected)
    }

    /// The salt of a key file header with one byte restored: the one
    /// candidate that is a valid header and whose salt `confirms` (other
    /// slots' CRCs, which cover the salt, pass under it).
    static func restoredKeyFileHeader(_ bytes: [UInt8], confirms: ([UInt8]) -> Bool) -> [UInt8]? {
        guard bytes.count == keySlotSize else { return nil }
        return CRC32C.uniqueSingleByteRepair(of: bytes, covered: 0..<(keySlotSize - 4), storedAt: keySlotSize - 4) { candidate in
            guard let salt = try? decodeKeyFileHeader(candidate), confirms(salt) else { return nil }
            return salt
        }?.result
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
        func genuine(_ candidate: [UInt8]) -> Bool {
            candidate.withUnsafeBytes { raw in
                decodeFrameHeader(raw, salt: salt) != nil && frameIsAuthentic(raw, salt: salt, offset: offset, authenticator: authenticator)
            }
        }
        let magic = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian }
        guard magic == frameMagic else {
            // The magic (outside the CRC) one byte off: set back, the rest
            // then passing as read.
            guard (0..<4).filter({ ((magic ^ frameMagic) >> (8 * $0)) & 0xFF != 0 }).count == 1 else { return nil }
            var candidate = bytes
            withUnsafeBytes(of: frameMagic.littleEndian) { candidate.replaceSubrange(0..<4, with: $0) }
            return genuine(candidate) ? candidate : nil
        }
        return CRC32C.uniqueSingleByteRepair(of: bytes, covered: 8..<frameHeaderSize, seed: CRC32C.checksum(salt), storedAt: 4) {
            genuine($0) ? true : nil
        }?.bytes
    }

    /// The frame header at the start of `bytes` (read at `offset` of a
    /// segment of this `salt`) if it passes its CRC and MAC as read, or once
    /// ``restoredFrameHeader(_:salt:offset:authenticator:)`` restores it:
    /// its bytes and whether they were restored; nil if neither.
    static func genuineFrameHeader(
        _ bytes: [UInt8], salt: [UInt8], offset: UInt64, authenticator: (any LogAuthenticator)?
    ) -> (header: [UInt8], restored: Bool)? {
        guard bytes.count >= frameHeaderSize else { return nil }
        let header = Array(bytes[0..<frameHeaderSize])
        let genuine = header.withUnsafeBytes { raw in
            decodeFrameHeader(raw, salt: salt) != nil && frameIsAuthentic(raw, salt: salt, offset: offset, authenticator: authenticator)
        }
        if genuine { return (header, false) }
        return restoredFrameHeader(header, salt: salt, offset: offset, authenticator: authenticator).map { ($0, true) }
    }
}
