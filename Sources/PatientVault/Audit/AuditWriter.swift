import Foundation
import Synchronization
import VaultCrypto
import VaultStorage

/// Writes audit entries: the one place that builds an entry from a
/// decision, seals it into its vault's audit stream with the anchor of the
/// vault's history, queues it in the same atomic group as the operation's
/// records, and hands the actor's copy to the ``ActivityWriter``.
///
/// Only ``OperationPipeline`` calls ``commit(_:principal:purpose:secret:vault:time:)``
/// (under the vault's lock), so "one entry per operation, in the
/// operation's group" is a property of the pipeline, not of each caller.
struct AuditWriter: Sendable {
    let keys: StoreKeys
    let configuration: Configuration
    let engine: any StorageEngine
    let activity: ActivityWriter
    let statistics: StatisticsWriter
    /// Set when a read's entry was written without a sync (batched audit
    /// mode): the store's flusher makes it durable within the bound.
    let flushPending: AuditFlushFlag
    /// Activity stream ids of recent actors, derived once each.
    let activityStreams = BoundedMemo<GrantHolder, StreamID>()

    /// What a commit queued: the group's ticket and the first access it
    /// recorded, if any.
    struct Committed {
        var ticket: AppendTicket
        var firstAccess: GrantHolder?
        /// The group of the vault's newest event, if it is not yet
        /// acknowledged: what this decision saw and a caller that does not
        /// wait for its own entry still waits for.
        var pendingEvent: AppendTicket?
        /// The destruction queued right behind the group
        /// (``Audited/destroysKeySlots``), if the engine queues destructions.
        var destruction: AppendTicket?
    }

    /// The activity stream of an actor, derived once per actor.
    func activityStream(of holder: GrantHolder) -> StreamID {
        activityStreams.value(holder) { keys.activityStream(of: holder) }
    }

    /// Whether the caller of `a` goes on without waiting for its entry: a
    /// read, listing or refusal of a read in ``AuditMode/batched(maxDelay:)``
    /// that does not ask for its own entry. The one test, for the
    /// pipeline's wait and for the commit.
    func callerSkipsWait<R>(_ a: Audited<R>) -> Bool {
        if !a.isWrite, !a.waitsForEntry, case .batched = configuration.auditMode { return true }
        return false
    }

    /// The durability of an operation's group: writes follow the store's
    /// durability; reads, listings and refusals follow ``AuditMode``.
    func durability(isWrite: Bool) -> Durability {
        if !isWrite, case .batched = configuration.auditMode { return .buffered }
        return configuration.durability == .synchronous ? .durable : .buffered
    }

