import CSodium
#if canImport(Glibc)
import Glibc
#endif

/// libsodium's CSPRNG, drawn through a small pool.
///
/// Every draw of up to ``RandomPool/largestDraw`` bytes (nonces, document
/// keys, ids: about eight a deposit) is served from ``RandomPool``, which
/// asks the kernel for a block at a time: one `getrandom` call for many
/// draws instead of one each. Larger draws, and every draw where the pool
/// cannot be made fork-safe, go to `randombytes_buf` directly.
package enum SecureRandom {
    /// `count` random bytes (not secret material: nonces, salts, ids).
    /// - Throws: ``CryptoError`` if libsodium cannot initialise.
    package static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try fill(&out)
        return out
    }

    /// Fills `buffer` with random bytes.
    package static func fill(_ buffer: inout [UInt8]) throws(CryptoError) {
        try Sodium.initialize()
        buffer.withUnsafeMutableBytes { fillInitialized($0) }
    }

    /// Fills `buffer` with random bytes. `randombytes_buf` returns nothing
    /// and cannot fail once libsodium is initialised; initialisation is
    /// checked here.
    package static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard buffer.baseAddress != nil, buffer.count > 0 else { return }
        try Sodium.initialize()
        fillInitialized(buffer)
    }

    /// ``fill(_:)`` once libsodium is known to be initialised (a caller
    /// that allocated guarded memory has initialised it).
    package static func fillInitialized(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        if let pool = RandomPool.shared, buffer.count <= RandomPool.largestDraw {
            pool.draw(into: buffer)
        } else {
            randombytes_buf(base, buffer.count)
        }
    }
}

/// Random bytes drawn from the kernel a block at a time and handed out in
/// small pieces, each wiped from the pool as it is handed out.
///
/// The pool lives in one page of its own, mapped for it alone:
/// - `MADV_WIPEONFORK`: a child process after `fork()` sees the page as
///   zeros, so it never hands out the bytes its parent will (two processes
///   sealing with one nonce would expose both plaintexts). Zeros there mean
///   an empty pool and an unlocked mutex (glibc's initial state is all
///   zeros), so the child refills from the kernel and cannot inherit a
///   lock another thread held at the fork. Without this advice (a kernel
///   older than 4.14) there is no pool: every draw asks the kernel.
/// - `MADV_DONTDUMP`, and locked in memory where the limit allows: bytes
///   that will become document keys are never written to a core dump, and
///   not to swap where the lock is granted.
///
/// Layout of the page: the mutex at 0, the count of bytes left at 64, the
/// bytes from 128. Draws take bytes from the end of what is left and zero
/// them.
package final class RandomPool: @unchecked Sendable {
    /// The largest draw the pool serves; larger ones go to the kernel.
    package static let largestDraw = 64
    /// The pool of this process, or nil where it cannot be fork-safe.
    package static let shared: RandomPool? = RandomPool()

    private static let pageSize = 4096
    private static let countOffset = 64
    private static let bytesOffset = 128
    /// Bytes fetched per refill.
    package static let capacity = pageSize - bytesOffset

    private let page: UnsafeMutableRawPointer

    private init?() {
        let mapped = mmap(nil, Self.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { return nil }
        // Without wipe-on-fork the pool would be shared with any child.
        guard madvise(mapped, Self.pageSize, 18 /* MADV_WIPEONFORK */) == 0 else {
            munmap(mapped, Self.pageSize)
            return nil
        }
        // Hardening of its own, not a condition of safety (as for guarded
        // keys): a refused dump exclusion or lock leaves the pool working.
        _ = madvise(mapped, Self.pageSize, 16 /* MADV_DONTDUMP */)
        _ = sodium_mlock(mapped, Self.pageSize)
        // A fresh anonymous page is zeros: an unlocked mutex, an empty pool.
        page = mapped
    }

    private var mutex: UnsafeMutablePointer<pthread_mutex_t> {
        page.assumingMemoryBound(to: pthread_mutex_t.self)
    }

    private var remaining: UnsafeMutablePointer<Int> {
        (page + Self.countOffset).assumingMemoryBound(to: Int.self)
    }

    /// Locking a valid mutex that this thread does not hold cannot fail;
    /// a failure is a bug of this type, not a condition to handle.
    private func lock() {
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
    }

    private func unlock() {
        let rc = pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock failed: \(rc)")
    }

    /// Fills `out` (at most ``largestDraw`` bytes) with random bytes.
    func draw(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count <= Self.largestDraw)
        lock()
        defer { unlock() }
        if remaining.pointee < out.count {
            randombytes_buf(page + Self.bytesOffset, Self.capacity)
            remaining.pointee = Self.capacity
        }
        remaining.pointee -= out.count
        let source = page + Self.bytesOffset + remaining.pointee
        out.baseAddress!.copyMemory(from: source, byteCount: out.count)
        sodium_memzero(source, out.count)
    }

    /// Bytes left in the pool and whether every byte already handed out
    /// is zero (tests).
    package func inspect() -> (remaining: Int, handedOutAreZero: Bool) {
        lock()
        defer { unlock() }
        let left = remaining.pointee
        let handedOut = UnsafeRawBufferPointer(start: page + Self.bytesOffset + left, count: Self.capacity - left)
        return (left, handedOut.allSatisfy { $0 == 0 })
    }
}
