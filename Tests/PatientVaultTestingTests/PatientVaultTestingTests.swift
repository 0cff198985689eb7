import Foundation
import PatientVault
import PatientVaultTesting
import Testing

/// The testing product as a downstream service uses it: public API only.
@Suite struct PatientVaultTestingTests {
    @Test func theFolderIsGoneAfterSuccessAnErrorAndACancellation() async throws {
        struct Expected: Error {}
        let kept = try await withTemporaryStore { store in store.location }
        #expect(!FileManager.default.fileExists(atPath: kept.path))

        let seen = LocationBox()
        await #expect(throws: Expected.self) {
            try await withTemporaryStore { store in
                seen.set(store.location)
                #expect(FileManager.default.fileExists(atPath: store.location.path))
                throw Expected()
            }
        }
        #expect(seen.get() != nil && !FileManager.default.fileExists(atPath: seen.get()!.path))

        let started = LocationBox()
        let task = Task {
            try await withTemporaryStore { store in
                started.set(store.location)
                try await Task.sleep(for: .seconds(60))
            }
        }
        while started.get() == nil { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(!FileManager.default.fileExists(atPath: started.get()!.path))
    }

    @Test func aFreshStoreTakesLessThanTwoMegabytes() async throws {
        for configuration in [Configuration.testing, Configuration()] {
            let bytes = try await withTemporaryStore(configuration: configuration) { store in
                let alice = INS.example(2)
                try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
                let files = try FileManager.default.contentsOfDirectory(at: store.location, includingPropertiesForKeys: [.fileSizeKey])
                return try files.reduce(0) { $0 + (try $1.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) }
            }
            #expect(bytes < 2_000_000, "\(bytes) bytes")
        }
    }

