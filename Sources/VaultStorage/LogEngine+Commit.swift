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

// MARK: - Group commit

extension LogEngineCore {
    /// The committer thread: takes every queued job, writes key slots, writes
    /// frames with `pwritev`, then one `fdatasync` of the segment covers
    /// every durable job of the batch. The key file is written, not synced:
    /// a group's slots are in its manifest frame too (the key-slot journal,
    /// ``KeySlotFile``), and recovery writes them back.
    /// - Parameter opened: the recovered log's end (everything before it
    ///   synced), taken before the thread starts.
    func commitLoop(opened: Written) {
        var unsynced = Set<UInt32>()
        var written = opened
        // When the key file's work owed after a destruction's
        // acknowledgement (its tombstones' sync, a rotation's settling) is
        // due: see ``process(_:unsynced:written:keyFileDue:)``.
        var keyFileDue: DispatchTime?
        while true {
            if let due = keyFileDue {
                // Idle until then: done alone, one step (one sync) at a time.
                if wakeup.wait(timeout: due) == .timedOut {
                    settleKeyFile(&keyFileDue, all: false)
                    continue
                }
            } else {
                wakeup.wait()
            }
            // Woken for small buffered groups only: let more of them gather
            // (``lazyWriteDelay``); any other signal ends the wait.
            let lingers = state.withLock { s in
                !s.committerSignalled && s.lazySignalled && !s.closing && s.checkpointRequests.isEmpty
            }
            if lingers { _ = wakeup.wait(timeout: .now() + LogEngineCore.lazyWriteDelay) }
            // (Declared apart: `process` lays out deferred records in
            // `jobs`, whose buffers must have no second owner to be recycled.)
            var jobs: [Job]
            let requests: [IndexSnapshotRequest], closing: Bool
            (jobs, requests, closing) = state.withLock { s -> ([Job], [IndexSnapshotRequest], Bool) in
                let q = s.queue
                s.queue = []
                let r = s.checkpointRequests
                s.checkpointRequests = []
                s.committerSignalled = false
                s.lazySignalled = false
                s.lazyJobs = 0
                return (q, r, s.closing)
            }
            if !jobs.isEmpty {
                process(&jobs, unsynced: &unsynced, written: &written, keyFileDue: &keyFileDue)
                recycle(consume jobs)
                growAhead()
            }
            if !requests.isEmpty {
                settleKeyFile(&keyFileDue, all: true)
                serve(requests, unsynced: &unsynced, written: written)
            }
            if closing {
                let more = state.withLock { !$0.queue.isEmpty || !$0.checkpointRequests.isEmpty }
                if more {
                    wakeup.signal()
                    continue
                }
                settleKeyFile(&keyFileDue, all: true)
                finishOnClose(unsynced: &unsynced, written: written)
                stopped.complete(.success([]))
                return
            }
        }
    }

    /// What the committer has written: the last LSN and where its group
    /// ends (at open, the recovered log's end).
    struct Written {
        var lsn: UInt64
        var end: (segment: UInt32, offset: UInt64)
    }

