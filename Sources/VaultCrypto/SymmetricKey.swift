import CSodium

/// A 256-bit secret key in guarded memory.
///
/// Keys compare in constant time and wipe themselves when released. There is
/// deliberately no way to read the bytes out into ordinary memory.
package final class SymmetricKey: Sendable, Equatable {
    /// The size of every key of this layer, in bytes.
    package static let byteCount = 32

    package let storage: SecureBytes

    private init(storage: SecureBytes) {
        self.storage = storage
    }

    /// A fresh random key.
    package static func generate() throws -> SymmetricKey {
        SymmetricKey(storage: try SecureBytes.random(count: byteCount))
    }

    /// Copies 32 bytes into a key. The caller should wipe its own copy.
    /// - Throws: ``CryptoError/Code/invalidInput`` if `bytes` is not 32 bytes.
    package static func copying(_ bytes: UnsafeRawBufferPointer) throws -> SymmetricKey {
        guard bytes.count == byteCount else {
            throw CryptoError(.invalidInput, "a key is \(byteCount) bytes, got \(bytes.count)")
        }
        return SymmetricKey(storage: try SecureBytes.copying(bytes))
    }

    /// Builds a key whose 32 bytes are written by `initializer`, directly in
    /// guarded memory (used by unwrapping, derivation and Argon2id).
    package static func filled(
        by initializer: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> SymmetricKey {
        SymmetricKey(storage: try SecureBytes.allocate(count: byteCount, initializingWith: initializer))
    }

    /// Calls `body` with the key bytes; the pointer must not escape.
    @inline(__always)
    package func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes(body)
    }

    /// Constant-time equality.
    package static func == (lhs: SymmetricKey, rhs: SymmetricKey) -> Bool {
        lhs.storage.constantTimeEquals(rhs.storage)
    }
}
