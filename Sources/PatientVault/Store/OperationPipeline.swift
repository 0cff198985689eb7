import Foundation
import Synchronization
import VaultCrypto
import VaultStorage
import VaultSync

/// What an operation reports to the pipeline when it is decided: the
/// decision, what the entry should name, the records to commit with it,
/// and the result to hand back.
///
/// A denial (or an abandoned call) carries no work, by construction: its
/// records, key slots, state changes and notifications read as empty
/// whatever was set, so no path can commit the work of a refused call.
struct Audited<R> {
    var action: VaultAction
    var decision: AccessDecision
    var document: DocumentID?
    var version: Int?
    var target: String?
    /// Whether the group holds a write (always durable with its entry).
    var isWrite: Bool
    /// Allowed, but not carried out: the caller's content failed, the task
    /// was cancelled, or a concurrent write won. The entry says
    /// ``AuditOutcome/abandoned`` and no records go with it.
    var abandoned: Bool
    /// Whether the caller needs its entry on disk before it goes on, even
    /// in batched audit mode: appended durable, as a write's (reads of the
    /// trail walk what is written; an export's and a receipt's proofs are
    /// against a checkpoint of what is durable).
    var waitsForEntry: Bool
    /// The outcome for the caller.
    var result: Result<R, PatientVaultError>

    /// What only an allowed call that is carried out commits.
    private struct Work {
        var records: [EngineRecord]
        var vaultRecords: Int
        var keySlotWrites: [(KeySlot, [UInt8])]
        var onQueued: ((inout VaultState) -> Void)?
        var onAcknowledged: (@Sendable (inout VaultState, [RecordReference]) -> Void)?
        var notifications: [VaultNotification.Kind]
        var destroysKeySlots: [KeySlot] = []
        var notificationsHiddenFromRepresentatives = false
        var concernsDocumentHiddenFromPatient = false
    }

    private var work: Work
    /// Whether the work goes through: allowed and not abandoned.
    private var carriesWork: Bool { decision.isAllowed && !abandoned }

    /// Records of the operation (vault stream first), written in the same
    /// atomic group as the entry; `vaultRecords` of them take the vault's
    /// next stream positions. Empty for a denial.
    var records: [EngineRecord] {
        get { carriesWork ? work.records : [] }
        set { work.records = newValue }
    }
    var vaultRecords: Int {
        get { carriesWork ? work.vaultRecords : 0 }
        set { work.vaultRecords = newValue }
    }
    var keySlotWrites: [(KeySlot, [UInt8])] {
        get { carriesWork ? work.keySlotWrites : [] }
        set { work.keySlotWrites = newValue }
    }
    /// Applied to the vault's state under the same lock hold once the
    /// group is queued (so a failed append changes nothing).
    var onQueued: ((inout VaultState) -> Void)? {
        get { carriesWork ? work.onQueued : nil }
        set { work.onQueued = newValue }
    }
    /// Applied to the vault's state once the group is acknowledged, with
    /// where its records went.
    var onAcknowledged: (@Sendable (inout VaultState, [RecordReference]) -> Void)? {
        get { carriesWork ? work.onAcknowledged : nil }
        set { work.onAcknowledged = newValue }
    }
    var notifications: [VaultNotification.Kind] {
        get { carriesWork ? work.notifications : [] }
        set { work.notifications = newValue }
    }
    /// Whether the operation's notifications (and a first access it
    /// makes) concern a document hidden from legal representatives
    /// (``VaultNotification/hiddenFromRepresentatives``).
    var notificationsHiddenFromRepresentatives: Bool {
        get { work.notificationsHiddenFromRepresentatives }
        set { work.notificationsHiddenFromRepresentatives = newValue }
    }
    /// Whether the operation reads a document hidden from the patient now
    /// (``ConfidentialityFlags/hiddenFromPatient``, not yet released): its
    /// reader's first access is then neither recorded nor notified, as the
    /// trail holds back every entry about such a document. The next
    /// allowed read of anything else records it.
    var concernsDocumentHiddenFromPatient: Bool {
        get { work.concernsDocumentHiddenFromPatient }
        set { work.concernsDocumentHiddenFromPatient = newValue }
    }
    /// Key slots destroyed once the group is durable (an erasure's), before
    /// the caller is answered: queued right behind the group when the
    /// engine can (``StorageEngine/append(_:keySlotWrites:durability:mayUseReserve:thenDestroying:)``),
    /// so that one pass of its writer makes both durable; destroyed after
    /// the group's acknowledgement otherwise.
    var destroysKeySlots: [KeySlot] {
        get { carriesWork ? work.destroysKeySlots : [] }
        set { work.destroysKeySlots = newValue }
    }