    /// Writes and syncs a batch of jobs, then acknowledges them.
    ///
    /// A destruction (an erasure's keys) is acknowledged once its group is
    /// durable and its tombstones are written: one sync, of the log, as a
    /// deposit. When it rotates the journal key, the key it rotates to is
    /// already on the key file (written and synced ahead,
    /// ``KeySlotFile/Journal``), so the groups queued after it, sealed
    /// under that key, need nothing more either. What the key file is
    /// owed after (`keyFileDue`): for a rotation, a sync of every slot
    /// written, then the older key overwritten by the next one and synced
    /// (``KeySlotFile/settleStep(replacing:)``), due at once; for tombstones alone,
    /// their sync, due within ``LogEngineCore/tombstoneSyncDelay``. Each
    /// step is one sync, run beside the log's sync of the batch the
    /// committer writes then if it has one, alone if it is idle, and every
    /// step before a checkpoint, an index for a backup, or the close. A
    /// crash before the end leaves what a crash between a destruction's
    /// syncs always left: the older journal key beside the newer, the
    /// tombstones perhaps not on disk, and the erasure's durable record,
    /// from which the next open finishes the destruction.
    private func process(_ jobs: inout [Job], unsynced: inout Set<UInt32>, written: inout Written, keyFileDue: inout DispatchTime?) {
        do {
            try ensureNoFailure()
        } catch {
            for job in jobs { job.ticket.complete(.failure(error)) }
            return
        }
        // Tombstones written by this batch's destructions.
        var tombstonesWritten = false
        do {
            // 0. Records queued to be sealed here (``DeferredRecord``):
            //    sealed and framed, in their places.
            for i in jobs.indices where jobs[i].deferred != nil { try materialize(&jobs[i]) }
            // 1. Key slots first (in the page cache before any record that
            //    names them can be read). Not synced: their group's manifest
            //    carries them. Slots written without records (no manifest)
            //    are synced with the batch, in step 3.
            var slotsOutsideTheLog = false
            for job in jobs {
                for (slot, bytes) in job.slotWrites { try keySlots.write(bytes, to: slot.number) }
                if !job.slotWrites.isEmpty && job.buffers.isEmpty { slotsOutsideTheLog = true }
            }
            // 2. Frames, one gathered write per run of jobs in one segment,
            //    and destructions where they were queued: each run of them
            //    waits for everything written before it to be durable
            //    (``destroy(_:unsynced:written:segments:)``). The jobs
            //    queued after a destruction were sealed under its new key.
            let segments = state.withLock { $0.segments }
            var i = 0
            while i < jobs.count {
                if jobs[i].isDestruction {
                    var j = i
                    while j < jobs.count && jobs[j].isDestruction { j += 1 }
                    try destroy(jobs[i..<j], unsynced: &unsynced, written: written, segments: segments)
                    tombstonesWritten = true
                    i = j
                    continue
                }
                guard !jobs[i].buffers.isEmpty else { i += 1; continue }
                let number = jobs[i].segment
                var j = i
                while j < jobs.count && !jobs[j].isDestruction && (jobs[j].buffers.isEmpty || jobs[j].segment == number) {
                    if let l = jobs[j].lastLSN { written.lsn = max(written.lsn, l) }
                    j += 1
                }
                // One job (a lone writer) writes its own buffers as they are.
                let buffers = j == i + 1 ? jobs[i].buffers : jobs[i..<j].flatMap(\.buffers)
                // Older segments become durable before a newer one gets data,
                // so a torn older segment never hides behind a newer one.
                if unsynced.contains(where: { $0 < number }) {
                    let older = unsynced.sorted().filter { $0 < number }
                    for file in older.compactMap({ segments[$0]?.file }) { try sync(file) }
                    for n in older { unsynced.remove(n) }
                }
                guard let segment = segments[number] else { throw StorageError(.io, "segment vanished") }
                try configuration.files.writeFrames(buffers, at: jobs[i].offset, of: segment.file)
                unsynced.insert(number)
                written.end = (number, jobs[i].offset + UInt64(buffers.reduce(0) { $0 + $1.count }))
                // Written: readers may now follow these stream heads. Their
                // Merkle leaves, in LSN order, before any sync says they are
                // durable (written, synced before a checkpoint; recovery
                // recomputes what it replays).
                let run = jobs[i..<j]
                for job in run where !job.leafHashes.isEmpty { try merkle.append(leafHashes: job.leafHashes) }
                state.withLock { s in
                    for job in run {
                        for (stream, location) in job.heads {
                            s.index[stream] = location
                            if s.queuedHeads[stream] == location { s.queuedHeads[stream] = nil }
                        }
                        for (lsn, location) in job.chunks { s.chunks.append(lsn, at: location) }
                        for (lsn, location) in job.landmarks { s.landmarks.append(lsn, at: location) }
                    }
                }
                i = j
            }

            // 3. One sync covers every durable job of the batch. A batch of
            //    buffered writes only starts the writeback of its large ones
            //    (content on its way) now, so the disk works while the next
            //    chunks are encrypted and the final sync has little left to
            //    do. Small ones (the audit entries of reads in batched mode)
            //    wait for the batched sync: one device write per read would
            //    cost more than the read.
            if !jobs.contains(where: { $0.durability == .durable }) {
                for job in jobs where !job.buffers.isEmpty {
                    let length = job.buffers.reduce(0) { $0 + $1.count }
                    guard length > LogEngineCore.inlinePayloadLimit else { continue }
                    segments[job.segment]?.file.startWriteback(offset: job.offset, length: UInt64(length))
                }
            }
            // The key file's owed work, once due, one step of it now,
            // beside this batch's log sync if it has one (two files: one
            // wait for both); this batch's own tombstones (not a
            // rotation's settling, which needs a step per sync) ride
            // beside its log sync if it has one after them, and are owed
            // otherwise.
            let durable = jobs.contains(where: { $0.durability == .durable })
            let due = keyFileDue.map { DispatchTime.now() >= $0 } ?? false
            if due || (durable && tombstonesWritten && !unsynced.isEmpty && !keySlots.rotationOwed) {
                let settled: Bool
                if durable && !unsynced.isEmpty {
                    let keyFile = BesideValue { [self] in try keyFileStep() }
                    let synced = Result { try syncAll(&unsynced, of: segments) }
                    let outcome = keyFile.wait()
                    try synced.get()
                    settled = try outcome.get()
                } else {
                    settled = try keyFileStep()
                }
                if settled {
                    keyFileDue = nil
                    tombstonesWritten = false
                }
            }
            if durable {
                try syncAll(&unsynced, of: segments)
                if slotsOutsideTheLog { try keySlots.syncIfWritten() }
                let through = written.lsn
                state.withLock { $0.durableLSN = max($0.durableLSN, through + 1) }
                durableSyncs.wrappingAdd(1, ordering: .relaxed)
            } else if slotsOutsideTheLog {
                // Slots written without records have no manifest in the
                // log to be written back from: synced with their batch,
                // whatever its durability.
                try keySlots.syncIfWritten()
            }
            // A sync that failed on another thread meanwhile (a growth
            // step's, a backup's) may have dropped pages this batch wrote:
            // nothing is acknowledged once the engine is latched.
            try ensureNoFailure()
        } catch {
            // Never retry a failed write or sync and pretend it is durable
            // (PostgreSQL, 2018): stop acknowledging until reopened.
            // (A deferred record's seal that failed says why: the only
            // failure here that is not a system call's.)
            let failure = (error as? StorageError) ?? StorageError(.io, "write failed: \(error)")
            let queued = state.withLock { s -> [Job] in
                latch(failure)
                let q = s.queue
                s.queue = []
                return q
            }
            let lost = StorageError(.durabilityLost, failure.message, errno: failure.errno)
            for job in jobs + queued { job.ticket.complete(.failure(lost)) }
            return
        }
        for job in jobs { job.ticket.complete(.success(job.references)) }
        if keySlots.rotationOwed {
            keyFileDue = .now()
        } else if tombstonesWritten && keyFileDue == nil {
            keyFileDue = .now() + LogEngineCore.tombstoneSyncDelay
        }

        // Every `checkpointInterval` bytes, a checkpoint of the index of
        // what is written, once the log is synced (groups queued meanwhile
        // are left for the next one).
        guard state.withLock({ $0.bytesSinceCheckpoint >= configuration.checkpointInterval }) else { return }
        settleKeyFile(&keyFileDue, all: true)
        checkpoint(unsynced: &unsynced, written: written)
    }