    @Test func faultsFromOutsideGiveDiskFullAndDurabilityLost() async throws {
        let faults = StoreFaults()
        let alice = INS.example(3)
        try await withTemporaryStore(configuration: .testing.injecting(faults)) { store in
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            faults.diskFull = true
            // The very next write fails, whatever its size: a one-byte
            // deposit, a vault creation, a policy change.
            let bob = INS.example(4)
            let draft = DocumentDraft(typeCode: .consultationNote, category: .report, title: "Note", createdAt: Date(), mimeType: "text/plain")
            await #expect { _ = try await store.deposit(draft, content: Data([1]), for: alice, as: .doctor()) } throws: {
                ($0 as? PatientVaultError)?.code == .diskFull
            }
            await #expect { try await store.createVault(for: bob, as: .patient(bob), channel: .patientOnline) } throws: {
                ($0 as? PatientVaultError)?.code == .diskFull
            }
            await #expect { try await store.authorise(.doctor(3), for: alice, as: .patient(alice)) } throws: {
                ($0 as? PatientVaultError)?.code == .diskFull
            }
            // Nothing changed, and reads go on.
            #expect(try await store.documents(for: alice, as: .patient(alice)).isEmpty)
            _ = try await store.vaultInfo(for: alice, as: .patient(alice))
            faults.diskFull = false
            try await store.createVault(for: bob, as: .patient(bob), channel: .patientOnline)

            faults.syncFails = true
            let lost = await #expect(throws: PatientVaultError.self) {
                _ = try await store.deposit(
                    DocumentDraft(typeCode: .consultationNote, category: .report, title: "Lost?", createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "text/plain"),
                    content: Data([1]), for: alice, as: .doctor())
            }
            #expect(lost?.code == .durabilityLost)
            faults.syncFails = false
            await #expect(throws: PatientVaultError.self) { try await store.close() }
        }
    }

    @Test func buildersGiveValidDistinctIdentifiers() throws {
        let examples = (0..<500).map { INS.example($0) }
        #expect(Set(examples).count == 500)
        #expect(INS.example(7) == INS.example(7))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 { _ = try INS(INS.random(using: &generator).digits) }
        #expect(Set((0..<100).map { RPPSNumber.example($0) }).count == 100)
        #expect(Set((0..<100).map { FINESSNumber.example($0) }).count == 100)
        let principals: [Principal] = [.doctor(), .doctor(2), .pharmacist(), .nurse(), .professional(.midwife), .hospital(), .pharmacy(), .laboratory(), .healthInsurer, .reviewer()]
        #expect(Set(principals).count == principals.count)
        // The rules key professionals by RPPS and organisations by FINESS:
        // no two builders share a number, whatever the profession or kind,
        // over the whole range of `n`.
        var rpps: [RPPSNumber] = []
        var finess: [FINESSNumber] = []
        for n in [0, 1, 2, 999_999] {
            var professionals: [Principal] = [.doctor(n), .pharmacist(n), .nurse(n)]
            professionals += Profession.allCases.map { Principal.professional($0, n) }
            for case .professional(let p) in professionals { rpps.append(p.rpps) }
            for case .organisation(let o) in [Principal.hospital(n), .pharmacy(n), .laboratory(n)] { finess.append(o.finess) }
        }
        #expect(Set(rpps).count == rpps.count && rpps.count == 4 * (3 + Profession.allCases.count))
        #expect(Set(finess).count == finess.count && finess.count == 12)
        #expect(Principal.doctor(1_000_001) == .doctor(1), "n is taken modulo 10⁶, within the doctors' block")
        #expect(Principal.pharmacist(.max) != .doctor(.max), "no overflow, no collision")
    }

    /// The reviewer builder's system name is what the configuration lists.
    @Test func aReviewerBuiltHereIsOneTheStoreKnows() async throws {
        var configuration = Configuration.testing
        configuration.auditReviewers = [.reviewer()]
        try await withTemporaryStore(configuration: configuration, storage: .memory) { store in
            let alice = INS.example(1)
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            let doctor = try #require(GrantHolder(.doctor()))
            _ = try await store.activity(of: doctor, as: .reviewer())
            await #expect(throws: PatientVaultError.self) { _ = try await store.activity(of: doctor, as: .reviewer(2)) }
        }
    }

    /// Storage faults act on files: a store in memory refuses them rather
    /// than ignore them (a test of error handling would pass for nothing).
    @Test func faultsAreRefusedInMemoryAndAStoreMadeByHandRemovesItsFolder() async throws {
        let faults = StoreFaults()
        await #expect(throws: PatientVaultError.self) {
            try await withTemporaryStore(configuration: .testing.injecting(faults), storage: .memory) { _ in }
        }
        let temporary = try await TemporaryStore(configuration: .testing)
        #expect(FileManager.default.fileExists(atPath: temporary.folder.path))
        try await temporary.closeAndRemove()
        #expect(!FileManager.default.fileExists(atPath: temporary.folder.path), "the folder goes with the close, not with the last reference")
    }

    @Test func theManualClockMovesOnlyWhenTold() {
        let clock = ManualClock()
        let start = clock.now()
        #expect(clock.now() == start)
        clock.advance(by: 3_600)
        #expect(clock.now() == start.addingTimeInterval(3_600))
        clock.set(Date(timeIntervalSince1970: 0))
        #expect(clock.now() == Date(timeIntervalSince1970: 0))
    }
}

/// A location seen inside a body, read outside it.
final class LocationBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: URL?
    func set(_ url: URL) { lock.withLock { value = url } }
    func get() -> URL? { lock.withLock { value } }
}

/// `open(at:)` creates missing parent folders, or says which one failed.
@Test func openCreatesMissingParentFoldersOrSaysWhichFailed() async throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("pv-parents-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    let nested = root.appendingPathComponent("a/b/store")
    let store = try await VaultStore.open(at: nested, key: .key(try MasterKey.generate()), configuration: .testing)
    try await store.close()
    let mode = try FileManager.default.attributesOfItem(atPath: root.appendingPathComponent("a").path)[.posixPermissions] as? Int
    #expect(mode == 0o700)
    // Under a regular file, no folder can be made: the error names the path.
    let file = root.appendingPathComponent("plain")
    try Data([1]).write(to: file)
    let refused = await #expect(throws: PatientVaultError.self) {
        _ = try await VaultStore.open(at: file.appendingPathComponent("x/store"), key: .key(try MasterKey.generate()), configuration: .testing)
    }
    #expect(refused?.code == .io)
    #expect(refused?.message.contains(file.appendingPathComponent("x").path) == true)
    #expect(refused?.message.contains("errno") == true)
}

