import CSodium

/// Secret bytes in guarded memory: a slot of ``KeyArena`` (up to 512 bytes)
/// or their own `sodium_malloc` allocation (guard pages, a canary, made
/// read-only once filled); `mlock`ed where the limit allows, compared in
/// constant time, and wiped when the last reference goes away.
///
/// The bytes are reachable only inside ``withUnsafeBytes(_:)``; they are
/// never copied into `[UInt8]` or `Data` by this type.
package final class SecureBytes: @unchecked Sendable {
    // @unchecked Sendable: the buffer is written only inside `allocate`,
    // then at most once more by `wipe(range:)`, which its owner calls when
    // nothing uses the bytes any longer (a store's keys at `close()`, after
    // its engine stopped accepting writes); concurrent reads of memory
    // nobody writes are safe, and `deinit` runs once no reference remains.
    private let pointer: UnsafeMutableRawPointer
    /// The number of secret bytes.
    package let count: Int
    /// Whether the bytes live in a slot of ``KeyArena`` (else in their own
    /// `sodium_malloc` allocation).
    private let inArena: Bool

    private init(pointer: UnsafeMutableRawPointer, count: Int, inArena: Bool) {
        self.pointer = pointer
        self.count = count
        self.inArena = inArena
    }

    /// Allocates `count` guarded bytes filled by `initializer`.
    ///
    /// Up to ``KeyArena/slotSize`` bytes (every key and key bundle of this
    /// library) come from a slot of the shared ``KeyArena``: guarded,
    /// `mlock`ed slabs, wiped slot by slot, without a system call per key.
    /// Larger buffers get their own `sodium_malloc` allocation, made
    /// read-only once filled. If `initializer` throws, the memory is wiped
    /// and released and the error is rethrown.
    /// - Throws: ``CryptoError/Code/allocationFailed`` when guarded memory
    ///   cannot be mapped. (`sodium_malloc` tries `mlock` and carries on if
    ///   `RLIMIT_MEMLOCK` refuses it: the memory is then swappable.)
    package static func allocate(
        count: Int,
        initializingWith initializer: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> SecureBytes {
        precondition(count > 0, "SecureBytes needs a positive size")
        try Sodium.initialize()
        if count <= KeyArena.slotSize {
            let p = try KeyArena.shared.allocate()
            do {
                try initializer(UnsafeMutableRawBufferPointer(start: p, count: count))
            } catch {
                KeyArena.shared.release(p)
                throw error
            }
            return SecureBytes(pointer: p, count: count, inArena: true)
        }
        guard let p = sodium_malloc(count) else {
            throw CryptoError(.allocationFailed, "guarded memory exhausted")
        }
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            sodium_free(p)
            throw error
        }
        // Read-only is a hardening of its own, not a condition of safety:
        // if mprotect refuses, the bytes stay guarded and wiped on release.
        _ = sodium_mprotect_readonly(p)
        return SecureBytes(pointer: p, count: count, inArena: false)
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
        if inArena {
            // Wipes the slot and returns it to the arena.
            KeyArena.shared.release(pointer)
        } else {
            // Makes the pages writable again, zeroes them and frees them.
            sodium_free(pointer)
        }
    }

    /// Zeroes `range` of the secret bytes now, before the last reference
    /// goes (it is wiped again then). Later uses see zeros: a key wiped this
    /// way opens nothing, and whatever it seals cannot be opened.
    package func wipe(range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "wipe out of bounds")
        guard !range.isEmpty else { return }
        // A buffer of its own is read-only: if it cannot be made writable
        // (mprotect refused), it stays as it is until `deinit` frees it,
        // which wipes it whatever the protection.
        if !inArena { guard sodium_mprotect_readwrite(pointer) == 0 else { return } }
        sodium_memzero(pointer + range.lowerBound, range.count)
        if !inArena { _ = sodium_mprotect_readonly(pointer) }
    }

    /// Calls `body` with the secret bytes. The pointer must not escape.
    @inline(__always)
    package func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

/// Guarded memory read in place: ``SecureBytes`` and ``SymmetricKey``.
package protocol GuardedBytes {
    /// Calls `body` with the bytes. The pointer must not escape.
    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
}

extension SecureBytes: GuardedBytes {}
extension SymmetricKey: GuardedBytes {}
