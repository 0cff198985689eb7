import Foundation
import PatientVaultProof
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage
import VaultSync

/// Erasure (CSP R1111-51, DOMAIN.md "Erase"): the author's, with a reason
/// from a professional; every version's key destroyed, a tombstone left;
/// the rest of the vault, its trail and the store's proofs untouched.
@Suite struct ErasureTests {
    let alice = Fixtures.alice
    let doctor = Fixtures.doctor

    /// The key slots of every version of a document.
    func slots(_ store: VaultStore, _ id: DocumentID) async throws -> [KeySlot] {
        try await store.withVault(alice) { ($0.documents[id] ?? []).map(\.keySlot) }
    }

    @Test(arguments: suiteEngines)
    func anErasedDocumentIsGoneAndEverythingElseStillReads(storage: SuiteStorage) async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let own = try await t.store.deposit(Fixtures.draft("Mine"), content: Data("mine".utf8), for: alice, as: .patient(alice))
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 300_000), for: alice, as: doctor)
        let wrong = try await t.store.deposit(Fixtures.draft("Wrong"), content: Data("wrong patient".utf8), for: alice, as: doctor)
        _ = try await t.store.replace(wrong.id, with: Fixtures.draft("Wrong v2"), content: Data("still wrong".utf8), for: alice, as: doctor)
        let receipt = try await t.store.receipt(for: wrong.id, version: 1, for: alice, as: .patient(alice))
        let before = try await t.store.checkpoint()
        let erasedSlots = try await slots(t.store, wrong.id)
        #expect(erasedSlots.count == 2)

        let reason = try ErasureReason("deposited in the wrong patient's record")
        let tombstone = try await t.store.erase(wrong.id, for: alice, reason: reason, as: doctor)
        #expect(tombstone.id == wrong.id && tombstone.author == doctor && tombstone.erasedBy == doctor)
        #expect(tombstone.versions == 2 && tombstone.reason == reason && tombstone.depositedAt == wrong.depositedAt)

        for round in 0..<2 {
            let store = round == 0 ? t.store : try await t.reopen()
            // Gone for everyone: reads say so, listings and counts leave it out.
            #expect(await code { _ = try await store.content(of: wrong.id, for: alice, as: .patient(alice)) } == .erased)
            #expect(await code { _ = try await store.metadata(of: wrong.id, for: alice, as: doctor) } == .erased)
            #expect(await code { _ = try await store.versions(of: wrong.id, for: alice, as: doctor) } == .erased)
            #expect(try await store.documents(for: alice, as: .patient(alice)).map(\.id).sorted()
                == [own.id, kept.id].sorted())
            #expect(try await store.vaultInfo(for: alice, as: .patient(alice)).documentCount == 2)
            #expect(await code { _ = try await store.whoCouldRead(wrong.id, at: Date(), for: alice, as: .patient(alice)) } == .unknownDocument)
            #expect(try await store.erasedDocuments(for: alice, as: .patient(alice)) == [tombstone])
            // Everything else reads, and the trail and the proofs verify.
            #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 300_000))
            #expect(try await store.content(of: own.id, for: alice, as: .patient(alice)) == Data("mine".utf8))
            _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice), anchoredTo: before)
            try await store.verify(against: before)
            try CheckpointVerifier(logKey: store.checkpointVerifierKey).verifyInclusion(receipt.proof, leafData: receipt.leafData)
            let trail = try await store.auditTrail(for: alice, as: .patient(alice))
            #expect(trail.contains { $0.action == .erase && $0.outcome == .allowed && $0.document == wrong.id })
            // A read of it is recorded, as an attempt that read nothing.
            #expect(trail.contains { $0.action == .readContent && $0.outcome == .abandoned && $0.document == wrong.id })
        }
        try await t.close()
        // No key in the store opens the erased versions: their slots hold
        // tombstones, and nothing else names a key for them.
        if storage == .folder {
            let engine = try t.rawEngine()
            for slot in erasedSlots {
                await #expect { _ = try await engine.keySlots.readKeySlot(slot) } throws: {
                    ($0 as? StorageError)?.code == .keySlotDestroyed
                }
            }
            try await engine.close()
        }
    }

    /// A content stream obtained before an erasure ends at its next chunk
    /// once the erasure is acknowledged (`erased`): afterwards no read of
    /// the document decrypts anything, whenever it was decided. A stream
    /// of another document goes on.
    @Test(arguments: suiteEngines)
    func aStreamDecidedBeforeAnErasureEndsWithIt(storage: SuiteStorage) async throws {
        var c = Fixtures.configuration()
        c.contentChunkSize = 4096
        c.inlineContentLimit = 1024
        let t = try await TestStore(configuration: c, engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let wrong = try await t.store.deposit(Fixtures.draft("Wrong"), content: Fixtures.content("W", size: 20_000), for: alice, as: doctor)
        let other = try await t.store.deposit(Fixtures.draft("Other"), content: Fixtures.content("O", size: 20_000), for: alice, as: doctor)
        var erasedStream = try await t.store.contentStream(of: wrong.id, for: alice, as: doctor).makeAsyncIterator()
        var otherStream = try await t.store.contentStream(of: other.id, for: alice, as: doctor).makeAsyncIterator()
        #expect(try await erasedStream.next()?.count == 4096)
        #expect(try await otherStream.next()?.count == 4096)
        try await t.store.erase(wrong.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor)
        await #expect { _ = try await erasedStream.next() } throws: { ($0 as? PatientVaultError)?.code == .erased }
        var rest = 4096
        while let chunk = try await otherStream.next() { rest += chunk.count }
        #expect(rest == 20_000)
        // A stream open when the store closes answers `closed`, not `erased`.
        var late = try await t.store.contentStream(of: other.id, for: alice, as: doctor).makeAsyncIterator()
        #expect(try await late.next()?.count == 4096)
        try await t.store.close()
        await #expect { _ = try await late.next() } throws: { ($0 as? PatientVaultError)?.code == .closed }
        try await t.close()
    }

    /// Who may erase, and bad input: each refusal a typed error, audited,
    /// nothing else changed.
    @Test func onlyTheAuthorErasesAndBadInputChangesNothing() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: testStorage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await t.store.authorise(Fixtures.otherDoctor, for: alice, as: .patient(alice))
        let mine = try await t.store.deposit(Fixtures.draft("Mine"), content: Data([1]), for: alice, as: .patient(alice))
        let theirs = try await t.store.deposit(Fixtures.draft("Theirs"), content: Data([2]), for: alice, as: doctor)
        let reason = try ErasureReason("at the patient's request")
        let refusals: [(String, PatientVaultError.Code, AccessRule, () async throws -> Void)] = [
            ("the patient erases the doctor's document", .accessDenied, .onlyAuthorErases,
             { try await t.store.erase(theirs.id, for: alice, as: .patient(alice)) }),
            ("an authorised doctor erases another's document", .accessDenied, .onlyAuthorErases,
             { try await t.store.erase(theirs.id, for: alice, reason: reason, as: Fixtures.otherDoctor) }),
            ("the author without a reason", .invalidArgument, .invalidRequest,
             { try await t.store.erase(theirs.id, for: alice, as: doctor) }),
            ("a document that does not exist", .unknownDocument, .unknownDocument,
             { try await t.store.erase(try DocumentID.random(), for: alice, reason: reason, as: doctor) }),
        ]
        for (name, expected, rule, call) in refusals {
            let before = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
            #expect(await code(call) == expected, "\(name)")
            let after = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
            #expect(after.0 == before.0 && after.1 == before.1 + 1, "\(name): one entry, no vault record")
            let entry = try await t.store.auditTrail(for: alice, as: .patient(alice)).dropFirst().first
            #expect(entry?.action == .erase && entry?.outcome == .denied && entry?.rule == rule, "\(name)")
        }
        #expect(try await t.store.content(of: theirs.id, for: alice, as: .patient(alice)) == Data([2]))
        // The patient erases their own deposit without a reason; twice is `erased`.
        let tombstone = try await t.store.erase(mine.id, for: alice, as: .patient(alice))
        #expect(tombstone.reason == nil && tombstone.erasedBy == .patient(alice))
        #expect(await code { try await t.store.erase(mine.id, for: alice, as: .patient(alice)) } == .erased)
        // Nothing more is written to an erased document.
        #expect(await code {
            _ = try await t.store.replace(mine.id, with: Fixtures.draft(), content: Data([3]), for: alice, as: .patient(alice))
        } == .unknownDocument)
        // To anyone but its author, an erased document does not exist.
        #expect(await code { try await t.store.erase(mine.id, for: alice, reason: reason, as: doctor) } == .unknownDocument)
        try await t.close()
    }

    /// A document hidden from the patient, erased by its author before its
    /// release: its tombstone and the entries about it stay hidden from the
    /// patient (a reviewer sees them).
    @Test func anErasedHiddenDocumentStaysHiddenFromThePatient() async throws {
        var c = Fixtures.configuration()
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: c, engine: testStorage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let hidden = try await t.store.deposit(Fixtures.draft(flags: [.hiddenFromPatient]), content: Data([1]), for: alice, as: doctor)
        let visible = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: alice, as: doctor)
        let reason = try ErasureReason("announced in person first, filed too early")
        try await t.store.erase(hidden.id, for: alice, reason: reason, as: doctor)
        try await t.store.erase(visible.id, for: alice, reason: reason, as: doctor)
        #expect(try await t.store.erasedDocuments(for: alice, as: .patient(alice)).map(\.id) == [visible.id])
        let reviewer = Principal.auditReviewer(try SystemPrincipal("dpo"))
        #expect(Set(try await t.store.erasedDocuments(for: alice, as: reviewer).map(\.id)) == [hidden.id, visible.id])
        let trail = try await t.store.auditTrail(for: alice, as: .patient(alice))
        #expect(!trail.contains { $0.document == hidden.id }, "no entry about the hidden document reaches the patient")
        #expect(trail.contains { $0.document == visible.id })
        // A read says `erased` only to whom its tombstone is shown and to
        // its author; anyone else learns nothing of it (`unknownDocument`,
        // as for a document that never was).
        let store = t.store
        #expect(await code { _ = try await store.metadata(of: hidden.id, for: alice, as: .patient(alice)) } == .unknownDocument)
        #expect(await code { _ = try await store.content(of: visible.id, for: alice, as: .patient(alice)) } == .erased)
        #expect(await code { _ = try await store.metadata(of: hidden.id, for: alice, as: doctor) } == .erased)
        try await store.authorise(Fixtures.otherDoctor, for: alice, as: .patient(alice))
        for id in [hidden.id, visible.id] {
            let before = try await store.withVault(alice) { $0.auditNext }
            #expect(await code { _ = try await store.metadata(of: id, for: alice, as: Fixtures.otherDoctor) } == .unknownDocument)
            #expect(try await store.withVault(alice) { $0.auditNext } == before + 1)
        }
        try await t.close()
    }

    /// A tombstone written into `keys.slots` by someone who can write the
    /// file (checksum right, MAC absent) is tampering: the vault reads as
    /// `corrupted`, never as an erasure; a genuine erasure beside it stays one.
    @Test func aForgedTombstoneIsTamperingNotAnErasure() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        let slot = try await slots(t.store, doc.id)[0]
        try await t.close()
        let keyFile = t.folder.appending(path: LogFormat.keyFileName)
        let handle = try FileHandle(forUpdating: keyFile)
        let header = try handle.read(upToCount: LogFormat.keySlotSize) ?? Data()
        let salt = try #require(try LogFormat.decodeKeyFileHeader(Array(header)))
        try handle.seek(toOffset: slot.number * UInt64(LogFormat.keySlotSize))
        try handle.write(contentsOf: LogFormat.encodeKeySlot(slot, value: [], magic: LogFormat.keySlotTombstone, salt: salt))
        try handle.close()
        // The engine itself refuses it (the tombstone carries no MAC of the
        // log key)...
        let engine = try t.rawEngine()
        await #expect { _ = try await engine.keySlots.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .corrupted }
        try await engine.close()
        // ...and the vault, whose records name no erasure, is damaged.
        let store = try await t.reopen()
        #expect(await code { _ = try await store.content(of: doc.id, for: alice, as: .patient(alice)) } == .corrupted)
        try await t.close()
    }

    /// A crash (here: a failed write of a key slot's tombstone, which stops
    /// the store) between the erasure's durable record and the destruction
    /// of the keys: the next load of the vault finishes the destruction.
    @Test func anErasureCutShortIsFinishedAtTheNextLoad() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: Fixtures.injecting(faults, segmentSize: 1 << 20), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        let slot = try await slots(t.store, doc.id)[0]
        faults.failingSite = .keySlotWrite
        #expect(await code { try await t.store.erase(doc.id, for: alice, reason: try ErasureReason("wrong record"), as: doctor) } == .durabilityLost)
        faults.failingSite = nil
        #expect(await code { try await t.store.close() } == .durabilityLost)
        // The key is still there: only the erasure's record was made durable.
        let engine = try t.rawEngine()
        #expect(try await engine.keySlots.readKeySlot(slot).count > 0)
        try await engine.close()
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(await code { _ = try await store.content(of: doc.id, for: alice, as: .patient(alice)) } == .erased)
        try await store.close()
        let after = try t.rawEngine()
        await #expect { _ = try await after.keySlots.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        try await after.close()
    }
    /// An erasure's keys go in the same pass of the committer as its
    /// record, and only once that record is durable: while the sync of the
    /// log that makes it durable is held, no tombstone is written, nor any
    /// journal key (the key it rotates to was written ahead); once it goes
    /// on, the tombstones follow.
    @Test func anErasuresKeysGoOnlyOnceItsRecordIsDurableInTheSamePass() async throws {
        let (gate, t) = try await gatedStore()
        defer { gate.release() }
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        _ = try await t.store.replace(doc.id, with: Fixtures.draft("v2"), content: Data([2]), for: alice, as: doctor)
        gate.arm()
        let erasure = Task { try await t.store.erase(doc.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor) }
        try await eventually { gate.isHolding }
        #expect(gate.keyFileEvents.isEmpty, "\(gate.keyFileEvents)")
        gate.release()
        _ = try await erasure.value
        // Both versions' slots, after the held sync.
        #expect(gate.keyFileEvents.filter { $0 == .tombstoneWritten }.count == 2)
        #expect(await code { _ = try await t.store.content(of: doc.id, for: alice, as: .patient(alice)) } == .erased)
        try await t.close()
    }

    /// An erasure that rotates the journal key is acknowledged once its
    /// record is durable and its tombstones written, with no sync of the
    /// key file (held here until the answer): one sync, of the log, as a
    /// deposit. The key file's work follows though no other call comes to
    /// carry it: the committer, idle, syncs the slots and tombstones, then
    /// overwrites the older journal key with the next one and syncs it.
    /// Before, the erasure waited for the new journal key's sync, beside
    /// the log's. An erasure that needs no rotation (its document's copy
    /// is sealed under the replaced key) has its tombstones synced alone
    /// too, within the delay.
    @Test func anErasureIsAcknowledgedBeforeAnySyncOfTheKeyFile() async throws {
        let (gate, t) = try await gatedStore()
        defer { gate.release() }
        let older = try await t.store.deposit(Fixtures.draft(), content: Data([0]), for: alice, as: doctor)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        let path = t.folder.appendingPathComponent(LogFormat.keyFileName).path
        let journalKeys = { () throws -> [UInt8] in Array([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))[128..<384]) }
        let before = try journalKeys()
        gate.holdKeyFile()
        let answered = Locked(false)
        let erasure = Task {
            try await t.store.erase(doc.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor)
            answered.withLock { $0 = true }
        }
        try await eventually { answered.withLock { $0 } }
        #expect(gate.keyFileEvents.first == .tombstoneWritten, "\(gate.keyFileEvents)")
        gate.release()
        try await erasure.value
        // Then, with no other call: the slots synced, the older key
        // replaced and that synced.
        try await eventually { gate.keyFileEvents.contains(.journalKeySynced) }
        let events = gate.keyFileEvents
        let replaced = try #require(events.firstIndex(of: .journalKeyWritten))
        #expect(events[..<replaced].contains(.keyFileSynced), "the slots are synced before the older key goes: \(events)")
        let after = try journalKeys()
        // One of the two keys replaced (the older), the other kept.
        #expect((after[0..<128] != before[0..<128]) != (after[128..<256] != before[128..<256]))
        let settled = gate.keyFileEvents.count
        try await t.store.erase(older.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor)
        try await eventually { gate.keyFileEvents[settled...].contains(.keyFileSynced) }
        #expect(gate.keyFileEvents[settled...].first == .tombstoneWritten)
        #expect(!gate.keyFileEvents[settled...].contains(.journalKeyWritten), "no rotation")
        try await t.close()
    }

    /// A store on disk whose file observer is a ``SyncGate``, with
    /// Alice's vault.
    func gatedStore(_ adjust: (inout Configuration) throws -> Void = { _ in }) async throws -> (SyncGate, TestStore) {
        let gate = SyncGate()
        var c = Fixtures.configuration()
        c.faults = FaultInjection(observer: gate)
        try adjust(&c)
        let t = try await TestStore(configuration: c, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        return (gate, t)
    }

    /// A replacement of `document` by the doctor, decided and preparing its
    /// content (one chunk sent) until `feed` finishes.
    func preparingReplacement(
        of document: DocumentID, in store: VaultStore
    ) async -> (Task<DocumentMetadata, any Error>, AsyncStream<Data>.Continuation) {
        let (chunks, feed) = AsyncStream<Data>.makeStream()
        let (preparing, prepared) = AsyncStream<Void>.makeStream()
        let (alice, doctor) = (alice, doctor)
        let replacement = Task {
            try await store.replace(
                document, with: Fixtures.draft(), streaming: chunks.map { chunk in prepared.yield(); return chunk }, for: alice, as: doctor)
        }
        feed.yield(Data([2]))
        var started = preparing.makeAsyncIterator()
        _ = await started.next()
        return (replacement, feed)
    }

    /// A replacement being prepared while its document's erasure waits for
    /// its sync must not be queued behind it: the erasure destroys only the
    /// keys it knew of (the new version's would stay live) and compaction
    /// rewrites every version of an erased document, the vault's newest
    /// record included, so that its history no longer matched its trail
    /// after a reopen. The erasure's sync is held (the committer blocks in
    /// the file observer) until the replacement has committed.
    @Test func aReplacementCannotBeQueuedBehindItsDocumentsErasure() async throws {
        let (gate, t) = try await gatedStore { $0.auditReviewers = [try SystemPrincipal("dpo")] }
        defer { gate.release() }
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        let kept = try await t.store.deposit(Fixtures.draft(), content: Data([3]), for: alice, as: doctor)
        let log = try #require(t.store.engine as? LogEngine)
        // The replacement is decided (allowed: the document is there) and
        // prepares its content, which waits for `finish`.
        let (replacement, feed) = await preparingReplacement(of: doc.id, in: t.store)
        // Meanwhile the erasure is queued, and its sync held.
        var queued = log.nextSequence
        gate.arm()
        let erasure = Task { try await t.store.erase(doc.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor) }
        try await eventually { log.nextSequence != queued }
        try await eventually { gate.isHolding }
        // The replacement's content ends: it commits behind the erasure.
        queued = log.nextSequence
        feed.finish()
        try await eventually { log.nextSequence != queued }
        queued = log.nextSequence
        let second = Task { try await t.store.erase(doc.id, for: alice, reason: try ErasureReason("again"), as: doctor) }
        try await eventually { log.nextSequence != queued }
        gate.release()
        _ = try await erasure.value
        #expect(await code { _ = try await replacement.value } == .conflict)
        #expect(await code { _ = try await second.value } == .erased)
        // Compacted and reopened: the vault loads, its trail verifies, the
        // other document reads, the erased one answers `erased`.
        _ = try await t.store.compact(as: .auditReviewer(try SystemPrincipal("dpo")))
        try await t.store.close()
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Data([3]))
        #expect(await code { _ = try await store.content(of: doc.id, for: alice, as: .patient(alice)) } == .erased)
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await store.close()
    }

    /// A block queued and waiting for its sync already binds: a read by the
    /// blocked professional decided meanwhile is refused, and a replacement
    /// of theirs decided before the block but committed after it is refused
    /// at its commit (a deposit ignores blocks; a replacement does not), so
    /// the trail never shows an access allowed after the block that forbids
    /// it.
    @Test func aQueuedBlockAlreadyRefusesTheBlockedProfessional() async throws {
        let (gate, t) = try await gatedStore()
        defer { gate.release() }
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        try await t.store.authorise(doctor, for: alice, as: .patient(alice))
        _ = try await t.store.content(of: doc.id, for: alice, as: doctor)
        let log = try #require(t.store.engine as? LogEngine)
        // A replacement by the doctor, decided now, its content still coming.
        let (replacement, feed) = await preparingReplacement(of: doc.id, in: t.store)
        // The block, queued, its sync held.
        var queued = log.nextSequence
        gate.arm()
        let block = Task { try await t.store.block(doctor, for: alice, as: .patient(alice)) }
        try await eventually { log.nextSequence != queued }
        try await eventually { gate.isHolding }
        // A read decided now, and the replacement's commit: both after it.
        queued = log.nextSequence
        let read = Task { try await t.store.content(of: doc.id, for: alice, as: doctor) }
        try await eventually { log.nextSequence != queued }
        queued = log.nextSequence
        feed.finish()
        try await eventually { log.nextSequence != queued }
        gate.release()
        try await block.value
        #expect(await code { _ = try await read.value } == .accessDenied)
        #expect(await code { _ = try await replacement.value } == .accessDenied)
        #expect(try await t.store.versions(of: doc.id, for: alice, as: .patient(alice)).count == 1)
        try await t.close()
    }
    /// In batched audit mode a read does not wait for its own entry, but it
    /// waits for the grant it was allowed by while that grant's group is
    /// still waiting for its sync: nothing is handed out on an event that a
    /// failed sync could take back.
    @Test func aBatchedReadWaitsForTheGrantItWasAllowedBy() async throws {
        let (gate, t) = try await gatedStore { $0.auditMode = .batched(maxDelay: .milliseconds(10)) }
        defer { gate.release() }
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        let log = try #require(t.store.engine as? LogEngine)
        var queued = log.nextSequence
        gate.arm()
        let grant = Task { try await t.store.authorise(doctor, for: alice, as: .patient(alice)) }
        try await eventually { log.nextSequence != queued }
        try await eventually { gate.isHolding }
        queued = log.nextSequence
        let returned = Locked(false)
        let read = Task {
            defer { returned.withLock { $0 = true } }
            return try await t.store.content(of: doc.id, for: alice, as: doctor)
        }
        try await eventually { log.nextSequence != queued }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.withLock { $0 }, "the read returned before the grant it relies on was durable")
        gate.release()
        try await grant.value
        #expect(try await read.value == Data([1]))
        try await t.close()
    }
}

