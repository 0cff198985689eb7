import Foundation
import Logging
import Synchronization
import VaultSync
import VaultCrypto
import VaultStorage

/// An embedded store of one encrypted, append-only document vault per
/// patient.
///
/// Open one per directory and share it: the store is `Sendable`, reads run
/// concurrently, writes are serialised by the storage engine and made
/// durable by group commit. Every operation takes the acting ``Principal``
/// and passes one access decision first.
///
/// ```swift
/// let store = try await VaultStore.open(at: url, key: .key(masterKey))
/// try await store.createVault(for: ins, as: .patient(ins), channel: .patientOnline)
/// let doc = try await store.deposit(draft, content: pdf, for: ins, as: doctor)
/// let bytes = try await store.content(of: doc.id, for: ins, as: .patient(ins))
/// try await store.close()
/// ```
public final class VaultStore: Sendable {
    let engine: any StorageEngine
    /// Where the store is: its folder, or for a store in memory
    /// (`PatientVaultTesting`) a `memory:` URL naming it.
    public let location: URL
    /// Unwrapped keys of documents read again.
    let documentKeyCache: DocumentKeyCache
    /// Seals the statistics stream's records.
    let statisticsWriter: StatisticsWriter
    /// The one path of every operation; the store's other parts (cache,
    /// loader, audit writer, notifier, keys, settings, lifecycle) are
    /// reached through it, so each is held in one place.
    let pipeline: OperationPipeline
    /// The background flush of batched audit entries, if any.
    private let flusher: Task<Void, Never>?
    /// The root key every store key derives from, for a store with a
    /// header (nil in memory): kept to be wrapped again by a master-key
    /// rotation; wiped at close.
    let rootKey: SymmetricKey?
    /// Serialises what uses the root key or the header outside the
    /// operation pipeline: master-key rotations, backups (which copy the
    /// header and use the keys after the copy), and `close()`'s wipe of
    /// the keys, which waits for them.
    let keyGate = AsyncGate()
    /// Signs the store's checkpoints; keeps the public keys of earlier ones.
    /// Replaced by a rotation (``rotateCheckpointSigningKey(as:)``).
    let signingKeyRing: Locked<SigningKeyRing>
    /// Serialises signing-key rotations.
    let signingKeyRotation = AsyncGate()
    /// Serialises compactions (``compact(as:progress:)``).
    /// One `processScheduledEvents` at a time: two overlapping host runs
    /// would otherwise both find the same event due.
    let scheduledEventRuns = AsyncGate()
    let compactionRuns = AsyncGate()
    /// The signing keys now.
    var signingKeys: SigningKeyRing { signingKeyRing.withLock { $0 } }
    /// The checkpoints made on ``Configuration/checkpointCadence``, if any.
    private let checkpointer = Locked<Task<Void, Never>?>(nil)

    var keys: StoreKeys { pipeline.keys }
    var configuration: Configuration { pipeline.configuration }
    /// Set by `close()`: every later call throws `closed`.
    var lifecycle: StoreLifecycle { pipeline.lifecycle }
    /// Listeners of ``notifications()``.
    var notifier: Notifier { pipeline.notifier }
    /// The decrypted vaults in memory.
    var cache: VaultCache { pipeline.cache }
    /// Reads vaults and audit records back from the log.
    var loader: VaultLoader { pipeline.loader }
    /// Builds, seals and queues audit entries and their activity copies.
    var auditWriter: AuditWriter { pipeline.audit }
    var logger: Logger { configuration.logger }

