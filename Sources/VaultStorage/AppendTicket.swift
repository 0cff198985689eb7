import VaultSync

/// The acknowledgement of one ``StorageEngine/append(_:keySlotWrites:durability:)``.
package final class AppendTicket: Sendable {
    private enum State {
        case pending([CheckedContinuation<[RecordReference], any Error>])
        case done(Result<[RecordReference], StorageError>)
    }

    private let state = Locked<State>(.pending([]))
    /// Called by a waiter that finds the ticket pending: the engine's way
    /// to hurry an append it lets wait (a small buffered group).
    private let onWait: (@Sendable () -> Void)?

    /// - Parameter onWait: called when a caller starts waiting for the
    ///   ticket while it is pending.
    package init(onWait: (@Sendable () -> Void)? = nil) {
        self.onWait = onWait
    }

    /// Waits until the append is acknowledged and returns the records'
    /// references, in the order given.
    /// - Throws: the ``StorageError`` that failed the append.
    package func wait() async throws -> [RecordReference] {
        if case .done(let r) = state.withLock({ $0 }) { return try r.get() }
        onWait?()
        return try await withCheckedThrowingContinuation { cont in
            let resolved: Result<[RecordReference], StorageError>? = state.withLock { s in
                switch s {
                case .pending(var waiters):
                    waiters.append(cont)
                    s = .pending(waiters)
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
            guard case .pending(let w) = s else { return [] }
            s = .done(result)
            return w
        }
        for w in waiters { w.resume(with: result.mapError { $0 as any Error }) }
    }
}
