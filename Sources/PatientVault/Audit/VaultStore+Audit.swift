import Foundation
import Synchronization
import VaultSync
import VaultCrypto
import VaultStorage

/// What an operation reports to the audit machinery: the decision, what
/// the entry should name, and the result to hand back.
struct Audited<R> {
    var action: VaultAction
    var decision: AccessDecision
    var document: DocumentID? = nil
    var version: Int? = nil
    var target: String? = nil
    /// Records of the operation (vault stream first), written in the same
    /// atomic group as the entry; `vaultRecords` of them take the vault's
    /// next stream positions.
    var records: [EngineRecord] = []
    var vaultRecords: Int = 0
    var keySlotWrites: [(KeySlot, [UInt8])] = []
    /// Whether the group holds a write (always durable with its entry).
    var isWrite = false
    /// Whether the caller needs its entry written before it goes on, even
    /// in batched audit mode (reads of the trail walk what is written).
    var waitsForEntry = false
    /// The outcome for the caller.
    var result: Result<R, PatientVaultError>
    /// Applied to the vault's state once the group is acknowledged.
    var onAcknowledged: (@Sendable (inout VaultState) -> Void)? = nil
    var notifications: [VaultNotification.Kind] = []

    /// A refusal for bad input: no records, rule ``AccessRule/invalidRequest``
    /// (durable like its operation when that operation is a write).
    static func invalid(_ action: VaultAction, document: DocumentID? = nil, _ error: PatientVaultError) -> Audited {
        Audited(action: action, decision: .deny(.invalidRequest), document: document, isWrite: action.isWrite, result: .failure(error))
    }
}

extension VaultStore {
    // MARK: - The audited path

    /// Builds the request the decision sees for `vault` at `time`.
    func request(
        _ action: VaultAction, by principal: Principal, purpose: AccessPurpose = .care, vault: VaultState,
        document: DocumentMetadata? = nil, category: DocumentCategory? = nil, time: Date, policy: VaultPolicy? = nil
    ) -> AccessRequest {
        AccessRequest(
            action: action, principal: principal, purpose: purpose, holder: vault.creation.holder,
            policy: policy ?? vault.policy, document: document,
            // Only a version hidden from the patient needs its period (a walk
            // of the document's versions, on every listing's decisions).
            hiddenSince: document.flatMap {
                $0.confidentiality.contains(.hiddenFromPatient) ? vault.hiddenSince($0.id, upTo: $0.version) : nil
            },
            category: category,
            principalAuthoredAny: vault.authors.contains(principal),
            isConfiguredReviewer: isConfiguredReviewer(principal), matrix: configuration.accessMatrix, time: time)
    }

    func isConfiguredReviewer(_ principal: Principal) -> Bool {
        if case .auditReviewer(let r) = principal { return configuration.auditReviewers.contains(r) }
        return false
    }

    /// Checks who acts and the purpose and secrecy they asked for.
    static func validate(principal: Principal, asSystem: Bool, purpose: AccessPurpose, secret: Bool) throws(PatientVaultError) {
        if case .system = principal, !asSystem {
            throw PatientVaultError(.invalidArgument, "the system principal is the store's own; callers cannot act as it")
        }
        if case .breakGlass = purpose, principal.healthProfessional == nil {
            throw PatientVaultError(.invalidArgument, "only professionals and emergency regulators use break-glass")
        }
        let isPatient: Bool = if case .patient = principal { true } else { false }
        if secret && !isPatient {
            throw PatientVaultError(.invalidArgument, "only the patient makes a secret access")
        }
    }

    /// Checks a version number a caller asked for (stored as 32 bits, from 1).
    static func validate(version: Int?) throws(PatientVaultError) {
        if let version, !Limits.versions.contains(version) {
            throw PatientVaultError(.invalidArgument, "a version number is 1 to \(UInt32.max)")
        }
    }