    /// The key file's owed work now: one step (idle), or all of it
    /// (before a checkpoint, a backup's index, the close). A failure stops
    /// the engine: the erasures are durable in the log, and the next open
    /// finishes their destruction.
    private func settleKeyFile(_ due: inout DispatchTime?, all: Bool) {
        guard due != nil else { return }
        do {
            while try !keyFileStep() {
                if !all { return }
            }
            due = nil
        } catch {
            due = nil
            latch((error as? StorageError) ?? StorageError(.io, "the key file's sync failed"))
        }
    }

    /// One step of the key file's owed work
    /// (``KeySlotFile/settleStep(replacing:)``); whether nothing more is
    /// owed. Only the step that overwrites the older journal key holds
    /// ``keyFileCopy`` (a sync never waits for a backup's copy), and a
    /// backup's copy made meanwhile is made again (``destructionEpoch``).
    private func keyFileStep() throws -> Bool {
        guard keySlots.owedStep == .replaceOlderKey else { return try keySlots.settleStep(replacing: false) }
        return try keyFileCopy.withLock { _ throws in
            destructionEpoch.add(1, ordering: .sequentiallyConsistent)
            defer { destructionEpoch.add(1, ordering: .sequentiallyConsistent) }
            return try keySlots.settleStep()
        }
    }