    init(
        action: VaultAction, decision: AccessDecision, document: DocumentID? = nil, version: Int? = nil,
        target: String? = nil, records: [EngineRecord] = [], vaultRecords: Int = 0, keySlotWrites: [(KeySlot, [UInt8])] = [],
        isWrite: Bool = false, abandoned: Bool = false, waitsForEntry: Bool = false, result: Result<R, PatientVaultError>,
        onQueued: ((inout VaultState) -> Void)? = nil,
        onAcknowledged: (@Sendable (inout VaultState, [RecordReference]) -> Void)? = nil,
        notifications: [VaultNotification.Kind] = []
    ) {
        (self.action, self.decision, self.document, self.version, self.target) = (action, decision, document, version, target)
        (self.isWrite, self.abandoned, self.waitsForEntry, self.result) = (isWrite, abandoned, waitsForEntry, result)
        work = Work(
            records: records, vaultRecords: vaultRecords, keySlotWrites: keySlotWrites, onQueued: onQueued,
            onAcknowledged: onAcknowledged, notifications: notifications)
    }

    /// Makes `body` the operation's one vault record (a `vaultEvent` at the
    /// vault's next position, sealed under its record key), applied to the
    /// vault's state as soon as it is queued, under the same hold of the
    /// vault's lock: every decision taken after it, whose entry comes after
    /// it in the log, sees it (a block binds the blocked professional's
    /// next read even before the block's sync returns; a document whose
    /// erasure is queued takes no new version). Its group can only be
    /// durable before theirs, and a failed write stops the store.
    mutating func write(event body: VaultEventBody, to vault: VaultState) throws {
        let header = RecordHeader(kind: .vaultEvent, sequence: vault.nextSequence, document: nil, version: 0, keySlot: nil)
        records = [EngineRecord(
            stream: vault.pseudonym,
            payload: try RecordCodec.seal(header: header, body: body.encoded(), key: vault.keys.records, stream: vault.pseudonym))]
        vaultRecords = 1
        // (`lastTicket` is already this group's: the writer set it.)
        onQueued = { v in
            v.apply(body)
            v.lastEventTicket = v.lastTicket
        }
    }

    /// A refusal for bad input: no records, rule ``AccessRule/invalidRequest``
    /// (durable like its operation when that operation is a write).
    static func invalid(_ action: VaultAction, document: DocumentID? = nil, _ error: PatientVaultError) -> Audited {
        Audited(action: action, decision: .deny(.invalidRequest), document: document, isWrite: action.isWrite, result: .failure(error))
    }

    /// What the decision lets through: an allowed operation as it is; a
    /// denial as its entry alone (its work already reads as empty: see the
    /// type), with its caller's result made `accessDenied` with the rule
    /// (or the failure the operation chose, such as `unknownDocument` for
    /// what the caller may not see): an operation cannot hand a denied
    /// caller a success. The pipeline applies it to every operation before
    /// committing.
    func limitedByDecision(vaultID: String) -> Audited {
        guard !decision.isAllowed else { return self }
        var denied = Audited(
            action: action, decision: decision, document: document, version: version, target: target, isWrite: isWrite,
            waitsForEntry: waitsForEntry, result: result)
        switch result {
        case .failure(let error) where error.code != .accessDenied:
            break
        default:
            denied.result = .failure(PatientVaultError(
                .accessDenied, "\(action) denied", vaultID: vaultID, documentID: document, rule: decision.rule))
        }
        return denied
    }

    /// The same operation, abandoned after an allowed decision with `error`.
    func abandoning(_ error: PatientVaultError) -> Audited {
        Audited(
            action: action, decision: decision, document: document, version: version, target: target,
            isWrite: isWrite, abandoned: true, result: .failure(error))
    }
}

extension PatientVaultError {
    /// A denial's result, as an operation states it; the pipeline gives the
    /// caller `accessDenied` with the deciding rule instead
    /// (``Audited/limitedByDecision(vaultID:)``).
    static var denied: PatientVaultError { PatientVaultError(.accessDenied, "denied") }
}

/// The first phase's answer: the operation ends now (a read, a denial, a
/// small write: its records and entry are committed under the same lock
/// hold), or it has work to do outside the lock first.
enum Decided<Work, R> {
    case commit(Audited<R>)
    /// Allowed: `Work` goes to the prepare phase; `allowed` is what the
    /// entry records if that phase fails (``Audited/abandoning(_:)``).
    case prepare(Work, allowed: Audited<R>)
}