    /// The one path of every audited operation on a vault: under the vault's
    /// lock, the caller's arguments are checked and `body` decides and
    /// prepares; the audit entry is queued with the operation's records as
    /// one atomic group; outside the lock, the group is awaited (durable for
    /// writes; per ``AuditMode`` for reads); then the result is returned or
    /// the denial thrown.
    ///
    /// A refusal for bad input (`invalidArgument`, thrown by the checks or
    /// by `body`) is audited like any other refusal, with rule
    /// ``AccessRule/invalidRequest`` and none of the operation's records: on
    /// an existing vault, every call leaves exactly one entry. Only a call
    /// on a vault that does not exist (or a closed store) leaves none.
    func audited<R>(
        _ action: VaultAction, _ patient: INS, by principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false,
        asSystem: Bool = false, _ body: (inout VaultState, Date) throws -> Audited<R>
    ) async throws(PatientVaultError) -> R {
        let (audited, ticket, firstAccess, vaultID) = try withVault(patient) {
            vault -> (Audited<R>, AppendTicket, GrantHolder?, String) in
            let now = configuration.clock.now()
            var a: Audited<R>
            var validSecret = secret
            do {
                try Self.validate(principal: principal, asSystem: asSystem, purpose: purpose, secret: secret)
                a = try body(&vault, now)
            } catch let e as PatientVaultError where e.code == .invalidArgument {
                a = Audited<R>.invalid(action, e)
                // A patient's secret access stays secret even when something
                // else in the call was invalid; only a secrecy nobody but the
                // patient may ask for is dropped.
                let isPatient: Bool = if case .patient = principal { true } else { false }
                validSecret = secret && isPatient
            }
            let (ticket, first) = try queueAudit(
                a, principal: principal, purpose: purpose, secret: validSecret, vault: &vault, time: now)
            return (a, ticket, first, vault.vaultID)
        }
        // In batched audit mode a read does not wait for its entry: the entry
        // is queued, in order, and written and synced within the bound.
        let waits: Bool = if !audited.isWrite, !audited.waitsForEntry, case .batched = configuration.auditMode { false } else { true }
        if waits {
            do {
                _ = try await ticket.wait()
            } catch {
                throw PatientVaultError.wrapping(error, vaultID: vaultID, documentID: audited.document)
            }
        }
        if audited.onAcknowledged != nil {
            _ = try? withVault(patient) { vault in audited.onAcknowledged?(&vault) }
        }
        let now = configuration.clock.now()
        var kinds = audited.notifications
        if firstAccess != nil { kinds.append(.firstAccess(principal)) }
        if audited.decision.isAllowed && audited.decision.isBreakGlass { kinds.append(.breakGlass(principal)) }
        for kind in kinds { notifier.emit(VaultNotification(patient: patient, vaultID: vaultID, kind: kind, time: now)) }
        return try audited.result.get()
    }