/// Every error code has its HTTP status, and the usual ones are right.
@Test func everyErrorCodeHasAnHTTPStatus() {
    let expected: [(PatientVaultError.Code, Int)] = [
        (.invalidIdentifier, 400), (.invalidArgument, 400), (.accessDenied, 403), (.unknownVault, 404),
        (.unknownDocument, 404), (.vaultAlreadyExists, 409), (.conflict, 409), (.deprecatedVersion, 410), (.erased, 410),
        (.diskFull, 507), (.storeLocked, 503), (.closed, 503), (.durabilityLost, 503), (.cancelled, 503),
        (.wrongMasterKey, 500), (.corrupted, 500), (.io, 500), (.unsupportedFormat, 500), (.cryptoUnavailable, 500),
    ]
    for (code, status) in expected { #expect(code.httpStatus == status, "\(code)") }
}

/// The LOINC codes of French shared records, each filed under a category,
/// deposited and listed under it.
@Test func knownLOINCCodesHaveTheirCategory() async throws {
    #expect(DocumentTypeCode.knownLOINC.count == Set(DocumentTypeCode.knownLOINC).count)
    #expect(DocumentTypeCode.dischargeSummary.usualCategory == .summary)
    #expect(DocumentTypeCode.laboratoryReport.usualCategory == .report)
    #expect(DocumentTypeCode(code: "00000-0").usualCategory == nil)
    let alice = INS.example(5)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for type in DocumentTypeCode.knownLOINC {
            let category = try #require(type.usualCategory)
            let draft = DocumentDraft(typeCode: type, category: category, title: "Document \(type.code)", createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "text/plain")
            _ = try await store.deposit(draft, content: Data(type.code.utf8), for: alice, as: .hospital())
        }
        let listed = try await store.documents(for: alice, as: .patient(alice))
        #expect(Set(listed.map(\.typeCode)) == Set(DocumentTypeCode.knownLOINC))
        for m in listed { #expect(m.category == m.typeCode.usualCategory) }
    }
}

/// A vault used through `store.vault(for:as:)`: the same calls without the
/// patient and the principal, and metadata with content in one audited call.
@Test func aPerPatientScopeAndOneCallForMetadataAndContent() async throws {
    let alice = INS.example(12)
    try await withTemporaryStore(configuration: .testing(clock: ManualClock())) { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doctor = store.vault(for: alice, as: .doctor())
        let patient = store.vault(for: alice, as: .patient(alice))
        let draft = DocumentDraft(typeCode: .consultationNote, category: .report, title: "Consultation", createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "text/plain")
        let note = try await doctor.deposit(draft, content: Data("v1".utf8))
        let before = try await patient.verifyAuditTrail().entries
        let (metadata, content) = try await patient.document(note.id)
        #expect(metadata == note && content == Data("v1".utf8))
        // One entry for the pair (the verification's own is the other one).
        #expect(try await patient.verifyAuditTrail().entries == before + 2)
        let v2 = try await doctor.replace(note.id, with: draft, content: Data("v2".utf8))
        #expect(try await patient.documents().map(\.version) == [v2.version])
        #expect(try await patient.versions(of: note.id).count == 2)
        #expect(try await patient.content(of: note.id) == Data("v2".utf8))
        #expect(try await patient.info().documentCount >= 1)
        #expect(try await patient.whoCouldRead(note.id, at: Date(timeIntervalSince1970: 1_700_000_000)).contains { $0.principal == .doctor() })
        await #expect(throws: PatientVaultError.self) { _ = try await store.vault(for: alice, as: .doctor(2)).content(of: note.id) }
        #expect(try await patient.auditTrail().contains { $0.actor == .doctor(2) && $0.outcome == .denied })
    }
}

/// The clock of `.testing` is the caller's: the system clock by default,
/// so that dates built from `Date.now` are not in the store's future.
@Test func theTestingPresetUsesTheSystemClockOrTheCallersOwn() async throws {
    let before = Date()
    let alice = INS.example(7)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let info = try await store.vaultInfo(for: alice, as: .patient(alice))
        #expect(info.createdAt >= before.addingTimeInterval(-1) && info.createdAt <= Date().addingTimeInterval(1))
    }
    let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
    try await withTemporaryStore(configuration: .testing(clock: clock)) { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        #expect(try await store.vaultInfo(for: alice, as: .patient(alice)).createdAt == clock.now())
    }
}