/// Thrown by a prepare phase for the caller's bad input it found (only
/// those: an error of the caller's content source, of storage, or a
/// cancellation is not): the entry records a refusal, rule
/// ``AccessRule/invalidRequest``, and the caller gets `error`.
struct BadInputInPreparation: Error {
    var error: PatientVaultError
}

/// Who acts, how, on which vault: the arguments every audited operation shares.
struct Caller {
    var patient: INS
    var principal: Principal
    var purpose: AccessPurpose = .care
    var secret = false
    /// The store's own scheduled events act as ``Principal/system``.
    var asSystem = false
    /// The document the call is about, named by a refusal for bad input.
    var document: DocumentID? = nil
}

/// The one path of every operation on a vault: **decide** (under the
/// vault's lock: the caller's arguments are checked, the access decision
/// taken, a result or the work to do chosen), **prepare** (outside every
/// lock: encryption and content writes), **commit** (under the lock again:
/// the operation's records and exactly one audit entry, as one atomic group,
/// through ``AuditWriter``), **wait** (for durability: always for writes,
/// per ``AuditMode`` for reads), **publish** (notifications, only once
/// durable).
///
/// A refusal is the same path with no records; bad input
/// (`invalidArgument`) is a refusal with rule ``AccessRule/invalidRequest``;
/// a prepare phase that fails is committed as ``AuditOutcome/abandoned``.
/// So on an existing vault every call leaves exactly one entry: the type
/// commits an entry on every way out of a decision. Only a call on a vault
/// that does not exist (or a closed store) leaves none. Threads: decide and
/// commit run on the caller's task (the cooperative pool), holding the
/// vault's lock for memory work only; the wait suspends the task while the
/// engine's committer thread syncs. A class: every call of the API goes
/// through it, and a struct of its size was copied (a retain per field)
/// on the way.
final class OperationPipeline: Sendable {
    let cache: VaultCache
    let loader: VaultLoader
    let audit: AuditWriter
    let notifier: Notifier
    let keys: StoreKeys
    let configuration: Configuration
    let lifecycle: StoreLifecycle
    /// The number of vaults: counted from the engine's streams at open,
    /// less the destroyed ones, then one more at every acknowledged
    /// creation and one less at every destruction (``VaultStore/vaultCount``).
    let vaultCount: Locked<Int>
    /// Closed and destroyed vaults (a destroyed vault refuses every call).
    let lifecycleIndex: VaultLifecycleIndex
    /// Counts and times every operation (``StoreMetrics``).
    let metrics: StoreMetrics

    init(
        cache: VaultCache, loader: VaultLoader, audit: AuditWriter, notifier: Notifier, keys: StoreKeys,
        configuration: Configuration, lifecycle: StoreLifecycle, vaultCount: Locked<Int>, lifecycleIndex: VaultLifecycleIndex,
        metrics: StoreMetrics
    ) {
        (self.cache, self.loader, self.audit, self.notifier, self.keys) = (cache, loader, audit, notifier, keys)
        (self.configuration, self.lifecycle, self.vaultCount, self.lifecycleIndex, self.metrics) =
            (configuration, lifecycle, vaultCount, lifecycleIndex, metrics)
    }

    /// An operation with no work outside the lock (reads, listings, policy
    /// changes, scheduled events): decide and commit in one lock hold.
    func run<R>(
        _ action: VaultAction, _ caller: Caller, decide: (inout VaultState, Date) throws -> Audited<R>
    ) async throws(PatientVaultError) -> R {
        let started = ContinuousClock.now
        let pseudonym = keys.vaultPseudonym(for: caller.patient)
        let (a, committed, vaultID) = try await withVault(pseudonym) { vault -> (Audited<R>, AuditWriter.Committed, String) in
            let now = configuration.currentTime()
            let (a, secret) = try Self.checked(action, caller) { () throws -> Audited<R> in try decide(&vault, now) } invalid: { .invalid(action, document: caller.document, $0) }
            let (done, committed) = try commitOrAbandon(a, principal: caller.principal, purpose: caller.purpose, secret: secret, vault: &vault, time: now)
            return (done, committed, vault.vaultID)
        }
        return try await finish(a, committed, caller: caller, pseudonym: pseudonym, vaultID: vaultID, started: started)
    }

