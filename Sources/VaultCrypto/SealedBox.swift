import CSodium

/// libsodium's sealed boxes (`crypto_box_seal`): a message encrypted to an
/// X25519 public key by an anonymous sender (an ephemeral key pair, its
/// secret half discarded), which only the holder of the matching secret
/// key opens. What a patient's export is sealed with when it is for
/// someone else (another hospital, a successor service).
package enum SealedBox {
    /// Bytes a sealed box adds to its message.
    package static let overhead = Int(crypto_box_sealbytes())

    /// Seals `message` to `recipient`.
    /// - Throws: ``CryptoError`` if libsodium refuses (never for valid input).
    package static func seal(_ message: [UInt8], to recipient: X25519PublicKey) throws(CryptoError) -> [UInt8] {
        do { try Sodium.initialize() } catch { throw CryptoError(.initialisationFailed, "libsodium did not initialise") }
        var out = [UInt8](repeating: 0, count: message.count + overhead)
        let rc = out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                recipient.bytes.withUnsafeBufferPointer { k in
                    crypto_box_seal(o.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!)
                }
            }
        }
        guard rc == 0 else { throw CryptoError(.invalidInput, "a sealed box could not be made") }
        return out
    }

    /// Opens a box sealed to `keyPair`'s public key.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` for a box that
    ///   is not one sealed to this key, or was altered.
    package static func open(_ box: [UInt8], with keyPair: X25519KeyPair) throws(CryptoError) -> [UInt8] {
        guard box.count >= overhead else { throw CryptoError(.authenticationFailed, "a sealed box is shorter than its overhead") }
        var out = [UInt8](repeating: 0, count: box.count - overhead)
        let rc = out.withUnsafeMutableBufferPointer { o in
            box.withUnsafeBufferPointer { b in
                keyPair.publicKey.bytes.withUnsafeBufferPointer { pk in
                    keyPair.secret.withUnsafeBytes { sk in
                        crypto_box_seal_open(
                            o.baseAddress ?? UnsafeMutablePointer(mutating: b.baseAddress!), b.baseAddress!, UInt64(b.count), pk.baseAddress!,
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
        guard rc == 0 else { throw CryptoError(.authenticationFailed, "the sealed box does not open with this key") }
        return out
    }
}

/// An X25519 public key: 32 bytes, not secret.
package struct X25519PublicKey: Sendable, Hashable {
    /// Size in bytes.
    package static let byteCount = Int(crypto_box_PUBLICKEYBYTES)
    /// The key bytes.
    package let bytes: [UInt8]

    /// A public key from its 32 bytes.
    package init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw CryptoError(.invalidInput, "an X25519 public key is \(Self.byteCount) bytes")
        }
        self.bytes = bytes
    }
}

/// An X25519 key pair for sealed boxes; its secret half lives in guarded
/// memory and is wiped when the last reference goes.
package final class X25519KeyPair: Sendable {
    let secret: SecureBytes
    /// The public half, to hand to senders.
    package let publicKey: X25519PublicKey

    private init(secret: SecureBytes, publicKey: X25519PublicKey) {
        self.secret = secret
        self.publicKey = publicKey
    }

    /// A new random key pair.
    package static func generate() throws -> X25519KeyPair {
        var pk = [UInt8](repeating: 0, count: X25519PublicKey.byteCount)
        let sk = try SecureBytes.allocate(count: Int(crypto_box_SECRETKEYBYTES)) { dest in
            let rc = pk.withUnsafeMutableBufferPointer { p in
                crypto_box_keypair(p.baseAddress!, dest.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            guard rc == 0 else { throw CryptoError(.invalidInput, "X25519 key generation failed") }
        }
        return X25519KeyPair(secret: sk, publicKey: try X25519PublicKey(bytes: pk))
    }

    /// The key pair of a 32-byte secret key (as ``withSecretBytes(_:)``
    /// gives it); its public half is derived.
    package static func fromSecret(_ secretBytes: [UInt8]) throws -> X25519KeyPair {
        guard secretBytes.count == Int(crypto_box_SECRETKEYBYTES) else {
            throw CryptoError(.invalidInput, "an X25519 secret key is \(crypto_box_SECRETKEYBYTES) bytes")
        }
        var pk = [UInt8](repeating: 0, count: X25519PublicKey.byteCount)
        let sk = try SecureBytes.allocate(count: secretBytes.count) { dest in
            dest.copyBytes(from: secretBytes)
            let rc = pk.withUnsafeMutableBufferPointer { p in
                crypto_scalarmult_base(p.baseAddress!, dest.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            guard rc == 0 else { throw CryptoError(.invalidInput, "not an X25519 secret key") }
        }
        return X25519KeyPair(secret: sk, publicKey: try X25519PublicKey(bytes: pk))
    }

    /// Runs `body` on the secret key's bytes (to write it to a file the
    /// recipient keeps).
    package func withSecretBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try secret.withUnsafeBytes(body)
    }
}