/// A requested key-derivation strength is never lowered by a preset: only
/// the explicit opt-in gives the cheap cost, and a production configuration
/// refuses a store of that cost, saying why.
@Test func theCheapKeyDerivationCostNeedsItsOptIn() async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-kdf-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let insecure = Configuration.testing.withInsecureKeyDerivationForTests()
    try await VaultStore.open(at: folder, key: .passphrase("correct horse battery staple"), configuration: insecure).close()
    await #expect {
        _ = try await VaultStore.open(at: folder, key: .passphrase("correct horse battery staple"), configuration: .testing)
    } throws: { error in
        let e = error as? PatientVaultError
        return e?.code == .invalidArgument && e?.message.contains("withInsecureKeyDerivationForTests") == true
    }
    try await VaultStore.open(at: folder, key: .passphrase("correct horse battery staple"), configuration: insecure).close()
    // Without the opt-in, the preset keeps the strength asked for: were it
    // lowered to the cheap cost, this reopen without the opt-in would be
    // refused as above.
    let other = FileManager.default.temporaryDirectory.appendingPathComponent("pv-kdf-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: other) }
    try await VaultStore.open(at: other, key: .passphrase("correct horse", strength: .interactive), configuration: .testing).close()
    try await VaultStore.open(at: other, key: .passphrase("correct horse", strength: .interactive), configuration: .testing).close()
}

/// `VaultAccess` carries the policy calls too: a patient's app manages who
/// may read through the same scoped value, each call decided and audited.
@Test func aScopedVaultManagesWhoMayRead() async throws {
    let alice = INS.example(41)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let mine = store.vault(for: alice, as: .patient(alice))
        let cardiologist = store.vault(for: alice, as: .doctor(7))
        let note = try await store.vault(for: alice, as: .doctor()).deposit(
            DocumentDraft(typeCode: .consultationNote, category: .report, title: "Consultation", createdAt: Date(), mimeType: "text/plain"),
            content: Data("ECG normal".utf8))
        await #expect(throws: PatientVaultError.self) { _ = try await cardiologist.content(of: note.id) }
        try await mine.authorise(.doctor(7), until: Date().addingTimeInterval(86_400))
        #expect(try await cardiologist.content(of: note.id) == Data("ECG normal".utf8))
        try await mine.block(.doctor(7))
        await #expect(throws: PatientVaultError.self) { _ = try await cardiologist.content(of: note.id) }
        try await mine.unblock(.doctor(7))
        try await mine.revoke(.doctor(7))
        try await mine.setMedecinTraitant(.doctor(8))
        try await mine.addToCareTeam(.doctor(9))
        try await mine.removeFromCareTeam(.doctor(9))
        try await mine.setBreakGlassOpposition(true)
        let who = try await mine.whoCouldRead(note.id, at: Date())
        #expect(who.contains { $0.principal == .doctor(8) } && !who.contains { $0.principal == .doctor(7) })
        let actions = try await mine.auditTrail().map(\.action)
        for action: VaultAction in [.authorise, .block, .unblock, .revoke, .setMedecinTraitant, .updateCareTeam, .setBreakGlassOpposition] {
            #expect(actions.contains(action), "\(action)")
        }
    }
}

