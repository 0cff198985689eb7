/// Mutual exclusion for `async` code: one holder at a time, the others
/// suspended (not blocking a thread) and let in in arrival order.
///
/// For work that awaits I/O while it must run once, such as loading one
/// vault for several concurrent callers. Not reentrant: a holder that
/// enters the same gate again waits for ever.
package final class AsyncGate: Sendable {
    private struct State: Sendable {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Locked(State())

    package init() {}

    /// How many callers wait for the gate now (tests order events by it).
    package var waiting: Int { state.withLock { $0.waiters.count } }

    /// Runs `body` alone among the callers of this gate.
    package func withGate<R>(_ body: () async throws -> R) async rethrows -> R {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let enters = state.withLock { s -> Bool in
                if !s.held {
                    s.held = true
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if enters { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard !s.waiters.isEmpty else {
                s.held = false
                return nil
            }
            // Handed over: the gate stays held by the next waiter.
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
