import CSodium

/// SHA-256 (`crypto_hash_sha256`): the hash of RFC 9162 Merkle trees and of
/// signed-note key hashes, where the transparency-log formats fix it.
package enum SHA256 {
    /// Digest size in bytes.
    package static let byteCount = Int(crypto_hash_sha256_BYTES)

    /// The digest of the concatenation of `parts`, in one pass.
    package static func hash(_ parts: UnsafeRawBufferPointer...) -> [UInt8] {
        hash(parts: parts)
    }

    /// The digest of the concatenation of `parts`.
    package static func hash(parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        var state = State()
        for part in parts { state.update(part) }
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBytes { state.finish(into: $0) }
        return out
    }

    /// An incremental digest on the stack: no allocation. Each libsodium
    /// call returns 0 (none is documented to fail); checked all the same.
    package struct State {
        private var state = crypto_hash_sha256_state()
        private var rc: Int32 = 0

        package init() { rc = crypto_hash_sha256_init(&state) }

        /// Adds `bytes`.
        package mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            rc |= crypto_hash_sha256_update(&state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }

        /// Writes the digest into `output` (32 bytes).
        package mutating func finish(into output: UnsafeMutableRawBufferPointer) {
            precondition(output.count == SHA256.byteCount)
            rc |= crypto_hash_sha256_final(&state, output.baseAddress!.assumingMemoryBound(to: UInt8.self))
            precondition(rc == 0, "crypto_hash_sha256 failed")
        }
    }

    /// The digest of `bytes`.
    package static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }
}
