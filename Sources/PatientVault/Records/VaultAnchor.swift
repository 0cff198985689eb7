import VaultCrypto
import VaultStorage

/// What a vault's audit record seals about the vault's own stream as the
/// record's group leaves it: how many records it has and a keyed hash of
/// the newest. Checked when the vault loads, so that a vault stream cut
/// short (a record edited out of it, a head pointer moved back) is caught
/// by its audit trail even where the engine's own checks could not see it.
struct VaultAnchor: Equatable {
    static let size = 8 + 16
    /// Records in the vault's stream.
    var records: UInt64
    /// Keyed BLAKE2b-128 of the newest record's payload digest (its
    /// BLAKE2b-256, ``PayloadDigest``, the one its Merkle leaf commits to:
    /// the write path hashes a record's bytes once for both).
    var headHash: [UInt8]

    static func headHash(of digest: PayloadDigest, keys: VaultKeys) -> [UInt8] {
        digest.withUnsafeBytes { BLAKE2b.hash($0, outputByteCount: 16, key: keys.auditChain) }
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.write(records)
        w.write(bytes: headHash)
        return w.bytes
    }

    /// Writes the 24 bytes of ``encoded()`` at the start of `out`.
    func write(into out: UnsafeMutableRawBufferPointer) {
        out.storeBytes(of: records.littleEndian, toByteOffset: 0, as: UInt64.self)
        headHash.withUnsafeBytes { out.baseAddress!.advanced(by: 8).copyMemory(from: $0.baseAddress!, byteCount: 16) }
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws -> VaultAnchor {
        try Array(bytes).withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let anchor = VaultAnchor(records: try r.read(), headHash: try r.read(count: 16))
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return anchor
        }
    }
}
