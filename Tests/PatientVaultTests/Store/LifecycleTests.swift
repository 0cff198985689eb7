import Foundation
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Closure, retention, reopening, heirs and destruction (DOMAIN.md "Vault
/// lifecycle", CSP L1111-18): every step one decision and one entry, the
/// retention to the second, a destroyed vault gone for good.
@Suite struct LifecycleTests {
    let alice = Fixtures.alice
    let doctor = Fixtures.doctor
    let dpo = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    func store(_ clock: ManualClock, storage: SuiteStorage = testStorage) async throws -> TestStore {
        var c = Fixtures.configuration(clock: clock)
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: c, engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        return t
    }

    /// The end of the retention of a vault closed at `date`: ten calendar years.
    func tenYears(after date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(byAdding: .year, value: 10, to: date)!
    }

    @Test func aClosedVaultIsReadOnlyUntilReopened() async throws {
        let clock = ManualClock()
        let t = try await store(clock)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: doctor)
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        let info = try await t.store.vaultInfo(for: alice, as: .patient(alice))
        #expect(info.closure?.reason == .patientRequest && info.closure?.closedAt == clock.now())
        #expect(info.retainedUntil == tenYears(after: clock.now()))
        // Reads go on; every write is refused, audited, nothing else changes.
        #expect(try await t.store.content(of: doc.id, for: alice, as: .patient(alice)) == Data([1]))
        let before = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        let writes: [(String, () async throws -> Void)] = [
            ("deposit", { _ = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: self.alice, as: self.doctor) }),
            ("replace", { _ = try await t.store.replace(doc.id, with: Fixtures.draft(), content: Data([3]), for: self.alice, as: self.doctor) }),
            ("erase", { try await t.store.erase(doc.id, for: self.alice, reason: try ErasureReason("wrong record"), as: self.doctor) }),
            ("authorise", { try await t.store.authorise(Fixtures.otherDoctor, for: self.alice, as: .patient(self.alice)) }),
            ("close again", { try await t.store.closeVault(for: self.alice, reason: .patientRequest, as: .patient(self.alice)) }),
        ]
        for (name, call) in writes {
            let failure = await error(call)
            #expect(failure?.code == .accessDenied && failure?.rule == .vaultClosed, "\(name): \(String(describing: failure))")
        }
        let after = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        #expect(after.0 == before.0 && after.1 == before.1 + UInt64(writes.count))
        // A destruction during retention is refused (audited); a reopening works.
        #expect(await code { try await t.store.destroyVault(for: alice, as: dpo) } == .conflict)
        try await t.store.reopenVault(for: alice, as: .patient(alice))
        #expect(try await t.store.vaultInfo(for: alice, as: .patient(alice)).closure == nil)
        _ = try await t.store.deposit(Fixtures.draft(), content: Data([4]), for: alice, as: doctor)
        #expect(await code { try await t.store.reopenVault(for: alice, as: .patient(alice)) } == .invalidArgument)
        #expect(await code { try await t.store.destroyVault(for: alice, as: dpo) } == .invalidArgument)
        let trail = try await t.store.auditTrail(for: alice, as: .patient(alice)).map(\.action)
        #expect(trail.contains(.closeVault) && trail.contains(.reopenVault) && trail.contains(.destroyVault))
        _ = try await t.store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await t.close()
    }

    /// The retention ends ten calendar years after the closure, to the
    /// second: one second before, reopening works and destruction is
    /// refused; at the second, reopening is refused and destruction works.
    @Test(arguments: suiteEngines)
    func retentionEndsToTheSecondThenTheVaultIsDestroyed(storage: SuiteStorage) async throws {
        let clock = ManualClock()
        let t = try await store(clock, storage: storage)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data("kept ten years".utf8), for: alice, as: doctor)
        let slot = try await t.store.withVault(alice) { $0.vaultKeySlot! }
        let closedAt = clock.now()
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        let end = tenYears(after: closedAt)
        clock.set(end.addingTimeInterval(-1))
        #expect(await code { try await t.store.destroyVault(for: alice, as: dpo) } == .conflict)
        #expect(try await t.store.destroyExpiredVaults(at: clock.now()).isEmpty)
        // Reopening one second before the end works; closing again restarts it.
        try await t.store.reopenVault(for: alice, as: .patient(alice))
        let secondClosedAt = clock.now()
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        let secondEnd = tenYears(after: secondClosedAt)
        clock.set(secondEnd)
        // Refused by the vault's state, not by a rule: audited all the same.
        let entriesBefore = try await t.store.withVault(alice) { $0.auditNext }
        #expect(await code { try await t.store.reopenVault(for: alice, as: .patient(alice)) } == .conflict)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entriesBefore + 1)
        let refusal = try #require(try await t.store.auditTrail(for: alice, as: .patient(alice)).first { $0.action == .reopenVault })
        #expect(refusal.outcome == .denied && refusal.rule == .invalidRequest)
        // A patient cannot destroy; the daily job does, as the system.
        #expect(await code { try await t.store.destroyVault(for: alice, as: .patient(alice)) } == .accessDenied)
        let destroyed = try await t.store.destroyExpiredVaults(at: clock.now())
        #expect(destroyed.count == 1)
        let tombstone = try #require(destroyed.first)
        #expect(tombstone.reason == .patientRequest && tombstone.destroyedAt == secondEnd && tombstone.destroyedBy == .system)
        #expect(tombstone.closedAt == secondClosedAt)
        let store = t.store
        #expect(await code { _ = try await store.vaultInfo(for: alice, as: .patient(alice)) } == .vaultDestroyed)
        // Answered before any decision (no trail is left to record one):
        // so without the vault's id, whoever asks.
        do {
            _ = try await store.vaultInfo(for: alice, as: doctor)
            Issue.record("a destroyed vault answered")
        } catch {
            #expect(error.code == .vaultDestroyed && error.vaultID == nil)
        }
        #expect(await code { _ = try await store.content(of: doc.id, for: alice, as: .patient(alice)) } == .vaultDestroyed)
        #expect(await code { try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline) } == .vaultDestroyed)
        #expect(await code { try await store.destroyVault(for: alice, as: dpo) } == .vaultDestroyed)
        #expect(store.vaultCount == 0)
        #expect(try await t.store.destroyExpiredVaults(at: clock.now()).isEmpty)
        // The tombstone stays, for reviewers only.
        #expect(try await t.store.destroyedVaults(as: dpo) == [tombstone])
        #expect(await code { _ = try await t.store.destroyedVaults(as: .patient(alice)) } == .accessDenied)
        // After a reopen of the store, still destroyed; its key is gone.
        let again = try await t.reopen()
        #expect(try await again.destroyedVaults(as: dpo) == [tombstone])
        #expect(await code { _ = try await again.content(of: doc.id, for: alice, as: .patient(alice)) } == .vaultDestroyed)
        #expect(again.vaultCount == 0)
        try await t.close()
        if storage == .folder {
            let engine = try t.rawEngine()
            await #expect { _ = try await engine.keySlots.readKeySlot(slot) } throws: {
                ($0 as? StorageError)?.code == .keySlotDestroyed
            }
            try await engine.close()
        }
    }

    /// On death: a doctor closes the vault; the operator gives an heir
    /// access, who reads what the patient saw; other vaults are untouched.
    @Test func afterDeathAnHeirMayBeGivenAccess() async throws {
        let clock = ManualClock()
        let t = try await store(clock)
        let heir = Fixtures.bob
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([7]), for: alice, as: doctor)
        let ownErased = try await t.store.deposit(Fixtures.draft("Mine"), content: Data([8]), for: alice, as: .patient(alice))
        try await t.store.erase(ownErased.id, for: alice, as: .patient(alice))
        #expect(await code { try await t.store.authoriseHeir(heir, for: self.alice, as: self.dpo) } == .invalidArgument)
        #expect(await code { try await t.store.closeVault(for: alice, reason: .death, as: .patient(alice)) } == .accessDenied)
        // Only a doctor the patient let in records the death.
        #expect(await code { try await t.store.closeVault(for: self.alice, reason: .death, as: self.doctor) } == .accessDenied)
        try await t.store.authorise(doctor, for: alice, as: .patient(alice))
        try await t.store.closeVault(for: alice, reason: .death, as: doctor)
        #expect(await code { _ = try await t.store.content(of: doc.id, for: alice, as: .patient(heir)) } == .accessDenied)
        #expect(await code { try await t.store.authoriseHeir(heir, for: self.alice, as: self.doctor) } == .accessDenied)
        #expect(await code { try await t.store.authoriseHeir(self.alice, for: self.alice, as: self.dpo) } == .invalidArgument)
        try await t.store.authoriseHeir(heir, for: alice, as: dpo)
        // What the patient erased is not the heir's to learn of.
        #expect(await code { _ = try await t.store.metadata(of: ownErased.id, for: alice, as: .patient(heir)) } == .unknownDocument)
        #expect(await code { _ = try await t.store.metadata(of: ownErased.id, for: alice, as: .patient(alice)) } == .erased)
        #expect(try await t.store.content(of: doc.id, for: alice, as: .patient(heir)) == Data([7]))
        let entry = try await t.store.auditTrail(for: alice, as: .patient(alice)).first { $0.action == .readContent && $0.actor == .patient(heir) }
        #expect(entry?.rule == .heirOfDeceased)
        // And the access history names them among who could read it.
        clock.advance(by: 1)
        let readers = try await t.store.whoCouldRead(doc.id, at: clock.now(), for: alice, as: dpo)
        #expect(readers.contains { $0.principal == .patient(heir) && $0.rule == .heirOfDeceased })
        // The patient cannot reopen a death; the doctor who erred can.
        #expect(await code { try await t.store.reopenVault(for: alice, as: .patient(alice)) } == .accessDenied)
        try await t.store.reopenVault(for: alice, as: doctor)
        #expect(await code { _ = try await t.store.content(of: doc.id, for: alice, as: .patient(heir)) } == .accessDenied)
        try await t.close()
    }

    /// A failure after the destruction is acknowledged (the rotation's
    /// replacement of the older journal key cannot be written: the store
    /// stops) is finished at the next open.
    @Test func aDestructionCutShortIsFinishedAtTheNextOpen() async throws {
        let clock = ManualClock()
        let faults = FaultInjection()
        var c = Fixtures.injecting(faults, segmentSize: 1 << 20)
        c.clock = clock
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: c, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await t.store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        let slot = try await t.store.withVault(alice) { $0.vaultKeySlot! }
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        clock.set(tenYears(after: clock.now()))
        faults.failingSite = .journalKeyWrite
        try await t.store.destroyVault(for: alice, as: dpo)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        faults.failingSite = nil
        var reopened = Fixtures.configuration(clock: clock)
        reopened.auditReviewers = [try SystemPrincipal("dpo")]
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: reopened)
        #expect(await code { _ = try await store.vaultInfo(for: alice, as: .patient(alice)) } == .vaultDestroyed)
        #expect(try await store.vaultInfo(for: Fixtures.bob, as: .patient(Fixtures.bob)).documentCount == 0)
        try await store.close()
        let engine = try t.rawEngine()
        await #expect { _ = try await engine.keySlots.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        try await engine.close()
    }
}