/// A test of reopening needs the folder, the key and a reopen: the
/// temporary store gives all three.
@Test func aTemporaryStoreReopensAndShowsItsFolderAndKey() async throws {
    let alice = INS.example(51)
    let folder = try await withTemporaryStoreFolder { temporary in
        try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        // A second open of the same folder is refused while it is open.
        await #expect { _ = try await VaultStore.open(at: temporary.folder, key: .key(temporary.key)) } throws: {
            ($0 as? PatientVaultError)?.code == .storeLocked
        }
        let reopened = try await temporary.reopen()
        #expect(temporary.store === reopened)
        #expect(try await reopened.vaultInfo(for: alice, as: .patient(alice)).channel == .patientOnline)
        return temporary.folder
    }
    #expect(!FileManager.default.fileExists(atPath: folder.path))
}

/// A temporary store opens with the master-key source the test gives: a
/// key provider (reopened through it), or a passphrase with the tests'
/// cheap cost. A store in memory, which has no header, takes a raw key only.
@Test func aTemporaryStoreOpensWithTheTestsKeySource() async throws {
    let alice = INS.example(53)
    let hsm = try TestKeyProvider()
    try await withTemporaryStoreFolder(key: .provider(hsm)) { temporary in
        try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let unwraps = hsm.calls.unwraps
        let reopened = try await temporary.reopen()
        #expect(hsm.calls.unwraps == unwraps + 1)
        #expect(try await reopened.vaultInfo(for: alice, as: .patient(alice)).channel == .patientOnline)
        // Its random raw key is not the store's key.
        await #expect { _ = try await VaultStore.open(at: temporary.folder, key: .key(temporary.key)) } throws: {
            ($0 as? PatientVaultError)?.code == .storeLocked || ($0 as? PatientVaultError)?.code == .wrongMasterKey
        }
    }
    _ = try await withTemporaryStore(configuration: Configuration.testing.withInsecureKeyDerivationForTests(), key: .passphrase("correct horse")) { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
    }
    await #expect {
        _ = try await withTemporaryStore(storage: .memory, key: .provider(hsm)) { _ in }
    } throws: { ($0 as? PatientVaultError)?.code == .invalidArgument }
}

/// A lost write is reported where it happened: a test that expects it (and
/// gets it from the failing call) does not get it again when the temporary
/// store closes after the test's body.
@Test func aLostWriteIsReportedOnceWhereItHappened() async throws {
    let faults = StoreFaults()
    let alice = INS.example(52)
    try await withTemporaryStoreFolder(configuration: .testing.injecting(faults)) { temporary in
        try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.syncFails = true
        await #expect { try await temporary.store.authorise(.doctor(), for: alice, as: .patient(alice)) } throws: {
            ($0 as? PatientVaultError)?.code == .durabilityLost
        }
        faults.syncFails = false
        // Reopening recovers; the store takes writes again.
        let reopened = try await temporary.reopen()
        try await reopened.block(.doctor(3), for: alice, as: .patient(alice))
    }
}

/// A downstream suite on the main actor (a UI-bound service's tests, or
/// XCTest cases marked `@MainActor`) uses the helpers as any other: its
/// body runs on its actor, and what it returns need not be `Sendable`.
@MainActor @Suite struct MainActorSuiteTests {
    final class Tally { var vaults = 0 }
    let tally = Tally()

    @Test func theHelpersServeATestOnTheMainActor() async throws {
        let alice = INS.example(1)
        let seen = try await withTemporaryStore(storage: .memory) { store in
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            tally.vaults += 1
            return tally
        }
        #expect(seen.vaults == 1)
        try await withTemporaryStoreFolder(storage: .memory) { temporary in
            _ = try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            tally.vaults += 1
        }
        #expect(tally.vaults == 2)
    }
}