    /// Queues `a`'s records and its audit entry (plus a first-access
    /// marker and its statistics record) as one atomic group, hands the
    /// actor's activity copy to the ``ActivityWriter`` (written later, in a
    /// batch of its own), and advances the vault's chain. Called under the
    /// vault's lock.
    func commit<R>(
        _ a: Audited<R>, principal: Principal, purpose: AccessPurpose, secret: Bool, vault: inout VaultState, time: Date
    ) throws -> Committed {
        let entry = self.entry(
            a.action, decision: a.decision, abandoned: a.abandoned, principal: principal, purpose: purpose, secret: secret,
            document: a.document, version: a.version, target: a.target, vault: vault, time: time)
        let pendingEvent = vault.lastEventTicket.flatMap { $0.isDone ? nil : $0 }
        var records = a.records
        var vaultRecords = a.vaultRecords
        // A professional's or organisation's first access is remembered in
        // the vault's stream, so the notification is raised once.
        var firstAccess: GrantHolder?
        // Not by reading a document hidden from the patient: the
        // notification would name its reader before the result is
        // announced in person.
        if a.decision.isAllowed, !a.abandoned, a.action.readsDocuments, !a.concernsDocumentHiddenFromPatient,
           let holder = GrantHolder(principal), !vault.accessedBy.contains(holder)
        {
            let body = VaultEventBody(time: time, by: principal, event: .firstAccess(holder))
            let header = RecordHeader(kind: .vaultEvent, sequence: vault.nextSequence + UInt64(vaultRecords), document: nil, version: 0, keySlot: nil)
            records.append(EngineRecord(
                stream: vault.pseudonym,
                payload: try RecordCodec.seal(header: header, body: body.encoded(), key: vault.keys.records, stream: vault.pseudonym)))
            vaultRecords += 1
            firstAccess = holder
            if let user = statistics.user(principal) { records.append(try statistics.record(.use(user))) }
        }
        // Every group that writes the vault's stream carries one statistics
        // record, of one size whatever it counts: a replacement, a policy
        // change or a first access by a principal without a tag carries
        // `.none`, so the group's shape does not tell what it was.
        if vaultRecords > 0, !records.contains(where: { $0.stream == keys.statisticsStream }) {
            records.append(try statistics.record(.none))
        }
        // The vault's own history as this group leaves it: the anchor its
        // audit record seals, checked when the vault loads.
        var head = vault.headHash
        if let newest = records.last(where: { $0.stream == vault.pseudonym }) {
            head = VaultAnchor.headHash(of: newest.digest, keys: vault.keys)
        }
        let anchor = VaultAnchor(records: vault.nextSequence + UInt64(vaultRecords), headHash: head)
        // Encoded once: sealed into the record, hashed into the chain, and
        // handed to the activity writer for the actor's copy.
        let encoded = entry.encoded()
        // An entry its caller waits for is synced as a write's is, in
        // batched mode too: an export's or a receipt's proofs are against
        // a checkpoint of what is durable.
        let durability = durability(isWrite: a.isWrite || a.waitsForEntry)
        let copy = GrantHolder(principal).map {
            ActivityWriter.Copy(stream: activityStream(of: $0), vault: vault.pseudonym, entry: encoded)
        }
        // An entry without records of the operation (a read, a listing, a
        // refusal) may use the space kept for audit entries on a full disk.
        let mayUseReserve = a.records.isEmpty && a.keySlotWrites.isEmpty
        let (ticket, destruction, batchDue): (AppendTicket, AppendTicket?, Bool)
        let skipsWait = callerSkipsWait(a)
        if skipsWait && records.isEmpty && a.keySlotWrites.isEmpty && a.destroysKeySlots.isEmpty {
            // The entry alone, and nobody waits for it: sealed by the
            // engine's writer (its place in the log fixed now), off the
            // caller's path. (An entry a caller waits for is sealed here:
            // the writer is one thread for every caller.)
            (ticket, destruction, batchDue) = try activity.append(
                deferredVaultRecord(entry, encoded: encoded, anchor: anchor, vault: vault), durability: durability,
                mayUseReserve: mayUseReserve, copy: copy, to: engine)
        } else {
            records.append(try vaultRecord(entry, encoded: encoded, anchor: anchor, vault: vault))
            (ticket, destruction, batchDue) = try activity.append(
                records, keySlotWrites: a.keySlotWrites, durability: durability,
                mayUseReserve: mayUseReserve, thenDestroying: a.destroysKeySlots, copy: copy, to: engine)
        }
        if batchDue { flushActivityInBackground() }
        // Flagged after the append, so the flush that clears it covers it.
        if skipsWait { flushPending.pending.store(true, ordering: .relaxed) }
        vault.nextSequence += UInt64(vaultRecords)
        vault.headHash = head
        vault.auditNext += 1
        vault.lastTicket = ticket
        vault.auditPreviousHash = AuditEntry.chainHash(of: encoded, key: vault.keys.auditChain)
        if let firstAccess { vault.accessedBy.insert(firstAccess) }
        return Committed(ticket: ticket, firstAccess: firstAccess, pendingEvent: pendingEvent, destruction: destruction)
    }

