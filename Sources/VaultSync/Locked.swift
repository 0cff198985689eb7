#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a POSIX mutex: the one lock type of PatientVault.
///
/// It has the shape of `Synchronization.Mutex` (`withLock { value in … }`)
/// but a `pthread_mutex_t` inside. ThreadSanitizer intercepts pthread
/// mutexes; it cannot see the standard library's `Mutex` (an uninstrumented
/// futex on Linux) and would report every access made under one as a race.
/// With this type the sanitizer run checks real races, with no suppression.
///
/// Locks are meant to guard memory, not I/O: no caller sleeps or waits for
/// another task while holding one. The I/O that may still happen under a
/// lock, when the engine's committer has not kept ahead (a segment switch
/// without a segment made ahead, a growth step), is named in
/// Architecture.md. Lock order, where two are nested, is written where the
/// locks are declared.
package final class Locked<Value> {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// A lock around `value`.
    package init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        // Default attributes cannot fail to initialise but for lack of
        // memory, which Swift would already have trapped on.
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, under the lock. Cost: one uncontended
    /// lock and unlock. Must not be re-entered from `body` (a deadlock,
    /// which `pthread_mutex_lock` reports only for error-checking mutexes).
    @inline(__always)
    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        // Only a bad mutex (EINVAL) or a deadlock (EDEADLK) fail here: both
        // are bugs of this module, never a runtime condition.
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// Sendable when its value is: the value is only ever touched inside
// `withLock`, under the mutex, so handing the lock to another thread hands
// it nothing it could race on.
extension Locked: @unchecked Sendable where Value: Sendable {}
