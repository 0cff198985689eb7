import Foundation
import Testing
@testable import PatientVault
import PatientVaultFHIR
@testable import VaultStorage
@testable import VaultSync

/// The operation pipeline: every way out of an allowed decision leaves
/// exactly one entry, and walks of the trail do not hold the vault.
@Suite struct PipelineTests {
    struct Refused: Error {}

    /// Content that yields one chunk, then fails.
    static func failingContent() -> AsyncThrowingStream<Data, Error> {
        AsyncThrowingStream { c in
            c.yield(Data(repeating: 7, count: 100))
            c.finish(throwing: Refused())
        }
    }

    /// Content that tells when the store first asks for it (the call is
    /// past its decision, in its prepare phase), then yields what the test
    /// sends.
    struct GatedContent: AsyncSequence, Sendable {
        let started: AsyncStream<Void>.Continuation
        let chunks: AsyncStream<Data>

        struct AsyncIterator: AsyncIteratorProtocol {
            let started: AsyncStream<Void>.Continuation
            var inner: AsyncStream<Data>.Iterator
            var first = true

            mutating func next() async -> Data? {
                if first {
                    first = false
                    started.yield(())
                }
                return await inner.next()
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(started: started, inner: chunks.makeAsyncIterator()) }

        /// The content, the signal that the store reached it, and the feed.
        static func make() -> (GatedContent, AsyncStream<Void>, AsyncStream<Data>.Continuation) {
            let (signal, started) = AsyncStream<Void>.makeStream()
            let (chunks, feed) = AsyncStream<Data>.makeStream()
            return (GatedContent(started: started, chunks: chunks), signal, feed)
        }
    }

