import VaultSync

/// The acknowledgement of one ``StorageEngine/append(_:keySlotWrites:durability:)``.
package final class AppendTicket: Sendable {
    private enum State {
        case pending([CheckedContinuation<[RecordLocation], any Error>])
        case done(Result<[RecordLocation], StorageError>)
    }

    private let state = Locked<State>(.pending([]))

    package init() {}

    /// Waits until the append is acknowledged and returns the records'
    /// locations, in the order given.
    /// - Throws: the ``StorageError`` that failed the append.
    package func wait() async throws -> [RecordLocation] {
        if case .done(let r) = state.withLock({ $0 }) { return try r.get() }
        return try await withCheckedThrowingContinuation { cont in
            let resolved: Result<[RecordLocation], StorageError>? = state.withLock { s in
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

    /// Completes the ticket once; later calls are ignored.
    package func complete(_ result: Result<[RecordLocation], StorageError>) {
        let waiters: [CheckedContinuation<[RecordLocation], any Error>] = state.withLock { s in
            guard case .pending(let w) = s else { return [] }
            s = .done(result)
            return w
        }
        for w in waiters { w.resume(with: result.mapError { $0 as any Error }) }
    }
}