    private init(
        engine: any StorageEngine, keys: StoreKeys, root: SymmetricKey?, signingKeys: SigningKeyRing, lifecycleIndex: VaultLifecycleIndex,
        configuration: Configuration, location: URL
    ) {
        self.engine = engine
        self.rootKey = root
        signingKeyRing = Locked(signingKeys)
        self.location = location
        let cache = VaultCache(limit: configuration.loadedVaultLimit) { victim, vault in
            // A write still waiting for its acknowledgement holds reserved
            // positions in the state; queued records would be missed by a
            // reload from the engine (its last group's ticket says whether
            // any is queued: groups are acknowledged in order).
            vault.isAcknowledged && vault.documents.values.allSatisfy({ $0.allSatisfy(\.isAcknowledged) })
                && (vault.lastTicket?.isDone ?? true)
        }
        documentKeyCache = DocumentKeyCache(limit: configuration.documentKeyCacheLimit)
        let metrics = StoreMetrics(factory: configuration.metricsFactory)
        statisticsWriter = StatisticsWriter(keys: keys)
        let flushPending = AuditFlushFlag()
        let auditWriter = AuditWriter(
            keys: keys, configuration: configuration, engine: engine, activity: ActivityWriter(),
            statistics: statisticsWriter, flushPending: flushPending)
        pipeline = OperationPipeline(
            cache: cache, loader: VaultLoader(engine: engine, keys: keys), audit: auditWriter, notifier: Notifier(),
            keys: keys, configuration: configuration, lifecycle: StoreLifecycle(metrics: metrics),
            vaultCount: Locked(Self.countVaults(in: engine) - lifecycleIndex.destroyedCount), lifecycleIndex: lifecycleIndex,
            metrics: metrics)
        if case .batched(let delay) = configuration.auditMode {
            flusher = Task.detached { [engine] in
                // Bounded delay: every `delay`, make written entries durable.
                while !Task.isCancelled {
                    try? await Task.sleep(for: delay)
                    if flushPending.pending.exchange(false, ordering: .relaxed) {
                        _ = try? await engine.append([], keySlotWrites: [], durability: .durable).wait()
                    }
                }
            }
        } else {
            flusher = nil
        }
    }

    // MARK: - Open and close

    /// Opens the store in `url` (a directory), creating it if it does not
    /// exist, and recovers from a crash if needed.
    ///
    /// The folder is created if missing (with its missing parents, mode
    /// 0700); a folder that cannot be created is an ``PatientVaultError/Code/io``
    /// error naming it and the system's `errno`.
    /// The master key is checked against the store's header before anything
    /// is written. Cost: Argon2id if the key comes from a passphrase; then
    /// loading the index checkpoint and replaying the log after it.
    /// - Throws: ``PatientVaultError/Code/wrongMasterKey``,
    ///   ``PatientVaultError/Code/storeLocked`` (open elsewhere),
    ///   ``PatientVaultError/Code/corrupted`` (naming segment and offset),
    ///   ``PatientVaultError/Code/invalidArgument`` for a bad configuration.
    public static func open(
        at url: URL, key source: MasterKeySource, configuration: Configuration = Configuration()
    ) async throws(PatientVaultError) -> VaultStore {
        try configuration.validate()
        let directory = url.path
        try translatingErrors { try StoreFolder.prepare(directory) }
        // A restore that never finished (killed, or the machine lost
        // power, while it copied or checked): the folder may hold part of
        // a backup, which could open as a store missing records.
        if !configuration.checksARestore, FileSystem.exists(directory + "/" + restoreMarkerFileName) {
            throw PatientVaultError(.corrupted, "the folder holds a restore that did not finish: restore the backup into it again")
        }
        let weakCost = configuration.allowsWeakPassphraseCostForTesting
        var root: SymmetricKey?
        if try StoreHeader.readRestoringOneByte(directory: directory) == nil {
            guard try !translatingErrors({ try StoreFolder.holdsLog(directory) }) else {
                throw PatientVaultError(.corrupted, "the store's header is missing")
            }
            // A new store: a random root key, wrapped by the master key. Of
            // two openers of an empty folder, one header wins; the other
            // opener uses it (and its root key) below.
            let fresh = try translatingErrors { try SymmetricKey.generate() }
            let header = try await RootKeyWrapping.header(
                wrapping: fresh, with: source, storeID: try translatingErrors { try SecureRandom.bytes(16) }, weakCost: weakCost)
            if try header.create(directory: directory) { root = fresh } else { fresh.wipe() }
        }
        if root == nil {
            guard let read = try StoreHeader.readRestoringOneByte(directory: directory) else {
                throw PatientVaultError(.corrupted, "the store's header is missing")
            }
            switch read {
            case .whole(let header):
                root = try await RootKeyWrapping.unwrapRoot(source, header: header, allowsWeakCost: weakCost)
            case .damaged(let error, let candidates):
                // One flipped byte: the candidate the master key opens is
                // the header as it was (its wrap authenticates it), written
                // back whole.
                for candidate in candidates {
                    guard let key = try? await RootKeyWrapping.unwrapRoot(source, header: candidate, allowsWeakCost: weakCost) else { continue }
                    configuration.logger.error("patientvault: store.header had a damaged byte; restored (the master key opened it)")
                    // Written back; on a full disk the restored one serves
                    // from memory, any other failed write or sync fails the
                    // open.
                    do {
                        try candidate.write(directory: directory)
                    } catch where error.code == .diskFull {
                        configuration.logger.warning("patientvault: the restored store.header could not be written back (disk full)")
                    }
                    root = key
                    break
                }
                guard root != nil else { throw error }
            }
        }
        guard let root else { throw PatientVaultError(.corrupted, "the store's header is missing") }
        let keys = try translatingErrors { try StoreKeys(master: root) }
        let makeEngine = configuration.engineFactory ?? logEngine(in: directory, configuration: configuration)
        return try await open(keys: keys, root: root, engine: makeEngine, location: url, configuration: configuration, keyChecked: true)
    }

