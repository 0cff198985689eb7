import VaultSync

/// Values derived from a key (a keyed hash, typically) kept for the next
/// call: at most `limit` of them, then started afresh. For the stream ids
/// and statistics tags of recent actors, derived once each rather than at
/// every operation.
final class BoundedMemo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let values = Locked<[Key: Value]>([:])
    private let limit: Int

    init(limit: Int = 4096) { self.limit = limit }

    /// The value of `key`, from memory or from `derive` (called outside the lock).
    func value(_ key: Key, derive: () -> Value) -> Value {
        if let known = values.withLock({ $0[key] }) { return known }
        let value = derive()
        values.withLock { v in
            if v.count >= limit { v.removeAll(keepingCapacity: true) }
            v[key] = value
        }
        return value
    }
}
