#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import VaultSync

// MARK: - Segments: placement, preallocation, roll-over, and the failure latch

extension LogEngineCore {
    /// Makes room for a group of `length` bytes at the tail: in the current
    /// segment when it fits (growing the file's preallocation), else in a
    /// new segment. A group that may not use the reserve leaves
    /// `configuration.reserve` preallocated bytes after it, in the same
    /// segment. Called under the state lock; on failure (a full disk) the
    /// append fails and nothing changes but preallocation.
    func place(_ length: UInt64, mayUseReserve: Bool, in s: inout State) throws {
        // A simulated full disk refuses every group that needs space beyond
        // the audit reserve, whatever its size, as a real full disk does
        // once the preallocated space ahead is used up.
        if !mayUseReserve, configuration.files.refusesGroupsBeyondReserve {
            throw PosixFile.error("preallocation", name: "segment \(s.current)", code: 28 /* ENOSPC */)
        }
        let room = length + (mayUseReserve ? 0 : configuration.reserve)
        guard let current = s.segments[s.current] else { throw StorageError(.io, "no current segment") }
        if s.tail + room > current.size {
            guard s.current < LogFormat.maximumSegmentNumber else {
                throw StorageError(.tooLarge, "the log has reached its last segment number")
            }
            try rollOver(&s, room: room)
        } else {
            try preallocate(&s, through: s.tail + room)
        }
    }

    /// Grows the current segment's preallocation to cover `end`: doubling,
    /// or, when the disk has not that much, just to `end`.
    func preallocate(_ s: inout State, through end: UInt64) throws {
        guard var segment = s.segments[s.current], end > segment.allocated else { return }
        let needed = LogEngineCore.roundUp(end, within: segment.size)
        let doubled = min(segment.size, max(needed, LogEngineCore.nextStep(after: segment.allocated)))
        do {
            try allocate(segment.file, to: doubled)
            segment.allocated = doubled
        } catch let error as StorageError where error.code == .diskFull && doubled > needed {
            try allocate(segment.file, to: needed)
            segment.allocated = needed
        }
        s.segments[s.current] = segment
    }

    /// Preallocation: zeros written, then synced (through ``LogFiles``).
    /// A failed sync latches the engine (``latch(_:)``): data written
    /// before it, on the same file, may never reach the disk.
    func allocate(_ file: PosixFile, to length: UInt64, site: FaultInjection.Site = .preallocationSync) throws {
        try latching {
            try configuration.files.extend(file, upTo: length)
            try configuration.files.sync(file, site: site)
        }
    }

    /// Preallocation of the key file: as ``allocate(_:to:site:)``, its
    /// sync taken in turn with the key file's others
    /// (``KeySlotFile/syncAlways(site:)``).
    func allocateKeyFile(to length: UInt64, site: FaultInjection.Site = .preallocationSync) throws {
        try latching {
            try configuration.files.extend(keySlots.file, upTo: length)
            try keySlots.syncAlways(site: site)
        }
    }

    /// Runs `body`, which writes or syncs a file of the store. A full disk
    /// (`diskFull`: nothing the store acknowledged is at stake) is thrown
    /// as it is; any other failure (`EIO` on a write, any failed sync)
    /// latches the engine and is thrown as `durabilityLost`.
    /// `evenDiskFull`: a full disk latches too (a batch of writes that must
    /// all happen once any of them has, as a compaction's rewrites once
    /// its intent is durable: the next open finishes them).
    func latching<T>(evenDiskFull: Bool = false, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StorageError where evenDiskFull || error.code != .diskFull {
            latch(error)
            throw StorageError(.durabilityLost, error.message, segment: error.segment, offset: error.offset, errno: error.errno)
        }
    }

    /// Records the first failure of a write or sync: from now on nothing is
    /// acknowledged (`durabilityLost`) until the store is reopened.
    func latch(_ error: StorageError) {
        let first = failure.withLock { f -> Bool in
            guard f == nil else { return false }
            f = error
            return true
        }
        if first {
            logger.error("storage: write or sync failed; the store no longer acknowledges writes", metadata: ["code": "\(error.code)"])
        }
    }

