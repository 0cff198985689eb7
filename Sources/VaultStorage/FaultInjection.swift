import VaultSync

/// Simulated failures, for tests of the failure paths that real disks rarely
/// show on demand: a full disk when space must be reserved, a failing
/// `fdatasync` (of every file, or of one kind), a failing or short write of
/// the log. The engine's ``LogFiles`` when set: every file operation it
/// makes passes here (`LogFiles.swift`). Not part of any production
/// configuration.
package final class FaultInjection: Sendable {
    /// How the commit path's next writes of frames fail.
    package enum WriteFault: Sendable, Equatable {
        /// `EIO` before anything is written.
        case eio
        /// Half of the bytes reach the file, then `EIO` (a short write).
        case short
    }

    /// A place outside the commit path's frame write where a write or a
    /// sync can be made to fail.
    package enum Site: String, Sendable, CaseIterable {
        /// The commit path's write of key slots (and recovery's, of slots
        /// written back from the journal).
        case keySlotWrite
        /// The `fdatasync` of written key slots (before a checkpoint, at
        /// close, before a destruction, for slots written without records).
        case keyFileSync
        /// The write or sync of a new key-slot journal key, or the wipe of
        /// the old one (a slot's destruction).
        case journalKeyWrite
        /// The committer's write of Merkle tree hashes (`merkle.hashes`).
        case merkleWrite
        /// The `fdatasync` of `merkle.hashes` (before a checkpoint, at close).
        case merkleSync
        /// The write of a new checkpoint (temporary file).
        case checkpointWrite
        /// The `fdatasync` of a new checkpoint.
        case checkpointSync
        /// The write of a new segment's header (temporary file).
        case segmentCreationWrite
        /// The `fdatasync` of a new segment.
        case segmentCreationSync
        /// The write of a new key file's header.
        case keyFileCreation
        /// The `fdatasync` of preallocated zeros when an append or a key
        /// slot reservation needs the space (under the engine's lock).
        case preallocationSync
        /// The `fdatasync` of preallocated zeros written ahead of need by
        /// the committer thread (segment and key file growth).
        case growthSync
        /// The write or sync of a compaction's intent (before any frame).
        case compactionIntent
        /// A compaction's rewrite of a frame (half of its new header and
        /// body written, then `EIO`) or of the zeros after it.
        case compactionWrite
        /// A compaction's `fdatasync` of the segments it rewrote.
        case compactionSync
        /// Recovery's write-back of a frame header or padding it restored
        /// (one flipped byte, proven).
        case restorationWrite
    }

    private struct State {
        var failingSite: Site?
        var diskFull = false
        var allocationsBeforeDiskFull: Int?
        var allocationSites: [String] = []
        var syncFails = false
        var syncFailsOn: String?
        var writeFault: WriteFault?
    }

    private let state = Locked(State())

    /// Told of every change to the files (power-loss simulation).
    package let observer: (any FileObserver)?

    package init(observer: (any FileObserver)? = nil) {
        self.observer = observer
    }

    /// While set, only the `fdatasync`s of files whose name contains it fail
    /// with `EIO` (`"key file"`, `"segment"`).
    package var syncFailsOn: String? {
        get { state.withLock { $0.syncFailsOn } }
        set { state.withLock { $0.syncFailsOn = newValue } }
    }

    /// While set, every write of frames fails this way.
    package var writeFault: WriteFault? {
        get { state.withLock { $0.writeFault } }
        set { state.withLock { $0.writeFault = newValue } }
    }


    /// While set, every write at this site reaches the file half-written
    /// and then fails with `EIO`; every sync at it fails with `EIO`.
    package var failingSite: Site? {
        get { state.withLock { $0.failingSite } }
        set { state.withLock { $0.failingSite = newValue } }
    }



    /// While true, every group that needs space beyond the audit reserve
    /// fails with `ENOSPC`, whatever its size, and so does reserving space
    /// (new segment, key file growth): the groups allowed the reserve
    /// (audit entries of reads, activity copies) go on while it lasts.
    package var diskFull: Bool {
        get { state.withLock { $0.diskFull } }
        set { state.withLock { $0.diskFull = newValue } }
    }

    /// While true, every `fdatasync` of the engine fails with `EIO`: the
    /// commit path's, preallocation's and growth's.
    package var syncFails: Bool {
        get { state.withLock { $0.syncFails } }
        set { state.withLock { $0.syncFails = newValue } }
    }

    /// While set, this many more reservations of space succeed; every one
    /// after them fails with `ENOSPC` (until changed).
    package var allocationsBeforeDiskFull: Int? {
        get { state.withLock { $0.allocationsBeforeDiskFull } }
        set { state.withLock { $0.allocationsBeforeDiskFull = newValue } }
    }

    /// The files space was reserved for, in order (`"segment 2"`, `"key
    /// file"`, `"checkpoint"`), failed reservations included.
    package var allocationSites: [String] { state.withLock { $0.allocationSites } }

    func checkAllocation(_ name: String) throws {
        let full = state.withLock { s -> Bool in
            s.allocationSites.append(name)
            if s.diskFull { return true }
            guard let left = s.allocationsBeforeDiskFull else { return false }
            if left <= 0 { return true }
            s.allocationsBeforeDiskFull = left - 1
            return false
        }
        if full { throw PosixFile.error("preallocation", name: name, code: 28 /* ENOSPC */) }
    }

    func checkSync(_ name: String) throws {
        let (all, on) = state.withLock { ($0.syncFails, $0.syncFailsOn) }
        if all || on.map({ name.contains($0) }) == true {
            throw PosixFile.syncError("fdatasync", name: name, code: 5 /* EIO */)
        }
    }
}

/// Told of every change to the store's files that succeeded, in order: the
/// seam of tests that simulate a power loss (keeping only what was synced,
/// or a subset of what was not). Paths are as the engine opened them; a
/// `synced` path that is the directory's makes its entries durable.
package protocol FileObserver: AnyObject, Sendable {
    /// A file opened with `O_CREAT` or `O_TRUNC`: `created` if it did not exist.
    func opened(_ path: String, created: Bool, truncated: Bool)
    /// `bytes` written at `offset`.
    func wrote(_ path: String, at offset: UInt64, _ bytes: UnsafeRawBufferPointer)
    /// The file's length set with `ftruncate` (cut, or extended with zeros).
    func truncated(_ path: String, to length: UInt64)
    /// `fdatasync` or `fsync` of a file or of the directory returned.
    func synced(_ path: String)
    /// `rename(from, to)` returned.
    func renamed(_ from: String, _ to: String)
    /// `unlink(path)` returned (or the file did not exist).
    func removed(_ path: String)
}