    /// Appends a store-level entry (a review, a statistics query) to the
    /// caller's own stream, durable like a write: reviewers and professionals in theirs, anyone
    /// else in a stream per principal kind, so that no attempt goes
    /// unrecorded.
    func commitStoreLevel(_ entry: AuditEntry, principal: Principal) throws -> AppendTicket {
        let ownStream: StreamID = switch principal {
        case .auditReviewer(let r): keys.reviewerStream(of: r)
        default: GrantHolder(principal).map { activityStream(of: $0) }
            ?? keys.reviewerStream(named: "kind-" + principal.kind)
        }
        let record = try activityRecord(entry.encoded(), vault: nil, stream: ownStream)
        return try engine.append([record], keySlotWrites: [], durability: durability(isWrite: true), mayUseReserve: true)
    }

    /// The entry for a decision.
    func entry(
        _ action: VaultAction, decision: AccessDecision, abandoned: Bool = false, principal: Principal, purpose: AccessPurpose,
        secret: Bool, document: DocumentID?, version: Int?, target: String?, vault: VaultState, time: Date
    ) -> AuditEntry {
        let auditPurpose: AuditPurpose
        var reasonHash: [UInt8]?
        switch principal {
        case .patient, .representative: auditPurpose = .personalAccess
        case .auditReviewer: auditPurpose = .audit
        case .system: auditPurpose = .system
        default:
            if case .breakGlass(let reason) = purpose {
                auditPurpose = .emergency
                // Keyed (with a key of its own), so a reader of the trail
                // cannot test guesses offline.
                reasonHash = BLAKE2b.hash(Array(reason.text.utf8), key: vault.keys.reasonHash)
            } else {
                auditPurpose = .care
            }
        }
        let onBehalf: Principal? = if case .representative = principal { .patient(vault.creation.holder) } else { nil }
        let outcome: AuditOutcome = !decision.isAllowed ? .denied : abandoned ? .abandoned : .allowed
        return AuditEntry(
            sequence: vault.auditNext, time: time, actor: principal, onBehalfOf: onBehalf, action: action,
            vaultID: vault.vaultID, document: document, version: version,
            outcome: outcome, rule: decision.rule, purpose: auditPurpose,
            legalBasis: decision.rule.legalBasis, isBreakGlass: decision.isBreakGlass, isSecretAccess: secret,
            target: target, reasonHash: reasonHash, matrixVersion: configuration.accessMatrix.version,
            previousHash: vault.auditPreviousHash)
    }

    /// The entry's record in the vault's audit stream.
    func vaultRecord(_ entry: AuditEntry, encoded: [UInt8], anchor: VaultAnchor, vault: VaultState) throws -> EngineRecord {
        let stream = vault.auditStream
        let header = RecordHeader(kind: .auditEntry, sequence: entry.sequence, document: nil, version: 0, keySlot: nil)
        return EngineRecord(
            stream: stream, payload: try Self.sealAuditRecord(header: header, encoded: encoded, anchor: anchor, key: vault.keys.audit, stream: stream))
    }

    /// The same record, sealed by the engine's writer when it writes it
    /// (``DeferredRecord``). It holds the vault's audit key until then.
    func deferredVaultRecord(_ entry: AuditEntry, encoded: [UInt8], anchor: VaultAnchor, vault: VaultState) -> DeferredRecord {
        let stream = vault.auditStream
        let key = vault.keys.audit
        let header = RecordHeader(kind: .auditEntry, sequence: entry.sequence, document: nil, version: 0, keySlot: nil)
        return DeferredRecord(
            stream: stream, payloadCount: RecordCodec.sealedCount(bodyCount: VaultAnchor.size + encoded.count, kind: .auditEntry)
        ) {
            try Self.sealAuditRecord(header: header, encoded: encoded, anchor: anchor, key: key, stream: stream)
        }
    }