    /// Opens a store whose records an engine other than the folder's log
    /// keeps (`PatientVaultTesting`'s memory engine): no header, the keys
    /// derived from `key` alone. A wrong key finds no signing key in a
    /// store that holds records: `wrongMasterKey`.
    package static func open(
        engine makeEngine: StorageEngineFactory, key: MasterKey, location: URL, configuration: Configuration
    ) async throws(PatientVaultError) -> VaultStore {
        try configuration.validate()
        let keys = try translatingErrors { try StoreKeys(master: key.key) }
        return try await open(keys: keys, root: nil, engine: makeEngine, location: location, configuration: configuration, keyChecked: false)
    }

    /// The store over the engine `makeEngine` makes, given the options
    /// every engine takes; rebuilds what a crash lost of the activity index.
    static func open(
        keys: StoreKeys, root: SymmetricKey?, engine makeEngine: StorageEngineFactory, location: URL, configuration: Configuration,
        keyChecked: Bool
    ) async throws(PatientVaultError) -> VaultStore {
        let options = StorageOptions(
            reserve: configuration.effectiveAuditReserve, maximumRecordSize: configuration.contentChunkSize + Limits.recordOverhead,
            authenticator: LogMAC(key: keys.log), logger: configuration.logger)
        let engine = try translatingErrors { try makeEngine(options) }
        let signingKeys: SigningKeyRing
        let lifecycleIndex: VaultLifecycleIndex
        do {
            lifecycleIndex = try await translatingErrorsAsync { try await VaultLifecycleIndex.load(engine: engine, keys: keys) }
            signingKeys = try await translatingErrorsAsync {
                // A store with a header checked the key already; without one
                // (memory), the signing key is the first thing the key opens.
                try await SigningKeyRing.loadOrCreate(
                    engine: engine, keys: keys, now: configuration.currentTime(),
                    missing: keyChecked
                        ? PatientVaultError(.corrupted, "the store's checkpoint signing key is missing")
                        : PatientVaultError(.wrongMasterKey, "the master key does not open this store"))
            }
        } catch {
            // Opening failed: the engine is released; its own close error
            // would hide the one that matters.
            try? await engine.close()
            throw error
        }
        configuration.logger.info(
            "patientvault: store opened",
            metadata: ["streams": "\(engine.streamCount)", "records": "\(engine.durableRecordCount)", "destroyedVaults": "\(lifecycleIndex.destroyedCount)"])
        let store = VaultStore(
            engine: engine, keys: keys, root: root, signingKeys: signingKeys, lifecycleIndex: lifecycleIndex,
            configuration: configuration, location: location)
        do {
            // The kept checkpoint first: a log that does not extend it is
            // refused before anything is written to it.
            if let trusted = configuration.trustedCheckpoint { try await store.verifyAtOpen(against: trusted) }
            try await store.rebuildActivity()
            store.startCheckpointing()
        } catch {
            // Closed without a word to the host: no checkpoint of a log it
            // refused is published (a host that trusts its newest published
            // checkpoint would take the refused log at the next open), and
            // no activity mark is written to it.
            try? await store.close(refusedAtOpen: true)
            throw error
        }
        return store
    }

