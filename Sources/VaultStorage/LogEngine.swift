#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Foundation
import Logging
import VaultSync

/// Settings of a ``LogEngine``.
package struct LogEngineConfiguration: Sendable {
    /// The largest size of a segment file (the bound of its offsets).
    package var segmentSize: UInt64 = 64 << 20
    /// What a new segment file is preallocated with; the file grows by
    /// doubling, in steps of at most 4 MiB (preallocated each time: zeros
    /// written and synced), up to ``segmentSize``, so a small
    /// store holds little disk and opens in proportion to its data.
    package var initialSegmentAllocation: UInt64 = 1 << 20
    /// Bytes that only groups appended with `mayUseReserve` (audit entries
    /// of reads, listings and refusals; activity copies) may use: every
    /// other group leaves at least this much preallocated space ahead of
    /// it, so that on a full disk reads still write their entries.
    package var reserve: UInt64 = 512 << 10
    /// Largest payload of one record.
    package var maximumRecordSize: Int = 8 << 20
    /// Bytes appended between two automatic checkpoints of the index.
    package var checkpointInterval: UInt64 = 256 << 20
    /// The largest step by which the key file grows (preallocated); it
    /// starts at 64 KiB and doubles up to steps of this size.
    package var keyFileGrowth: UInt64 = 1 << 20
    /// Whether a log without `index.checkpoint` (or with one that fails its
    /// checksum) is replayed whole. Off by default: a store writes its
    /// first checkpoint when it is created, so a missing one is damage
    /// (it would hide a cut or deleted newest segment). On only in the
    /// engine's own tests of replay.
    package var replaysWithoutCheckpoint = false
    /// Simulated failures, for tests only.
    package var faults: FaultInjection?
    /// The MAC of frame headers and checkpoints (see ``LogAuthenticator``).
    /// nil only in the engine's own tests: then nothing is authenticated.
    package var authenticator: (any LogAuthenticator)?
    /// Where the engine logs (debug and trace only; never record content).
    package var logger: Logger = Logger(label: "patientvault.storage", factory: { _ in SwiftLogNoOpLogHandler() })

    package init() {}
}