    /// An audit record's payload: the anchor, then the encoded entry, sealed under `key`.
    private static func sealAuditRecord(
        header: RecordHeader, encoded: [UInt8], anchor: VaultAnchor, key: SymmetricKey, stream: StreamID
    ) throws -> [UInt8] {
        try RecordCodec.seal(header: header, bodyCount: VaultAnchor.size + encoded.count, key: key, stream: stream) { out in
            anchor.write(into: out)
            encoded.withUnsafeBytes { out.baseAddress!.advanced(by: VaultAnchor.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    // MARK: - Activity copies

    /// A record of an activity stream holding one entry (a store-level
    /// access, in the caller's own stream), sealed under the store's
    /// activity key.
    func activityRecord(_ encodedEntry: [UInt8], vault: StreamID?, stream: StreamID) throws -> EngineRecord {
        try activityRecord(copies: CollectionOfOne((vault: vault, entry: encodedEntry)), stream: stream)
    }

    /// A record of an activity stream holding a batch of copies of one
    /// actor's entries, oldest first (``ActivityBatch``), sealed under the
    /// store's activity key.
    func activityRecord(
        copies: some Collection<(vault: StreamID?, entry: [UInt8])>, stream: StreamID
    ) throws -> EngineRecord {
        let header = RecordHeader(kind: .activityEntry, sequence: 0, document: nil, version: 0, keySlot: nil)
        let payload = try RecordCodec.seal(
            header: header, bodyCount: ActivityBatch.encodedCount(entrySizes: copies.map(\.entry.count)), key: keys.activity,
            stream: stream
        ) { out in
            ActivityBatch.write(copies, into: out)
        }
        return EngineRecord(stream: stream, payload: payload)
    }

    /// Seals copies of one actor's entries into as few records as the
    /// batch limits allow (``ActivityBatch/maximumCopies``, ``ActivityBatch/maximumBodySize``).
    func activityCopyRecords(_ copies: [ActivityWriter.Copy]) throws -> [EngineRecord] {
        var records: [EngineRecord] = []
        var start = 0
        while start < copies.count {
            var end = start
            var size = 2
            while end < copies.count, end - start < ActivityBatch.maximumCopies,
                  end == start || size + ActivityBatch.copyOverhead + copies[end].entry.count <= ActivityBatch.maximumBodySize
            {
                size += ActivityBatch.copyOverhead + copies[end].entry.count
                end += 1
            }
            records.append(try activityRecord(
                copies: copies[start..<end].lazy.map { (vault: Optional($0.vault), entry: $0.entry) }, stream: copies[start].stream))
            start = end
        }
        return records
    }

    /// The mark record: the log cursor before which every audit entry has its copy.
    func activityMarkRecord(_ cursor: LogCursor) throws -> EngineRecord {
        var w = ByteWriter(capacity: LogCursor.byteCount)
        cursor.write(to: &w)
        let stream = keys.activityMarkStream
        let header = RecordHeader(kind: .activityMark, sequence: 0, document: nil, version: 0, keySlot: nil)
        return EngineRecord(stream: stream, payload: try RecordCodec.seal(header: header, body: w.bytes, key: keys.activity, stream: stream))
    }

    /// Writes the pending copies now, if any, and returns once they are
    /// written (so that a reviewer's walk sees them). `markAlways` writes a
    /// mark even without copies if the log moved since the last one.
    func flushActivity(markAlways: Bool = false, durability: Durability = .buffered) async throws(PatientVaultError) {
        do {
            let ticket = try activity.flush(
                engine: engine, durability: durability, markAlways: markAlways, seal: activityCopyRecords, mark: activityMarkRecord)
            if let ticket { _ = try await ticket.wait() }
        } catch {
            throw PatientVaultError.wrapping(error)
        }
    }

    /// Starts a batch in the background once enough copies are pending.
    func flushActivityInBackground() {
        Task.detached { [self] in try? await flushActivity() }
    }
}

/// Whether a batched audit entry waits for its flush.
final class AuditFlushFlag: Sendable {
    let pending = Atomic<Bool>(false)
}
