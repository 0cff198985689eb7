import VaultSync

/// The acknowledgement of one ``StorageEngine/append(_:keySlotWrites:durability:)``.
package final class AppendTicket: Sendable {
    private enum State {
        /// Its waiters, and what a waiter calls first (dropped at
        /// completion, so that a done ticket holds nothing of the engine).
        case pending([CheckedContinuation<[RecordReference], any Error>], onWait: (@Sendable () -> Void)?)
        case done(Result<[RecordReference], StorageError>)
    }

    private let state: Locked<State>

    /// - Parameter onWait: called when a caller starts waiting for the
    ///   ticket while it is pending: the engine's way to hurry an append it
    ///   lets wait (a small buffered group).
    package init(onWait: (@Sendable () -> Void)? = nil) {
        state = Locked(.pending([], onWait: onWait))
    }

    /// Waits until the append is acknowledged and returns the records'
    /// references, in the order given.
    /// - Throws: the ``StorageError`` that failed the append.
    package func wait() async throws -> [RecordReference] {
        let hurry: (@Sendable () -> Void)?
        switch state.withLock({ $0 }) {
        case .done(let r): return try r.get()
        case .pending(_, let onWait): hurry = onWait
        }
        hurry?()
        return try await withCheckedThrowingContinuation { cont in
            let resolved: Result<[RecordReference], StorageError>? = state.withLock { s in
                switch s {
                case .pending(var waiters, let onWait):
                    waiters.append(cont)
                    s = .pending(waiters, onWait: onWait)
                    return nil
                case .done(let r):
                    return r
                }
            }
            if let resolved { cont.resume(with: resolved.mapError { $0 as any Error }) }
        }
    }

    /// Whether the ticket is completed (acknowledged or failed).
    package var isDone: Bool {
        state.withLock { if case .done = $0 { true } else { false } }
    }

    /// Completes the ticket once; later calls are ignored.
    package func complete(_ result: Result<[RecordReference], StorageError>) {
        let waiters: [CheckedContinuation<[RecordReference], any Error>] = state.withLock { s in
            guard case .pending(let w, _) = s else { return [] }
            s = .done(result)
            return w
        }
        for w in waiters { w.resume(with: result.mapError { $0 as any Error }) }
    }
}
