import Foundation
import VaultSync
import VaultCrypto
import VaultStorage

/// Writes the reviewers' index, the per-professional copies of audit
/// entries, away from the operations they copy.
///
/// A copy written in its operation's atomic group would sit next to the
/// vault's records in the log, and a professional's activity stream id is
/// stable across vaults: a copy of the files would link the two. So an
/// operation only hands its copy over; copies are written later, in
/// batches of at least ``threshold`` that mix vaults and actors, shuffled,
/// in groups that hold no vault or audit record; the copies of one actor in
/// a batch share one record (``ActivityBatch``). Each batch ends with a
/// sealed *mark*: the log position before which every audit entry has its
/// copy written.
///
/// Durability follows the log's order: a batch is appended after the audit
/// groups it copies, so it survives a crash only if they do. What a crash
/// loses (copies still pending, or an unsynced batch) is rebuilt at open
/// from the audit records after the newest mark (``VaultStore/rebuildActivity()``).
///
/// Lock order: `flushLock`, then `pending`, then the engine's own lock.
/// `pending` is held only to queue an operation's group together with its
/// copy (so the mark never passes an entry whose copy is not queued);
/// `flushLock` serialises batches, so marks are written in log order.
final class ActivityWriter: Sendable {
    /// One copy waiting for its batch.
    struct Copy: Sendable {
        var stream: StreamID
        var vault: StreamID
        var entry: [UInt8]
    }

    /// Copies per batch, at least (a reviewer's query or `close()` flushes
    /// whatever is pending).
    static let threshold = 64
    /// Audit groups after which a mark is written even without copies (a
    /// store used by patients only), so that the rebuild at open never
    /// scans more than about this many groups' worth of log.
    static let markInterval = 1024

    /// The copies waiting for their batch, and the audit groups appended
    /// since the last mark.
    private let pending = Locked<(copies: [Copy], groupsSinceMark: Int)>(([], 0))
    /// Serialises batches; holds the position of the newest mark written.
    private let flushLock = Locked<LogCursor?>(nil)

    /// Copies not yet written.
    var pendingCount: Int { pending.withLock { $0.copies.count } }

    /// Appends an operation's group (with the destruction of `destroying`
    /// right behind it, where the engine queues one) and queues its
    /// activity copy, as one step under the writer's lock. Returns the
    /// group's ticket, the destruction's, and whether a batch (or a mark
    /// alone) is due.
    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool,
        thenDestroying destroying: [KeySlot] = [], copy: Copy?, to engine: any StorageEngine
    ) throws -> (AppendTicket, destruction: AppendTicket?, batchDue: Bool) {
        try queue(copy) {
            destroying.isEmpty
                ? (try engine.append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve), nil)
                : try engine.append(
                    records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve,
                    thenDestroying: destroying)
        }
    }

    /// Appends a group of one record sealed by the engine's writer
    /// (``DeferredRecord``: a read's audit entry that its caller does not
    /// wait for) and queues its activity copy, as
    /// ``append(_:keySlotWrites:durability:mayUseReserve:thenDestroying:copy:to:)`` does.
    func append(
        _ record: DeferredRecord, durability: Durability, mayUseReserve: Bool, copy: Copy?, to engine: any StorageEngine
    ) throws -> (AppendTicket, destruction: AppendTicket?, batchDue: Bool) {
        try queue(copy) { (try engine.append(record, durability: durability, mayUseReserve: mayUseReserve), nil) }
    }

    /// Runs `enqueue` (the engine's append) and queues `copy`, as one step
    /// under the writer's lock.
    private func queue(
        _ copy: Copy?, _ enqueue: () throws -> (AppendTicket, AppendTicket?)
    ) throws -> (AppendTicket, destruction: AppendTicket?, batchDue: Bool) {
        try pending.withLock { p in
            let (ticket, destruction) = try enqueue()
            if let copy { p.copies.append(copy) }
            p.groupsSinceMark += 1
            return (ticket, destruction, p.copies.count >= Self.threshold || p.groupsSinceMark >= Self.markInterval)
        }
    }

    /// Queues copies rebuilt at open.
    func enqueue(_ copies: [Copy]) {
        pending.withLock { $0.copies += copies }
    }

    /// Notes where the newest mark on disk stands (at open).
    func noteMark(_ cursor: LogCursor?) {
        flushLock.withLock { $0 = cursor }
    }

    /// Writes every pending copy and the mark, as one group. Copies of one
    /// stream keep their order (a reviewer reads them newest first); the
    /// streams come in random order, so a copy's place in the batch says
    /// nothing of which operation it copies. Returns the group's ticket, or
    /// nil if nothing was written: no copy pending, and, unless
    /// `markAlways`, whatever the log holds since the last mark (`close()`
    /// passes it, so that the next open has nothing to scan).
    ///
    /// On failure the copies go back to the queue: a later batch, or the
    /// rebuild at the next open, writes them.
    func flush(
        engine: any StorageEngine, durability: Durability, markAlways: Bool = false, seal: ([Copy]) throws -> [EngineRecord],
        mark: (LogCursor) throws -> EngineRecord
    ) throws -> AppendTicket? {
        try flushLock.withLock { lastMark in
            let (batch, position, groups) = pending.withLock { p -> ([Copy], LogCursor, Int) in
                defer { p.copies.removeAll(keepingCapacity: true) }
                return (p.copies, engine.endCursor, p.groupsSinceMark)
            }
            let markDue = (markAlways || groups >= Self.markInterval) && lastMark != position
            guard !batch.isEmpty || markDue else { return nil }
            do {
                var byStream: [StreamID: [Copy]] = [:]
                for copy in batch { byStream[copy.stream, default: []].append(copy) }
                var records: [EngineRecord] = []
                records.reserveCapacity(batch.count + 1)
                // One record per actor (or a few, past the batch limits).
                for stream in byStream.keys.shuffled() { records += try seal(byStream[stream]!) }
                records.append(try mark(position))
                // Copies of audit entries: they may use the audit reserve.
                let ticket = try engine.append(records, keySlotWrites: [], durability: durability, mayUseReserve: true)
                lastMark = position
                // Groups appended after the snapshot are after the mark too.
                pending.withLock { $0.groupsSinceMark = max(0, $0.groupsSinceMark - groups) }
                return ticket
            } catch {
                pending.withLock { $0.copies.insert(contentsOf: batch, at: 0) }
                throw error
            }
        }
    }
}

