import VaultStorage
import VaultSync

/// What ``VaultStore/compact(as:progress:)`` removed.
public struct CompactionReport: Sendable, Hashable {
    /// Erased documents whose bytes this compaction removed (or found
    /// removed already).
    public var erasedDocuments: Int
    /// Destroyed vaults whose bytes this compaction removed (or found
    /// removed already).
    public var destroyedVaults: Int
    /// Records whose sealed bytes were removed by this call.
    public var recordsCompacted: Int
    /// Bytes of sealed content removed from the store's files by this call.
    public var bytesRemoved: UInt64

    /// A report (for tests of hosts that record them).
    public init(erasedDocuments: Int = 0, destroyedVaults: Int = 0, recordsCompacted: Int = 0, bytesRemoved: UInt64 = 0) {
        (self.erasedDocuments, self.destroyedVaults, self.recordsCompacted, self.bytesRemoved) =
            (erasedDocuments, destroyedVaults, recordsCompacted, bytesRemoved)
    }
}

extension VaultStore {
    /// Removes from the store's files the sealed bytes of every document
    /// erased and every vault destroyed since the last compaction: each
    /// record's ciphertext (metadata, content chunks, and for a destroyed
    /// vault its events and audit trail) is replaced by zeros, the space
    /// returned to the file system where it can punch holes. Afterwards no
    /// byte of that ciphertext is in any file of the store; what stays is
    /// each record's 48-byte header as stored (kind, position, key slot
    /// number, a version's masked document id) and its Merkle leaf hash, so every
    /// checkpoint, proof, trail chain and `verify(against:)` still holds.
    ///
    /// **Online**: readers and writers go on (a reader that meets a record
    /// while it is rewritten reads it again); compactions and backups take
    /// turns. **Crash-safe**: each batch is journaled before a frame is
    /// touched and finished at the next open after a crash; what to remove
    /// is recorded with each erasure and destruction, atomically, so a
    /// compaction cut short is simply run again (it is idempotent). Needs
    /// no free space.
    ///
    /// For configured reviewers (the operator, or the host's maintenance
    /// job acting as one), recorded in their own review stream like
    /// ``rotateMasterKey(to:as:)``. The erasure and destruction tombstones,
    /// their audit entries, and the copies of a destroyed vault's entries
    /// in professionals' activity streams (sealed under a store key) stay.
    /// Copies made before (backups, snapshots of the disk) keep what they
    /// held: see Lifecycle.md.
    ///
    /// Cost: one walk of each affected vault's stream (and, destroyed, of
    /// its audit trail's), then per record a read of its header and first
    /// bytes (of a version or other stream record, its whole payload,
    /// hashed against its Merkle leaf before its prefix is sealed; a
    /// content chunk's payload is never read), a small write and a hole
    /// punched, and two `fdatasync`s per batch of up to 1,024 records.
    ///
    /// `progress`, for a progress bar, is called after each batch with
    /// the fraction of the records to compact done (0 to 1).
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/corrupted``,
    ///   ``PatientVaultError/Code/durabilityLost`` (a failed write or sync:
    ///   the store stops; the next open finishes the batch).
    @discardableResult
    public func compact(
        as principal: Principal, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(PatientVaultError) -> CompactionReport {
        try await recordStoreLevelAccess(.compact, by: principal, target: "compaction")
        let report: CompactionReport
        do {
            report = try await translatingErrorsAsync { () async throws -> CompactionReport in
                try await compactionRuns.withGate { try await compactPendingTickets(progress: progress) }
            }
        } catch { throw lifecycle.reported(error) }
        logger.info(
            "patientvault: compaction finished",
            metadata: ["records": "\(report.recordsCompacted)", "bytes": "\(report.bytesRemoved)"])
        return report
    }

    /// What the next ``compact(as:progress:)`` would remove: how many erased
    /// documents and destroyed vaults wait for it. A host operation (like
    /// ``checkpoint()``): counts only, no vault named, no audit entry.
    /// Cost: a walk of the compaction stream since the last compaction.
    public func compactionBacklog() async throws(PatientVaultError) -> (erasedDocuments: Int, destroyedVaults: Int) {
        try ensureOpen()
        return try await translatingErrorsAsync { () async throws -> (erasedDocuments: Int, destroyedVaults: Int) in
            var erased = Set<[UInt8]>(), destroyed = Set<StreamID>()
            for (_, ticket) in try await pendingCompactionTickets() {
                switch ticket {
                case .erasedDocument(let vault, let document, _): erased.insert(vault.bytes + document.bytes)
                case .destroyedVault(let vault, _): destroyed.insert(vault)
                case .done: break
                }
            }
            return (erased.count, destroyed.count)
        }
    }

    /// The tickets after the newest `done` mark, oldest first, with their
    /// sequence numbers.
    private func pendingCompactionTickets() async throws -> [(sequence: UInt64, ticket: CompactionTicket)] {
        let stream = keys.compactionStream
        let broken = PatientVaultError(.corrupted, "a compaction ticket is damaged")
        var cutoff: UInt64?
        var pending: [(UInt64, CompactionTicket)] = []
        // Only durable tickets: an erasure or destruction written but not
        // yet synced may be lost to a power cut, and its records with it.
        let durable = engine.durableRecordCount
        try await engine.visitNewestFirst(stream) { record in
            if record.sequence > durable { return true }
            if let cutoff, record.sequence <= cutoff { return false }
            let body = try RecordCodec.openStoreRecord(record, kind: .compaction, key: keys.lifecycle, stream: stream, broken: broken)
            let ticket: CompactionTicket
            do { ticket = try CompactionTicket.decode(body) } catch { throw broken }
            if case .done(let through) = ticket {
                // The newest mark: what it covers is done. Tickets between
                // it and what it covers came in while that run went on.
                if cutoff == nil { cutoff = through }
            } else {
                pending.append((record.sequence, ticket))
            }
            return true
        }
        return pending.filter { $0.0 > (cutoff ?? 0) }.reversed()
    }

    /// Compacts what the pending tickets name: each vault's stream walked
    /// once (for all its erased documents), each destroyed vault's streams
    /// whole, then one call of the engine; then the `done` mark.
    private func compactPendingTickets(progress: (@Sendable (Double) -> Void)?) async throws -> CompactionReport {
        let tickets = try await pendingCompactionTickets()
        var report = CompactionReport()
        guard let newest = tickets.last?.sequence else { return report }
        var erased: [StreamID: Set<DocumentID>] = [:]
        var destroyed = Set<StreamID>()
        var references: [RecordReference] = []
        for (_, ticket) in tickets {
            switch ticket {
            case .erasedDocument(let vault, let document, let chunks):
                erased[vault, default: []].insert(document)
                references += chunks
            case .destroyedVault(let vault, let chunks):
                destroyed.insert(vault)
                references += chunks
            case .done:
                continue
            }
        }
        for (vault, documents) in erased where !destroyed.contains(vault) {
            try await engine.visitNewestFirst(vault) { record in
                let header = try RecordHeader.decode(record.payload, mask: keys.headerMask)
                if header.kind == .documentVersion, let id = header.document, documents.contains(id) { references.append(record.reference) }
                return true
            }
        }
        // Durable records only: a read decided before a vault's
        // destruction may still append its (batched) entry to the vault's
        // trail; the next compaction takes it.
        let durable = engine.durableRecordCount
        for vault in destroyed {
            for stream in [vault, keys.auditStream(of: vault)] {
                try await engine.visitNewestFirst(stream) { record in
                    if record.sequence <= durable { references.append(record.reference) }
                    return true
                }
            }
        }
        // In slices of a compaction batch, for the progress between them.
        let slice = 1_024
        for start in stride(from: 0, to: references.count, by: slice) {
            let result = try await engine.compact(
                Array(references[start..<min(start + slice, references.count)]), keepingPrefix: RecordHeader.size)
            report.recordsCompacted += result.compacted
            report.bytesRemoved += result.bytesRemoved
            progress?(Double(min(start + slice, references.count)) / Double(references.count))
        }
        report.erasedDocuments = erased.values.reduce(0) { $0 + $1.count }
        report.destroyedVaults = destroyed.count
        let mark = try CompactionTicket.done(through: newest).sealed(keys: keys)
        _ = try await engine.append([mark], keySlotWrites: [], durability: .durable, mayUseReserve: false).wait()
        pipeline.metrics.compactedBytes.increment(by: Int64(clamping: report.bytesRemoved))
        return report
    }
}

/// What ``VaultStore/scrub(as:progress:)`` checked and repaired.
public struct ScrubReport: Sendable, Hashable {
    /// Records read whole and checked.
    public var recordsChecked: Int
    /// Records whose damage (a header byte, a payload byte, padding) was
    /// restored where its value is proven and written back.
    public var recordsRestored: Int
    /// Records damaged beyond a proven repair (each reads as `corrupted`:
    /// restore them from a backup).
    public var recordsDamaged: Int

