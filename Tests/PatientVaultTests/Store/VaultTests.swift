import Foundation
import Testing
@testable import PatientVault
import VaultStorage
import VaultSync

/// Vaults: creation, the loaded-vault cache and its eviction (`VaultStore+Vaults`, `VaultCache`).
@Suite struct VaultTests {
    @Test(arguments: [
        (CreationChannel.patientOnline, Principal.patient(Fixtures.alice), true),
        (.patientOnline, .patient(Fixtures.bob), false),
        (.pharmacy, Fixtures.pharmacist, true),
        (.pharmacy, Fixtures.pharmacy, true),
        (.pharmacy, Fixtures.doctor, false),
        (.insurerAgent, Fixtures.insurer, true),
        (.insurerAgent, Fixtures.doctor, false),
        (.healthProfessional, Fixtures.doctor, true),
        (.establishment, Fixtures.hospital, true),
        (.establishment, Fixtures.pharmacy, false),
    ])
    func creationChannelMustFitThePrincipal(channel: CreationChannel, principal: Principal, allowed: Bool) async throws {
        let t = try await TestStore()
        let c = await code { try await t.store.createVault(for: Fixtures.alice, as: principal, channel: channel) }
        if allowed {
            #expect(c == nil)
            let info = try await t.store.vaultInfo(for: Fixtures.alice, as: .patient(Fixtures.alice))
            #expect(info.channel == channel)
            #expect(info.createdBy == principal)
        } else {
            #expect(c == .accessDenied)
            #expect(await code { _ = try await t.store.vaultInfo(for: Fixtures.alice, as: .patient(Fixtures.alice)) } == .unknownVault)
        }
        try await t.store.close()
    }