    /// A run of destructions, where they were queued in the committer's
    /// pass. Everything written before them becomes durable first (an
    /// erasure's record before its keys go: a crash never leaves a
    /// destroyed key without the record that says why); then, for a run
    /// that rotates, the journal key moves to the one the key file holds
    /// ahead (``KeySlotFile/rotate(to:)``), and the tombstones are
    /// written. If the previous rotation's settling is still owed (the
    /// file does not hold the key yet), it is finished beside the log's
    /// sync (two files: one wait for both). The tombstones, and the
    /// rotation's settling, follow the acknowledgement
    /// (``process(_:unsynced:written:keyFileDue:)``). A backup's copy of
    /// the key file made meanwhile is made again (``destructionEpoch``,
    /// ``keyFileCopy``).
    private func destroy(
        _ run: ArraySlice<Job>, unsynced: inout Set<UInt32>, written: Written, segments: [UInt32: Segment]
    ) throws {
        // Destructions queued one after the other share their key (see
        // ``destroy(_:)``): one rotation, of one epoch, for the run.
        let key = run.last(where: { $0.journalKey != nil })?.journalKey
        if let key {
            guard run.allSatisfy({ $0.journalKey == nil || $0.journalKey?.epoch == key.epoch }) else {
                throw StorageError(.io, "destructions queued one after the other with different journal keys")
            }
        }
        try keyFileCopy.withLock { _ throws in
            destructionEpoch.add(1, ordering: .sequentiallyConsistent)
            defer { destructionEpoch.add(1, ordering: .sequentiallyConsistent) }
            if let key, !keySlots.holds(key) {
                let keySlots = keySlots
                let settled = Beside { try keySlots.settle(until: key) }
                let synced = Result { try syncAll(&unsynced, of: segments) }
                // Both end before either failure is thrown: the key file is
                // never written while its sync may still run.
                let keyFile = settled.wait()
                try synced.get()
                try keyFile.get()
            } else {
                try syncAll(&unsynced, of: segments)
            }
            let through = written.lsn
            state.withLock { $0.durableLSN = max($0.durableLSN, through + 1) }
            if let key { try keySlots.rotate(to: key) }
            for job in run {
                for (slot, bytes) in job.destroys { try keySlots.write(bytes, to: slot.number) }
            }
        }
    }

    /// A checkpoint of everything written, once the log is synced
    /// (``checkpointWritten(_:)``). The segments are synced on the commit
    /// path's terms: a failed sync latches the engine; only a full disk
    /// leaves the checkpoint for later (the log stays the truth, and the
    /// next open replays more of it).
    private func checkpoint(unsynced: inout Set<UInt32>, written: Written) {
        do {
            try syncWritten(&unsynced, written)
            try checkpointWritten(written)
        } catch {
            let failure = (error as? StorageError) ?? StorageError(.io, "checkpoint failed")
            if failure.code != .diskFull { latch(failure) }
            logger.warning("storage: checkpoint not written", metadata: ["code": "\(failure.code)"])
        }
    }