    /// An operation in the pipeline's five phases.
    func run<Work, Ready, R>(
        _ action: VaultAction, _ caller: Caller,
        decide: (inout VaultState, Date) throws -> Decided<Work, R>,
        prepare: (Work) async throws -> Ready,
        commit: (inout VaultState, Ready, Date) throws -> Audited<R>
    ) async throws(PatientVaultError) -> R {
        let started = ContinuousClock.now
        let principal = caller.principal
        // The pseudonym (a keyed hash of the INS) once per operation.
        let pseudonym = keys.vaultPseudonym(for: caller.patient)
        // 1. Decide; a refusal commits its entry in the same hold.
        let first = try await withVault(pseudonym) { vault -> Phase<Work, R> in
            let now = configuration.currentTime()
            let (decided, secret) = try Self.checked(action, caller) { () throws -> Decided<Work, R> in try decide(&vault, now) } invalid: {
                .commit(.invalid(action, document: caller.document, $0))
            }
            switch decided {
            case .commit(let a):
                let (done, committed) = try commitOrAbandon(a, principal: principal, purpose: caller.purpose, secret: secret, vault: &vault, time: now)
                return .committed(done, committed, vault.vaultID)
            case .prepare(let work, let allowed):
                return .prepare(work, allowed, vault.vaultID)
            }
        }
        switch first {
        case .committed(let a, let committed, let vaultID):
            return try await finish(a, committed, caller: caller, pseudonym: pseudonym, vaultID: vaultID, started: started)
        case .prepare(let work, let allowed, let vaultID):
            // 2. Prepare, outside every lock.
            var prepared: Result<Ready, PatientVaultError>
            var preparedBadInput = false
            do {
                prepared = .success(try await prepare(work))
                try Task.checkCancellation()
            } catch let bad as BadInputInPreparation {
                prepared = .failure(bad.error)
                preparedBadInput = true
            } catch {
                prepared = .failure(PatientVaultError.wrapping(error, vaultID: vaultID, documentID: allowed.document))
            }
            // 3. Commit: the records and the entry, or the entry alone.
            let (a, committed) = try await withVault(pseudonym) { vault -> (Audited<R>, AuditWriter.Committed) in
                let now = configuration.currentTime()
                var a: Audited<R>
                switch prepared {
                case .success(let ready):
                    // However the commit phase ends, the call leaves its
                    // entry: bad input found only now (an imported value
                    // this store cannot keep) as a refusal, anything else
                    // (a concurrent write that won) as abandoned.
                    do {
                        a = try commit(&vault, ready, now)
                    } catch let e as PatientVaultError where e.code == .invalidArgument {
                        a = .invalid(action, document: allowed.document, e)
                    } catch {
                        a = allowed.abandoning(PatientVaultError.wrapping(error, vaultID: vaultID, documentID: allowed.document))
                    }
                case .failure(let e) where preparedBadInput:
                    // Bad input found only in the prepare phase (content
                    // larger than a version holds, an import whose content
                    // does not match its metadata): a refusal, as in the
                    // commit phase.
                    a = .invalid(action, document: allowed.document, e)
                case .failure(let e):
                    a = allowed.abandoning(e)
                }
                return try commitOrAbandon(a, principal: principal, purpose: caller.purpose, secret: caller.secret, vault: &vault, time: now)
            }
            return try await finish(a, committed, caller: caller, pseudonym: pseudonym, vaultID: vaultID, started: started)
        }
    }

    /// Checks the caller, then runs the decision; bad input, or a request
    /// the vault's state rules out (`conflict`: reopening a vault whose
    /// retention has ended), becomes a refusal with rule
    /// ``AccessRule/invalidRequest``, audited like any other, the caller
    /// getting its own error. Returns the decision and the secrecy the
    /// entry records.
    private static func checked<D>(
        _ action: VaultAction, _ caller: Caller, decide: () throws -> D, invalid: (PatientVaultError) -> D
    ) throws -> (D, secret: Bool) {
        do {
            try validate(
                principal: caller.principal, asSystem: caller.asSystem, purpose: caller.purpose, secret: caller.secret, holder: caller.patient)
            return (try decide(), caller.secret)
        } catch let e as PatientVaultError where e.code == .invalidArgument || e.code == .conflict {
            // A patient's secret access stays secret even when something
            // else in the call was invalid; only a secrecy nobody but the
            // patient may ask for is dropped.
            let isHolder: Bool = if case .patient(let ins) = caller.principal { ins == caller.patient } else { false }
            return (invalid(e), caller.secret && isHolder)
        }
    }

