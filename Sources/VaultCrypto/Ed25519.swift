import CSodium

/// An Ed25519 public key: 32 bytes, not secret.
package struct Ed25519PublicKey: Sendable, Hashable {
    /// Size in bytes.
    package static let byteCount = Int(crypto_sign_PUBLICKEYBYTES)
    /// The key bytes.
    package let bytes: [UInt8]

    /// A public key from its 32 bytes.
    package init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw CryptoError(.invalidInput, "an Ed25519 public key is \(Self.byteCount) bytes")
        }
        self.bytes = bytes
    }

    /// Whether `signature` is a valid signature of `message` by this key.
    /// Cost: one verification (~60 µs).
    package func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == Ed25519SigningKey.signatureByteCount,
              (try? Sodium.initialize()) != nil else { return false }
        return signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                bytes.withUnsafeBufferPointer { k in
                    crypto_sign_verify_detached(s.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!) == 0
                }
            }
        }
    }
}

/// An Ed25519 signing key; its secret half lives in guarded memory.
package final class Ed25519SigningKey: Sendable {
    /// Size of a signature in bytes.
    package static let signatureByteCount = Int(crypto_sign_BYTES)

    private let secret: SecureBytes
    /// The matching public key.
    package let publicKey: Ed25519PublicKey

    private init(secret: SecureBytes, publicKey: Ed25519PublicKey) {
        self.secret = secret
        self.publicKey = publicKey
    }

    /// A new random key pair.
    package static func generate() throws -> Ed25519SigningKey {
        try fromSeed(SymmetricKey.generate())
    }

    /// The key pair determined by a 32-byte seed (RFC 8032's secret key).
    package static func fromSeed(_ seed: SymmetricKey) throws -> Ed25519SigningKey {
        var pk = [UInt8](repeating: 0, count: Ed25519PublicKey.byteCount)
        let sk = try SecureBytes.allocate(count: Int(crypto_sign_SECRETKEYBYTES)) { dest in
            let rc = seed.withUnsafeBytes { s in
                pk.withUnsafeMutableBufferPointer { p in
                    crypto_sign_seed_keypair(
                        p.baseAddress!, dest.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard rc == 0 else { throw CryptoError(.invalidInput, "Ed25519 key generation failed") }
        }
        return Ed25519SigningKey(secret: sk, publicKey: try Ed25519PublicKey(bytes: pk))
    }

    /// Zeroes the secret half now (its owner is done with it: a store at
    /// `close()`), rather than when the last reference goes. A signature
    /// asked for afterwards throws, never returns bytes that do not verify.
    package func wipe() {
        secret.wipe(range: 0..<secret.count)
    }

    /// The detached signature of `message` (64 bytes), checked against
    /// ``publicKey`` before it is returned. Cost: ~20 µs to sign, ~50 µs to
    /// check.
    /// - Throws: ``CryptoError`` if libsodium refuses to sign, or the
    ///   signature does not verify (the key was wiped meanwhile).
    package func signature(for message: [UInt8]) throws(CryptoError) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Self.signatureByteCount)
        let rc = secret.withUnsafeBytes { sk in
            sig.withUnsafeMutableBufferPointer { s in
                message.withUnsafeBufferPointer { m in
                    crypto_sign_detached(
                        s.baseAddress!, nil, m.baseAddress, UInt64(m.count),
                        sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        guard rc == 0 else { throw CryptoError(.invalidInput, "Ed25519 signing failed") }
        guard publicKey.isValidSignature(sig, for: message) else {
            throw CryptoError(.invalidInput, "the Ed25519 signing key was wiped: no signature")
        }
        return sig
    }
}
