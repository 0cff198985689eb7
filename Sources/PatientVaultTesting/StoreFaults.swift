import PatientVault
import VaultStorage

/// Storage failures on demand, for a host's tests of its own error
/// handling: a full disk, a failed `fdatasync`, a failed write. Inject them
/// with `PatientVault/Configuration/injecting(_:)`; switch them on and
/// off while the store runs.
///
/// ```swift
/// let faults = StoreFaults()
/// try await withTemporaryStore(configuration: .testing.injecting(faults)) { store in
///     faults.diskFull = true
///     // deposits now fail with .diskFull; reads go on
/// }
/// ```
///
/// What the store does then is what it does on a real disk: a full disk
/// refuses what needs new space (`diskFull`, nothing written; the same
/// store works again once space returns); a failed sync or write stops
/// the store (`durabilityLost` for that call, every later one and
/// `close()`; reopen to go on: what was acknowledged is there).
///
/// The faults stay with the configuration: `TemporaryStore.reopen()`
/// reopens with them, and an open syncs what it recovers, so switch a
/// failing sync or write off before reopening (a reopen that fails leaves
/// `TemporaryStore.store` the closed store).
public final class StoreFaults: Sendable {
    let injection = FaultInjection()

    /// Creates faults that are all off.
    public init() {}

    /// While true, the disk is full: the next write of any size (a deposit,
    /// a replacement, a vault creation, a policy change) fails with
    /// `PatientVault/PatientVaultError/Code/diskFull` and changes nothing;
    /// reads and listings go on (their audit entries use the space kept for
    /// them) while the audit reserve lasts.
    public var diskFull: Bool {
        get { injection.diskFull }
        set { injection.diskFull = newValue }
    }

    /// While set, this many more reservations of disk space succeed, and
    /// every later one fails (a disk that fills up as the test runs). A
    /// reservation is the store's, not a call's: it preallocates segment
    /// space ahead of need (a fresh segment has 1 MiB ready; a background
    /// thread grows it), and writes checkpoints; which call meets the full
    /// disk depends on when those happen. A test of "the next write fails"
    /// sets ``diskFull``.
    public var reservationsBeforeDiskFull: Int? {
        get { injection.allocationsBeforeDiskFull }
        set { injection.allocationsBeforeDiskFull = newValue }
    }

    /// While true, every `fdatasync` the store makes fails with `EIO` (its
    /// commit path's, and those of space it preallocates):
    /// the next durable call gets
    /// `PatientVault/PatientVaultError/Code/durabilityLost`, and so does
    /// every call after it, until the store is reopened.
    public var syncFails: Bool {
        get { injection.syncFails }
        set { injection.syncFails = newValue }
    }

    /// While true, every write of records fails with `EIO` (half of it
    /// reaching the file first): the store stops as for a failed sync.
    public var writeFails: Bool {
        get { injection.writeFault == .short }
        set { injection.writeFault = newValue ? .short : nil }
    }
}