    /// 4. Wait, then 5. publish. In batched audit mode a read does not wait
    /// for its entry: the entry is queued, in order, and made durable
    /// within the bound.
    private func finish<R>(
        _ a: Audited<R>, _ committed: AuditWriter.Committed, caller: Caller, pseudonym: StreamID, vaultID: String,
        started: ContinuousClock.Instant
    ) async throws(PatientVaultError) -> R {
        // Counted as its entry records it, timed to its answer.
        defer {
            let outcome: AuditOutcome = a.abandoned ? .abandoned : a.decision.isAllowed ? .allowed : .denied
            metrics.record(a.action, outcome, since: started)
        }
        let waits = !audit.callerSkipsWait(a)
        var references: [RecordReference] = []
        if waits {
            do {
                references = try await committed.ticket.wait()
                if let destruction = committed.destruction {
                    _ = try await destruction.wait()
                } else if !a.destroysKeySlots.isEmpty {
                    try await audit.engine.keySlots.destroyKeySlots(a.destroysKeySlots)
                }
            } catch {
                throw vaultFailure(error, pseudonym: pseudonym, document: a.document)
            }
        } else if let event = committed.pendingEvent, a.decision.isAllowed {
            // A read that does not wait for its own entry still waits for
            // the vault event it was decided on (a grant, a release) to be
            // durable: nothing is handed out on an event a failed sync
            // could take back.
            do {
                _ = try await event.wait()
            } catch {
                throw vaultFailure(error, pseudonym: pseudonym, document: a.document)
            }
        }
        if let onAcknowledged = a.onAcknowledged, a.result.isSuccess {
            _ = try? await withVault(pseudonym) { vault in onAcknowledged(&vault, references) }
        }
        let now = configuration.currentTime()
        var kinds = a.result.isSuccess ? a.notifications : []
        if committed.firstAccess != nil { kinds.append(.firstAccess(caller.principal)) }
        if a.decision.isAllowed && a.decision.isBreakGlass && !a.abandoned { kinds.append(.breakGlass(caller.principal)) }
        // A host that tells representatives too must not tell them what a
        // secret access or a document's flag hides from them.
        let hidden = caller.secret || a.notificationsHiddenFromRepresentatives
        for kind in kinds {
            notifier.emit(VaultNotification(patient: caller.patient, vaultID: vaultID, kind: kind, time: now, hiddenFromRepresentatives: hidden))
        }
        return try a.result.get()
    }

    /// A vault's creation: the same phases on a vault that does not exist
    /// yet. `build` makes the new vault's state and its records under the
    /// vault's lock; the state is visible to other calls once the group is
    /// durable. On a patient who already has a vault, the attempt, allowed
    /// or denied, is refused and recorded in that vault's trail, durably
    /// (the patient sees who tried, and a probe costs what a creation
    /// costs). A denial on a patient without a vault leaves no entry: there
    /// is no vault to hold it, and the caller gets the rule.
    func create(
        _ patient: INS, principal: Principal, decision: AccessDecision,
        build: (_ pseudonym: StreamID, _ vaultID: String, _ createdAt: Date) throws -> (VaultState, Audited<Void>)
    ) async throws(PatientVaultError) -> (createdAt: Date, vaultID: String) {
        try lifecycle.ensureOpen()
        let pseudonym = keys.vaultPseudonym(for: patient)
        // A destroyed vault has no trail to record the attempt in.
        try ensureNotDestroyed(pseudonym)
        let vaultID = keys.publicVaultID(of: pseudonym)
        let createdAt = configuration.currentTime()
        if loader.engine.contains(pseudonym) {
            try await refuseCreation(of: patient, principal: principal, decision: decision)
        }
        guard decision.isAllowed else {
            throw PatientVaultError(.accessDenied, "createVault denied", vaultID: vaultID, rule: decision.rule)
        }
        let ticket: AppendTicket
        do {
            ticket = try cache.withCreation(pseudonym) { (state: inout VaultState?) throws -> AppendTicket in
                guard state == nil, !loader.engine.contains(pseudonym) else {
                    throw PatientVaultError(.vaultAlreadyExists, "this patient already has a vault", vaultID: vaultID)
                }
                var (created, a) = try build(pseudonym, vaultID, createdAt)
                let committed = try audit.commit(a, principal: principal, purpose: .care, secret: false, vault: &created, time: createdAt)
                created.creationTicket = committed.ticket
                state = created
                return committed.ticket
            }
            _ = try await ticket.wait()
        } catch let error as PatientVaultError where error.code == .vaultAlreadyExists {
            // Created meanwhile by a concurrent call: refused like any other
            // attempt on an existing vault, with its entry.
            try await refuseCreation(of: patient, principal: principal, decision: decision)
        } catch {
            throw lifecycle.reported(PatientVaultError.wrapping(error, vaultID: vaultID))
        }
        cache.acknowledgeCreation(of: pseudonym)
        vaultCount.withLock { $0 += 1 }
        cache.noteUse(of: pseudonym)
        return (createdAt, vaultID)
    }