/// The file-backed ``StorageEngine``: an append-only log of preallocated
/// segment files with group commit, a key-slot file, and a checkpointed
/// in-memory index from stream to its last record.
///
/// One process at a time: opening takes an exclusive `flock` on `LOCK`.
package final class LogEngine: StorageEngine {
    let core: LogEngineCore

    /// Opens (creating if needed) the engine in `directory`, recovering from
    /// a crash: a torn tail of the log is cut off; corruption is reported.
    /// - Throws: ``StorageError/Code/locked`` if the store is open elsewhere,
    ///   ``StorageError/Code/corrupted`` naming segment and offset.
    package static func open(directory: String, configuration: LogEngineConfiguration = .init()) throws -> LogEngine {
        precondition(
            UInt64(configuration.maximumRecordSize) * 4 <= configuration.segmentSize,
            "segments must hold at least four maximal records")
        precondition(configuration.reserve <= configuration.segmentSize / 4, "the reserve is at most a quarter of a segment")
        let core = try LogEngineCore(directory: directory, configuration: configuration)
        core.startCommitter()
        return LogEngine(core: core)
    }

    private init(core: LogEngineCore) { self.core = core }

    deinit { core.shutdownWithoutWaiting() }

    package func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool
    ) throws -> AppendTicket {
        try core.append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve)
    }

    package func read(_ reference: RecordReference) async throws -> StoredRecord {
        let frame = try core.read(reference.location)
        // The sequence number is what the reference names; the location
        // only where to look.
        guard frame.sequence == reference.sequence else {
            throw StorageError(
                .corrupted, "the record found is not the one referenced", segment: reference.location.segment,
                offset: reference.location.offset)
        }
        return StoredRecord(frame)
    }

    package func contains(_ stream: StreamID) -> Bool { head(of: stream) != nil }

    package func visitNewestFirst(_ stream: StreamID, _ visit: (StoredRecord) throws -> Bool) async throws {
        var next = head(of: stream)
        while let location = next {
            let frame = try core.read(location)
            // Every record belongs to the stream and points strictly back
            // in the log: a forged cycle cannot make this loop run for ever.
            guard frame.stream == stream, frame.previous.map({ $0.raw < location.raw }) ?? true else {
                throw StorageError(.corrupted, "a stream's chain is broken", segment: location.segment, offset: location.offset)
            }
            guard try visit(StoredRecord(frame)) else { return }
            next = frame.previous
        }
    }

    package var streamCount: Int { core.state.withLock { $0.index.count } }

    package func forEachStream(_ body: (StreamID) -> Void) {
        core.state.withLock { s in for (stream, _) in s.index { body(stream) } }
    }

    package var endCursor: LogCursor {
        core.state.withLock { LogCursor(LogPosition(segment: $0.current, offset: $0.tail)) }
    }

    package func scan(from cursor: LogCursor?, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) async throws {
        let start = try cursor.map { try $0.position } ?? LogPosition(segment: 0, offset: 0)
        try core.scan(from: start, only: wanted) { try visit(StoredRecord($0)) }
    }

    // Below the protocol: the log's own places, for its tests and tools.

    /// The frame at `location`, verified.
    package func frame(at location: RecordLocation) throws -> LogFrame { try core.read(location) }
    /// The location of the last written record of `stream`. O(1).
    package func head(of stream: StreamID) -> RecordLocation? { core.state.withLock { $0.index[stream] } }
    /// Where the next record will go.
    package var appendPosition: LogPosition {
        core.state.withLock { LogPosition(segment: $0.current, offset: $0.tail) }
    }
    /// ``StorageEngine/scan(from:only:_:)`` from a place in the log, frames and all.
    package func scanFrames(from position: LogPosition, only wanted: (StreamID?) -> Bool, _ visit: (LogFrame) throws -> Bool) throws {
        try core.scan(from: position, only: wanted, visit)
    }

    package func reserveKeySlot() throws -> KeySlot { try core.reserveKeySlot() }
    package func readKeySlot(_ slot: KeySlot) async throws -> [UInt8] { try core.readKeySlot(slot) }

    package func destroyKeySlot(_ slot: KeySlot) async throws {
        let tombstone = LogFormat.encodeKeySlot(slot, value: [], magic: LogFormat.keySlotTombstone, salt: core.keySalt)
        let ticket = try core.enqueue(records: [], rawSlotWrites: [(slot, tombstone)], durability: .durable)
        _ = try await ticket.wait()
    }

    package func close() async throws {
        try await core.close()
    }

    /// What recovery did at open, for tests and diagnostics.
    package var recoveryReport: RecoveryReport { core.recoveryReport }

    /// The log sequence number the next record will get.
    package var nextSequence: UInt64 { core.state.withLock { $0.nextLSN } }
}

/// What recovery found and did when the engine opened.
package struct RecoveryReport: Sendable, Equatable {
    /// Whether a valid checkpoint was used.
    package var usedCheckpoint = false
    /// Records replayed from the log after the checkpoint (or all).
    package var replayedRecords = 0
    /// Where a torn tail was cut, if one was.
    package var truncatedAt: (segment: UInt32, offset: UInt64)?
    /// Empty or unfinished trailing segment files removed.
    package var removedSegments: [UInt32] = []

    package static func == (a: RecoveryReport, b: RecoveryReport) -> Bool {
        a.usedCheckpoint == b.usedCheckpoint && a.replayedRecords == b.replayedRecords
            && a.truncatedAt?.segment == b.truncatedAt?.segment && a.truncatedAt?.offset == b.truncatedAt?.offset
            && a.removedSegments == b.removedSegments
    }
}

// MARK: - Core

/// The shared state of a ``LogEngine`` and its committer thread.
final class LogEngineCore: Sendable {
    /// Payloads up to this size are copied into their group's one write
    /// buffer; larger ones are written from where they are.
    static let inlinePayloadLimit = 64 << 10
    /// Write buffers kept for reuse once written: at most this many, each
    /// at most `pooledBufferCapacity` bytes (a larger one is freed).
    static let pooledBuffers = 64
    static let pooledBufferCapacity = 256 << 10

    struct Segment: Sendable {
        var number: UInt32
        var file: PosixFile
        var salt: [UInt8]
        /// The largest size, from the segment's header: the bound of every
        /// offset in it.
        var size: UInt64
        /// Bytes preallocated so far (the file's length); grows up to `size`.
        var allocated: UInt64
    }

