import Synchronization
import VaultSync

/// Fans notifications out to every listener.
/// Once finished (the store closed), a new listener gets a stream that is
/// already finished.
final class Notifier: Sendable {
    private let listeners = Locked<(streams: [UInt64: AsyncStream<VaultNotification>.Continuation], finished: Bool)>(([:], false))
    private let counter = Atomic<UInt64>(0)

    func stream() -> AsyncStream<VaultNotification> {
        let id = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<VaultNotification>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        continuation.onTermination = { [weak self] _ in _ = self?.listeners.withLock { $0.streams.removeValue(forKey: id) } }
        let open = listeners.withLock { l -> Bool in
            if !l.finished { l.streams[id] = continuation }
            return !l.finished
        }
        if !open { continuation.finish() }
        return stream
    }

    func emit(_ n: VaultNotification) {
        let all = listeners.withLock { Array($0.streams.values) }
        for c in all { c.yield(n) }
    }

    func finish() {
        let all = listeners.withLock { l -> [AsyncStream<VaultNotification>.Continuation] in
            let v = Array(l.streams.values)
            l.streams.removeAll()
            l.finished = true
            return v
        }
        for c in all { c.finish() }
    }
}
