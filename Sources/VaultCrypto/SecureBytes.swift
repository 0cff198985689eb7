import CSodium

/// Secret bytes in guarded memory: `sodium_malloc` (guard pages, a canary,
/// `mlock` where allowed), read-only once filled, compared in constant time
/// and wiped by `sodium_free` when the last reference goes away.
///
/// The bytes are reachable only inside ``withUnsafeBytes(_:)``; they are
/// never copied into `[UInt8]` or `Data` by this type.
package final class SecureBytes: @unchecked Sendable {
    // @unchecked Sendable: the buffer is written only inside `init` and is
    // then made read-only with `sodium_mprotect_readonly`; concurrent reads of
    // immutable memory are safe, and `deinit` runs once no reference remains.
    private let pointer: UnsafeMutableRawPointer
    /// The number of secret bytes.
    package let count: Int

    private init(pointer: UnsafeMutableRawPointer, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    /// Allocates `count` guarded bytes filled by `initializer`, then makes
    /// them read-only.
    ///
    /// If `initializer` throws, the memory is wiped and freed and the error
    /// is rethrown.
    /// - Throws: ``CryptoError/Code/allocationFailed`` when guarded memory is
    ///   exhausted (it is `mlock`ed, so `RLIMIT_MEMLOCK` bounds it).
    package static func allocate(
        count: Int,
        initializingWith initializer: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> SecureBytes {
        precondition(count > 0, "SecureBytes needs a positive size")
        try Sodium.initialize()
        guard let p = sodium_malloc(count) else {
            throw CryptoError(.allocationFailed, "guarded memory exhausted")
        }
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            sodium_free(p)
            throw error
        }
        sodium_mprotect_readonly(p)
        return SecureBytes(pointer: p, count: count)
    }

    /// Copies `bytes` into guarded memory. The caller stays responsible for
    /// wiping its own copy.
    package static func copying(_ bytes: UnsafeRawBufferPointer) throws -> SecureBytes {
        try allocate(count: bytes.count) { dest in
            dest.copyMemory(from: bytes)
        }
    }

    /// Random secret bytes from libsodium's CSPRNG.
    package static func random(count: Int) throws -> SecureBytes {
        try allocate(count: count) { dest in
            randombytes_buf(dest.baseAddress!, dest.count)
        }
    }

    deinit {
        // Makes the pages writable again, zeroes them and frees them.
        sodium_free(pointer)
    }

    /// Calls `body` with the secret bytes. The pointer must not escape.
    @inline(__always)
    package func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Constant-time comparison (`sodium_memcmp`).
    package func constantTimeEquals(_ other: SecureBytes) -> Bool {
        guard count == other.count else { return false }
        return sodium_memcmp(pointer, other.pointer, count) == 0
    }
}
