import CSodium

/// BLAKE2b (`crypto_generichash`), plain or keyed.
package enum BLAKE2b {
    /// Smallest output size in bytes.
    package static let minimumOutputByteCount = Int(crypto_generichash_BYTES_MIN)
    /// Largest output size in bytes.
    package static let maximumOutputByteCount = Int(crypto_generichash_BYTES_MAX)

    /// Hashes `data` in one call. Cost: O(n).
    /// - Parameters:
    ///   - outputByteCount: 16 to 64 bytes; 32 by default.
    ///   - key: a key makes the hash a MAC / pseudorandom function.
    package static func hash(
        _ data: UnsafeRawBufferPointer,
        outputByteCount: Int = 32,
        key: SymmetricKey? = nil
    ) -> [UInt8] {
        digest(data, outputByteCount: outputByteCount, key: key)
    }

    /// Hashes `data` under a key of any length libsodium accepts (16 to 64
    /// bytes), for published test vectors with 64-byte keys.
    package static func hash(
        _ data: UnsafeRawBufferPointer,
        outputByteCount: Int,
        keyBytes: SecureBytes?
    ) -> [UInt8] {
        digest(data, outputByteCount: outputByteCount, key: keyBytes)
    }

    private static func digest(_ data: UnsafeRawBufferPointer, outputByteCount: Int, key: (some GuardedBytes)?) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputByteCount)
        out.withUnsafeMutableBytes { digest(data, key: key, into: $0) }
        return out
    }

    /// Hashes `data` into `output` (16 to 64 bytes: its count is the
    /// output size), keyed if `key` is given: no allocation.
    package static func hash(_ data: UnsafeRawBufferPointer, key: SymmetricKey?, into output: UnsafeMutableRawBufferPointer) {
        digest(data, key: key, into: output)
    }

    /// The one call of `crypto_generichash`.
    private static func digest(
        _ data: UnsafeRawBufferPointer, key: (some GuardedBytes)?, into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(
            (minimumOutputByteCount...maximumOutputByteCount).contains(output.count),
            "BLAKE2b output must be 16 to 64 bytes")
        // No `sodium_init` here: BLAKE2b is correct without it (initialising
        // only selects a faster compression function, which every store does
        // when it opens, through `Sodium.initialize()`, which throws).
        let rc = key.withUnsafeBytesIfPresent { k in
            precondition((k?.count ?? 0) <= Int(crypto_generichash_KEYBYTES_MAX), "BLAKE2b key too long")
            return crypto_generichash(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count,
                data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count),
                k?.baseAddress?.assumingMemoryBound(to: UInt8.self), k?.count ?? 0)
        }
        // libsodium fails only on an output or key length out of range,
        // which the preconditions above rule out: a failure here is a broken
        // library, and an unkeyed or zero hash must never be used as a MAC.
        precondition(rc == 0, "crypto_generichash failed with valid lengths")
    }

    /// Hashes `data` in one call.
    package static func hash(_ data: [UInt8], outputByteCount: Int = 32, key: SymmetricKey? = nil) -> [UInt8] {
        data.withUnsafeBytes { hash($0, outputByteCount: outputByteCount, key: key) }
    }

    /// Incremental BLAKE2b, for content that arrives in chunks. One owner.
    package final class Hasher {
        private let state: UnsafeMutableRawPointer
        private let outputByteCount: Int
        private var finalized = false

        /// Starts a hash of `outputByteCount` bytes, keyed if `key` is given.
        /// The state holds the key, so it lives in guarded memory.
        package init(outputByteCount: Int = 32, key: SymmetricKey? = nil) throws {
            precondition(
                (BLAKE2b.minimumOutputByteCount...BLAKE2b.maximumOutputByteCount).contains(outputByteCount),
                "BLAKE2b output must be 16 to 64 bytes")
            try Sodium.initialize()
            // A guarded slot, 64-byte aligned and wiped on release.
            precondition(crypto_generichash_statebytes() <= KeyArena.slotSize)
            state = try KeyArena.shared.allocate()
            self.outputByteCount = outputByteCount
            let s = OpaquePointer(state)
            let rc = key.withUnsafeBytesIfPresent { k in
                crypto_generichash_init(s, k?.baseAddress?.assumingMemoryBound(to: UInt8.self), k?.count ?? 0, outputByteCount)
            }
            guard rc == 0 else {
                KeyArena.shared.release(state)
                throw CryptoError(.invalidInput, "BLAKE2b could not start")
            }
        }

        deinit { KeyArena.shared.release(state) }

        /// Adds bytes to the hash. Cost: O(n).
        /// - Throws: ``CryptoError`` if used after ``finalize()`` or if
        ///   libsodium refuses the update.
        package func update(_ data: UnsafeRawBufferPointer) throws(CryptoError) {
            guard !finalized else { throw CryptoError(.invalidInput, "BLAKE2b.Hasher used after finalize()") }
            guard absorb(data) == 0 else { throw CryptoError(.invalidInput, "BLAKE2b update failed") }
        }

        /// Adds bytes to the hash.
        package func update(_ data: [UInt8]) throws(CryptoError) {
            guard !finalized else { throw CryptoError(.invalidInput, "BLAKE2b.Hasher used after finalize()") }
            guard data.withUnsafeBytes({ absorb($0) }) == 0 else { throw CryptoError(.invalidInput, "BLAKE2b update failed") }
        }

        private func absorb(_ data: UnsafeRawBufferPointer) -> Int32 {
            crypto_generichash_update(
                OpaquePointer(state), data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count))
        }

        /// Returns the digest. The hasher cannot be used afterwards.
        /// - Throws: ``CryptoError`` if called twice or if libsodium fails.
        package func finalize() throws(CryptoError) -> [UInt8] {
            guard !finalized else { throw CryptoError(.invalidInput, "BLAKE2b.Hasher finalized twice") }
            finalized = true
            var out = [UInt8](repeating: 0, count: outputByteCount)
            let rc = out.withUnsafeMutableBufferPointer { o in
                crypto_generichash_final(OpaquePointer(state), o.baseAddress!, outputByteCount)
            }
            guard rc == 0 else { throw CryptoError(.invalidInput, "BLAKE2b finalisation failed") }
            return out
        }
    }
}

extension Optional where Wrapped: GuardedBytes {
    /// Calls `body` with the bytes, or with nil when there is no value (an
    /// unkeyed hash).
    fileprivate func withUnsafeBytesIfPresent<R>(_ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let self else { return body(nil) }
        return self.withUnsafeBytes { body($0) }
    }
}
