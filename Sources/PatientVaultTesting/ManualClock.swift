import Foundation
import PatientVault
import VaultSync

/// A clock that moves only when the test moves it: deposit times, audit
/// entries, grant expiry and the hidden-document month all read it.
///
/// ```swift
/// let clock = ManualClock(Date())
/// let configuration = Configuration.testing(clock: clock)
/// clock.advance(by: 31 * 86_400)   // a month later
/// ```
///
/// It dates what the store records and decides; it does not drive the
/// store's timers, which run on real time: the batched-audit flush
/// (`AuditMode.batched(maxDelay:)`) and the checkpoint cadence
/// (`Configuration.checkpointCadence`). A test that moves this clock
/// waits for neither; it calls `checkpoint()`, or waits for its
/// entry (`auditTrail`), instead.
public final class ManualClock: VaultClock {
    private let current: Locked<Date>

    /// A clock showing `start` (by default 2023-11-14 22:13:20 UTC, a fixed
    /// instant, so that runs are repeatable).
    public init(_ start: Date = Date(timeIntervalSince1970: 1_700_000_000)) {
        current = Locked(start)
    }

    /// The time the clock shows.
    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward (or back, with a negative interval).
    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }

    /// Sets the clock to `date`.
    public func set(_ date: Date) { current.withLock { $0 = date } }
}
