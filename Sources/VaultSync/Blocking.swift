#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation

/// Runs `body`, blocking work (a long copy of files, a replay of a log),
/// on a thread of its own, and suspends the caller until it returns: a
/// thread of Swift's cooperative pool (as many as the cores) is never held
/// meanwhile, so other tasks (a store's writers) go on. The thread runs
/// at a lower CPU priority (`nice` + 10, Linux's per-thread priority) so
/// that, on a busy machine, the work behind acknowledgements comes first;
/// it ends with the work (a raised nice value cannot be lowered again).
package func inBackground<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            #if canImport(Glibc)
            // Linux: who 0 is the calling thread alone. A hint: if it
            // fails, the work runs at the normal priority.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            #endif
            continuation.resume(with: Result { try body() })
        }
        thread.name = "patientvault-background"
        thread.start()
    }
}
