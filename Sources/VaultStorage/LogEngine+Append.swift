#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import VaultCrypto
import VaultSync

// MARK: - Append: a group laid out, placed and queued

extension LogEngineCore {

    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool
    ) throws -> AppendTicket {
        try append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve, thenDestroying: []).group
    }

    /// A group and, when `destroying` is not empty, the destruction of those
    /// slots queued right behind it under the same hold of the engine's
    /// lock: the committer takes both in one pass.
    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool,
        thenDestroying destroying: [KeySlot]
    ) throws -> (group: AppendTicket, destruction: AppendTicket?) {
        var slots: [(KeySlot, [UInt8])] = []
        slots.reserveCapacity(keySlotWrites.count)
        for (slot, value) in keySlotWrites {
            guard value.count <= LogFormat.keySlotCapacity else {
                throw StorageError(.tooLarge, "a key slot holds at most \(LogFormat.keySlotCapacity) bytes")
            }
            slots.append((slot, keySlots.live(slot, value: value)))
        }
        return try enqueue(
            records: records, rawSlotWrites: slots, durability: durability, mayUseReserve: mayUseReserve, thenDestroying: destroying)
    }

    func enqueue(
        records: [EngineRecord], rawSlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool = false,
        thenDestroying destroying: [KeySlot] = []
    ) throws -> (group: AppendTicket, destruction: AppendTicket?) {
        // A group that writes key slots starts with their manifest, sealed
        // under the key-slot journal's key: the key file is not synced on
        // the commit path, and recovery writes the slots back from it.
        var records = records
        let manifests = !records.isEmpty && !rawSlotWrites.isEmpty ? 1 : 0
        var manifestEpoch: UInt64 = 0
        if manifests == 1 {
            let (epoch, manifest) = try keySlots.manifest(for: rawSlotWrites)
            manifestEpoch = epoch
            records.insert(EngineRecord(stream: nil, payload: manifest), at: 0)
        }
        // Work that needs no lock: sizes, payload checksums, Merkle leaves.
        var groupSize: UInt64 = 0
        var crcs: [UInt32] = []
        crcs.reserveCapacity(records.count)
        var leafHashes: [UInt8] = []
        leafHashes.reserveCapacity(records.count * MerkleTree.hashSize)
        for r in records {
            guard r.payload.count <= configuration.maximumRecordSize else {
                throw StorageError(.tooLarge, "record of \(r.payload.count) bytes exceeds the maximum")
            }
            groupSize += UInt64(LogFormat.frameLength(payloadCount: r.payload.count))
            crcs.append(LogFormat.payloadCRC(r.payload))
            MerkleLog.appendLeafHash(stream: r.stream, digest: r.digest, to: &leafHashes)
        }
        let room = groupSize + (mayUseReserve ? 0 : configuration.reserve)
        guard room <= configuration.segmentSize - UInt64(LogFormat.segmentHeaderSize) else {
            throw StorageError(.tooLarge, "an atomic group must fit in one segment")
        }
        // A small buffered group (a read's audit entry in batched mode, an
        // activity copy) waits for the committer's next pass, at most
        // ``lazyWriteDelay``, instead of waking it: one wake-up for many.
        // A caller that waits for it after all wakes the committer then.
        let lazy = durability == .buffered && groupSize <= UInt64(LogEngineCore.inlinePayloadLimit)
        // (Held strongly: the ticket drops it once completed. A weak
        // reference would give the engine a side table that
        // LeakSanitizer reports at exit.)
        let ticket = lazy ? AppendTicket { [self] in wakeForWaiter() } : AppendTicket()
        var wakes = false
        var destruction: AppendTicket?
        // A destruction's new journal key: drawn before the lock, made
        // current only once nothing can fail any more (groups queued after
        // it are sealed under it, so it must not exist without its job).
        let journalKeyMaterial = destroying.isEmpty ? nil : try KeySlotFile.freshJournalKeyMaterial()
        try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            for (slot, _) in rawSlotWrites where !keySlots.isReserved(slot) {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            for slot in destroying where !keySlots.isReserved(slot) {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            try ensureNoFailure()
            // A destruction queued since the manifest was sealed brought a
            // new journal key: seal it again under that one (same size).
            if manifests == 1 && keySlots.epoch != manifestEpoch {
                records[0] = EngineRecord(stream: nil, payload: try keySlots.manifest(for: rawSlotWrites).payload)
                crcs[0] = LogFormat.payloadCRC(records[0].payload)
                var leaf: [UInt8] = []
                MerkleLog.appendLeafHash(stream: nil, digest: records[0].digest, to: &leaf)
                leafHashes.replaceSubrange(0..<MerkleTree.hashSize, with: leaf)
            }
            // A destruction rotates the journal key only if a slot it
            // destroys has a copy under the current one (this group's own
            // manifest counts too).
            let groupFloor = manifests == 1 ? rawSlotWrites.lazy.map(\.0.number).min() ?? .max : .max
            let rotates = journalKeyMaterial != nil
                && destroying.contains { $0.number >= min(s.currentEpochSlotFloor, groupFloor) }
            if rotates { try keySlots.checkEpochCanGrow() }
            if !records.isEmpty { try placeReporting(groupSize, mayUseReserve: mayUseReserve, in: &s) }
            guard let segment = s.segments[s.current] else {
                throw StorageError(.io, "no current segment")
            }
            var job = Job(
                slotWrites: rawSlotWrites, segment: s.current, offset: s.tail, buffers: [], references: [],
                lastLSN: nil, heads: [], durability: durability, ticket: ticket)
            job.leafHashes = leafHashes
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
                pending.appendZeros(LogFormat.frameHeaderSize)
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
                pending.appendZeros(frameLength - LogFormat.frameHeaderSize - r.payload.count)
                if lsn % LogEngineCore.landmarkInterval == 0 { job.landmarks.append((lsn, location)) }
                if i >= manifests {
                    if r.stream == nil {
                        job.references.append(RecordReference(sequence: lsn))
                        job.chunks.append((lsn, location))
                    } else {
                        job.references.append(RecordReference(sequence: lsn, location: location))
                    }
                }
                job.lastLSN = lsn
                offset += UInt64(frameLength)
            }
            if !pending.isEmpty { job.buffers.append(pending) }
            s.tail = offset
            s.bytesSinceCheckpoint += groupSize
            s.queue.append(job)
            s.currentEpochSlotFloor = min(s.currentEpochSlotFloor, groupFloor)
            if let journalKeyMaterial {
                let ticket = AppendTicket()
                var journalKey: KeySlotFile.JournalKey?
                if rotates {
                    journalKey = keySlots.advanceJournalKey(to: journalKeyMaterial)
                    s.currentEpochSlotFloor = .max
                }
                s.queue.append(destructionJob(destroying, journalKey: journalKey, ticket: ticket, in: s))
                destruction = ticket
            }
            wakes = signal(lazy: lazy && destruction == nil, in: &s)
        }
        if wakes { wakeup.signal() }
        return (ticket, destruction)
    }

    /// Places a group (``place(_:mayUseReserve:in:)``), and says in the
    /// log, once per episode, that the disk is full, and when space is
    /// available again. Under the engine's lock.
    private func placeReporting(_ groupSize: UInt64, mayUseReserve: Bool, in s: inout State) throws {
        do {
            try place(groupSize, mayUseReserve: mayUseReserve, in: &s)
            if s.diskFullReported, !mayUseReserve {
                s.diskFullReported = false
                logger.notice("storage: space is available again")
            }
        } catch let error as StorageError where error.code == .diskFull {
            // Once per episode, not per refused group.
            if !s.diskFullReported {
                s.diskFullReported = true
                logger.warning("storage: disk full: writes are refused; reads still leave their audit entries in the reserve")
            }
            throw error
        }
    }

    /// Whether the caller, having queued a job, must wake the committer.
    /// One wake-up per batch the committer takes, not one per job: the
    /// jobs queued before it takes them ride on the first signal. Small
    /// buffered groups (`lazy`) only wake it for a lingering pass
    /// (``commitLoop(opened:)``), until enough of them are queued. Under
    /// the engine's lock.
    private func signal(lazy: Bool, in s: inout State) -> Bool {
        if lazy && s.lazyJobs < LogEngineCore.lazyJobLimit {
            s.lazyJobs += 1
            defer { s.lazySignalled = true }
            return !s.committerSignalled && !s.lazySignalled
        }
        defer { s.committerSignalled = true }
        return !s.committerSignalled
    }

    /// Queues a group of one record that the committer seals as it writes
    /// it (``DeferredRecord``): placed, numbered and linked to its stream
    /// now, under the lock, as ``enqueue(records:rawSlotWrites:durability:mayUseReserve:thenDestroying:)``
    /// does; its payload, checksum, Merkle leaf and frame header made on
    /// the committer's thread (``materialize(_:)``).
    func enqueue(_ record: DeferredRecord, durability: Durability, mayUseReserve: Bool) throws -> AppendTicket {
        guard record.payloadCount >= 0, record.payloadCount <= configuration.maximumRecordSize else {
            throw StorageError(.tooLarge, "record of \(record.payloadCount) bytes exceeds the maximum")
        }
        let frameLength = LogFormat.frameLength(payloadCount: record.payloadCount)
        let groupSize = UInt64(frameLength)
        guard groupSize + (mayUseReserve ? 0 : configuration.reserve) <= configuration.segmentSize - UInt64(LogFormat.segmentHeaderSize) else {
            throw StorageError(.tooLarge, "an atomic group must fit in one segment")
        }
        let lazy = durability == .buffered && frameLength <= LogEngineCore.inlinePayloadLimit
        let ticket = lazy ? AppendTicket { [self] in wakeForWaiter() } : AppendTicket()
        let wakes = try state.withLock { s -> Bool in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            try ensureNoFailure()
            try placeReporting(groupSize, mayUseReserve: mayUseReserve, in: &s)
            guard let segment = s.segments[s.current] else {
                throw StorageError(.io, "no current segment")
            }
            let location = RecordLocation(segment: s.current, offset: s.tail, frameLength: UInt32(frameLength))
            let previous = s.queuedHeads[record.stream] ?? s.index[record.stream]
            s.queuedHeads[record.stream] = location
            let lsn = s.nextLSN
            s.nextLSN += 1
            var job = Job(
                slotWrites: [], segment: s.current, offset: s.tail, buffers: [],
                references: [RecordReference(sequence: lsn, location: location)], lastLSN: lsn,
                heads: [(record.stream, location)], durability: durability, ticket: ticket)
            job.deferred = DeferredFrame(
                record: record, location: location, salt: segment.salt, lsn: lsn, durableThrough: s.durableLSN, previous: previous)
            if lsn % LogEngineCore.landmarkInterval == 0 { job.landmarks.append((lsn, location)) }
            s.tail += groupSize
            s.bytesSinceCheckpoint += groupSize
            s.queue.append(job)
            return signal(lazy: lazy, in: &s)
        }
        deferredRecords.add(1, ordering: .relaxed)
        if wakes { wakeup.signal() }
        return ticket
    }

    /// Seals a deferred job's record and lays out its frame: what
    /// ``enqueue(records:rawSlotWrites:durability:mayUseReserve:thenDestroying:)``
    /// does for a record given whole. On the committer's thread; a payload
    /// that cannot be made fails the batch as a failed write does.
    func materialize(_ job: inout Job) throws {
        guard let d = job.deferred else { return }
        let payload = try d.record.sealed()
        let frameLength = Int(d.location.frameLength)
        var buffer = bufferPool.withLock { $0.popLast() } ?? []
        buffer.reserveCapacity(frameLength)
        buffer.appendZeros(LogFormat.frameHeaderSize)
        buffer.withUnsafeMutableBytes { raw in
            LogFormat.writeFrameHeader(
                into: raw, salt: d.salt, offset: d.location.offset, payloadLength: payload.count,
                payloadCRC: LogFormat.payloadCRC(payload), lsn: d.lsn, durableThrough: d.durableThrough,
                flags: LogFormat.flagHasStream, previous: d.previous, stream: d.record.stream,
                authenticator: configuration.authenticator)
        }
        buffer.append(contentsOf: payload)
        buffer.appendZeros(frameLength - LogFormat.frameHeaderSize - payload.count)
        job.buffers = [buffer]
        job.leafHashes.removeAll(keepingCapacity: true)
        MerkleLog.appendLeafHash(stream: d.record.stream, digest: PayloadDigest(of: payload), to: &job.leafHashes)
        job.deferred = nil
    }

    /// The job that destroys `slots` (their tombstones) after `journalKey`,
    /// if any, is on disk, at the end of the queue. Under the engine's lock.
    func destructionJob(_ slots: [KeySlot], journalKey: KeySlotFile.JournalKey?, ticket: AppendTicket, in s: State) -> Job {
        var job = Job(
            slotWrites: [], segment: s.current, offset: s.tail, buffers: [], references: [], lastLSN: nil, heads: [],
            durability: .durable, ticket: ticket)
        job.destroys = slots.map { ($0, keySlots.tombstone($0)) }
        job.journalKey = journalKey
        return job
    }

    /// A caller waits for a small buffered group: the committer, if it
    /// lingers, takes the queue at once.
    func wakeForWaiter() {
        let wakes = state.withLock { s -> Bool in
            guard !s.queue.isEmpty, !s.committerSignalled else { return false }
            s.committerSignalled = true
            return true
        }
        if wakes { wakeup.signal() }
    }
}
