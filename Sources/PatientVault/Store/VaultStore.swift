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
    let keys: StoreKeys
    let configuration: Configuration
    let directory: String

    /// The store's folder.
    public var location: URL { URL(fileURLWithPath: directory, isDirectory: true) }
    /// One handle per vault ever touched: handles are never replaced, so
    /// one lock always guards one vault's positions.
    let vaults = Locked<[StreamID: VaultHandle]>([:])
    /// Loaded vaults and when each was last used, for eviction.
    let loaded = Locked<(clock: UInt64, lastUse: [StreamID: UInt64])>((0, [:]))
    /// Set by `close()`: every later call throws `closed`.
    let isClosed = Atomic<Bool>(false)
    /// Listeners of ``notifications()``.
    let notifier = Notifier()
    /// Writes the per-professional copies of audit entries, in batches.
    let activityWriter = ActivityWriter()
    /// Set when a read's audit entry was written without a sync (batched
    /// audit mode); the flusher makes it durable within the bound.
    let auditFlush = AuditFlushFlag()
    /// The background flush of batched audit entries, if any.
    private let flusher: Task<Void, Never>?

    var logger: Logger { configuration.logger }
    var durability: Durability { configuration.durability == .synchronous ? .durable : .buffered }

    /// Room in a record beyond one content chunk: metadata and the chunk list.
    static let recordOverhead = 64 << 10

    private init(engine: any StorageEngine, keys: StoreKeys, configuration: Configuration, directory: String) {
        self.engine = engine
        self.keys = keys
        self.configuration = configuration
        self.directory = directory
        if case .batched(let delay) = configuration.auditMode {
            let flag = auditFlush
            flusher = Task.detached { [engine] in
                // Bounded delay: every `delay`, make written entries durable.
                while !Task.isCancelled {
                    try? await Task.sleep(for: delay)
                    if flag.pending.exchange(false, ordering: .relaxed) {
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
        let keys: StoreKeys
        if let header = try StoreHeader.read(directory: directory) {
            keys = try deriveKeys(source, header: header, allowsWeakCost: configuration.allowsWeakPassphraseCostForTesting)
            guard header.verify(keys) else {
                throw PatientVaultError(.wrongMasterKey, "the master key does not open this store (or its header was altered)")
            }
        } else {
            guard try !translatingErrors({ try StoreFolder.holdsLog(directory) }) else {
                throw PatientVaultError(.corrupted, "the store's header is missing")
            }
            (keys, _) = try createHeader(source, directory: directory, weakCost: configuration.allowsWeakPassphraseCostForTesting)
        }
        var engineConfiguration = LogEngineConfiguration()
        engineConfiguration.segmentSize = configuration.segmentSize
        engineConfiguration.reserve = configuration.effectiveAuditReserve
        engineConfiguration.initialSegmentAllocation = min(configuration.segmentSize, 1 << 20)
        engineConfiguration.maximumRecordSize = configuration.contentChunkSize + Self.recordOverhead
        engineConfiguration.logger = configuration.logger
        engineConfiguration.faults = configuration.faults
        engineConfiguration.authenticator = LogMAC(key: keys.log)
        configuration.tuneEngineForTesting?(&engineConfiguration)
        let makeEngine = configuration.engineFactory ?? { try LogEngine.open(directory: $0, configuration: $1) }
        let engine = try translatingErrors { try makeEngine(directory, engineConfiguration) }
        configuration.logger.debug("patientvault: store opened", metadata: ["vaults": "\(engine.streamCount)"])
        let store = VaultStore(engine: engine, keys: keys, configuration: configuration, directory: directory)
        do {
            try await store.rebuildActivity()
        } catch {
            try? await store.close()
            throw error
        }
        return store
    }

    private static func deriveKeys(
        _ source: MasterKeySource, header: StoreHeader, allowsWeakCost: Bool
    ) throws(PatientVaultError) -> StoreKeys {
        switch (source, header.source) {
        case (.key(let master), .rawKey):
            return try translatingErrors { try StoreKeys(master: master.key) }
        case (.passphrase(let passphrase, _), .argon2id):
            // The cost is read before the header can be authenticated: cap
            // it, so a forged header cannot make opening hang.
            guard header.parameters.opsLimit <= Argon2id.Parameters.sensitive.opsLimit,
                  header.parameters.memLimit <= Argon2id.Parameters.sensitive.memLimit
            else {
                throw PatientVaultError(.corrupted, "store.header asks for an Argon2id cost above the maximum")
            }
            // No store is ever created below `interactive`: a lower cost is
            // a forged header trying to make guessing the passphrase cheap.
            guard allowsWeakCost || (header.parameters.opsLimit >= Argon2id.Parameters.interactive.opsLimit
                && header.parameters.memLimit >= Argon2id.Parameters.interactive.memLimit)
            else {
                throw PatientVaultError(.corrupted, "store.header asks for an Argon2id cost below the minimum")
            }
            return try translatingErrors {
                try StoreKeys(master: try deriveFromPassphrase(passphrase, salt: header.salt, parameters: header.parameters))
            }
        case (.key, .argon2id):
            throw PatientVaultError(.wrongMasterKey, "this store's master key comes from a passphrase")
        case (.passphrase, .rawKey):
            throw PatientVaultError(.wrongMasterKey, "this store's master key is a raw key, not a passphrase")
        }
    }

    private static func createHeader(
        _ source: MasterKeySource, directory: String, weakCost: Bool
    ) throws(PatientVaultError) -> (StoreKeys, StoreHeader) {
        let keys: StoreKeys
        let header: StoreHeader
        switch source {
        case .key(let master):
            keys = try translatingErrors { try StoreKeys(master: master.key) }
            header = try translatingErrors {
                try StoreHeader.new(source: .rawKey, salt: [UInt8](repeating: 0, count: 16), parameters: .init(opsLimit: 0, memLimit: 0), keys: keys)
            }
        case .passphrase(let passphrase, let strength):
            guard !passphrase.isEmpty else { throw PatientVaultError(.invalidArgument, "the passphrase is empty") }
            let parameters: Argon2id.Parameters = if weakCost {
                .minimum
            } else {
                switch strength {
                case .interactive: .interactive
                case .moderate: .moderate
                }
            }
            let salt = try translatingErrors { try SecureRandom.bytes(Argon2id.saltByteCount) }
            keys = try translatingErrors {
                try StoreKeys(master: try deriveFromPassphrase(passphrase, salt: salt, parameters: parameters))
            }
            header = try translatingErrors { try StoreHeader.new(source: .argon2id, salt: salt, parameters: parameters, keys: keys) }
        }
        try header.write(directory: directory)
        return (keys, header)
    }

    /// Argon2id over the passphrase's own UTF-8 storage, without another copy.
    private static func deriveFromPassphrase(
        _ passphrase: String, salt: [UInt8], parameters: Argon2id.Parameters
    ) throws -> SymmetricKey {
        var text = passphrase
        return try text.withUTF8 { utf8 in
            try Argon2id.deriveKey(from: UnsafeRawBufferPointer(utf8), salt: salt, parameters: parameters)
        }
    }

    /// Waits for queued writes, checkpoints the index, wipes the keys and
    /// releases the store (its lock included). Other calls then throw
    /// ``PatientVaultError/Code/closed``.
    public func close() async throws(PatientVaultError) {
        isClosed.store(true, ordering: .sequentiallyConsistent)
        flusher?.cancel()
        notifier.finish()
        // Pending activity copies go out before the engine closes; if they
        // cannot, the next open rebuilds them from the audit trail.
        try? await flushActivity(markAlways: true)
        defer {
            // Drop every decrypted vault: their keys are wiped as they go.
            let handles = vaults.withLock { v in Array(v.values) }
            for h in handles { h.state.withLock { $0 = nil } }
            // The master-derived keys are wiped now (whether or not the
            // engine closed cleanly), not when the last reference goes: the
            // engine accepts no more writes, so nothing sealed under a
            // wiped key can reach the disk, and a query still running
            // answers `closed` (it checks once its walk is done).
            keys.wipe()
        }
        do { try await engine.close() } catch { throw PatientVaultError.wrapping(error) }
    }

    /// The number of vaults in the store. O(streams): counts the vault
    /// streams of the engine's index, without reading any.
    public var vaultCount: Int { engine.streamCount(inClass: StoreKeys.StreamClass.vault.rawValue) }

    // MARK: - Vault state

    func handle(for pseudonym: StreamID) -> VaultHandle {
        vaults.withLock { v in
            if let h = v[pseudonym] { return h }
            let h = VaultHandle(pseudonym: pseudonym)
            v[pseudonym] = h
            return h
        }
    }

    /// Runs `body` on the vault's state under its lock, loading it first.
    /// - Throws: ``PatientVaultError/Code/unknownVault`` if the vault does not
    ///   exist (or its creation is not yet acknowledged).
    func ensureOpen() throws(PatientVaultError) {
        guard !isClosed.load(ordering: .sequentiallyConsistent) else {
            throw PatientVaultError(.closed, "the store is closed")
        }
    }

    func withVault<R>(
        _ patient: INS, _ body: (inout VaultState) throws -> R
    ) throws(PatientVaultError) -> R {
        guard !isClosed.load(ordering: .sequentiallyConsistent) else {
            throw PatientVaultError(.closed, "the store is closed")
        }
        let pseudonym = keys.vaultPseudonym(for: patient)
        defer { noteUse(of: pseudonym) }
        do {
            while true {
                let handle = handle(for: pseudonym)
                let attempt = try handle.state.withLock { (state: inout VaultState?) throws -> Attempt<R> in
                    if handle.retired.load(ordering: .relaxed) { return .retry }
                    if state == nil {
                        guard engine.head(of: pseudonym) != nil else {
                            throw PatientVaultError(.unknownVault, "no vault for this patient")
                        }
                        state = try loadVault(pseudonym)
                    }
                    guard state!.isAcknowledged else {
                        throw PatientVaultError(.unknownVault, "no vault for this patient")
                    }
                    return .done(try body(&state!))
                }
                if case .done(let result) = attempt { return result }
            }
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: keys.publicVaultID(of: pseudonym))
        }
    }

    /// Records a use of a vault and, past the limit, drops the least
    /// recently used idle vaults. Called outside every vault lock.
    func noteUse(of pseudonym: StreamID) {
        let victims: [StreamID] = loaded.withLock { l in
            l.clock += 1
            l.lastUse[pseudonym] = l.clock
            guard l.lastUse.count > configuration.loadedVaultLimit else { return [] }
            // Evict down to 7/8 of the limit at once, so the O(n) choice of
            // victims is paid rarely.
            let keep = configuration.loadedVaultLimit - configuration.loadedVaultLimit / 8
            return l.lastUse.sorted { $0.value < $1.value }.prefix(l.lastUse.count - keep).map(\.key)
        }
        guard !victims.isEmpty else { return }
        for victim in victims where victim != pseudonym {
            guard let handle = vaults.withLock({ $0[victim] }) else { continue }
            let evicted = handle.state.withLock { state -> Bool in
                // Never drop a vault with a write still waiting for its
                // acknowledgement: its state holds the reserved positions.
                // Nor one whose records (audit entries included) are still
                // queued: reloading from disk would miss them.
                if let v = state {
                    guard v.isAcknowledged, v.documents.values.allSatisfy({ $0.allSatisfy(\.isAcknowledged) }),
                          !engine.hasQueuedRecords(in: victim), !engine.hasQueuedRecords(in: keys.auditStream(of: victim))
                    else { return false }
                }
                state = nil
                // Retire the handle too, so the map does not grow with every
                // vault ever touched.
                handle.retired.store(true, ordering: .relaxed)
                vaults.withLock { if $0[victim] === handle { $0[victim] = nil } }
                return true
            }
            if evicted { loaded.withLock { _ = $0.lastUse.removeValue(forKey: victim) } }
        }
    }

    /// Rebuilds a vault's state by following its stream back from the head,
    /// checking that positions run 0, 1, 2... and decrypting each record.
    /// Cost: one read and one or two decryptions per record of the vault.
    func loadVault(_ pseudonym: StreamID) throws -> VaultState {
        var records: [StoredRecord] = []
        try walkBack(pseudonym, broken: corruptedChain(pseudonym)) { records.append($0); return true }
        records.reverse()
        guard let first = records.first else { throw corruptedChain(pseudonym) }
        let header = try RecordHeader.decode(first.payload)
        guard header.kind == .vaultCreated, header.sequence == 0, let slot = header.keySlot else {
            throw corruptedChain(pseudonym)
        }
        let wrapped = try engine.readKeySlot(slot)
        let vaultKeys = try VaultKeys.unwrap(wrapped, with: keys.keyEncryption, context: StoreKeys.vaultKeyContext(pseudonym, slot: slot))
        let body = try VaultCreatedBody.decode(
            try openBody(first.payload, header: header, key: vaultKeys.records, vault: pseudonym).plaintext)
        var state = VaultState(
            pseudonym: pseudonym, vaultID: keys.publicVaultID(of: pseudonym), keys: vaultKeys, creation: body, isAcknowledged: true, nextSequence: 1)
        for (i, record) in records.enumerated().dropFirst() {
            let h = try RecordHeader.decode(record.payload)
            guard h.sequence == UInt64(i) else { throw corruptedChain(pseudonym) }
            switch h.kind {
            case .documentVersion:
                var entry = try decodeVersion(record.payload, header: h, vault: state)
                entry.location = record.location
                state.documents[entry.metadata.id, default: []].append(entry)
                state.authors.insert(entry.metadata.author)
            case .vaultEvent:
                let body = try VaultEventBody.decode(
                    try openBody(record.payload, header: h, key: state.keys.records, vault: pseudonym).plaintext)
                state.apply(body)
            case .vaultCreated, .contentChunk, .auditEntry, .activityEntry, .statistics, .activityMark:
                throw corruptedChain(pseudonym)
            }
            state.nextSequence = UInt64(i) + 1
        }
        state.headHash = VaultAnchor.headHash(of: records[records.count - 1].payload, keys: vaultKeys)
        try loadAuditHead(into: &state)
        return state
    }

    /// Follows `stream` back from its head, newest first, until `visit`
    /// returns false. Every record must belong to the stream and point
    /// strictly back in the log (a forged cycle cannot make this loop run
    /// forever); otherwise `broken` is thrown.
    func walkBack(_ stream: StreamID, broken: @autoclosure () -> PatientVaultError, _ visit: (StoredRecord) throws -> Bool) throws {
        var next = engine.head(of: stream)
        while let location = next {
            let r = try engine.read(location)
            guard r.stream == stream else { throw broken() }
            if let previous = r.previous, previous.raw >= location.raw { throw broken() }
            guard try visit(r) else { return }
            next = r.previous
        }
    }

    /// The plaintext of a record of a store-level stream (activity,
    /// statistics), sealed under a store key.
    func openStoreRecord(
        _ r: StoredRecord, kind: RecordKind, key: SymmetricKey, stream: StreamID, broken: @autoclosure () -> PatientVaultError
    ) throws -> [UInt8] {
        let header = try RecordHeader.decode(r.payload)
        guard header.kind == kind else { throw broken() }
        return try openBody(r.payload, header: header, key: key, vault: stream).plaintext
    }

    private func corruptedChain(_ pseudonym: StreamID) -> PatientVaultError {
        PatientVaultError(.corrupted, "the vault's record chain is broken", vaultID: keys.publicVaultID(of: pseudonym))
    }

    /// Opens the sealed part of a record: `u32 length || box || rest`.
    /// Returns the plaintext and the offset of the bytes after the box.
    func openBody(_ payload: [UInt8], header: RecordHeader, key: SymmetricKey, vault: StreamID) throws -> (plaintext: [UInt8], rest: Int) {
        try payload.withUnsafeBytes { raw in
            var r = ByteReader(raw, offset: RecordHeader.size)
            let length = Int(try r.read(UInt32.self))
            let box = try r.slice(count: length)
            let padded = try header.associatedData(vault: vault).withUnsafeBytes { ad in
                try XChaCha20Poly1305.open(box, using: key, authenticating: ad)
            }
            return (try RecordPadding.unpad(padded, block: header.kind.paddingBlock), r.offset)
        }
    }

    /// Builds a record payload: header, then the sealed body (padded to its
    /// kind's size class), then `rest`.
    func sealRecord(header: RecordHeader, body unpadded: [UInt8], key: SymmetricKey, vault: StreamID, rest: [UInt8] = []) throws -> [UInt8] {
        let body = RecordPadding.pad(unpadded, block: header.kind.paddingBlock)
        var payload = header.encoded()
        payload.reserveCapacity(RecordHeader.size + 4 + body.count + XChaCha20Poly1305.overhead + rest.count)
        let lengthOffset = payload.count
        payload += [0, 0, 0, 0]
        try body.withUnsafeBytes { b in
            try header.associatedData(vault: vault).withUnsafeBytes { ad in
                try XChaCha20Poly1305.seal(b, using: key, authenticating: ad, appendingTo: &payload)
            }
        }
        let boxLength = UInt32(payload.count - lengthOffset - 4)
        withUnsafeBytes(of: boxLength.littleEndian) { for i in 0..<4 { payload[lengthOffset + i] = $0[i] } }
        payload += rest
        return payload
    }

    /// Unwraps a document version's key from its slot.
    /// - Throws: ``PatientVaultError/Code/erased`` (as a storage error) if
    ///   the slot was destroyed.
    func documentKeys(_ id: DocumentID, version: Int, slot: KeySlot, vault: StreamID, keys vaultKeys: VaultKeys) throws -> DocumentKeys {
        let wrapped = try engine.readKeySlot(slot)
        return try DocumentKeys.unwrap(
            wrapped, with: vaultKeys.documentKeyWrapping,
            context: VaultKeys.documentKeyContext(vault, document: id, version: UInt32(version), slot: slot))
    }

    private func decodeVersion(_ payload: [UInt8], header h: RecordHeader, vault: VaultState) throws -> VersionEntry {
        guard let id = h.document, let slot = h.keySlot, h.version >= 1 else { throw corruptedChain(vault.pseudonym) }
        let docKeys = try documentKeys(id, version: Int(h.version), slot: slot, vault: vault.pseudonym, keys: vault.keys)
        let body = try DocumentVersionBody.decode(
            try openBody(payload, header: h, key: docKeys.metadata, vault: vault.pseudonym).plaintext,
            id: id, version: Int(h.version))
        return VersionEntry(metadata: body.metadata, sequence: h.sequence, keySlot: slot, location: nil, content: body.content)
    }
}

/// Whether a batched audit entry waits for its flush.
final class AuditFlushFlag: Sendable {
    let pending = Atomic<Bool>(false)
}

/// One try at a vault's lock: done, or retry on the vault's new handle.
enum Attempt<R> {
    case done(R)
    case retry
}
