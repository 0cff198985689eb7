import CCRC32C

/// CRC-32C (Castagnoli), the cheap checksum of frames and slots: it tells a
/// torn or stale write from a good one before any decryption. It is not a
/// defence against tampering; authenticated encryption above is.
///
/// The processor's instruction (SSE 4.2 on x86-64, the CRC extension on
/// ARMv8), chosen once at run time, through the small C target `CCRC32C`;
/// a slicing-by-8 table implementation (about 1 to 2 GB/s on one core)
/// where the instruction is missing. Both give the same values (tested on
/// the same vectors).
package enum CRC32C {
    /// Whether the processor's instruction is used.
    package static let usesHardware = ccrc32c_hardware_available() == 1

    /// The CRC-32C of `bytes`, continuing from `crc` (0 to start).
    package static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard usesHardware else { return softwareChecksum(bytes, continuing: crc) }
        return hardwareChecksum(bytes, continuing: crc)
    }

    /// The instruction's path; only where ``usesHardware``.
    package static func hardwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        precondition(usesHardware, "no CRC-32C instruction on this processor")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return ~ccrc32c_hardware_update(~crc, base, bytes.count)
    }

    private static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    /// The table path, used where the instruction is missing.
    package static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        guard var p = bytes.baseAddress, bytes.count > 0 else { return crc }
        var n = bytes.count
        tables.withUnsafeBufferPointer { tt in
            let t0 = tt[0], t1 = tt[1], t2 = tt[2], t3 = tt[3]
            let t4 = tt[4], t5 = tt[5], t6 = tt[6], t7 = tt[7]
            t0.withUnsafeBufferPointer { t0 in t1.withUnsafeBufferPointer { t1 in
            t2.withUnsafeBufferPointer { t2 in t3.withUnsafeBufferPointer { t3 in
            t4.withUnsafeBufferPointer { t4 in t5.withUnsafeBufferPointer { t5 in
            t6.withUnsafeBufferPointer { t6 in t7.withUnsafeBufferPointer { t7 in
                while n >= 8 {
                    let v = p.loadUnaligned(as: UInt64.self).littleEndian ^ UInt64(c)
                    c = t7[Int(v & 0xFF)] ^ t6[Int((v >> 8) & 0xFF)]
                        ^ t5[Int((v >> 16) & 0xFF)] ^ t4[Int((v >> 24) & 0xFF)]
                        ^ t3[Int((v >> 32) & 0xFF)] ^ t2[Int((v >> 40) & 0xFF)]
                        ^ t1[Int((v >> 48) & 0xFF)] ^ t0[Int(v >> 56)]
                    p += 8
                    n -= 8
                }
                while n > 0 {
                    c = t0[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                    p += 1
                    n -= 1
                }
            }}}}}}}}
        }
        return ~c
    }

    /// Every single-byte error that explains a checksum mismatch: each
    /// `(index, delta)` such that `bytes[index] ^= delta` gives a message
    /// of `count` bytes whose CRC-32C differs from the received one's by
    /// `syndrome` (the received CRC xor the stored one).
    ///
    /// The CRC is affine, so that difference depends only on the error:
    /// `delta` at `index` followed by `count - 1 - index` zero bytes, run
    /// through the register from zero, i.e. `Z^(count-1-index)(t0[delta])`
    /// with `Z` one zero byte's step. `Z` is invertible (the top byte of
    /// `t0[i]` names `i`), so the syndrome is walked back once, `count`
    /// steps, each step's value looked up among the 255 `t0[delta]`. A
    /// repair that a MAC then proves (a CRC alone proves nothing).
    package static func singleByteErrors(syndrome: UInt32, count: Int) -> [(index: Int, delta: UInt8)] {
        guard syndrome != 0, count > 0 else { return [] }
        var found: [(index: Int, delta: UInt8)] = []
        var r = syndrome
        for zeros in 0..<count {
            if let delta = deltaOfTableValue[r] { found.append((count - 1 - zeros, delta)) }
            // One zero byte's step backwards.
            let i = topByteIndex[Int(r >> 24)]
            r = ((r ^ tables[0][Int(i)]) << 8) | UInt32(i)
        }
        return found
    }

    /// The one single-byte repair of `bytes` that `accepts`, if exactly
    /// one does: among the changes of one byte that explain a CRC-32C
    /// mismatch (`bytes[covered]`'s checksum, continuing from `seed`,
    /// against the value stored at `storedAt`, 4 bytes little endian, which
    /// may itself be the damaged byte). Each candidate is made in one
    /// working copy, in turn (a large file is never copied once per
    /// candidate), and the search stops at a second accepted one: two would
    /// make the repair a guess. `accepts` is where the proof is (a MAC, an
    /// unwrap): a CRC alone proves nothing.
    package static func uniqueSingleByteRepair<R>(
        of bytes: [UInt8], covered: Range<Int>, seed: UInt32 = 0, storedAt: Int, accepts: ([UInt8]) -> R?
    ) -> (bytes: [UInt8], result: R)? {
        guard covered.lowerBound >= 0, covered.upperBound <= bytes.count, storedAt >= 0, storedAt + 4 <= bytes.count else { return nil }
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: storedAt, as: UInt32.self).littleEndian }
        let computed = bytes.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[covered]), continuing: seed) }
        let syndrome = computed ^ stored
        guard syndrome != 0 else { return nil }
        var work = bytes
        var found: (bytes: [UInt8], result: R)?
        var count = 0
        func consider() -> Bool {
            guard let result = accepts(work) else { return true }
            count += 1
            found = (work, result)
            return count < 2
        }
        // The stored CRC is the damaged byte: what it covers is whole.
        if (0..<4).filter({ (syndrome >> (8 * $0)) & 0xFF != 0 }).count == 1 {
            withUnsafeBytes(of: computed.littleEndian) { work.replaceSubrange(storedAt..<(storedAt + 4), with: $0) }
            guard consider() else { return nil }
            work.replaceSubrange(storedAt..<(storedAt + 4), with: bytes[storedAt..<(storedAt + 4)])
        }
        for (index, delta) in singleByteErrors(syndrome: syndrome, count: covered.count) {
            work[covered.lowerBound + index] ^= delta
            guard consider() else { return nil }
            work[covered.lowerBound + index] ^= delta
        }
        return count == 1 ? found : nil
    }

    /// `t0[delta]` → `delta`, for the 255 non-zero bytes.
    private static let deltaOfTableValue: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for delta in 1...255 { map[tables[0][delta]] = UInt8(delta) }
        return map
    }()

    /// The top byte of `t0[i]` → `i` (a permutation of the bytes, for the
    /// Castagnoli polynomial as for any CRC table).
    private static let topByteIndex: [UInt8] = {
        var index = [UInt8](repeating: 0, count: 256)
        for i in 0..<256 { index[Int(tables[0][i] >> 24)] = UInt8(i) }
        return index
    }()

    /// The CRC-32C of `bytes`.
    package static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }
}
