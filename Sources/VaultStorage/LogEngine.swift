#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Foundation
import Logging
import Synchronization
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
    /// The open is a restore's check, which holds the log to the backup's
    /// signed checkpoint record by record: a copy cut short (its folder
    /// holds `backup.copying`) without an index replays from its start
    /// (an incremental backup into a folder once opened as a store removes
    /// that store's index before it extends the segments). Anywhere else a
    /// missing index is damage.
    package var checksARestore = false
    /// Whether the open rotates the key-slot journal's key
    /// (``KeySlotFile/finishOpen(rotating:)``): on for a store, off for
    /// the one open of a backup's copy that replays its log.
    package var rotatesJournalKeyAtOpen = true
    /// Simulated failures, for tests only: when set, the engine's
    /// ``files`` (every write, preallocation and sync passes there).
    package var faults: FaultInjection?
    /// Where the engine's file operations go: ``faults`` in tests, the
    /// system calls otherwise.
    var files: any LogFiles { faults ?? PosixLogFiles() }
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
package final class LogEngine: StorageEngine, KeySlotStore {
    let core: LogEngineCore
    /// Held by a compaction and by a backup: a backup never copies a frame
    /// while it is rewritten.
    let maintenance = AsyncGate()

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

    /// The group, and its destruction right behind it in the queue: one
    /// pass of the committer makes the group durable while it syncs the
    /// new journal key, then writes the tombstones.
    package func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool,
        thenDestroying slots: [KeySlot]
    ) throws -> (group: AppendTicket, destruction: AppendTicket?) {
        try core.append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve, thenDestroying: slots)
    }

    /// How many records were queued to be sealed by the committer
    /// (``DeferredRecord``) since open.
    package var deferredRecordCount: Int { core.deferredRecords.load(ordering: .relaxed) }

    /// Placed now, sealed on the committer's thread as it writes the batch.
    package func append(_ record: DeferredRecord, durability: Durability, mayUseReserve: Bool) throws -> AppendTicket {
        try core.enqueue(record, durability: durability, mayUseReserve: mayUseReserve)
    }

    package func read(_ reference: RecordReference) async throws -> StoredRecord {
        // A chunk's reference names its LSN alone: the table says where it is.
        let location = try reference.hasLocation ? reference.location : core.chunkLocation(of: reference.sequence)
        let frame = try core.read(location)
        // The sequence number is what the reference names; the location
        // only where to look.
        guard frame.sequence == reference.sequence else {
            throw StorageError(
                .corrupted, "the record found is not the one referenced", segment: location.segment, offset: location.offset)
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

    /// The next LSN: a cursor names a place in the log by sequence number,
    /// which no rewrite of the files changes.
    package var merkleTree: MerkleLog { core.merkle }

    /// A group is one segment's: at most a segment less its header and
    /// the reserve, with one manifest record (at most a record's size) for
    /// its key slots.
    package var groupCapacity: GroupCapacity {
        let c = core.configuration
        return GroupCapacity(
            keySlotWrites: (c.maximumRecordSize - LogFormat.manifestHeaderSize) / LogFormat.journaledSlotSize,
            bytes: c.segmentSize - UInt64(LogFormat.segmentHeaderSize) - c.reserve,
            perRecordOverhead: LogFormat.frameHeaderSize + 8, manifestBytesPerSlot: LogFormat.journaledSlotSize)
    }
    package var durableRecordCount: UInt64 { core.state.withLock { $0.durableLSN - 1 } }

    package func visitEveryRecord(_ visit: (StoredRecord) throws -> Bool) async throws {
        try core.scan(from: LogPosition(segment: 0, offset: 0), includingManifests: true, only: { _ in true }) { try visit(StoredRecord($0)) }
    }

    /// Walks the frames' headers on the calling task, about 8 MiB of
    /// frames at a time, and reads and hashes each batch on every core
    /// (each worker reads its frames into its own buffer, under the
    /// compaction's sequence lock, and hashes them there) while the walk
    /// goes on to the next batch. The payloads' CRCs are not computed:
    /// the leaves hash every byte, and the caller compares them with the
    /// tree.
    package func recomputeLeaves(count: UInt64, _ visit: ([UInt8]) throws -> Void) async throws {
        var position = LogPosition(segment: 0, offset: 0)
        var next: UInt64 = 1
        var pending: Task<(leaves: [UInt8], sequences: [UInt64]), any Error>?
        var pendingFirst: UInt64 = 1
        func handOver() async throws {
            guard let task = pending else { return }
            pending = nil
            let (leaves, sequences) = try await task.value
            // The frames read whole are those the walk found.
            guard sequences.elementsEqual(pendingFirst..<(pendingFirst + UInt64(sequences.count))) else {
                throw StorageError(.corrupted, "a record changed its place while it was verified")
            }
            try visit(leaves)
        }
        do {
            while next <= count {
                let first = next
                var batch: [RecordLocation] = []
                var bytes = 0
                var segments: [UInt32: LogEngineCore.Segment] = [:]
                try core.walkFrames(from: position) { location, header, walked in
                    guard header.lsn == next else {
                        throw StorageError(
                            .corrupted, "record \(header.lsn) is out of order", segment: location.segment, offset: location.offset)
                    }
                    segments = walked
                    batch.append(location)
                    bytes += Int(location.frameLength)
                    next += 1
                    position = LogPosition(segment: location.segment, offset: location.offset + UInt64(location.frameLength))
                    return next <= count && bytes < 8 << 20
                }
                try await handOver()
                guard !batch.isEmpty else { break }
                pendingFirst = first
                pending = Task { [core, batch, segments] in try await core.recomputeLeaves(of: batch, in: segments) }
            }
            try await handOver()
        } catch {
            _ = try? await pending?.value
            throw error
        }
    }

    package var endCursor: LogCursor {
        core.state.withLock { LogCursor(sequence: $0.nextLSN) }
    }

    package func scan(from cursor: LogCursor?, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) async throws {
        guard let cursor else {
            return try core.scan(from: LogPosition(segment: 0, offset: 0), passingOverDamaged: true, only: wanted) { try visit(StoredRecord($0)) }
        }
        // Nothing appended since the cursor: nothing to read.
        guard let start = try core.scanStart(forSequence: cursor.sequence) else { return }
        try core.scan(from: start, fromSequence: cursor.sequence, passingOverDamaged: true, only: wanted) {
            try visit(StoredRecord($0))
        }
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
        try await destroyKeySlots([slot])
    }

    /// All in one job: at most one journal-key rotation (only if a slot
    /// has a copy under the current key, to the key the file holds ahead),
    /// acknowledged once the log is synced and the tombstones written; the
    /// key file's work follows (a rotation's settling at once, tombstones
    /// alone within ``LogEngineCore/tombstoneSyncDelay``).
    package func destroyKeySlots(_ slots: [KeySlot]) async throws {
        guard !slots.isEmpty else { return }
        _ = try await core.destroy(slots).wait()
    }

    /// Its own key file: a destroyed slot is overwritten in place, and the
    /// journal key that sealed its copy in the log, if it is still the
    /// current one, is replaced, so that once the key file's work after the
    /// acknowledgement is done (within a few syncs) its value is in no file
    /// of the store that any key opens.
    package var keySlots: any KeySlotStore { self }

    /// Checks that every key slot of `keys.slots` decodes (a restore's
    /// check of the copied file); how many hold a value or a tombstone.
    /// - Throws: ``StorageError/Code/corrupted`` naming the first that does not.
    package func checkEveryKeySlot() throws -> Int { try core.keySlots.checkEverySlot() }

    /// Tells a scrub under way to stop at its next frame, and a backup
    /// that has not begun its copy not to begin it: `close()` follows.
    package func requestClose() {
        core.closeRequested.store(true, ordering: .relaxed)
    }

    package func close() async throws {
        // A compaction batch or a backup in progress finishes first: the
        // LOCK is never released under a half-rewritten frame. A scrub
        // stops at its next frame.
        core.closeRequested.store(true, ordering: .relaxed)
        try await maintenance.withGate { try await core.close() }
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
    /// Key slots written back from their groups' manifests (the key-slot
    /// journal): lost from the key file by a power cut, kept in the log.
    package var restoredKeySlots = 0
    /// Durable records kept although their payload failed its checksum
    /// (each answers `corrupted` when read): where they are.
    package var damagedRecords: [(segment: UInt32, offset: UInt64)] = []
    /// Durable records whose header (one byte, proven by its CRC and MAC),
    /// payload (one byte, proven by its Merkle leaf) or padding (zeros) was
    /// restored and written back: where they are.
    package var restoredRecords: [(segment: UInt32, offset: UInt64)] = []
    /// The stored hash of `merkle.hashes` (one of those the tree the
    /// checkpoint covers starts from) restored and written back, if one was:
    /// its index. Proven by the checkpoint's root.
    package var restoredMerkleHash: UInt64?
    /// Damaged bytes found after the last record of a segment that is not
    /// the newest, where the next segment continues the sequence (no
    /// record is missing): passed over. Where they start.
    package var damagedUnusedSpace: [(segment: UInt32, offset: UInt64)] = []

    package static func == (a: RecoveryReport, b: RecoveryReport) -> Bool {
        a.usedCheckpoint == b.usedCheckpoint && a.replayedRecords == b.replayedRecords
            && a.truncatedAt?.segment == b.truncatedAt?.segment && a.truncatedAt?.offset == b.truncatedAt?.offset
            && a.removedSegments == b.removedSegments && a.restoredKeySlots == b.restoredKeySlots
            && a.damagedRecords.elementsEqual(b.damagedRecords, by: { $0.segment == $1.segment && $0.offset == $1.offset })
            && a.restoredRecords.elementsEqual(b.restoredRecords, by: { $0.segment == $1.segment && $0.offset == $1.offset })
            && a.restoredMerkleHash == b.restoredMerkleHash
            && a.damagedUnusedSpace.elementsEqual(b.damagedUnusedSpace, by: { $0.segment == $1.segment && $0.offset == $1.offset })
    }
}

// MARK: - Core

/// The shared state of a ``LogEngine`` and its committer thread.
final class LogEngineCore: Sendable {
    /// One record in this many (by LSN) is a landmark: a scan from a cursor
    /// passes over fewer frame headers than this to reach it.
    static let landmarkInterval: UInt64 = 256

    /// Payloads up to this size are copied into their group's one write
    /// buffer; larger ones are written from where they are.
    static let inlinePayloadLimit = 64 << 10
    /// Write buffers kept for reuse once written: at most this many, each
    /// at most `pooledBufferCapacity` bytes (a larger one is freed).
    static let pooledBuffers = 64
    /// How long the committer, woken for small buffered groups only (the
    /// audit entries of reads in batched mode, activity copies), lets more
    /// gather before it writes them, unless a durable group, a caller
    /// waiting for one of them, a backup or `close` wakes it first: one
    /// wake-up and one write for many reads instead of one each.
    static let lazyWriteDelay: DispatchTimeInterval = .milliseconds(1)
    /// How long a destruction's tombstones may stay written but not synced
    /// after its acknowledgement, when it does not rotate the journal key
    /// (a rotation's settling is due at once, and its first sync covers
    /// them); once due, the committer syncs them beside the log's sync of
    /// the batch it is writing, or alone when idle.
    static let tombstoneSyncDelay: DispatchTimeInterval = .milliseconds(1)
    /// Small buffered groups that may wait for a lingering pass; the next
    /// one (the 65th) makes the committer take the queue at once.
    static let lazyJobLimit = 64
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

    /// One queued append: key slots to write first, then frames; or a
    /// destruction of key slots, with the journal key it brings in.
    struct Job: Sendable {
        var slotWrites: [(KeySlot, [UInt8])]
        /// Tombstones (a destruction's), written once every job queued
        /// before is durable, after the rotation to ``journalKey`` if it
        /// has one.
        var destroys: [(KeySlot, [UInt8])] = []
        /// The journal key that groups queued after this job are sealed
        /// under, which the committer rotates to before its tombstones
        /// (the key file holds it ahead): a destruction of a slot that a
        /// manifest sealed under the journal's current key carries (nil
        /// for one whose copies in the log are all sealed under keys an
        /// earlier rotation replaces).
        var journalKey: KeySlotFile.JournalKey? = nil
        /// Whether this job is a destruction (it has tombstones to write).
        var isDestruction: Bool { !destroys.isEmpty }
        /// The Merkle leaf hashes of its records, in order (32 bytes each).
        var leafHashes: [UInt8] = []
        var segment: UInt32
        var offset: UInt64
        var buffers: [[UInt8]]
        var references: [RecordReference]
        var lastLSN: UInt64?
        /// The stream heads this job moves, applied to the index once written.
        var heads: [(StreamID, RecordLocation)]
        /// Its records without a stream, added to the chunk table once written.
        var chunks: [(UInt64, RecordLocation)] = []
        /// Its landmarks, added once written.
        var landmarks: [(UInt64, RecordLocation)] = []
        var durability: Durability
        var ticket: AppendTicket
        /// A record placed but not yet sealed (``DeferredRecord``): the
        /// committer seals it and lays out its frame (``buffers``,
        /// ``leafHashes``) before it writes the batch.
        var deferred: DeferredFrame? = nil
        /// The bytes this job writes.
        var byteCount: UInt64 {
            UInt64(deferred?.location.frameLength ?? 0) + buffers.reduce(0) { $0 + UInt64($1.count) }
        }
    }

    /// What a deferred record's frame header says, fixed when it was placed.
    struct DeferredFrame: Sendable {
        var record: DeferredRecord
        var location: RecordLocation
        var salt: [UInt8]
        var lsn: UInt64
        var durableThrough: UInt64
        var previous: RecordLocation?
    }

    struct State: Sendable {
        /// The lowest key slot a manifest sealed under the journal's
        /// current key carries (`UInt64.max`: none since the last
        /// rotation): a destruction of a lower slot needs no rotation, its
        /// copies being sealed under older keys, which the rotations
        /// queued before it replace. 0 after an open (the log's manifests
        /// of the current epoch are not tracked): the first destruction
        /// rotates.
        var currentEpochSlotFloor: UInt64 = 0
        var segments: [UInt32: Segment] = [:]
        var current: UInt32 = 0
        var tail: UInt64 = 0
        var nextLSN: UInt64 = 1
        /// All LSNs below this are durable.
        var durableLSN: UInt64 = 1
        /// Last *written* record of each stream (what `head(of:)` returns).
        var index = StreamIndex()
        /// Every written record without a stream, by LSN.
        var chunks = SequenceTable()
        /// Every 256th written record (``LogEngineCore/landmarkInterval``),
        /// where a scan from a cursor starts.
        var landmarks = SequenceTable()
        /// Last *queued* record of streams with records not yet written.
        var queuedHeads: [StreamID: RecordLocation] = [:]
        var queue: [Job] = []
        /// Whether the committer has been signalled for the jobs queued
        /// since it last took the queue.
        var committerSignalled = false
        /// Whether it has been signalled for a lingering pass: only small
        /// buffered groups are queued (``LogEngineCore/lazyWriteDelay``).
        var lazySignalled = false
        /// Small buffered groups queued since it last took the queue.
        var lazyJobs = 0
        var closing = false
        var closed = false
        var bytesSinceCheckpoint: UInt64 = 0
        /// Callers waiting for the index of what is written
        /// (``requestIndexSnapshot()``), served by the committer.
        var checkpointRequests: [IndexSnapshotRequest] = []
        /// Whether the current full-disk episode was logged.
        var diskFullReported = false
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
    /// The store's folder, opened only to hold the same exclusive `flock`
    /// as `LOCK` (which someone may delete).
    let folderLock: PosixFile
    /// The key-slot file, with its own lock.
    let keySlots: KeySlotFile
    /// The Merkle tree over every record (`merkle.hashes`).
    let merkle: MerkleLog
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
    /// Records queued to be sealed by the committer (``DeferredRecord``), since open.
    let deferredRecords = Atomic<Int>(0)
    let recoveryReport: RecoveryReport
    /// A sequence lock between compaction and readers: incremented before
    /// and after each frame's rewrite (odd meanwhile), so that a reader
    /// that found a frame damaged knows whether it raced a rewrite
    /// (``readingStable(_:)``).
    let compactionEpoch = Atomic<UInt64>(0)
    /// Set once ``LogEngine/close()`` is called: a scrub, which holds the
    /// maintenance gate `close()` waits for, stops at its next frame.
    let closeRequested = Atomic<Bool>(false)
    /// A sequence lock between destructions and a backup's copy of the key
    /// file: incremented before the committer processes a run of
    /// destructions and after its tombstones are written, and around a
    /// rotation's replacement of the older journal key (odd meanwhile), so
    /// that a copy made while it did not move shows no tombstone whose
    /// record it lacks and no half-made replacement
    /// (``LogEngine/copyKeyFile(to:afterCopy:)``).
    let destructionEpoch = Atomic<UInt64>(0)
    /// Held by the committer around each run of destructions and each
    /// replacement of the older journal key, and by a backup that found
    /// ``destructionEpoch`` moving (or a settling owed) during three copies
    /// of the key file, around its last (its reads and writes, and the
    /// settling it finishes first): the committer waits for that copy
    /// only then.
    let keyFileCopy = Locked(())
    /// Durable groups synced so far: a backup's copy paces itself while
    /// it sees this move (writers are waiting on their syncs).
    let durableSyncs = Atomic<UInt64>(0)
    /// `compaction.intent`, opened by the first compaction and kept.
    let compactionIntent = Locked<PosixFile?>(nil)

    var logger: Logger { configuration.logger }

    init(directory: String, configuration: LogEngineConfiguration) throws {
        self.directory = directory
        self.configuration = configuration
        try FileSystem.createDirectory(directory)
        lockFile = try PosixFile.open(directory + "/LOCK", flags: O_RDWR | O_CREAT, name: "LOCK")
        guard try lockFile.tryLockExclusive() else {
            throw StorageError(.locked, "the store is already open (LOCK is held)")
        }
        // The folder itself too: a `LOCK` deleted while the store is open
        // would otherwise let a second process create another and open the
        // store beside it, two committers writing the same segment.
        folderLock = try PosixFile.open(directory, flags: O_RDONLY | O_DIRECTORY, name: "the store's folder")
        guard try folderLock.tryLockExclusive() else {
            throw StorageError(.locked, "the store is already open (its folder is locked)")
        }
        let logExists = try FileSystem.list(directory).contains { LogFormat.segmentNumber(fromFileName: $0) != nil }
        keySlots = try KeySlotFile(
            directory: directory, logExists: logExists, growth: configuration.keyFileGrowth, files: configuration.files,
            authenticator: configuration.authenticator)
        let merkleFile = try MerkleHashFile(
            directory: directory, logExists: logExists, files: configuration.files, reserveAhead: max(16 << 10, configuration.reserve / 4))
        var s = State()
        (recoveryReport, merkle) = try LogEngineCore.recover(
            directory: directory, configuration: configuration, keySlots: keySlots, merkleFile: merkleFile, into: &s)
        // Slots written back and synced: the open rotates the journal key
        // (the older one, whose manifests the replay opened, goes), except
        // in a backup's copy, opened once to replay its log.
        try keySlots.finishOpen(rotating: configuration.rotatesJournalKeyAtOpen)
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
                    Checkpoint(
                        segment: s.current, tail: s.tail, nextLSN: s.nextLSN, last: s.index.newest, index: s.index, chunks: s.chunks,
                        landmarks: s.landmarks, treeRoot: try merkle.root(size: s.nextLSN - 1),
                        keySlotEnd: keySlots.writtenEnd, journalEpoch: keySlots.durableEpoch),
                    directory: directory, authenticator: configuration.authenticator, files: configuration.files)
                s.bytesSinceCheckpoint = 0
            } catch let error as StorageError where error.code == .diskFull && !first {
                configuration.logger.warning("storage: no checkpoint after recovery (disk full)")
            }
        }
        state.withLock { $0 = s }
        configuration.logger.info(
            "storage: recovered",
            metadata: [
                "checkpoint": "\(recoveryReport.usedCheckpoint)", "replayed": "\(recoveryReport.replayedRecords)",
                "tornTailCut": "\(recoveryReport.truncatedAt != nil)", "removedSegments": "\(recoveryReport.removedSegments.count)",
                "restoredKeySlots": "\(recoveryReport.restoredKeySlots)", "records": "\(s.nextLSN - 1)",
            ])
    }

    func startCommitter() {
        // Opened (recovered and synced): the next group goes at the log's end.
        let opened = state.withLock { Written(lsn: $0.nextLSN - 1, end: ($0.current, $0.tail)) }
        let thread = Thread { [self] in self.commitLoop(opened: opened) }
        thread.name = "patientvault.commit"
        thread.start()
    }

    // MARK: Key slots

    /// A new slot of the key file (``KeySlotFile/reserve(allocate:)``),
    /// refused once the engine closes or has lost durability.
    func reserveKeySlot() throws -> KeySlot {
        try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            try ensureNoFailure()
        }
        return try keySlots.reserve { _, length in try allocateKeyFile(to: length) }
    }

    /// Queues the destruction of `slots`: their tombstones, once every
    /// group queued before is durable, after a rotation to the next
    /// journal key (``KeySlotFile/nextJournalKey()``), which every group
    /// queued after it is sealed under, if one of them has a copy under
    /// the current key (``State/currentEpochSlotFloor``).
    func destroy(_ slots: [KeySlot]) throws -> AppendTicket {
        let ticket = AppendTicket()
        var wakes = false
        try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            for slot in slots where !keySlots.isReserved(slot) {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            try ensureNoFailure()
            // Right behind another destruction not yet taken by the
            // committer (nothing sealed in between): the same new key, so
            // that one rotation, of one epoch, serves both. An open keeps
            // an older key only one epoch behind.
            var key: KeySlotFile.JournalKey?
            if slots.contains(where: { $0.number >= s.currentEpochSlotFloor }) {
                key = try s.queue.last?.journalKey ?? keySlots.nextJournalKey()
                s.currentEpochSlotFloor = .max
            }
            s.queue.append(destructionJob(slots, journalKey: key, ticket: ticket, in: s))
            wakes = !s.committerSignalled
            s.committerSignalled = true
        }
        if wakes { wakeup.signal() }
        return ticket
    }

    /// Asks the committer for the index of every record written so far,
    /// as a checkpoint (not written to any file), taken at its next pass
    /// once the log is synced: everything it covers is durable. A backup
    /// writes it into its copy, which then has little to replay. The
    /// committer's cost is a copy of the index (copy-on-write) and the
    /// tree's root; no file is written or synced unless buffered groups
    /// are waiting for their sync.
    /// - Throws: ``StorageError/Code/closed``.
    func requestIndexSnapshot() throws -> IndexSnapshotRequest {
        let request = IndexSnapshotRequest()
        let wakes = try state.withLock { s -> Bool in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            s.checkpointRequests.append(request)
            defer { s.committerSignalled = true }
            return !s.committerSignalled
        }
        if wakes { wakeup.signal() }
        return request
    }

    /// The value of a slot (``KeySlotFile/read(_:)``).
    func readKeySlot(_ slot: KeySlot) throws -> [UInt8] {
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
        }
        return try keySlots.read(slot)
    }

    // MARK: Close

    func close() async throws {
        let alreadyClosing = state.withLock { s -> Bool in
            defer { s.closing = true }
            return s.closing
        }
        if alreadyClosing {
            // A second close (or one racing the first) learns what the
            // first learns: a store that stopped on a failed write or sync
            // did not close cleanly, whoever asks.
            _ = try await stopped.wait()
            try throwEarlierFailure()
            return
        }
        wakeup.signal()
        _ = try await stopped.wait()
        state.withLock { $0.closed = true }
        folderLock.unlock()
        lockFile.unlock()
        try throwEarlierFailure()
    }

    /// Whatever failed (a write, a sync), what the caller of `close()`
    /// learns is that acknowledged durability stopped there: the outcome of
    /// the calls that got `durabilityLost` is unknown until the store is
    /// reopened.
    private func throwEarlierFailure() throws {
        if let failure = self.failure.withLock({ $0 }) {
            throw StorageError(.durabilityLost, "an earlier write failed: \(failure.message)", errno: failure.errno)
        }
    }

    func shutdownWithoutWaiting() {
        state.withLock { $0.closing = true }
        wakeup.signal()
    }
}

/// A caller's wait for ``LogEngineCore/requestIndexSnapshot()``.
final class IndexSnapshotRequest: Sendable {
    private let ticket = AppendTicket()
    private let result = Locked<LogEngineCore.Checkpoint?>(nil)

    /// The index, once the committer took it (nil if the tree's root could
    /// not be computed).
    /// - Throws: the ``StorageError`` of a failed sync (the engine latched).
    func wait() async throws -> LogEngineCore.Checkpoint? {
        _ = try await ticket.wait()
        return result.withLock { $0 }
    }

    func complete(_ outcome: Result<LogEngineCore.Checkpoint?, StorageError>) {
        switch outcome {
        case .success(let checkpoint):
            result.withLock { $0 = checkpoint }
            ticket.complete(.success([]))
        case .failure(let error):
            ticket.complete(.failure(error))
        }
    }
}

/// Random bytes for salts. The engine needs no cryptographic library:
/// salts only have to differ between files, and the system generator
/// (`getrandom`) gives that.
func fillRandom(_ bytes: inout [UInt8]) {
    var generator = SystemRandomNumberGenerator()
    for i in bytes.indices { bytes[i] = generator.next() }
}