    /// Queues `a`'s records and its audit entry (plus a first-access
    /// marker) as one atomic group, hands the actor's activity copy to the
    /// ``ActivityWriter`` (written later, in a batch of its own), and
    /// advances the vault's chain. Called under the vault's lock.
    func queueAudit<R>(
        _ a: Audited<R>, principal: Principal, purpose: AccessPurpose, secret: Bool, vault: inout VaultState, time: Date
    ) throws -> (AppendTicket, GrantHolder?) {
        let entry = auditEntry(
            a.action, decision: a.decision, principal: principal, purpose: purpose, secret: secret,
            document: a.document, version: a.version, target: a.target, vault: vault, time: time)
        var records = a.records
        var vaultRecords = a.vaultRecords
        // A professional's or organisation's first access is remembered in
        // the vault's stream, so the notification is raised once.
        var firstAccess: GrantHolder?
        if a.decision.isAllowed, a.action.readsDocuments, let holder = GrantHolder(principal), !vault.accessedBy.contains(holder) {
            let body = VaultEventBody(time: time, by: principal, event: .firstAccess(holder))
            let header = RecordHeader(kind: .vaultEvent, sequence: vault.nextSequence + UInt64(vaultRecords), document: nil, version: 0, keySlot: nil)
            records.append(EngineRecord(
                stream: vault.pseudonym,
                payload: try sealRecord(header: header, body: body.encoded(), key: vault.keys.records, vault: vault.pseudonym)))
            vaultRecords += 1
            firstAccess = holder
            if let user = statisticsUser(principal) { records.append(try statisticsRecord(.use(user))) }
        }
        // The vault's own history as this group leaves it: the anchor its
        // audit record seals, checked when the vault loads.
        var head = vault.headHash
        if let newest = records.last(where: { $0.stream == vault.pseudonym }) {
            head = VaultAnchor.headHash(of: newest.payload, keys: vault.keys)
        }
        let anchor = VaultAnchor(records: vault.nextSequence + UInt64(vaultRecords), headHash: head)
        // Encoded once: sealed into the record, hashed into the chain, and
        // handed to the activity writer for the actor's copy.
        let encoded = entry.encoded()
        records.append(try auditRecord(entry, encoded: encoded, anchor: anchor, vault: vault))
        var durability = self.durability
        if !a.isWrite, case .batched = configuration.auditMode { durability = .buffered }
        let copy = GrantHolder(principal).map {
            ActivityWriter.Copy(stream: keys.activityStream(of: $0), vault: vault.pseudonym, entry: encoded)
        }
        // An entry without records of the operation (a read, a listing, a
        // refusal) may use the space kept for audit entries on a full disk.
        let (ticket, batchDue) = try activityWriter.append(
            records, keySlotWrites: a.keySlotWrites, durability: durability,
            mayUseReserve: a.records.isEmpty && a.keySlotWrites.isEmpty, copy: copy, to: engine)
        if batchDue { flushActivityInBackground() }
        // Flagged after the append, so the flush that clears it covers it.
        if !a.isWrite, case .batched = configuration.auditMode { auditFlush.pending.store(true, ordering: .relaxed) }
        vault.nextSequence += UInt64(vaultRecords)
        vault.headHash = head
        vault.auditNext += 1
        vault.auditPreviousHash = AuditEntry.chainHash(of: encoded, key: vault.keys.auditChain)
        if let firstAccess { vault.accessedBy.insert(firstAccess) }
        return (ticket, firstAccess)
    }

    /// The entry for a decision.
    func auditEntry(
        _ action: VaultAction, decision: AccessDecision, principal: Principal, purpose: AccessPurpose, secret: Bool,
        document: DocumentID?, version: Int?, target: String?, vault: VaultState, time: Date
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
        return AuditEntry(
            sequence: vault.auditNext, time: time, actor: principal, onBehalfOf: onBehalf, action: action,
            vaultID: vault.vaultID, document: document, version: version,
            outcome: decision.isAllowed ? .allowed : .denied, rule: decision.rule, purpose: auditPurpose,
            legalBasis: decision.rule.legalBasis, isBreakGlass: decision.isBreakGlass, isSecretAccess: secret,
            target: target, reasonHash: reasonHash, matrixVersion: configuration.accessMatrix.version,
            previousHash: vault.auditPreviousHash)
    }

    /// The entry's record in the vault's audit stream.
    func auditRecord(_ entry: AuditEntry, encoded: [UInt8], anchor: VaultAnchor, vault: VaultState) throws -> EngineRecord {
        let stream = keys.auditStream(of: vault.pseudonym)
        let header = RecordHeader(kind: .auditEntry, sequence: entry.sequence, document: nil, version: 0, keySlot: nil)
        return EngineRecord(
            stream: stream, payload: try sealRecord(header: header, body: anchor.encoded() + encoded, key: vault.keys.audit, vault: stream))
    }

    /// A record of an activity stream: the vault's pseudonym and the entry,
    /// sealed under the store's activity key.
    func activityRecord(_ encodedEntry: [UInt8], vault: StreamID?, stream: StreamID) throws -> EngineRecord {
        let header = RecordHeader(kind: .activityEntry, sequence: 0, document: nil, version: 0, keySlot: nil)
        let body = (vault?.bytes ?? [UInt8](repeating: 0, count: 32)) + encodedEntry
        return EngineRecord(stream: stream, payload: try sealRecord(header: header, body: body, key: keys.activity, vault: stream))
    }

    /// Reads the head of a vault's audit chain (at load) and checks the
    /// vault's history against the anchor it seals: a vault whose stream is
    /// shorter (or other) than its newest audit entry says is `corrupted`,
    /// never served.
    func loadAuditHead(into state: inout VaultState) throws {
        let stream = keys.auditStream(of: state.pseudonym)
        let broken = PatientVaultError(.corrupted, "the vault's history does not match its audit trail", vaultID: state.vaultID)
        // The creation and its entry are one atomic group: no vault lacks one.
        guard let head = engine.head(of: stream) else { throw broken }
        let (anchor, entry) = try openAuditRecordWithAnchor(try engine.read(head), vault: state)
        guard anchor.records == state.nextSequence, anchor.headHash == state.headHash else { throw broken }
        state.auditNext = entry.sequence + 1
        state.auditPreviousHash = entry.chainHash(key: state.keys.auditChain)
    }