    /// A report (for tests of hosts that record them).
    public init(recordsChecked: Int = 0, recordsRestored: Int = 0, recordsDamaged: Int = 0) {
        (self.recordsChecked, self.recordsRestored, self.recordsDamaged) = (recordsChecked, recordsRestored, recordsDamaged)
    }
}

extension VaultStore {
    /// Reads every record of the store's files and writes back, synced,
    /// each damaged byte a read would restore in memory: one byte of a
    /// record's header (its CRC and MAC prove the value), of its payload
    /// (its Merkle leaf, checked against the tree's root, proves it) or of
    /// its padding (zeros). Reads already answer right through such a
    /// byte; the file keeps it until a scrub, and a backup's restore or
    /// ``verify(against:)``, which hash the bytes as stored, report it.
    /// Run it when the log reports a restored byte, then make a full
    /// backup (an incremental one keeps what it copied before).
    ///
    /// **Online**: readers and writers go on (the durable records are
    /// walked); compactions, backups and ``close()`` take turns with it
    /// (`close()` stops it at its next record: `closed`). For configured reviewers, recorded in their own
    /// review stream like ``compact(as:progress:)``. A store in memory or
    /// on PostgreSQL has no files of its own to scrub: the report is empty.
    ///
    /// Cost: one sequential read of the log, a checksum of every record,
    /// and a hash and an inclusion proof for each damaged one.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/corrupted`` (a frame header no byte
    ///   restores: the walk cannot go past it),
    ///   ``PatientVaultError/Code/durabilityLost`` (a failed write or sync:
    ///   the store stops).
    @discardableResult
    public func scrub(
        as principal: Principal, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(PatientVaultError) -> ScrubReport {
        try await recordStoreLevelAccess(.scrub, by: principal, target: "scrub")
        let result: ScrubResult
        do {
            result = try await translatingErrorsAsync { () async throws -> ScrubResult in
                try await compactionRuns.withGate { try await engine.scrub(progress: progress) }
            }
        } catch { throw lifecycle.reported(error) }
        logger.info(
            "patientvault: scrub finished",
            metadata: ["records": "\(result.recordsChecked)", "restored": "\(result.recordsRestored)", "damaged": "\(result.damaged.count)"])
        return ScrubReport(recordsChecked: result.recordsChecked, recordsRestored: result.recordsRestored, recordsDamaged: result.damaged.count)
    }
}
