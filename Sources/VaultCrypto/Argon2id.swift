import CSodium

/// Argon2id password hashing (`crypto_pwhash`), to turn a passphrase into a
/// 32-byte key.
package enum Argon2id {
    /// Size of the salt in bytes.
    package static let saltByteCount = Int(crypto_pwhash_SALTBYTES)

    /// Cost parameters, stored beside the salt so that a key can be derived
    /// again with the same cost.
    package struct Parameters: Sendable, Hashable {
        /// Number of passes.
        package var opsLimit: UInt64
        /// Memory in bytes.
        package var memLimit: UInt64

        package init(opsLimit: UInt64, memLimit: UInt64) {
            (self.opsLimit, self.memLimit) = (opsLimit, memLimit)
        }

        /// Limits given as libsodium's constants.
        private init(_ opsLimit: some BinaryInteger, _ memLimit: some BinaryInteger) {
            self.init(opsLimit: UInt64(opsLimit), memLimit: UInt64(memLimit))
        }

        /// libsodium's interactive limits (64 MiB, 2 passes).
        package static let interactive = Parameters(crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE)
        /// libsodium's moderate limits (256 MiB, 3 passes), about a second.
        package static let moderate = Parameters(crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE)
        /// libsodium's sensitive limits (1 GiB, 4 passes): the most a store
        /// header may ask for.
        package static let sensitive = Parameters(crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE, crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE)
        /// The smallest limits libsodium accepts; for tests only.
        package static let minimum = Parameters(crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN)

        /// Whether libsodium accepts these limits.
        package var isValid: Bool {
            opsLimit >= UInt64(crypto_pwhash_argon2id_OPSLIMIT_MIN)
                && opsLimit <= UInt64(crypto_pwhash_argon2id_OPSLIMIT_MAX)
                && memLimit >= UInt64(crypto_pwhash_argon2id_MEMLIMIT_MIN)
                && memLimit <= UInt64(crypto_pwhash_argon2id_memlimit_max())
        }
    }

    /// Derives a 32-byte key from `passphrase` and `salt`, into guarded
    /// memory. Cost: set by `parameters` (by design, slow).
    /// - Throws: ``CryptoError/Code/invalidInput`` for a bad salt or limits,
    ///   ``CryptoError/Code/keyDerivationFailed`` if memory runs out.
    package static func deriveKey(
        from passphrase: UnsafeRawBufferPointer,
        salt: [UInt8],
        parameters: Parameters
    ) throws -> SymmetricKey {
        guard salt.count == saltByteCount else {
            throw CryptoError(.invalidInput, "an Argon2id salt is \(saltByteCount) bytes")
        }
        guard parameters.isValid else {
            throw CryptoError(.invalidInput, "Argon2id limits out of range")
        }
        return try SymmetricKey.filled { dest in
            let rc = salt.withUnsafeBufferPointer { s in
                withNonNullInput(passphrase) { pw in
                    crypto_pwhash(
                        dest.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(dest.count),
                        pw, UInt64(passphrase.count),
                        s.baseAddress!, parameters.opsLimit, Int(parameters.memLimit),
                        crypto_pwhash_ALG_ARGON2ID13)
                }
            }
            guard rc == 0 else { throw CryptoError(.keyDerivationFailed, "Argon2id failed (memory)") }
        }
    }

    /// Derives a raw Argon2id output of `outputByteCount` bytes, for test
    /// vectors of other lengths. Not for keys: the output is ordinary memory.
    package static func rawOutput(
        passphrase: [UInt8], salt: [UInt8], parameters: Parameters, outputByteCount: Int
    ) throws -> [UInt8] {
        guard salt.count == saltByteCount, parameters.isValid else {
            throw CryptoError(.invalidInput, "Argon2id salt or limits invalid")
        }
        try Sodium.initialize()
        var out = [UInt8](repeating: 0, count: outputByteCount)
        let rc = out.withUnsafeMutableBufferPointer { o in
            passphrase.withUnsafeBytes { p in
                salt.withUnsafeBufferPointer { s in
                    withNonNullInput(p) { pw in
                        crypto_pwhash(
                            o.baseAddress!, UInt64(outputByteCount), pw, UInt64(p.count),
                            s.baseAddress!, parameters.opsLimit, Int(parameters.memLimit),
                            crypto_pwhash_ALG_ARGON2ID13)
                    }
                }
            }
        }
        guard rc == 0 else { throw CryptoError(.keyDerivationFailed, "Argon2id failed") }
        return out
    }

    /// libsodium wants a non-null pointer even for an empty passphrase.
    private static func withNonNullInput<R>(
        _ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<CChar>) -> R
    ) -> R {
        if let base = bytes.baseAddress, bytes.count > 0 {
            return body(base.assumingMemoryBound(to: CChar.self))
        }
        var zero: CChar = 0
        return withUnsafePointer(to: &zero) { body($0) }
    }
}
