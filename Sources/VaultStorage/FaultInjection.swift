import VaultSync

/// Simulated failures, for tests of the failure paths that real disks rarely
/// show on demand: a full disk when space must be reserved, a failing
/// `fdatasync`. Not part of any production configuration.
package final class FaultInjection: Sendable {
    private let state = Locked<(diskFull: Bool, syncFails: Bool)>((false, false))

    package init() {}

    /// While true, reserving space (new segment, key file growth) fails with
    /// `ENOSPC`.
    package var diskFull: Bool {
        get { state.withLock { $0.diskFull } }
        set { state.withLock { $0.diskFull = newValue } }
    }

    /// While true, every `fdatasync` of the commit path fails with `EIO`.
    package var syncFails: Bool {
        get { state.withLock { $0.syncFails } }
        set { state.withLock { $0.syncFails = newValue } }
    }

    func checkAllocation(_ name: String) throws {
        if diskFull { throw PosixFile.error("fallocate", name: name, code: 28 /* ENOSPC */) }
    }

    func checkSync(_ name: String) throws {
        if syncFails { throw PosixFile.error("fdatasync", name: name, code: 5 /* EIO */) }
    }
}