    /// One queued append: key slots to write first, then frames.
    struct Job: Sendable {
        var slotWrites: [(KeySlot, [UInt8])]
        var segment: UInt32
        var offset: UInt64
        var buffers: [[UInt8]]
        var references: [RecordReference]
        var lastLSN: UInt64?
        /// The stream heads this job moves, applied to the index once written.
        var heads: [(StreamID, RecordLocation)]
        var durability: Durability
        var ticket: AppendTicket
    }

    struct State: Sendable {
        var segments: [UInt32: Segment] = [:]
        var current: UInt32 = 0
        var tail: UInt64 = 0
        var nextLSN: UInt64 = 1
        /// All LSNs below this are durable.
        var durableLSN: UInt64 = 1
        /// Last *written* record of each stream (what `head(of:)` returns).
        var index = StreamIndex()
        /// Last *queued* record of streams with records not yet written.
        var queuedHeads: [StreamID: RecordLocation] = [:]
        var queue: [Job] = []
        /// Whether the committer has been signalled for the jobs queued
        /// since it last took the queue.
        var committerSignalled = false
        var closing = false
        var closed = false
        var nextKeySlot: UInt64 = 1
        var keyFileAllocated: UInt64 = 0
        var bytesSinceCheckpoint: UInt64 = 0
    }

    let directory: String
    let configuration: LogEngineConfiguration
    let state = Locked(State())
    /// The first failed write or sync of any file, on any path (commit,
    /// preallocation, growth, new segments, checkpoints): once set, the
    /// engine acknowledges nothing until it is reopened. Its own lock, a
    /// leaf taken under `state` or alone, so that paths holding `state`
    /// latch too.
    let failure = Locked<StorageError?>(nil)
    let lockFile: PosixFile
    let keyFile: PosixFile
    let keySalt: [UInt8]
    let wakeup = DispatchSemaphore(value: 0)
    let stopped = AppendTicket()
    /// The next segment, created ahead of need by the committer thread
    /// (``growAhead()``), waiting for the current one to fill. Lock order:
    /// `state`, then `spare`; the committer takes `spare` alone while it
    /// creates, so the creation's I/O holds no lock an append needs unless
    /// that append must switch segments at that very moment.
    let spare = Locked<Segment?>(nil)
    /// Groups' write buffers, returned by the committer once written and
    /// taken again by `enqueue`: the hot path reuses them instead of
    /// allocating one per group.
    let bufferPool = Locked<[[UInt8]]>([])
    let recoveryReport: RecoveryReport
    let keyFileSyncer: KeyFileSyncer

    var logger: Logger { configuration.logger }

    init(directory: String, configuration: LogEngineConfiguration) throws {
        self.directory = directory
        self.configuration = configuration
        try FileSystem.createDirectory(directory)
        lockFile = try PosixFile.open(directory + "/LOCK", flags: O_RDWR | O_CREAT, name: "LOCK")
        guard try lockFile.tryLockExclusive() else {
            throw StorageError(.locked, "the store is already open (LOCK is held)")
        }
        let logExists = try FileSystem.list(directory).contains { LogFormat.segmentNumber(fromFileName: $0) != nil }
        (keyFile, keySalt) = try LogEngineCore.openKeyFile(directory: directory, logExists: logExists, faults: configuration.faults)
        keyFileSyncer = KeyFileSyncer(file: keyFile, faults: configuration.faults)
        var s = State()
        recoveryReport = try LogEngineCore.recover(
            directory: directory, configuration: configuration, keyFile: (keyFile, keySalt), into: &s)
        let (next, allocated) = try LogEngineCore.scanKeyFile(keyFile)
        s.nextKeySlot = next
        s.keyFileAllocated = allocated
        s.durableLSN = s.nextLSN
        // A new store (or one whose creation was cut before it) writes its
        // first checkpoint before it takes a record: from then on a missing
        // checkpoint is damage. That one is mandatory: the open fails
        // without it. An open that replayed records leaves a checkpoint
        // too, so the next one does not replay them again (recovery synced
        // what it replayed); that one is best effort on a full disk (the
        // next open replays again). A failed sync is never best effort.
        let first = !recoveryReport.usedCheckpoint && !configuration.replaysWithoutCheckpoint
        if first || recoveryReport.replayedRecords > 0 || recoveryReport.truncatedAt != nil {
            do {
                try LogEngineCore.writeCheckpoint(
                    Checkpoint(segment: s.current, tail: s.tail, nextLSN: s.nextLSN, last: s.index.newest, index: s.index),
                    directory: directory, authenticator: configuration.authenticator, faults: configuration.faults)
                s.bytesSinceCheckpoint = 0
            } catch let error as StorageError where error.code == .diskFull && !first {
                configuration.logger.debug("storage: no checkpoint after recovery (disk full)")
            }
        }
        state.withLock { $0 = s }
    }