    /// Syncs every segment written to, so that every record written is
    /// durable, and says so (`durableLSN`): a checkpoint or a backup's
    /// index then covers exactly the durable records, buffered ones
    /// written since the last durable group included.
    private func syncWritten(_ unsynced: inout Set<UInt32>, _ written: Written) throws {
        try ensureNoFailure()
        try syncAll(&unsynced, of: state.withLock { $0.segments })
        state.withLock { $0.durableLSN = max($0.durableLSN, written.lsn + 1) }
    }

    /// Serves ``requestIndexSnapshot()``: the log synced, then the index
    /// of what is written. No file is written: the caller (a backup)
    /// writes it where it needs it.
    private func serve(_ requests: [IndexSnapshotRequest], unsynced: inout Set<UInt32>, written: Written) {
        do {
            try syncWritten(&unsynced, written)
            let checkpoint = snapshot(written)?.0
            for request in requests { request.complete(.success(checkpoint)) }
        } catch {
            let failure = (error as? StorageError) ?? StorageError(.io, "sync failed")
            latch(failure)
            for request in requests { request.complete(.failure(failure)) }
        }
    }

    /// Returns the written groups' buffers to the pool, emptied (their
    /// storage kept), for `enqueue` to fill again. Only buffers this engine
    /// owns are meant (a caller's large payload, above the capacity bound,
    /// is let go), within the pool's bounds.
    private func recycle(_ written: consuming [Job]) {
        var jobs = written
        bufferPool.withLock { pool in
            for i in jobs.indices where pool.count < LogEngineCore.pooledBuffers {
                var buffers = jobs[i].buffers
                jobs[i].buffers = []
                while pool.count < LogEngineCore.pooledBuffers, var buffer = buffers.popLast() {
                    // Emptied in place when this is the last reference (the
                    // common case: the job was the only owner); otherwise
                    // copy-on-write gives a fresh buffer and nothing is shared.
                    guard buffer.capacity <= LogEngineCore.pooledBufferCapacity else { continue }
                    buffer.removeAll(keepingCapacity: true)
                    pool.append(buffer)
                }
            }
        }
    }

    /// Grows the current segment's and the key file's preallocation ahead
    /// of need, here on the committer thread and outside the state lock, so
    /// that appends and slot reservations seldom preallocate (write zeros
    /// and sync them) under it. On a full disk the append that needs the
    /// space tries again, and fails with `diskFull` if it must; any other
    /// failure (a failed sync of the zeros) has latched the engine in
    /// ``allocate(_:to:)``, and every later call fails `durabilityLost`.
    func growAhead() {
        let plan = state.withLock { s -> (segment: (PosixFile, UInt32, UInt64)?, keyFile: UInt64?) in
            var segment: (PosixFile, UInt32, UInt64)?
            if let current = s.segments[s.current], current.allocated < current.size {
                let ahead = current.allocated - min(current.allocated, s.tail)
                if ahead < configuration.reserve + current.allocated / 8 {
                    segment = (current.file, s.current, min(current.size, LogEngineCore.nextStep(after: current.allocated)))
                }
            }
            // Room for fewer than 64 more slots: the next step now.
            return (segment, keySlots.growthTarget())
        }
        if let (file, number, target) = plan.segment, ahead({ try allocate(file, to: target, site: .growthSync) }) {
            state.withLock { s in
                if let allocated = s.segments[number]?.allocated { s.segments[number]?.allocated = max(allocated, target) }
            }
        }
        if let target = plan.keyFile, ahead({ try allocateKeyFile(to: target, site: .growthSync) }) {
            keySlots.noteGrown(to: target)
        }
        createSpareIfDue()
    }