    /// The folder's log engine, with the configuration's file settings.
    static func logEngine(in directory: String, configuration: Configuration) -> StorageEngineFactory {
        { options in
            var c = LogEngineConfiguration()
            c.segmentSize = configuration.segmentSize
            c.initialSegmentAllocation = min(configuration.segmentSize, 1 << 20)
            c.reserve = options.reserve
            c.maximumRecordSize = options.maximumRecordSize
            c.authenticator = options.authenticator
            c.logger = options.logger
            c.faults = configuration.faults
            c.checksARestore = configuration.checksARestore
            configuration.tuneEngineForTesting?(&c)
            return try LogEngine.open(directory: directory, configuration: c)
        }
    }

    /// Refuses new calls (they throw ``PatientVaultError/Code/closed``),
    /// waits for the calls already writing and for a master-key rotation or
    /// a backup under way (a scrub stops at its next frame), makes every
    /// queued write durable, checkpoints the index and releases the engine
    /// (the store's lock included); then hands the checkpoint of everything
    /// acknowledged to ``Configuration/checkpointPublisher`` and wipes the
    /// keys.
    public func close() async throws(PatientVaultError) {
        try await close(refusedAtOpen: false)
    }

    /// ``close()``; `refusedAtOpen`: the store is closed by the open that
    /// refused it, which publishes no checkpoint and writes no activity.
    func close(refusedAtOpen: Bool) async throws(PatientVaultError) {
        checkpointer.withLock { $0?.cancel() }
        let first = lifecycle.close()
        // Calls already inside a vault's lock queue their groups first;
        // later ones find the store closed.
        await lifecycle.waitForCallsInside()
        // A scrub stops at its next frame; a backup waiting for its turn
        // does not begin (one copying finishes).
        (engine as? LogEngine)?.requestClose()
        // A rotation or a backup already past its check of `closed` ends
        // before the keys are wiped (one that starts now finds the store
        // closed): a rotation would otherwise wrap a wiped root key.
        await keyGate.withGate {}
        // A signing-key rotation in progress ends too: the key it swaps in
        // is then the one wiped below.
        await signingKeyRotation.withGate {}
        flusher?.cancel()
        notifier.finish()
        // Pending activity copies go out before the engine closes; if they
        // cannot, the next open rebuilds them from the audit trail.
        if !refusedAtOpen { try? await auditWriter.flushActivity(markAlways: true, durability: .durable) }
        defer {
            // Drop every decrypted vault and cached document key: their keys
            // are wiped as they go.
            cache.dropAll()
            documentKeyCache.removeAll()
            // The master-derived keys are wiped now (whether or not the
            // engine closed cleanly), not when the last reference goes: the
            // engine accepts no more writes, so nothing sealed under a
            // wiped key can reach the disk, and a query still running
            // answers `closed` (it checks once its walk is done).
            keys.wipe()
            rootKey?.wipe()
            // The checkpoint signing key too, by the first close only (a
            // second, concurrent one must not wipe it under the first's
            // closing checkpoint, signed before this runs); a checkpoint
            // racing the close then fails (`closed`), and never hands out a
            // signature that does not verify.
            if first { signingKeys.current.wipe() }
        }
        // A loss it reports counts as told (``hasReportedDurabilityLoss``).
        do { try await engine.close() } catch { throw lifecycle.reported(PatientVaultError.wrapping(error)) }
        // The checkpoint of the store as it closed, for the host to
        // publish: taken once the engine has made every group queued
        // durable, it covers every call acknowledged, those racing close()
        // included (and store-level calls, which no vault lock counts).
        if first, !refusedAtOpen, let publish = configuration.checkpointPublisher {
            publish(try signedCheckpoint())
        }
    }