    /// Throws `durabilityLost` once a write or sync has failed.
    func ensureNoFailure() throws(StorageError) {
        if let f = failure.withLock({ $0 }) {
            throw StorageError(.durabilityLost, "an earlier write or sync failed: \(f.message)", errno: f.errno)
        }
    }

    /// The next size of a segment's preallocation: double, in steps of at
    /// most 4 MiB (each step is written with zeros and synced).
    static func nextStep(after allocated: UInt64) -> UInt64 {
        allocated + min(max(allocated, 4096), 4 << 20)
    }

    /// `value` rounded up to a 4 KiB multiple, at most `limit`.
    static func roundUp(_ value: UInt64, within limit: UInt64) -> UInt64 {
        min(limit, (value + 0xFFF) & ~0xFFF)
    }

    /// Creates the next segment (preallocated for at least `room` bytes,
    /// header written and durable, directory synced) and makes it current.
    /// Called under the state lock; on failure nothing changes and the
    /// append fails with the error (disk full, typically).
    func rollOver(_ s: inout State, room: UInt64) throws {
        let number = s.current + 1
        let header = UInt64(LogFormat.segmentHeaderSize)
        let allocation = LogEngineCore.roundUp(
            max(configuration.initialSegmentAllocation, header + room), within: configuration.segmentSize)
        // The spare the committer made ahead, if any: then switching costs
        // no I/O here (unless this group needs more than it preallocated).
        let segment = try spare.withLock { spare -> Segment in
            if var ready = spare, ready.number == number {
                // Grown first if this group needs more than it holds; on
                // failure the spare stays for later and nothing changes.
                if ready.allocated < allocation {
                    try allocate(ready.file, to: allocation)
                    ready.allocated = allocation
                }
                spare = nil
                return ready
            }
            return try latching {
                try LogEngineCore.createSegment(
                    directory: directory, number: number, firstLSN: s.nextLSN, size: configuration.segmentSize,
                    allocation: allocation, files: configuration.files)
            }
        }
        s.segments[number] = segment
        s.current = number
        s.tail = header
        logger.debug("storage: started segment", metadata: ["segment": "\(number)"])
    }

    /// Creates a segment whole: preallocated and with its header, under a
    /// temporary name, synced, then renamed into place and the directory
    /// synced. A segment file that exists is therefore complete: recovery
    /// treats a bad header or a missing file as damage, never as a crash.
    static func createSegment(
        directory: String, number: UInt32, firstLSN: UInt64, size: UInt64, allocation: UInt64, files: any LogFiles
    ) throws -> Segment {
        let path = directory + "/" + LogFormat.segmentFileName(number)
        let temporary = path + ".tmp"
        let observer = files.observer
        let file = try PosixFile.open(temporary, flags: O_RDWR | O_CREAT | O_TRUNC, name: "segment \(number)", observer: observer)
        do {
            let allocated = roundUp(min(size, allocation), within: size)
            try files.extend(file, upTo: allocated)
            var salt = [UInt8](repeating: 0, count: LogFormat.saltSize)
            fillRandom(&salt)
            try files.write(
                LogFormat.encodeSegmentHeader(number: number, salt: salt, firstLSN: firstLSN, size: size), at: 0, of: file,
                site: .segmentCreationWrite)
            try files.sync(file, site: .segmentCreationSync)
            guard !FileSystem.exists(path) else {
                throw StorageError(.corrupted, "segment \(number) already exists", segment: number)
            }
            try FileSystem.rename(temporary, path, observer: observer)
            try FileSystem.syncDirectory(directory, observer: observer)
            return Segment(number: number, file: file, salt: salt, size: size, allocated: allocated)
        } catch {
            try? FileSystem.remove(temporary, observer: observer)
            throw error
        }
    }
}