    /// Runs work done ahead of need; whether it succeeded. Its failure is
    /// no caller's: a full disk is met again by the call that needs the
    /// space, anything else was latched by ``latching(_:)``.
    private func ahead(_ body: () throws -> Void) -> Bool {
        do {
            try body()
            return true
        } catch {
            logger.warning("storage: preallocation ahead of need failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Creates the next segment ahead of need once the current one is fully
    /// preallocated and its last eighth is reached: whole (preallocated,
    /// header written and synced, renamed into place, directory synced),
    /// with first LSN 0 ("continues the previous segment", as its first
    /// frame's LSN will). The append that switches to it then does no I/O.
    /// Best effort: on failure the switch creates the segment itself.
    func createSpareIfDue() {
        let due = state.withLock { s -> UInt32? in
            guard !s.closing, let current = s.segments[s.current], current.allocated >= current.size,
                  s.tail + current.size / 8 > current.size, s.current < LogFormat.maximumSegmentNumber
            else { return nil }
            return s.current + 1
        }
        guard let number = due else { return }
        spare.withLock { spare in
            guard spare == nil else { return }
            // A switch that did not wait for the spare made the segment itself.
            guard !FileSystem.exists(directory + "/" + LogFormat.segmentFileName(number)) else { return }
            _ = ahead {
                spare = try latching {
                    try LogEngineCore.createSegment(
                        directory: directory, number: number, firstLSN: 0, size: configuration.segmentSize,
                        allocation: configuration.initialSegmentAllocation, files: configuration.files)
                }
                logger.debug("storage: created the next segment ahead", metadata: ["segment": "\(number)"])
            }
        }
    }

    /// The commit path's `fdatasync` (through ``LogFiles``).
    private func sync(_ file: PosixFile) throws {
        let start = ContinuousClock.now
        try configuration.files.sync(file, site: nil)
        let elapsed = ContinuousClock.now - start
        if elapsed > .seconds(1) {
            logger.warning("storage: slow fdatasync", metadata: ["file": "\(file.name)", "milliseconds": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)"])
        }
    }

    /// The committer's one sync of everything written and not yet synced:
    /// the unsynced segments, oldest first; then nothing is unsynced.
    private func syncAll(_ unsynced: inout Set<UInt32>, of segments: [UInt32: Segment]) throws {
        if unsynced.count == 1, let file = segments[unsynced.first!]?.file {
            // A lone segment (the common case) without sorting a copy.
            try sync(file)
        } else {
            for file in unsynced.sorted().compactMap({ segments[$0]?.file }) { try sync(file) }
        }
        unsynced.removeAll(keepingCapacity: true)
    }

    private func finishOnClose(unsynced: inout Set<UInt32>, written: Written) {
        do {
            try syncAll(&unsynced, of: state.withLock { $0.segments })
            try keySlots.syncIfWritten()
            try merkle.syncIfAppended()
        } catch {
            latch((error as? StorageError) ?? StorageError(.io, "close failed"))
            return
        }
        // A stopped engine claims nothing more: what it wrote after its
        // failure (a batch whose Merkle hashes failed, say) was refused to
        // its callers, and its durable count stays where it stopped.
        guard failure.withLock({ $0 == nil }) else { return }
        // Everything written is durable now (buffered groups included): a
        // checkpoint signed after the close covers them.
        state.withLock { $0.durableLSN = max($0.durableLSN, written.lsn + 1) }
        // The log is synced: a checkpoint that cannot be written (a full
        // disk) only makes the next open replay more of it.
        if failure.withLock({ $0 == nil }) && state.withLock({ $0.bytesSinceCheckpoint > 0 }) {
            do {
                try checkpointWritten(written)
            } catch {
                logger.warning("storage: no checkpoint at close", metadata: ["error": "\(type(of: error))"])
            }
        }
    }
}

/// Work run on another thread while the caller goes on (the committer's
/// key-file sync beside its sync of the log); ``wait()`` returns its
/// outcome.
private final class BesideValue<Value: Sendable>: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let outcome = Locked<Result<Value, any Error>?>(nil)

    init(_ body: @escaping @Sendable () throws -> Value) {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let result = Result { try body() }
            outcome.withLock { $0 = result }
            done.signal()
        }
    }

    /// Waits for the work to end and returns how it ended.
    func wait() -> Result<Value, any Error> {
        done.wait()
        // Set before the signal.
        return outcome.withLock { $0 ?? .failure(StorageError(.io, "work beside the committer ended without an outcome")) }
    }
}

private typealias Beside = BesideValue<Void>