extension VaultStore {
    // MARK: - The reviewers' index

    /// Writes the pending activity copies now (``AuditWriter/flushActivity(markAlways:durability:)``).
    func flushActivity(markAlways: Bool = false) async throws(PatientVaultError) {
        try await auditWriter.flushActivity(markAlways: markAlways)
    }

    /// At open: rebuilds the copies that a crash lost, from the audit
    /// records after the newest mark, and writes them with a new mark.
    /// Cost: a scan of the log after the mark (nothing after a clean
    /// close); if it finds audit records, one keyed hash per vault (to find
    /// each audit stream's vault) and a load of each vault concerned.
    func rebuildActivity() async throws(PatientVaultError) {
        try await translatingErrorsAsync {
            let markStream = keys.activityMarkStream
            var start: LogCursor?
            let broken = PatientVaultError(.corrupted, "the activity mark is damaged")
            do {
                var newestMark: StoredRecord?
                try await engine.visitNewestFirst(markStream) { newestMark = $0; return false }
                if let newestMark {
                    let body = try RecordCodec.openStoreRecord(newestMark, kind: .activityMark, key: keys.activity, stream: markStream, broken: broken)
                    start = try body.withUnsafeBytes { raw in
                        var r = ByteReader(raw)
                        let cursor = try LogCursor(from: &r)
                        guard r.remaining == 0 else { throw broken }
                        return cursor
                    }
                }
            } catch where PatientVaultError.wrapping(error).code == .corrupted {
                // A damaged mark says nothing of where the copies stop: the
                // copies a crash lost before this open (none after a clean
                // close) are not rebuilt, and the store still opens (the
                // vaults' own trails, which the copies repeat, are whole).
                // A new mark at once, so that the damaged one is not the
                // newest at the next open (after a crash, that open
                // rebuilds from the new mark).
                logger.error("patientvault: the activity mark is damaged; activity copies lost in a crash are not rebuilt")
                do {
                    try await auditWriter.flushActivity(markAlways: true, durability: .durable)
                } catch {
                    // A full disk, say: the store still opens, the damaged
                    // mark stays the newest until a later one.
                    logger.warning("patientvault: no new activity mark could be written", metadata: ["error": "\(PatientVaultError.wrapping(error).code)"])
                    auditWriter.activity.noteMark(engine.endCursor)
                }
                return
            }
            auditWriter.activity.noteMark(start)
            var audits: [StoredRecord] = []
            do {
                try await engine.scan(from: start, only: { $0.map { StoreKeys.StreamClass(of: $0) == .audit } ?? false }) { record in
                    audits.append(record)
                    return true
                }
            } catch {
                // A damaged frame in the checkpointed part of the log (the
                // record it belongs to answers `corrupted` when read): the
                // copies after it are not rebuilt, the store still opens.
                logger.error("patientvault: activity rebuild stopped at a damaged frame")
            }
            // Everything up to here is covered: a close without writes
            // need not write another mark.
            defer { auditWriter.activity.noteMark(engine.endCursor) }
            guard !audits.isEmpty else { return }
            var vaultOf: [StreamID: StreamID] = [:]
            var vaults: [StreamID] = []
            engine.forEachStream { if StoreKeys.StreamClass(of: $0) == .vault { vaults.append($0) } }
            for vault in vaults { vaultOf[keys.auditStream(of: vault)] = vault }
            var loaded: [StreamID: VaultState] = [:]
            var copies: [ActivityWriter.Copy] = []
            var skipped = 0
            for record in audits {
                // One damaged vault stays that vault's problem (it answers
                // `corrupted` when used): the store still opens, without
                // the copies that vault's damage hides.
                // A compacted entry is a destroyed vault's: nothing to copy.
                if record.isCompacted { continue }
                guard let stream = record.stream, let vault = vaultOf[stream] else { skipped += 1; continue }
                do {
                    if loaded[vault] == nil { loaded[vault] = try await loader.load(vault) }
                    let entry = try loader.openAuditRecord(record, vault: loaded[vault]!)
                    if let holder = GrantHolder(entry.actor) {
                        copies.append(.init(stream: keys.activityStream(of: holder), vault: vault, entry: entry.encoded()))
                    }
                } catch {
                    skipped += 1
                }
            }
            if skipped > 0 { logger.error("patientvault: activity copies not rebuilt for damaged vaults", metadata: ["records": "\(skipped)"]) }
            auditWriter.activity.enqueue(copies)
            try await auditWriter.flushActivity(durability: .durable)
            logger.debug("patientvault: rebuilt activity copies", metadata: ["copies": "\(copies.count)"])
        }
    }
}
