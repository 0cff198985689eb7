import CSodium

/// `crypto_secretstream_xchacha20poly1305`: a sequence of authenticated
/// chunks under one key, where reordering, dropping or truncating chunks is
/// detected (the last chunk carries the `final` tag).
///
/// The stream state holds key material, so it lives in guarded memory and
/// is wiped when the pusher or puller is released.
package enum SecretStream {
    /// Size of the stream header that a puller needs.
    package static let headerByteCount = Int(crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    /// Bytes each chunk adds to its plaintext.
    package static let chunkOverhead = Int(crypto_secretstream_xchacha20poly1305_ABYTES)

    fileprivate static let stateByteCount = crypto_secretstream_xchacha20poly1305_statebytes()

    /// A wiped, 64-byte-aligned slot of guarded memory for a state (it
    /// holds key material).
    fileprivate static func allocateState() throws -> UnsafeMutableRawPointer {
        try Sodium.initialize()
        precondition(stateByteCount <= KeyArena.slotSize)
        return try KeyArena.shared.allocate()
    }
}

/// The writing end of a secret stream. Not thread-safe: one owner.
package final class SecretStreamPusher {
    private let state: UnsafeMutableRawPointer
    private var finished = false
    /// The header to store before the first chunk.
    package let header: [UInt8]

    /// Starts a stream under `key`.
    package init(key: SymmetricKey) throws {
        let state = try SecretStream.allocateState()
        var header = [UInt8](repeating: 0, count: SecretStream.headerByteCount)
        let rc = header.withUnsafeMutableBufferPointer { h in
            key.withUnsafeBytes { k in
                crypto_secretstream_xchacha20poly1305_init_push(
                    state.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                    h.baseAddress!, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else {
            KeyArena.shared.release(state)
            throw CryptoError(.invalidInput, "secret stream could not start")
        }
        self.state = state
        self.header = header
    }

    deinit { KeyArena.shared.release(state) }

    /// Encrypts one chunk and appends it (plaintext + 17 bytes) to `output`.
    /// - Parameter isFinal: marks the last chunk; no chunk may follow it.
    package func push(
        _ plaintext: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer,
        isFinal: Bool,
        appendingTo output: inout [UInt8]
    ) throws {
        guard !finished else { throw CryptoError(.streamState, "push after the final chunk") }
        let start = output.count
        output.appendZeros(plaintext.count + SecretStream.chunkOverhead)
        let tag = isFinal
            ? UInt8(crypto_secretstream_xchacha20poly1305_TAG_FINAL)
            : UInt8(crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        let rc = output.withUnsafeMutableBytes { out in
            crypto_secretstream_xchacha20poly1305_push(
                state.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                out.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self), nil,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                tag)
        }
        guard rc == 0 else { throw CryptoError(.invalidInput, "secret stream push failed") }
        finished = isFinal
    }
}

/// The reading end of a secret stream. Not thread-safe: one owner.
package final class SecretStreamPuller {
    private let state: UnsafeMutableRawPointer
    /// True once the chunk tagged final has been pulled.
    package private(set) var isFinished = false

    /// Starts reading a stream from its header.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` if the header is
    ///   malformed.
    package init(key: SymmetricKey, header: UnsafeRawBufferPointer) throws {
        guard header.count == SecretStream.headerByteCount else {
            throw CryptoError(.authenticationFailed, "secret stream header has the wrong size")
        }
        let state = try SecretStream.allocateState()
        let rc = key.withUnsafeBytes { k in
            crypto_secretstream_xchacha20poly1305_init_pull(
                state.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                header.baseAddress!.assumingMemoryBound(to: UInt8.self),
                k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else {
            KeyArena.shared.release(state)
            throw CryptoError(.authenticationFailed, "secret stream header rejected")
        }
        self.state = state
    }

    deinit { KeyArena.shared.release(state) }

    /// Decrypts and authenticates one chunk into `output`, which must hold
    /// at least `ciphertext.count - SecretStream.chunkOverhead` bytes (the
    /// caller's own buffer: no intermediate copy). Returns the plaintext's
    /// length and whether this was the final chunk; on failure `output`'s
    /// first bytes are zeroed.
    package func pull(
        _ ciphertext: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws -> (count: Int, isFinal: Bool) {
        guard !isFinished else { throw CryptoError(.streamState, "chunk after the final chunk") }
        guard ciphertext.count >= SecretStream.chunkOverhead else {
            throw CryptoError(.authenticationFailed, "secret stream chunk too short")
        }
        let count = ciphertext.count - SecretStream.chunkOverhead
        guard output.count >= count else { throw CryptoError(.invalidInput, "secret stream output too small") }
        var tag: UInt8 = 0
        let rc = crypto_secretstream_xchacha20poly1305_pull(
            state.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
            output.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, &tag,
            ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
            associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count))
        guard rc == 0 else {
            if count > 0 { sodium_memzero(output.baseAddress!, count) }
            throw CryptoError(.authenticationFailed, "secret stream chunk did not authenticate")
        }
        isFinished = tag == UInt8(crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return (count, isFinished)
    }

    /// Decrypts one chunk and appends its plaintext to `output`.
    /// - Returns: whether this chunk was the final one.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` for an altered,
    ///   reordered or foreign chunk; ``CryptoError/Code/streamState`` for a
    ///   chunk after the final one.
    @discardableResult
    package func pull(
        _ ciphertext: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer,
        appendingTo output: inout [UInt8]
    ) throws -> Bool {
        guard !isFinished else { throw CryptoError(.streamState, "chunk after the final chunk") }
        guard ciphertext.count >= SecretStream.chunkOverhead else {
            throw CryptoError(.authenticationFailed, "secret stream chunk too short")
        }
        let start = output.count
        let count = ciphertext.count - SecretStream.chunkOverhead
        output.appendZeros(count)
        var tag: UInt8 = 0
        let rc = output.withUnsafeMutableBytes { out in
            crypto_secretstream_xchacha20poly1305_pull(
                state.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                out.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self), nil, &tag,
                ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count))
        }
        guard rc == 0 else {
            output.removeSubrange(start...)
            throw CryptoError(.authenticationFailed, "secret stream chunk did not authenticate")
        }
        isFinished = tag == UInt8(crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return isFinished
    }
}