    /// Records a creation attempt on the existing vault of `patient` in its
    /// trail (durably, as a write) and throws: `accessDenied` with the
    /// decision's rule when the principal may not create vaults this way,
    /// `vaultAlreadyExists` (rule ``AccessRule/vaultAlreadyExists``)
    /// otherwise. Never returns.
    private func refuseCreation(of patient: INS, principal: Principal, decision: AccessDecision) async throws(PatientVaultError) -> Never {
        let pseudonym = keys.vaultPseudonym(for: patient)
        while true {
            do {
                let _: Void = try await run(.createVault, Caller(patient: patient, principal: principal)) { vault, _ in
                    let error = decision.isAllowed
                        ? PatientVaultError(.vaultAlreadyExists, "this patient already has a vault", vaultID: vault.vaultID)
                        : PatientVaultError(.accessDenied, "createVault denied", vaultID: vault.vaultID, rule: decision.rule)
                    return Audited(
                        action: .createVault, decision: decision.isAllowed ? .deny(.vaultAlreadyExists) : decision, isWrite: true,
                        result: .failure(error))
                }
            } catch let error where error.code == .unknownVault {
                // A concurrent creation is queued but not yet durable: wait
                // for its append (it always completes, acknowledged or
                // failed), then record the attempt in the vault it made.
                switch cache.creationStatus(of: pseudonym) {
                case .acknowledged:
                    continue  // acknowledged since `run` looked
                case .absent:
                    // Evicted since, or never made: only a stream that
                    // exists is worth another look.
                    guard loader.engine.contains(pseudonym) else { throw error }
                    continue
                case .pending(let ticket):
                    do {
                        _ = try await ticket.wait()
                    } catch {
                        // The creation failed (the store stopped): there is
                        // no vault to record in; the caller (refused, too)
                        // gets why, without the vault's id.
                        throw vaultFailure(error, pseudonym: pseudonym)
                    }
                    cache.acknowledgeCreation(of: pseudonym)
                    continue
                }
            }
            // `run` returns only a success, which a refusal never is.
            throw PatientVaultError(.vaultAlreadyExists, "this patient already has a vault")
        }
    }

    /// A store-level request (a review, statistics): decided, recorded
    /// allowed or denied in the caller's own stream (durable before this
    /// returns), then the denial thrown. `invalid`, if given, is the
    /// caller's bad input: the attempt is recorded (rule
    /// ``AccessRule/invalidRequest``) and that error thrown.
    func runStoreLevel(
        _ action: VaultAction, principal: Principal, target: String?, invalid: PatientVaultError? = nil
    ) async throws(PatientVaultError) {
        try lifecycle.ensureOpen()
        let now = configuration.currentTime()
        var invalid = invalid
        if invalid == nil, case .system = principal {
            invalid = PatientVaultError(.invalidArgument, "the system principal is the store's own; callers cannot act as it")
        }
        let decision = invalid != nil ? .deny(.invalidRequest) : AccessPolicy.decide(AccessRequest(
            action: action, principal: principal, holder: nil,
            isConfiguredReviewer: configuration.isConfiguredReviewer(principal), matrix: configuration.accessMatrix, time: now))
        let entry = AuditEntry(
            sequence: 0, time: now, actor: principal, onBehalfOf: nil, action: action, vaultID: "",
            document: nil, version: nil, outcome: decision.isAllowed ? .allowed : .denied, rule: decision.rule,
            purpose: .audit, legalBasis: nil, isBreakGlass: false, isSecretAccess: false, target: target,
            reasonHash: nil, matrixVersion: configuration.accessMatrix.version,
            previousHash: [UInt8](repeating: 0, count: 32))
        do {
            _ = try await audit.commitStoreLevel(entry, principal: principal).wait()
        } catch {
            throw lifecycle.reported(PatientVaultError.wrapping(error))
        }
        if let invalid { throw invalid }
        guard decision.isAllowed else {
            throw PatientVaultError(.accessDenied, "\(action) denied", rule: decision.rule)
        }
    }

