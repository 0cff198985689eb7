import CSodium

/// XChaCha20-Poly1305 (IETF construction) authenticated encryption.
///
/// A sealed box is laid out as `nonce (24) || ciphertext || tag (16)`. Nonces
/// are random: 192 bits make collisions negligible without a counter.
package enum XChaCha20Poly1305 {
    /// Nonce size in bytes.
    package static let nonceByteCount = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    /// Authentication tag size in bytes.
    package static let tagByteCount = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
    /// Bytes a sealed box adds to its plaintext.
    package static let overhead = nonceByteCount + tagByteCount

    // MARK: - Seal

    /// Seals `plaintext` with a random nonce and appends the box to `output`.
    ///
    /// Cost: O(n) in the plaintext size; no allocation beyond growing `output`.
    package static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        authenticating associatedData: UnsafeRawBufferPointer,
        appendingTo output: inout [UInt8]
    ) throws {
        var nonce = [UInt8](repeating: 0, count: nonceByteCount)
        try SecureRandom.fill(&nonce)
        try nonce.withUnsafeBytes { n in
            try seal(plaintext, using: key, nonce: n, authenticating: associatedData, appendingTo: &output)
        }
    }

    /// Seals with a caller-chosen nonce. Only for test vectors and for
    /// callers that guarantee nonce uniqueness; prefer the random variant.
    package static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        nonce: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer,
        appendingTo output: inout [UInt8]
    ) throws {
        try Sodium.initialize()
        guard nonce.count == nonceByteCount else {
            throw CryptoError(.invalidInput, "nonce must be \(nonceByteCount) bytes")
        }
        let start = output.count
        let boxCount = nonceByteCount + plaintext.count + tagByteCount
        output.appendZeros(boxCount)
        let rc = output.withUnsafeMutableBytes { out in
            let box = UnsafeMutableRawBufferPointer(rebasing: out[start...])
            box.copyMemory(from: nonce)
            return key.withUnsafeBytes { k in
                var written: UInt64 = 0
                return crypto_aead_xchacha20poly1305_ietf_encrypt(
                    box.baseAddress!.advanced(by: nonceByteCount).assumingMemoryBound(to: UInt8.self), &written,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                    associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                    nil,
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
            }
        }
        guard rc == 0 else {
            output.removeSubrange(start...)
            throw CryptoError(.invalidInput, "encryption failed (message too long)")
        }
    }

    /// Seals `plaintext` and returns the box.
    package static func seal(
        _ plaintext: [UInt8],
        using key: SymmetricKey,
        authenticating associatedData: [UInt8] = []
    ) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + overhead)
        try plaintext.withUnsafeBytes { p in
            try associatedData.withUnsafeBytes { a in
                try seal(p, using: key, authenticating: a, appendingTo: &out)
            }
        }
        return out
    }

    /// Seals in place: `box` is laid out as the sealed box will be
    /// (`nonce (24) || plaintext || room for the tag (16)`), the plaintext
    /// already where its ciphertext goes. A random nonce is written, the
    /// plaintext is encrypted over itself (libsodium's AEAD allows the
    /// message and the ciphertext to be the same buffer) and the tag
    /// follows: no allocation.
    package static func sealInPlace(
        _ box: UnsafeMutableRawBufferPointer,
        using key: SymmetricKey,
        authenticating associatedData: UnsafeRawBufferPointer
    ) throws {
        guard box.count >= overhead else { throw CryptoError(.invalidInput, "a box has room for nonce and tag") }
        try SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: box[0..<nonceByteCount]))
        let message = box.baseAddress!.advanced(by: nonceByteCount).assumingMemoryBound(to: UInt8.self)
        let count = box.count - overhead
        let rc = key.withUnsafeBytes { k in
            var written: UInt64 = 0
            return crypto_aead_xchacha20poly1305_ietf_encrypt(
                message, &written, message, UInt64(count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                nil, box.baseAddress!.assumingMemoryBound(to: UInt8.self), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else {
            sodium_memzero(box.baseAddress!, box.count)
            throw CryptoError(.invalidInput, "encryption failed")
        }
    }

    // MARK: - Open

    /// Opens a box and returns its plaintext.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` for a wrong key,
    ///   wrong associated data or any altered byte; never returns garbage.
    package static func open(
        _ box: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        authenticating associatedData: UnsafeRawBufferPointer
    ) throws -> [UInt8] {
        guard box.count >= overhead else {
            throw CryptoError(.authenticationFailed, "sealed box too short")
        }
        let count = box.count - overhead
        var plaintext = [UInt8](repeating: 0, count: count)
        let ok = plaintext.withUnsafeMutableBytes { out in
            open(box, using: key, authenticating: associatedData, into: out)
        }
        guard ok else {
            throw CryptoError(.authenticationFailed, "sealed box did not authenticate")
        }
        return plaintext
    }

    /// Opens a box and returns its plaintext.
    package static func open(
        _ box: [UInt8],
        using key: SymmetricKey,
        authenticating associatedData: [UInt8] = []
    ) throws -> [UInt8] {
        try box.withUnsafeBytes { b in
            try associatedData.withUnsafeBytes { a in
                try open(b, using: key, authenticating: a)
            }
        }
    }

    /// Opens `box` into `output`, which must be exactly `box.count - overhead`
    /// bytes. Returns false if authentication fails (output is then zeroed).
    package static func open(
        _ box: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        authenticating associatedData: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard (try? Sodium.initialize()) != nil,
              box.count >= overhead, output.count == box.count - overhead
        else { return false }
        let rc = key.withUnsafeBytes { k in
            var written: UInt64 = 0
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written,
                nil,
                box.baseAddress!.advanced(by: nonceByteCount).assumingMemoryBound(to: UInt8.self),
                UInt64(box.count - nonceByteCount),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                box.baseAddress!.assumingMemoryBound(to: UInt8.self),
                k.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        if rc != 0, let base = output.baseAddress, output.count > 0 {
            sodium_memzero(base, output.count)
        }
        return rc == 0
    }
}

// MARK: - Key wrapping

/// Wrapping of one key under another: an XChaCha20-Poly1305 box of the
/// 32 key bytes, bound to its context by associated data.
package enum KeyWrap {
    /// Size of a wrapped key: nonce, 32 key bytes, tag.
    package static let wrappedByteCount = SymmetricKey.byteCount + XChaCha20Poly1305.overhead

    /// Wraps `key` under `wrappingKey`, bound to `context`.
    package static func wrap(
        _ key: SymmetricKey,
        with wrappingKey: SymmetricKey,
        context: [UInt8]
    ) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(wrappedByteCount)
        try key.withUnsafeBytes { k in
            try context.withUnsafeBytes { c in
                try XChaCha20Poly1305.seal(k, using: wrappingKey, authenticating: c, appendingTo: &out)
            }
        }
        return out
    }

    /// Unwraps a key directly into guarded memory.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` for the wrong
    ///   wrapping key, the wrong context or altered bytes.
    /// Unwraps a key and derives its subkeys `ids` in the same guarded
    /// allocation (element 0 is the key).
    package static func unwrap(
        _ wrapped: [UInt8],
        with wrappingKey: SymmetricKey,
        context: [UInt8],
        subkeys ids: [UInt64],
        derivation: KeyDerivation.Context
    ) throws -> [SymmetricKey] {
        guard wrapped.count == wrappedByteCount else {
            throw CryptoError(.authenticationFailed, "wrapped key has the wrong size")
        }
        return try KeyDerivation.keyWithSubkeys(ids: ids, context: derivation) { dest in
            let ok = wrapped.withUnsafeBytes { w in
                context.withUnsafeBytes { c in
                    XChaCha20Poly1305.open(w, using: wrappingKey, authenticating: c, into: dest)
                }
            }
            guard ok else { throw CryptoError(.authenticationFailed, "wrapped key did not authenticate") }
        }
    }

    /// Unwraps a key wrapped by ``wrap(_:with:context:)`` under the same
    /// wrapping key and context.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` otherwise.
    package static func unwrap(
        _ wrapped: [UInt8],
        with wrappingKey: SymmetricKey,
        context: [UInt8]
    ) throws -> SymmetricKey {
        guard wrapped.count == wrappedByteCount else {
            throw CryptoError(.authenticationFailed, "wrapped key has the wrong size")
        }
        return try SymmetricKey.filled { dest in
            let ok = wrapped.withUnsafeBytes { w in
                context.withUnsafeBytes { c in
                    XChaCha20Poly1305.open(w, using: wrappingKey, authenticating: c, into: dest)
                }
            }
            guard ok else { throw CryptoError(.authenticationFailed, "wrapped key did not authenticate") }
        }
    }
}