    func startCommitter() {
        keyFileSyncer.start()
        let thread = Thread { [self] in self.commitLoop() }
        thread.name = "patientvault.commit"
        thread.start()
    }

    // MARK: Append

    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool
    ) throws -> AppendTicket {
        var slots: [(KeySlot, [UInt8])] = []
        slots.reserveCapacity(keySlotWrites.count)
        for (slot, value) in keySlotWrites {
            guard value.count <= LogFormat.keySlotCapacity else {
                throw StorageError(.tooLarge, "a key slot holds at most \(LogFormat.keySlotCapacity) bytes")
            }
            slots.append((slot, LogFormat.encodeKeySlot(slot, value: value, magic: LogFormat.keySlotLive, salt: keySalt)))
        }
        return try enqueue(records: records, rawSlotWrites: slots, durability: durability, mayUseReserve: mayUseReserve)
    }

    func enqueue(
        records: [EngineRecord], rawSlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool = false
    ) throws -> AppendTicket {
        // A group that writes key slots starts with their manifest: slots and
        // frames are synced in parallel, and recovery cuts a group whose
        // slots did not all become durable (it was never acknowledged).
        var records = records
        let manifests = !records.isEmpty && !rawSlotWrites.isEmpty ? 1 : 0
        if manifests == 1 {
            let manifest = LogFormat.encodeSlotManifest(rawSlotWrites.map { ($0.0.number, CRC32C.checksum($0.1)) })
            records.insert(EngineRecord(stream: nil, payload: manifest), at: 0)
        }
        // Work that needs no lock: sizes and payload checksums.
        var groupSize: UInt64 = 0
        var crcs: [UInt32] = []
        crcs.reserveCapacity(records.count)
        for r in records {
            guard r.payload.count <= configuration.maximumRecordSize else {
                throw StorageError(.tooLarge, "record of \(r.payload.count) bytes exceeds the maximum")
            }
            groupSize += UInt64(LogFormat.frameLength(payloadCount: r.payload.count))
            crcs.append(LogFormat.payloadCRC(r.payload))
        }
        let room = groupSize + (mayUseReserve ? 0 : configuration.reserve)
        guard room <= configuration.segmentSize - UInt64(LogFormat.segmentHeaderSize) else {
            throw StorageError(.tooLarge, "an atomic group must fit in one segment")
        }
        let ticket = AppendTicket()
        var wakes = false
        try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            for (slot, _) in rawSlotWrites where slot.number < 1 || slot.number >= s.nextKeySlot {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            try ensureNoFailure()
            if !records.isEmpty { try place(groupSize, mayUseReserve: mayUseReserve, in: &s) }
            guard let segment = s.segments[s.current] else {
                throw StorageError(.io, "no current segment")
            }
            var job = Job(
                slotWrites: rawSlotWrites, segment: s.current, offset: s.tail, buffers: [], references: [],
                lastLSN: nil, heads: [], durability: durability, ticket: ticket)
            job.references.reserveCapacity(records.count)
            job.heads.reserveCapacity(records.count)
            // Small frames (headers, payloads, padding) are laid out in one
            // buffer per group: one allocation, one iovec. A large payload
            // (a content chunk) stays where it is, between two buffers.
            var pending = bufferPool.withLock { $0.popLast() } ?? []
            pending.reserveCapacity(Int(min(groupSize, UInt64(LogEngineCore.inlinePayloadLimit) * 2)))
            var offset = s.tail
            for (i, r) in records.enumerated() {
                let frameLength = LogFormat.frameLength(payloadCount: r.payload.count)
                let location = RecordLocation(segment: s.current, offset: offset, frameLength: UInt32(frameLength))
                var flags: UInt8 = i < records.count - 1 ? LogFormat.flagGroupContinues : 0
                if i < manifests { flags |= LogFormat.flagKeySlotManifest }
                var previous: RecordLocation?
                if let stream = r.stream {
                    flags |= LogFormat.flagHasStream
                    previous = s.queuedHeads[stream] ?? s.index[stream]
                    s.queuedHeads[stream] = location
                    job.heads.append((stream, location))
                }
                let lsn = s.nextLSN
                s.nextLSN += 1
                let start = pending.count
                pending.append(contentsOf: repeatElement(0, count: LogFormat.frameHeaderSize))
                pending.withUnsafeMutableBytes { raw in
                    LogFormat.writeFrameHeader(
                        into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]), salt: segment.salt, offset: offset,
                        payloadLength: r.payload.count, payloadCRC: crcs[i], lsn: lsn, durableThrough: s.durableLSN,
                        flags: flags, previous: previous, stream: r.stream, authenticator: configuration.authenticator)
                }
                if r.payload.count <= LogEngineCore.inlinePayloadLimit {
                    pending.append(contentsOf: r.payload)
                } else {
                    job.buffers.append(pending)
                    job.buffers.append(r.payload)
                    pending = []
                }
                pending.append(contentsOf: repeatElement(0, count: frameLength - LogFormat.frameHeaderSize - r.payload.count))
                if i >= manifests { job.references.append(RecordReference(sequence: lsn, location: location)) }
                job.lastLSN = lsn
                offset += UInt64(frameLength)
            }
            if !pending.isEmpty { job.buffers.append(pending) }
            s.tail = offset
            s.bytesSinceCheckpoint += groupSize
            s.queue.append(job)
            // One wake-up per batch the committer takes, not one per job:
            // the jobs queued before it takes them ride on the first signal.
            wakes = !s.committerSignalled
            s.committerSignalled = true
        }
        if wakes { wakeup.signal() }
        return ticket
    }

    /// Makes room for a group of `length` bytes at the tail: in the current
    /// segment when it fits (growing the file's preallocation), else in a
    /// new segment. A group that may not use the reserve leaves
    /// `configuration.reserve` preallocated bytes after it, in the same
    /// segment. Called under the state lock; on failure (a full disk) the
    /// append fails and nothing changes but preallocation.
    private func place(_ length: UInt64, mayUseReserve: Bool, in s: inout State) throws {
        // A simulated full disk refuses every group that needs space beyond
        // the audit reserve, whatever its size, as a real full disk does
        // once the preallocated space ahead is used up.
        if !mayUseReserve, configuration.faults?.diskFull == true {
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
    private func preallocate(_ s: inout State, through end: UInt64) throws {
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

    /// Preallocation: zeros written, then synced, through the fault
    /// injection of tests. A failed sync latches the engine (``latch(_:)``):
    /// data written before it, on the same file, may never reach the disk.
    func allocate(_ file: PosixFile, to length: UInt64, site: FaultInjection.Site = .preallocationSync) throws {
        try latching {
            try configuration.faults?.checkAllocation(file.name)
            try file.fillWithZeros(upTo: length)
            try configuration.faults?.check(site, name: file.name)
            try configuration.faults?.checkSync(file.name)
            try file.syncData()
        }
    }

    /// Runs `body`, which writes or syncs a file of the store. A full disk
    /// (`diskFull`: nothing the store acknowledged is at stake) is thrown
    /// as it is; any other failure (`EIO` on a write, any failed sync)
    /// latches the engine and is thrown as `durabilityLost`.
    func latching<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StorageError where error.code != .diskFull {
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
            logger.debug("storage: write or sync failed; the store no longer acknowledges writes", metadata: ["code": "\(error.code)"])
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
    private func rollOver(_ s: inout State, room: UInt64) throws {
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
                    allocation: allocation, faults: configuration.faults)
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
        directory: String, number: UInt32, firstLSN: UInt64, size: UInt64, allocation: UInt64, faults: FaultInjection?
    ) throws -> Segment {
        let path = directory + "/" + LogFormat.segmentFileName(number)
        let temporary = path + ".tmp"
        let observer = faults?.observer
        let file = try PosixFile.open(temporary, flags: O_RDWR | O_CREAT | O_TRUNC, name: "segment \(number)", observer: observer)
        do {
            let allocated = min(size, allocation)
            try faults?.checkAllocation(file.name)
            try file.fillWithZeros(upTo: allocated)
            var salt = [UInt8](repeating: 0, count: LogFormat.saltSize)
            fillRandom(&salt)
            try write(
                LogFormat.encodeSegmentHeader(number: number, salt: salt, firstLSN: firstLSN, size: size), at: 0, of: file,
                site: .segmentCreationWrite, faults: faults)
            try faults?.check(.segmentCreationSync, name: file.name)
            try file.syncData()
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

    // MARK: Read

    /// Reads the written log from `start`, frame by frame, in order. The
    /// end is the first all-zero header, the end of a segment, or, in the
    /// segment being written, the position of the first queued record.
    func scan(from start: LogPosition, only wanted: (StreamID?) -> Bool, _ visit: (LogFrame) throws -> Bool) throws {
        let (segments, current, tail, written) = try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            // Queued jobs are not written yet: stop at the first one.
            let firstQueued = s.queue.first.map { LogPosition(segment: $0.segment, offset: $0.offset) }
            return (s.segments, s.current, s.tail, firstQueued)
        }
        let end = written ?? LogPosition(segment: current, offset: tail)
        var position = LogPosition(segment: max(start.segment, segments.keys.min() ?? start.segment), offset: start.offset)
        if position.segment != start.segment || position.offset < UInt64(LogFormat.segmentHeaderSize) {
            position.offset = UInt64(LogFormat.segmentHeaderSize)
        }
        while position < end {
            guard let segment = segments[position.segment] else {
                throw StorageError(.corrupted, "segment is missing", segment: position.segment, offset: position.offset)
            }
            let segmentEnd = position.segment == end.segment ? end.offset : segment.size
            guard position.offset >= UInt64(LogFormat.segmentHeaderSize),
                  position.offset + UInt64(LogFormat.frameHeaderSize) <= segmentEnd
            else {
                position = LogPosition(segment: position.segment + 1, offset: UInt64(LogFormat.segmentHeaderSize))
                continue
            }
            let header = try segment.file.read(count: LogFormat.frameHeaderSize, at: position.offset)
            // Zeros, or the end of a file preallocated short of its size.
            if header.count < LogFormat.frameHeaderSize || header.allSatisfy({ $0 == 0 }) {
                position = LogPosition(segment: position.segment + 1, offset: UInt64(LogFormat.segmentHeaderSize))
                continue
            }
            let damaged = StorageError(.corrupted, "record failed its checksum", segment: position.segment, offset: position.offset)
            guard let h = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }),
                  header.withUnsafeBytes({
                      LogFormat.frameIsAuthentic($0, salt: segment.salt, offset: position.offset, authenticator: configuration.authenticator)
                  })
            else { throw damaged }
            // Bounded by the segment before any conversion: a length no
            // frame of this segment can have is damage, not a trap.
            let length = UInt64(LogFormat.frameLength(payloadCount: Int(h.payloadLength)))
            guard length <= segmentEnd - position.offset else { throw damaged }
            if !h.isSlotManifest, wanted(h.stream) {
                let location = RecordLocation(segment: position.segment, offset: position.offset, frameLength: UInt32(length))
                let record = try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator)
                guard try visit(record) else { return }
            }
            position.offset += length
        }
    }

    // MARK: Key slots

    func reserveKeySlot() throws -> KeySlot {
        try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            try ensureNoFailure()
            let end = (s.nextKeySlot + 1) * UInt64(LogFormat.keySlotSize)
            if end > s.keyFileAllocated {
                // From 64 KiB, doubling, in steps of at most keyFileGrowth.
                let step = min(configuration.keyFileGrowth, max(64 << 10, s.keyFileAllocated))
                let target = max(end, s.keyFileAllocated + step)
                try allocate(keyFile, to: target)
                s.keyFileAllocated = target
            }
            defer { s.nextKeySlot += 1 }
            return KeySlot(s.nextKeySlot)
        }
    }

    func readKeySlot(_ slot: KeySlot) throws -> [UInt8] {
        let reserved = try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            return s.nextKeySlot
        }
        guard slot.number >= 1, slot.number < reserved else {
            throw StorageError(.invalidLocation, "key slot \(slot.number) does not exist")
        }
        let offset = slot.number * UInt64(LogFormat.keySlotSize)
        let bytes = try keyFile.read(count: LogFormat.keySlotSize, at: offset)
        return try LogFormat.decodeKeySlot(bytes, number: slot.number, salt: keySalt)
    }

    /// Opens the key file, creating it for a new store. The key file is
    /// created (and synced) before the first segment: once the log exists,
    /// a missing or empty key file is damage (every vault would fail to
    /// read), never a crash, and is reported instead of recreated.
    static func openKeyFile(directory: String, logExists: Bool, faults: FaultInjection?) throws -> (PosixFile, [UInt8]) {
        let observer = faults?.observer
        let path = directory + "/" + LogFormat.keyFileName
        if logExists && !FileSystem.exists(path) {
            throw StorageError(.corrupted, "keys.slots is missing while the log holds records")
        }
        let file = try PosixFile.open(path, flags: O_RDWR | O_CREAT, name: "key file", observer: observer)
        let header = try file.read(count: LogFormat.keySlotSize, at: 0)
        let unfinished = header.count < LogFormat.keySlotSize || header.allSatisfy({ $0 == 0 })
            || (!logExists && (try? LogFormat.decodeKeyFileHeader(header)) == nil)
        if unfinished {
            guard !logExists else { throw StorageError(.corrupted, "keys.slots is empty while the log holds records") }
            // New, or its creation never completed (a torn header before any
            // segment existed): nothing can reference it.
            var salt = [UInt8](repeating: 0, count: LogFormat.saltSize)
            fillRandom(&salt)
            try write(LogFormat.encodeKeyFileHeader(salt: salt), at: 0, of: file, site: .keyFileCreation, faults: faults)
            try file.syncData()
            try FileSystem.syncDirectory(directory, observer: observer)
            return (file, salt)
        }
        guard let salt = try LogFormat.decodeKeyFileHeader(header) else {
            throw StorageError(.corrupted, "the key file header failed its checksum")
        }
        return (file, salt)
    }

    /// Finds the first never-used slot by scanning back from the end over the
    /// preallocated zeros. Returns it and the file's allocated size.
    static func scanKeyFile(_ file: PosixFile) throws -> (UInt64, UInt64) {
        let size = try file.size()
        let slotSize = UInt64(LogFormat.keySlotSize)
        var slots = size / slotSize
        let chunkSlots: UInt64 = 4096
        while slots > 1 {
            let first = max(1, slots >= chunkSlots ? slots - chunkSlots : 1)
            let bytes = try file.read(count: Int((slots - first) * slotSize), at: first * slotSize)
            // Word at a time: this runs over the whole preallocated file.
            let used: Int? = bytes.withUnsafeBytes { raw in
                var i = raw.count / Int(slotSize)
                while i > 0 {
                    let start = (i - 1) * Int(slotSize)
                    var word = start
                    while word < start + Int(slotSize) {
                        if raw.loadUnaligned(fromByteOffset: word, as: UInt64.self) != 0 { return i }
                        word += 8
                    }
                    i -= 1
                }
                return nil
            }
            if let used { return (first + UInt64(used), size) }
            slots = first
        }
        return (1, size)
    }

    // MARK: Close

    func close() async throws {
        let alreadyClosing = state.withLock { s -> Bool in
            defer { s.closing = true }
            return s.closing
        }
        if alreadyClosing {
            _ = try? await stopped.wait()
            return
        }
        wakeup.signal()
        _ = try await stopped.wait()
        state.withLock { $0.closed = true }
        let failure = self.failure.withLock { $0 }
        lockFile.unlock()
        // Whatever failed (a write, a sync), what the caller learns is that
        // acknowledged durability stopped there: the outcome of the calls
        // that got `durabilityLost` is unknown until the store is reopened.
        if let failure { throw StorageError(.durabilityLost, "an earlier write failed: \(failure.message)", errno: failure.errno) }
    }

    func shutdownWithoutWaiting() {
        state.withLock { $0.closing = true }
        wakeup.signal()
    }
}

/// Random bytes for salts. The engine needs no cryptographic library:
/// salts only have to differ between files, and the system generator
/// (`getrandom`) gives that.
func fillRandom(_ bytes: inout [UInt8]) {
    var generator = SystemRandomNumberGenerator()
    for i in bytes.indices { bytes[i] = generator.next() }
}