    func openAuditRecord(_ record: StoredRecord, vault: VaultState) throws -> AuditEntry {
        try openAuditRecordWithAnchor(record, vault: vault).entry
    }

    func openAuditRecordWithAnchor(_ record: StoredRecord, vault: VaultState) throws -> (anchor: VaultAnchor, entry: AuditEntry) {
        let stream = keys.auditStream(of: vault.pseudonym)
        let header = try RecordHeader.decode(record.payload)
        let tampered = PatientVaultError(.corrupted, "an audit entry failed verification", vaultID: vault.vaultID)
        guard header.kind == .auditEntry, record.stream == stream else { throw tampered }
        let plaintext: [UInt8]
        do {
            plaintext = try openBody(record.payload, header: header, key: vault.keys.audit, vault: stream).plaintext
        } catch {
            throw tampered
        }
        guard plaintext.count > VaultAnchor.size else { throw tampered }
        let anchor = try VaultAnchor.decode(plaintext[..<VaultAnchor.size])
        let entry = try AuditEntry.decode(Array(plaintext[VaultAnchor.size...]))
        guard entry.sequence == header.sequence, entry.vaultID == vault.vaultID else { throw tampered }
        return (anchor, entry)
    }

    /// Every audit entry of a vault, newest first, checked one by one.
    func auditEntries(of vault: VaultState, _ visit: (AuditEntry) throws -> Bool) throws {
        try walkBack(
            keys.auditStream(of: vault.pseudonym),
            broken: PatientVaultError(.corrupted, "the audit chain is broken", vaultID: vault.vaultID)
        ) { try visit(try openAuditRecord($0, vault: vault)) }
    }
}

/// Fans notifications out to every listener.
/// Once finished (the store closed), a new listener gets a stream that is
/// already finished.
final class Notifier: Sendable {
    private let listeners = Locked<(streams: [UInt64: AsyncStream<VaultNotification>.Continuation], finished: Bool)>(([:], false))
    private let counter = Atomic<UInt64>(0)

    func stream() -> AsyncStream<VaultNotification> {
        let id = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<VaultNotification>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        continuation.onTermination = { [weak self] _ in _ = self?.listeners.withLock { $0.streams.removeValue(forKey: id) } }
        let open = listeners.withLock { l -> Bool in
            if !l.finished { l.streams[id] = continuation }
            return !l.finished
        }
        if !open { continuation.finish() }
        return stream
    }

    func emit(_ n: VaultNotification) {
        let all = listeners.withLock { Array($0.streams.values) }
        for c in all { c.yield(n) }
    }

    func finish() {
        let all = listeners.withLock { l -> [AsyncStream<VaultNotification>.Continuation] in
            let v = Array(l.streams.values)
            l.streams.removeAll()
            l.finished = true
            return v
        }
        for c in all { c.finish() }
    }
}

/// What a vault's audit record seals about the vault's own stream as the
/// record's group leaves it: how many records it has and a keyed hash of
/// the newest. Checked when the vault loads, so that a vault stream cut
/// short (a record edited out of it, a head pointer moved back) is caught
/// by its audit trail even where the engine's own checks could not see it.
struct VaultAnchor: Equatable {
    static let size = 8 + 16
    /// Records in the vault's stream.
    var records: UInt64
    /// Keyed BLAKE2b-128 of the newest record's payload.
    var headHash: [UInt8]

    static func headHash(of payload: [UInt8], keys: VaultKeys) -> [UInt8] {
        BLAKE2b.hash(payload, outputByteCount: 16, key: keys.auditChain)
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.write(records)
        w.write(bytes: headHash)
        return w.bytes
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws -> VaultAnchor {
        try Array(bytes).withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let anchor = VaultAnchor(records: try r.read(), headHash: try r.read(count: 16))
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return anchor
        }
    }
}