    @Test func vaultSurvivesReopenAndIsCreatedOnce() async throws {
        let clock = ManualClock()
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: testStorage)
        let info = try await t.store.createVault(for: Fixtures.alice, as: Fixtures.pharmacist, channel: .pharmacy)
        #expect(await code { try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline) } == .vaultAlreadyExists)
        let store = try await t.reopen()
        #expect(await code { try await store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline) } == .vaultAlreadyExists)
        let again = try await store.vaultInfo(for: Fixtures.alice, as: .patient(Fixtures.alice))
        #expect(again.vaultID == info.vaultID)
        #expect(again.createdAt == clock.now())
        #expect(again.createdBy == Fixtures.pharmacist)
        #expect(store.vaultCount == 1)
        try await store.close()
    }

    @Test func concurrentCreationsOfOneVaultYieldExactlyOne() async throws {
        let t = try await TestStore()
        let store = t.store
        let results = await withTaskGroup(of: PatientVaultError.Code?.self) { group in
            for _ in 0..<8 {
                group.addTask { await code { try await store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline) } }
            }
            var out: [PatientVaultError.Code?] = []
            for await r in group { out.append(r) }
            return out
        }
        #expect(results.filter { $0 == nil }.count == 1)
        #expect(results.filter { $0 == .vaultAlreadyExists }.count == 7)
        // Each refused attempt is in the vault's trail.
        let trail = try await store.auditTrail(for: Fixtures.alice, as: .patient(Fixtures.alice))
        #expect(trail.filter { $0.action == .createVault && $0.rule == .vaultAlreadyExists }.count == 7)
        try await store.close()
    }

    /// Creating a vault that exists is no traceless existence probe: the
    /// attempt is in the existing vault's trail (the patient sees who
    /// tried), allowed-but-existing and denied alike.
    @Test func aCreationAttemptOnAnExistingVaultIsInItsTrail() async throws {
        let t = try await TestStore()
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let probe = await error { try await t.store.createVault(for: alice, as: Fixtures.pharmacist, channel: .pharmacy) }
        #expect(probe?.code == .vaultAlreadyExists)
        // A channel that does not fit: denied with its rule, recorded too.
        let denied = await error { try await t.store.createVault(for: alice, as: Fixtures.doctor, channel: .patientOnline) }
        #expect(denied?.code == .accessDenied && denied?.rule == .creationChannelMismatch)
        let trail = try await t.store.auditTrail(for: alice, as: .patient(alice))
        // Newest first.
        let attempts = trail.filter { $0.action == .createVault && $0.outcome == .denied }
        #expect(attempts.map(\.actor) == [Fixtures.doctor, Fixtures.pharmacist])
        #expect(attempts.map(\.rule) == [.creationChannelMismatch, .vaultAlreadyExists])
        // Durable like a write: after a reopen they are still there.
        let store = try await t.reopen()
        #expect(try await store.auditTrail(for: alice, as: .patient(alice)).filter { $0.action == .createVault && $0.outcome == .denied }.count == 2)
        // On a patient without a vault, a denial leaves nothing: no vault holds it.
        #expect(await code { try await store.createVault(for: Fixtures.bob, as: Fixtures.doctor, channel: .patientOnline) } == .accessDenied)
        #expect(await code { _ = try await store.auditTrail(for: Fixtures.bob, as: .patient(Fixtures.bob)) } == .unknownVault)
        try await store.close()
    }

    @Test func unknownVaultIsATypedError() async throws {
        let t = try await TestStore()
        #expect(await code { _ = try await t.store.vaultInfo(for: Fixtures.bob, as: .patient(Fixtures.bob)) } == .unknownVault)
        #expect(await code { _ = try await t.store.documents(for: Fixtures.bob, as: .patient(Fixtures.bob)) } == .unknownVault)
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: Fixtures.bob, as: Fixtures.doctor) } == .unknownVault)
        try await t.store.close()
    }

    @Test func vaultIDIsAPseudonymStableAcrossOpensAndNotTheINS() async throws {
        let t = try await TestStore()
        let a = try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        let b = try await t.store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        #expect(a.vaultID != b.vaultID)
        #expect(a.vaultID.count == 32)
        // Not the stream id that names the vault's records on disk.
        #expect(a.vaultID != t.store.keys.vaultPseudonym(for: Fixtures.alice).bytes.map { String(format: "%02x", $0) }.joined())
        #expect(!a.vaultID.contains(String(t.store.keys.vaultPseudonym(for: Fixtures.alice).bytes.map { String(format: "%02x", $0) }.joined().prefix(16))))
        #expect(!a.vaultID.contains(Fixtures.alice.digits))
        try await t.store.close()
        // Another store (another master key) gives the same patient another pseudonym.
        let other = try await TestStore()
        let c = try await other.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        #expect(c.vaultID != a.vaultID)
        try await other.store.close()
    }

    @Test func vaultsEvictedFromMemoryStayReadableAndWritable() async throws {
        let t = try await TestStore(configuration: Fixtures.evicting(after: 4), engine: testStorage)
        let patients = Fixtures.patients(24, from: 850_000_000, step: 7)
        for (i, p) in patients.enumerated() {
            try await t.store.createVault(for: p, as: .patient(p), channel: .patientOnline)
            _ = try await t.store.deposit(Fixtures.draft("doc \(i)"), content: Fixtures.content("C\(i)"), for: p, as: Fixtures.doctor)
        }
        // Eviction skips vaults with groups in flight (an activity copy, a
        // read's buffered audit entry, for a millisecond or so): the next
        // use that finds them done brings memory back under the limit.
        try await eventually { try await isBackUnderTheLimit(t, after: patients[patients.count - 1]) }
        // Every vault, evicted or not, reloads from the log with its documents.
        for (i, p) in patients.enumerated().reversed() {
            let docs = try await t.store.documents(for: p, as: .patient(p))
            #expect(docs.map(\.title) == ["doc \(i)"])
            #expect(try await t.store.content(of: docs[0].id, for: p, as: .patient(p)) == Fixtures.content("C\(i)"))
            _ = try await t.store.deposit(Fixtures.draft("second"), content: Data([UInt8(i)]), for: p, as: Fixtures.doctor)
        }
        for p in patients {
            #expect(try await t.store.vaultInfo(for: p, as: .patient(p)).documentCount == 2)
        }
        try await eventually { try await isBackUnderTheLimit(t, after: patients[patients.count - 1]) }
        try await t.store.close()
    }

    @Test func aUseNotedAfterItsVaultsEvictionDoesNotStickAboveTheLimit() {
        // A caller notes its use of a vault after its operation; another
        // caller may evict that vault in between. The late use leaves a
        // counted vault with nothing in memory, which must still go when it
        // is chosen, or the count stays above the limit for good.
        let cache = VaultCache(limit: 2) { _, _ in true }
        let ids = (1...3).map { i in StreamID(bytes: [UInt8](repeating: UInt8(i), count: StreamID.byteCount)) }
        cache.noteUse(of: ids[0])  // no handle: evicted before its use was noted
        cache.noteUse(of: ids[1])
        #expect(cache.loadedCount == 2)
        cache.noteUse(of: ids[2])
        #expect(cache.loadedCount == 2)
        #expect(cache.handleCount == 0)
    }

    /// Uses the vault of `patient` and says whether at most 4 vaults are
    /// still in memory after it.
    private func isBackUnderTheLimit(_ t: TestStore, after patient: INS) async throws -> Bool {
        _ = try await t.store.vaultInfo(for: patient, as: .patient(patient))
        return t.store.cache.loadedCount <= 4
    }

    @Test func forgedArgon2CostIsRefusedBeforeAnyWork() async throws {
        let folder = TestFolder()
        let store = try await VaultStore.open(
            at: folder.url, key: .passphrase("correct horse battery staple"), configuration: weakPassphraseConfiguration())
        try await store.close()
        // Raise the stored memory cost to 1 TiB with a valid checksum: the
        // open must refuse it rather than try to allocate it.
        let path = folder.url.appendingPathComponent(StoreFolder.headerFileName).path
        var header = try StoreHeader.read(directory: folder.url.path)!
        header.parameters = .init(opsLimit: header.parameters.opsLimit, memLimit: 1 << 40)
        try Data(header.encoded()).write(to: URL(fileURLWithPath: path))
        let c = await code {
            _ = try await VaultStore.open(at: folder.url, key: .passphrase("correct horse battery staple"), configuration: weakPassphraseConfiguration())
        }
        #expect(c == .corrupted)
    }

    @Test func anExistingStoreDirectoryIsTightenedTo0700() async throws {
        let folder = TestFolder()
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let store = try await VaultStore.open(at: folder.url, key: .key(try MasterKey.generate()), configuration: Fixtures.configuration())
        try await store.close()
        let mode = try FileManager.default.attributesOfItem(atPath: folder.url.path)[.posixPermissions] as? Int
        #expect(mode == 0o700)
    }

    @Test func closedStoreRefusesReads() async throws {
        let t = try await storeWithAlice()
        let m = try await t.store.deposit(Fixtures.draft(), content: Data("x".utf8), for: Fixtures.alice, as: Fixtures.doctor)
        try await t.store.close()
        #expect(await code { _ = try await t.store.content(of: m.id, for: Fixtures.alice, as: .patient(Fixtures.alice)) } == .closed)
        #expect(await code { _ = try await t.store.documents(for: Fixtures.alice, as: .patient(Fixtures.alice)) } == .closed)
    }

    func storeWithAlice() async throws -> TestStore {
        let t = try await TestStore()
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        return t
    }
}

/// A configuration whose passphrase stores use the smallest Argon2id cost
/// (test support only; never public).
func weakPassphraseConfiguration() -> Configuration {
    var c = Fixtures.configuration()
    c.allowsWeakPassphraseCostForTesting = true
    return c
}