    /// Starts making checkpoints on the configuration's cadence.
    func startCheckpointing() {
        guard let publish = configuration.checkpointPublisher, let cadence = configuration.checkpointCadence,
              cadence.records != nil || cadence.interval != nil
        else { return }
        let tick = min(cadence.interval ?? .seconds(1), .seconds(1))
        let task = Task.detached { [weak self] in
            var last: (size: UInt64, at: ContinuousClock.Instant) = (0, .now)
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                guard let store = self, !store.lifecycle.isClosed else { return }
                let size = store.engine.durableRecordCount
                let byCount = cadence.records.map { size >= last.size && size - last.size >= $0 } ?? false
                let byTime = cadence.interval.map { ContinuousClock.now - last.at >= $0 && size > last.size } ?? false
                guard byCount || byTime else { continue }
                do throws(PatientVaultError) {
                    // Reads and a signature only: a failure writes nothing,
                    // and the next tick tries again.
                    let checkpoint = try await store.checkpoint()
                    publish(checkpoint)
                    last = (checkpoint.treeHead.size, .now)
                } catch {
                    store.logger.warning("patientvault: no checkpoint on cadence", metadata: ["code": "\(error.code)"])
                }
            }
        }
        checkpointer.withLock { $0 = task }
    }

    /// A store dropped without ``close()`` releases everything and says so
    /// (a warning in the configured log): the batched-audit flusher stops,
    /// decrypted vaults and cached keys are wiped, and once the last
    /// reference to the engine goes (the flusher's, at once) the engine
    /// writes and syncs what was queued, checkpoints, stops its threads and
    /// closes its files, the `LOCK` included. Activity copies still in
    /// memory are rebuilt at the next open, as after a crash.
    deinit {
        guard !lifecycle.isClosed else { return }
        lifecycle.close()
        flusher?.cancel()
        notifier.finish()
        cache.dropAll()
        documentKeyCache.removeAll()
        logger.warning("patientvault: store released without close(); its files close once queued writes are synced")
    }

    /// The number of vaults in the store. O(1): counted at open (without
    /// reading any vault), then at every acknowledged creation.
    public var vaultCount: Int { pipeline.vaultCount.withLock { $0 } }

    // MARK: - Internal

    /// The vault streams among the engine's streams. O(streams), no read.
    private static func countVaults(in engine: any StorageEngine) -> Int {
        var count = 0
        engine.forEachStream { if StoreKeys.StreamClass(of: $0) == .vault { count += 1 } }
        return count
    }

    func ensureOpen() throws(PatientVaultError) { try lifecycle.ensureOpen() }

    /// Whether a call of this store has already thrown
    /// ``PatientVaultError/Code/durabilityLost`` (the testing product's
    /// temporary stores then do not report it again at close).
    package var hasReportedDurabilityLoss: Bool { lifecycle.hasReportedDurabilityLoss }

    /// Runs `body` on the vault's state under its lock, loading it first.
    func withVault<R>(_ patient: INS, _ body: (inout VaultState) throws -> R) async throws(PatientVaultError) -> R {
        try await pipeline.withVault(patient, body)
    }

    /// Destroys a document's versions' key slots (erasure), at once: the
    /// cached keys go with them, before and after, so no later read finds
    /// them.
    func destroyDocumentKeys(_ slots: [KeySlot], of pseudonym: StreamID) async throws {
        for slot in slots { documentKeyCache.remove(vault: pseudonym, slot: slot) }
        try await engine.keySlots.destroyKeySlots(slots)
        for slot in slots { documentKeyCache.remove(vault: pseudonym, slot: slot) }
    }

    /// A copy of the vault's state, for walks that run outside its lock,
    /// once every group it reflects is acknowledged (durable, under
    /// synchronous durability): events apply as they are queued, and a copy
    /// shown to a caller (an audit trail, an export) must not show one that
    /// a failed sync could still take back (groups are acknowledged in
    /// order, so the vault's last ticket covers them).
    /// - Throws: ``PatientVaultError/Code/durabilityLost`` if one of them
    ///   failed.
    func snapshot(of patient: INS) async throws(PatientVaultError) -> VaultState {
        let (state, ticket) = try await pipeline.withVault(patient) { ($0, $0.lastTicket) }
        if let ticket, !ticket.isDone {
            // Reported as every other wait is (counted, not reported again at close).
            do { _ = try await ticket.wait() } catch { throw lifecycle.reported(PatientVaultError.wrapping(error)) }
        }
        return state
    }
}