    /// Commits `a` (its records and its entry, one group); if the group
    /// cannot be queued (a full disk, a failed write), an allowed operation
    /// is still recorded, as abandoned, by its entry alone (which may use
    /// the audit reserve). Under the vault's lock.
    private func commitOrAbandon<R>(
        _ a: Audited<R>, principal: Principal, purpose: AccessPurpose, secret: Bool, vault: inout VaultState, time: Date
    ) throws -> (Audited<R>, AuditWriter.Committed) {
        let a = a.limitedByDecision(vaultID: vault.vaultID)
        do {
            let committed = try audit.commit(a, principal: principal, purpose: purpose, secret: secret, vault: &vault, time: time)
            a.onQueued?(&vault)
            return (a, committed)
        } catch {
            guard !a.records.isEmpty || !a.keySlotWrites.isEmpty, a.decision.isAllowed else { throw error }
            let abandoned = a.abandoning(PatientVaultError.wrapping(error, vaultID: vault.vaultID, documentID: a.document))
            return (abandoned, try audit.commit(abandoned, principal: principal, purpose: purpose, secret: secret, vault: &vault, time: time))
        }
    }

    private enum Phase<Work, R> {
        case committed(Audited<R>, AuditWriter.Committed, String)
        case prepare(Work, Audited<R>, String)
    }

    /// Runs `body` on the vault's state under its lock, loading it first.
    /// - Throws: ``PatientVaultError/Code/unknownVault`` if the vault does not
    ///   exist (or its creation is not yet acknowledged).
    func withVault<R>(_ patient: INS, _ body: (inout VaultState) throws -> R) async throws(PatientVaultError) -> R {
        try await withVault(keys.vaultPseudonym(for: patient), body)
    }

    /// As ``withVault(_:_:)``, for a pseudonym the caller already has.
    func withVault<R>(_ pseudonym: StreamID, _ body: (inout VaultState) throws -> R) async throws(PatientVaultError) -> R {
        try lifecycle.ensureOpen()
        try ensureNotDestroyed(pseudonym)
        do {
            // Checked again under the vault's lock: a call that passed the
            // first check while the vault's destruction was acknowledged
            // does not work on it.
            return try await cache.withState(
                pseudonym, missing: PatientVaultError(.unknownVault, "no vault for this patient"),
                exists: { loader.engine.contains(pseudonym) },
                load: {
                    do { return try await loader.load(pseudonym) } catch { throw LoadFailure(underlying: error) }
                }
            ) { state in
                // Checked again under the lock: a call that passed the
                // first check as the store closed queues nothing after
                // close()'s last checkpoint (close() waits for those inside).
                try lifecycle.inside {
                    try ensureNotDestroyed(pseudonym)
                    return try body(&state)
                }
            }
        } catch {
            // A storage or cryptographic failure (a vault that does not
            // load, a group the disk refuses) reaches every caller, a refused
            // one included, before or beside any decision: without the
            // vault's id, which the log keeps for the operator. Errors the
            // decision built carry what it chose to give.
            if let failure = error as? LoadFailure {
                // Destroyed while this call loaded it (its keys' slots
                // destroyed under the load): that, not a storage failure.
                try ensureNotDestroyed(pseudonym)
                // The loader's errors name the vault, and a damaged
                // version's document: neither is the caller's to learn.
                var wrapped = vaultFailure(failure.underlying, pseudonym: pseudonym)
                wrapped.documentID = nil
                if wrapped.code == .corrupted, lifecycle.isClosed { throw PatientVaultError(.closed, "the store is closed") }
                throw wrapped
            }
            if let e = error as? PatientVaultError, !Self.storageFailures.contains(e.code) {
                // Destroyed while this call loaded it (past the first check,
                // before the destruction dropped it from memory): the state
                // it installed goes again, its keys wiped.
                if e.code == .vaultDestroyed { cache.drop(pseudonym) }
                throw lifecycle.reported(e)
            }
            let wrapped = vaultFailure(error, pseudonym: pseudonym)
            // A load that raced close(): the keys it opened records with
            // were wiped under it, and its records failed to authenticate.
            // The store closed; nothing was found damaged.
            if wrapped.code == .corrupted, lifecycle.isClosed { throw PatientVaultError(.closed, "the store is closed") }
            throw wrapped
        }
    }

    /// A vault's load failed (``withVault(_:_:)`` tells it from the
    /// operation's own errors).
    private struct LoadFailure: Error {
        var underlying: any Error
    }

    /// The codes of failures met on the stored records, not chosen by a
    /// decision: they never name the vault.
    static let storageFailures: Set<PatientVaultError.Code> = [.corrupted, .io, .durabilityLost, .diskFull, .unavailable, .erased]