/// Waits (polling, without blocking a thread) until `condition` holds; a
/// test that would otherwise hang fails after 60 seconds (a generous
/// bound: under ThreadSanitizer a busy machine is many times slower).
func eventually(_ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw CancellationError() }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// A file observer that, once armed, holds the next `fdatasync` of a log
/// segment that follows a write of frames (on the committer's thread)
/// until released: a sync of preallocated zeros (growth ahead of need)
/// is let through.
final class SyncGate: FileObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var armed = false
    private var holding = false
    private var isReleased = false
    private let released = DispatchSemaphore(value: 0)
    private var events: [KeyFileEvent] = []

    /// What happens to the key file once armed.
    enum KeyFileEvent: Equatable {
        /// A write to one of the two journal-key slots, then a sync.
        case journalKeyWritten, journalKeySynced
        /// A write to a key slot (a tombstone, during an erasure).
        case tombstoneWritten
        /// Any other sync of the key file.
        case keyFileSynced
    }

    /// The key file's writes and syncs since the gate was first armed.
    var keyFileEvents: [KeyFileEvent] { lock.withLock { events } }

    func arm() { lock.withLock { armed = true; observing = true; framesWritten = false } }
    /// Holds the next sync of the key file (recording its events) until
    /// released.
    func holdKeyFile() { lock.withLock { holdsKeyFile = true; observing = true } }
    private var holdsKeyFile = false
    /// Records the key file's events from now on, holding nothing.
    func observe() { lock.withLock { observing = true } }
    private var observing = false
    private var framesWritten = false
    /// Whether the committer is held now.
    var isHolding: Bool { lock.withLock { holding } }
    /// Lets the held sync (and any later one) go on; idempotent.
    func release() {
        let first = lock.withLock { () -> Bool in
            defer { isReleased = true; armed = false }
            return !isReleased
        }
        if first { released.signal() }
    }

    func synced(_ path: String) {
        let keyFile = path.hasSuffix("keys.slots")
        guard keyFile || path.contains("segment") else { return }
        let hold = lock.withLock { () -> Bool in
            if keyFile {
                guard observing else { return false }
                events.append(events.last == .journalKeyWritten ? .journalKeySynced : .keyFileSynced)
                guard holdsKeyFile, !isReleased else { return false }
                holdsKeyFile = false
            } else {
                guard armed, framesWritten, !isReleased else { return false }
                armed = false
            }
            holding = true
            return true
        }
        guard hold else { return }
        released.wait()
        lock.withLock { holding = false }
    }
    func opened(_ path: String, created: Bool, truncated: Bool) {}
    func wrote(_ path: String, at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        if path.contains("segment") {
            // Frames, not a segment's header (offset 0) nor preallocated zeros.
            if offset > 0, bytes.contains(where: { $0 != 0 }) { lock.withLock { if armed { framesWritten = true } } }
            return
        }
        guard path.hasSuffix("keys.slots") else { return }
        // Slots 1-2 hold the journal key; slots from 3 on, wrapped keys.
        let slot = offset / 128
        lock.withLock {
            guard observing, bytes.count == 128 else { return }
            if slot == 1 || slot == 2 {
                if bytes.contains(where: { $0 != 0 }) { events.append(.journalKeyWritten) }
            } else if slot >= 3, bytes.starts(with: Array("PVKX".utf8)) {
                events.append(.tombstoneWritten)
            }
        }
    }
    func truncated(_ path: String, to length: UInt64) {}
    func renamed(_ from: String, _ to: String) {}
    func removed(_ path: String) {}
}