    /// A denial cannot commit work: an operation that returns records, a
    /// state change and a result with a denied decision gets its entry
    /// committed and nothing else, and its caller gets `accessDenied` with
    /// the rule (the pipeline builds the denial, not the operation).
    @Test func aDenialCarriesNoRecordsNoStateChangeAndNoResult() async throws {
        let v = try await AuditedVault()
        let before = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.headHash, $0.documents.count) }
        let entries = try await v.count()
        let e = await error {
            let _: Int = try await v.store.pipeline.run(.deposit, Caller(patient: v.alice, principal: Fixtures.otherDoctor)) { vault, now in
                let header = RecordHeader(kind: .vaultEvent, sequence: vault.nextSequence, document: nil, version: 0, keySlot: nil)
                let body = VaultEventBody(time: now, by: Fixtures.otherDoctor, event: .firstAccess(GrantHolder(Fixtures.otherDoctor)!))
                let payload = try RecordCodec.seal(header: header, body: body.encoded(), key: vault.keys.records, stream: vault.pseudonym)
                var a = Audited<Int>(
                    action: .deposit, decision: .deny(.notAuthorised), records: [EngineRecord(stream: vault.pseudonym, payload: payload)],
                    vaultRecords: 1, isWrite: true, result: .success(42))
                a.onQueued = { vault in vault.documents[try! DocumentID.random()] = [] }
                return a
            }
        }
        #expect(e?.code == .accessDenied && e?.rule == .notAuthorised)
        #expect(try await v.count() == entries + 1)
        #expect(try await v.entries().last?.outcome == .denied)
        let after = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.headHash, $0.documents.count) }
        #expect(after.0 == before.0 && after.1 == before.1 && after.2 == before.2)
        // Reloaded from disk, the vault holds no such record either.
        let store = try await v.t.reopen()
        #expect(try await store.withVault(v.alice) { $0.nextSequence } == before.0)
        _ = try await store.verifyAuditTrail(for: v.alice, as: v.patient)
        try await store.close()
    }

    /// The type itself: a denied or abandoned `Audited` reads as carrying
    /// no work whatever was set on it (records, key slots, state changes,
    /// notifications), so no path, not only the pipeline's, can commit them.
    @Test(arguments: [false, true])
    func aRefusedAuditedValueHasNoWorkToGiveOut(abandoned: Bool) {
        let record = EngineRecord(stream: nil, payload: [1])
        var a = Audited<Int>(
            action: .deposit, decision: abandoned ? .allow(.authorisedByPatient) : .deny(.notAuthorised), records: [record], vaultRecords: 1,
            keySlotWrites: [(KeySlot(1), [2])], abandoned: abandoned, result: .success(1), notifications: [.firstAccess(Fixtures.doctor)])
        a.onQueued = { _ in }
        a.onAcknowledged = { _, _ in }
        #expect(a.records.isEmpty && a.vaultRecords == 0 && a.keySlotWrites.isEmpty && a.notifications.isEmpty)
        #expect(a.onQueued == nil && a.onAcknowledged == nil)
        // The same value allowed and carried out gives its work out.
        a.decision = .allow(.authorisedByPatient)
        a.abandoned = false
        #expect(a.records.count == 1 && a.vaultRecords == 1 && a.keySlotWrites.count == 1 && a.notifications.count == 1)
        #expect(a.onQueued != nil && a.onAcknowledged != nil)
    }

    @Test func aDepositWhoseContentFailsLeavesOneAbandonedEntry() async throws {
        let v = try await AuditedVault()
        let before = try await v.count()
        await #expect(throws: PatientVaultError.self) {
            _ = try await v.store.deposit(Fixtures.draft(), streaming: Self.failingContent(), for: v.alice, as: Fixtures.doctor)
        }
        #expect(try await v.count() == before + 1)
        let last = try #require(try await v.entries().last)
        #expect(last.action == .deposit)
        #expect(last.outcome == .abandoned)
        // Exported as a serious failure (FHIR) and by name (JSON).
        #expect(try last.fhirAuditEvent().outcome == "8")
        #expect(String(decoding: try JSONEncoder().encode(last), as: UTF8.self).contains(#""outcome":"abandoned""#))
        // Nothing else became visible, and the chain still verifies.
        #expect(try await v.store.documents(for: v.alice, as: v.patient).isEmpty)
        _ = try await v.store.verifyAuditTrail(for: v.alice, as: v.patient)
    }

    @Test func aCancelledDepositLeavesOneAbandonedEntry() async throws {
        let v = try await AuditedVault()
        let before = try await v.count()
        let (content, started, continuation) = GatedContent.make()
        continuation.yield(Data(repeating: 1, count: 10))
        let store = v.store
        let alice = v.alice
        let task = Task { try await store.deposit(Fixtures.draft(), streaming: content, for: alice, as: Fixtures.doctor) }
        // Once the deposit is past its decision, cancel it.
        for await _ in started { break }
        task.cancel()
        await #expect(throws: PatientVaultError.self) { _ = try await task.value }
        continuation.finish()
        #expect(try await v.count() == before + 1)
        #expect(try await v.entries().last?.outcome == .abandoned)
        #expect(try await v.store.documents(for: v.alice, as: v.patient).isEmpty)
    }

    @Test func aReplacementThatLosesARaceIsRecordedAsAbandoned() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let before = try await v.count()
        // The slow replacement passes its decision, then waits for its content.
        let (slow, started, gate) = GatedContent.make()
        let store = v.store
        let alice = v.alice
        let loser = Task {
            try await store.replace(doc.id, with: Fixtures.draft("slow"), streaming: slow, for: alice, as: Fixtures.doctor)
        }
        // The loser passes its decision, then waits in its prepare phase
        // for content while the winner commits version 2.
        for await _ in started { break }
        let winner = try await v.store.replace(doc.id, with: Fixtures.draft("fast"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        #expect(winner.version == 2)
        gate.yield(Data([3]))
        gate.finish()
        await #expect(throws: PatientVaultError.self) { _ = try await loser.value }
        let code = await code { _ = try await loser.value }
        #expect(code == .conflict)
        let entries = try await v.entries()
        #expect(entries.count == Int(before) + 2)
        #expect(entries.suffix(2).map(\.outcome).sorted { $0.rawValue < $1.rawValue } == [.abandoned, .allowed])
        #expect(try await v.store.versions(of: doc.id, for: v.alice, as: v.patient).map(\.version) == [1, 2])
    }

    @Test func aDepositRefusedByAFullDiskIsRecordedAsAbandoned() async throws {
        let faults = FaultInjection()
        var c = Fixtures.configuration()
        c.faults = faults
        let v = try await AuditedVault(configuration: c, storage: .folder)
        let before = try await v.count()
        faults.diskFull = true
        #expect(await code {
            _ = try await v.store.deposit(Fixtures.draft(), content: Data(repeating: 9, count: 4 << 20), for: v.alice, as: Fixtures.doctor)
        } == .diskFull)
        faults.diskFull = false
        #expect(try await v.count() == before + 1)
        #expect(try await v.entries().last?.outcome == .abandoned)
        _ = try await v.store.verifyAuditTrail(for: v.alice, as: v.patient)
    }

    /// Trail walks run on a snapshot while writes go on: verifications and
    /// trail reads racing with deposits on the same vault all succeed (a
    /// verification that compared the newest entries with the live state,
    /// not its snapshot, would report the chain broken) and the chain is
    /// whole at the end.
    @Test func trailWalksRunBesideWrites() async throws {
        let v = try await AuditedVault()
        let store = v.store
        let alice = v.alice
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<4 {
                group.addTask {
                    for j in 0..<10 {
                        _ = try await store.deposit(Fixtures.draft("d\(i)-\(j)"), content: Data([UInt8(j)]), for: alice, as: Fixtures.doctor)
                    }
                }
                group.addTask {
                    for _ in 0..<10 {
                        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
                        _ = try await store.auditTrail(for: alice, matching: AuditQuery(limit: 5), as: .patient(alice))
                    }
                }
            }
            try await group.waitForAll()
        }
        // 1 creation + 40 deposits + 40 verifications + 40 trail reads.
        #expect(try await store.verifyAuditTrail(for: alice, as: .patient(alice)).entries == 122)
    }

    /// Concurrent first uses of a vault load it once and agree on its state.
    @Test func aVaultLoadsOnceUnderConcurrentFirstUse() async throws {
        let t = try await TestStore()
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        for i in 0..<5 {
            _ = try await t.store.deposit(Fixtures.draft("d\(i)"), content: Data([UInt8(i)]), for: Fixtures.alice, as: Fixtures.doctor)
        }
        let store = try await t.reopen()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { try await store.documents(for: Fixtures.alice, as: .patient(Fixtures.alice)).count }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts == Array(repeating: 5, count: 16))
        #expect(try await store.verifyAuditTrail(for: Fixtures.alice, as: .patient(Fixtures.alice)).entries == 1 + 5 + 16 + 1)
        try await store.close()
    }

    /// Single flight, observed: eight tasks ask a fresh cache for one
    /// vault whose load is slow; the load runs once (the others wait in
    /// its gate, suspended) and every task sees its result.
    @Test func concurrentFirstUsesRunTheLoadOnce() async throws {
        let t = try await TestStore()
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: Fixtures.alice, as: Fixtures.doctor)
        let store = t.store
        let pseudonym = store.keys.vaultPseudonym(for: Fixtures.alice)
        let cache = VaultCache(limit: 8) { _, _ in true }
        let loads = Locked(0)
        let seen = Locked<[UInt64]>([])
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let next = try? await cache.withState(
                        pseudonym, missing: PatientVaultError(.unknownVault, ""), exists: { true },
                        load: {
                            loads.withLock { $0 += 1 }
                            try await Task.sleep(for: .milliseconds(50))
                            return try await store.loader.load(pseudonym)
                        }
                    ) { $0.nextSequence }
                    seen.withLock { $0.append(next ?? 0) }
                }
            }
        }
        #expect(loads.withLock { $0 } == 1)
        #expect(seen.withLock { $0 } == Array(repeating: 2, count: 8))
        try await store.close()
    }

    /// A deposit whose content is still being written when the vault's key
    /// rotates is not acknowledged under the retired key: its commit finds
    /// the rotation and refuses it (`conflict`, its entry `abandoned`); a
    /// deposit after the rotation has its key under the new one.
    @Test func aDepositPreparedAcrossAVaultKeyRotationIsNotAcknowledgedUnderTheOldKey() async throws {
        let v = try await AuditedVault()
        let (content, started, feed) = GatedContent.make()
        let store = v.store, alice = v.alice
        let deposit = Task { try await store.deposit(Fixtures.draft(), streaming: content, for: alice, as: Fixtures.doctor) }
        for await _ in started { break }
        #expect(try await v.store.rotateVaultKey(for: v.alice, as: v.patient) == 1)
        feed.yield(Data(repeating: 1, count: 100))
        feed.finish()
        let refused: PatientVaultError.Code? = if case .failure(let e) = await deposit.result { (e as? PatientVaultError)?.code } else { nil }
        #expect(refused == .conflict)
        #expect(try await v.entries().last?.outcome == .abandoned)
        #expect(try await v.store.documents(for: v.alice, as: v.patient).isEmpty)
        let after = try await v.store.deposit(Fixtures.draft(), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.withVault(v.alice) { $0.entry(after.id, version: 1)?.keyVersion } == 1)
        try await v.store.close()
    }
}
