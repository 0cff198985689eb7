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
