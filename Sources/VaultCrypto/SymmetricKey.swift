import CSodium

/// A 256-bit secret key in guarded memory.
///
/// Keys compare in constant time and wipe themselves when released. There is
/// deliberately no way to read the bytes out into ordinary memory.
package final class SymmetricKey: Sendable, Equatable {
    /// The size of every key of this layer, in bytes.
    package static let byteCount = 32

    private let storage: SecureBytes
    /// Where this key starts in `storage`: keys derived together share one
    /// guarded allocation (each `sodium_malloc` costs several system calls
    /// and pages of address space).
    private let offset: Int

    private init(storage: SecureBytes, offset: Int = 0) {
        precondition(offset + Self.byteCount <= storage.count)
        self.storage = storage
        self.offset = offset
    }

    /// Keys filled together in one guarded allocation: `initializer` writes
    /// `count` × 32 bytes, key `i` at offset 32 × i.
    package static func filledTogether(
        count: Int, by initializer: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> [SymmetricKey] {
        let storage = try SecureBytes.allocate(count: count * byteCount, initializingWith: initializer)
        return (0..<count).map { SymmetricKey(storage: storage, offset: $0 * byteCount) }
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
        let offset = self.offset
        return try storage.withUnsafeBytes { (all: UnsafeRawBufferPointer) throws(E) -> R in
            try body(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + Self.byteCount)]))
        }
    }

    /// Zeroes the key's bytes now (its owner is done with it: a store at
    /// `close()`), rather than when the last reference goes.
    package func wipe() {
        storage.wipe(range: offset..<(offset + Self.byteCount))
    }

    /// Constant-time equality.
    package static func == (lhs: SymmetricKey, rhs: SymmetricKey) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in sodium_memcmp(a.baseAddress!, b.baseAddress!, byteCount) == 0 } }
    }
}