    /// A storage or cryptographic failure met on a vault (its load, its
    /// commit, its wait for durability), as the caller gets it: logged at
    /// error level with the vault's public id for the operator, handed to
    /// the caller without that id and without a place in the files
    /// (``PatientVaultError/withoutFileLocations()``), whoever the caller
    /// is (a refused one included). Counted when it is a lost sync; once
    /// the store has stopped on one, the calls that meet it after are not
    /// logged again (the engine logged the stop).
    func vaultFailure(_ error: any Error, pseudonym: StreamID, document: DocumentID? = nil) -> PatientVaultError {
        var wrapped = PatientVaultError.wrapping(error, documentID: document).withoutFileLocations()
        if wrapped.code != .durabilityLost || !lifecycle.hasReportedDurabilityLoss {
            configuration.logger.error(
                "patientvault: a vault's records could not be read or written",
                metadata: ["vault": "\(keys.publicVaultID(of: pseudonym))", "code": "\(wrapped.code)"])
        }
        wrapped.vaultID = nil
        return lifecycle.reported(wrapped)
    }

    /// Throws ``PatientVaultError/Code/vaultDestroyed`` for a destroyed vault,
    /// before any decision (there is no trail left to record one in): so
    /// without the vault's id, which a refused caller must not get.
    func ensureNotDestroyed(_ pseudonym: StreamID) throws(PatientVaultError) {
        if lifecycleIndex.tombstone(of: pseudonym) != nil {
            throw PatientVaultError(.vaultDestroyed, "the vault was destroyed")
        }
    }

    /// Checks who acts and the purpose and secrecy they asked for. Only the
    /// vault's holder (`holder`) makes a secret access: not another patient,
    /// not an heir.
    static func validate(
        principal: Principal, asSystem: Bool, purpose: AccessPurpose, secret: Bool, holder: INS
    ) throws(PatientVaultError) {
        if case .system = principal, !asSystem {
            throw PatientVaultError(.invalidArgument, "the system principal is the store's own; callers cannot act as it")
        }
        if case .breakGlass = purpose, principal.healthProfessional == nil {
            throw PatientVaultError(.invalidArgument, "only professionals and emergency regulators use break-glass")
        }
        let isHolder: Bool = if case .patient(let ins) = principal { ins == holder } else { false }
        if secret && !isHolder {
            throw PatientVaultError(.invalidArgument, "only the patient whose vault it is makes a secret access")
        }
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}

/// Whether the store is closed: set once by `close()`, read by every call;
/// and whether a call was told that durability was lost.
final class StoreLifecycle: Sendable {
    private let closed = Atomic<Bool>(false)
    private let lossReported = Atomic<Bool>(false)
    /// Calls inside a vault's lock now (``inside(_:)``): `close()` waits
    /// for them, so that each queues its group before the engine closes.
    private let inside = Atomic<Int>(0)
    private let metrics: StoreMetrics

    init(metrics: StoreMetrics) { self.metrics = metrics }

    /// Whether some call has thrown ``PatientVaultError/Code/durabilityLost``.
    var hasReportedDurabilityLoss: Bool { lossReported.load(ordering: .sequentiallyConsistent) }

    /// `error`, noted if it tells a caller that durability was lost.
    func reported(_ error: PatientVaultError) -> PatientVaultError {
        if error.code == .durabilityLost {
            lossReported.store(true, ordering: .sequentiallyConsistent)
            metrics.durabilityLost.increment()
        }
        return error
    }

    var isClosed: Bool { closed.load(ordering: .sequentiallyConsistent) }

    /// Marks the store closed; true for the first call only.
    @discardableResult
    func close() -> Bool { !closed.exchange(true, ordering: .sequentiallyConsistent) }

    /// Throws ``PatientVaultError/Code/closed`` once the store is closed.
    func ensureOpen() throws(PatientVaultError) {
        guard !isClosed else { throw PatientVaultError(.closed, "the store is closed") }
    }

    /// Runs `body` (a call's work under a vault's lock) unless the store is
    /// closed: counted first, then checked (both sequentially consistent,
    /// as ``close()`` sets the flag then reads the count), so that either
    /// the call finds the store closed or ``waitForCallsInside()`` waits
    /// for it.
    func inside<R>(_ body: () throws -> R) throws -> R {
        inside.add(1, ordering: .sequentiallyConsistent)
        defer { inside.subtract(1, ordering: .sequentiallyConsistent) }
        try ensureOpen()
        return try body()
    }

    /// After ``close()``: returns once no call is inside a vault's lock
    /// (their work is short and never waits on a caller).
    func waitForCallsInside() async {
        while inside.load(ordering: .sequentiallyConsistent) > 0 {
            // A cancelled task's sleep returns at once: it would spin.
            do { try await Task.sleep(for: .microseconds(100)) } catch { usleep(100) }
        }
    }
}
