import Foundation
import Testing
@testable import PatientVault

/// Each version of a document is judged by its own flags and author (`VaultStore+Read`, `VaultStore+Deposit`).
@Suite struct VersionRulesTests {
    @Test func eachVersionIsJudgedByItsOwnFlags() async throws {
        let (v, doctor) = try await AuditedVault.authorising(Fixtures.otherDoctor)
        let v1 = try await v.store.deposit(
            Fixtures.draft("v1", flags: [.maskedFromProfessionals]), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.replace(v1.id, with: Fixtures.draft("v2"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        // The authorised doctor sees version 2, not the masked version 1.
        #expect(try await v.store.content(of: v1.id, for: v.alice, as: doctor) == Data([2]))
        #expect(await code { _ = try await v.store.content(of: v1.id, version: 1, includingDeprecated: true, for: v.alice, as: doctor) } == .unknownDocument)
        #expect(try await v.store.versions(of: v1.id, for: v.alice, as: doctor).map(\.version) == [2])
        #expect(try await v.store.documents(for: v.alice, matching: DocumentQuery(status: .all), as: doctor).map(\.version) == [2])
        // The patient sees both.
        #expect(try await v.store.versions(of: v1.id, for: v.alice, as: v.patient).map(\.version) == [1, 2])
        try await v.store.close()
    }

    @Test func aReleaseCoversTheVersionsDepositedBeforeIt() async throws {
        let v = try await AuditedVault()
        let hidden: ConfidentialityFlags = [.hiddenFromPatient]
        let v1 = try await v.store.deposit(Fixtures.draft("v1", flags: hidden), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        v.clock.advance(by: 60)
        try await v.store.releaseToPatient(v1.id, for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.content(of: v1.id, for: v.alice, as: v.patient) == Data([1]))
        v.clock.advance(by: 60)
        _ = try await v.store.replace(v1.id, with: Fixtures.draft("v2", flags: hidden), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        // The new version is hidden again until released (or a month old).
        #expect(await code { _ = try await v.store.content(of: v1.id, for: v.alice, as: v.patient) } == .unknownDocument)
        #expect(await code { try await v.store.releaseToPatient(v1.id, for: v.alice, as: v.patient) } == .unknownDocument)
        // Its author releases the new version too.
        v.clock.advance(by: 60)
        try await v.store.releaseToPatient(v1.id, for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.content(of: v1.id, for: v.alice, as: v.patient) == Data([2]))
        // A release of a version already released is bad input.
        #expect(await code { try await v.store.releaseToPatient(v1.id, for: v.alice, as: Fixtures.doctor) } == .invalidArgument)
        try await v.store.close()
    }

    @Test func theInsurerCorrectsItsOwnReimbursementHistory() async throws {
        let v = try await AuditedVault()
        let history = try await v.store.deposit(
            Fixtures.draft("Remboursements", category: .reimbursement), content: Data([1]), for: v.alice, as: Fixtures.insurer)
        let corrected = try await v.store.replace(
            history.id, with: Fixtures.draft("Remboursements", category: .reimbursement), content: Data([2]), for: v.alice, as: Fixtures.insurer)
        #expect(corrected.version == 2)
        // It still never reads.
        #expect(await code { _ = try await v.store.content(of: history.id, for: v.alice, as: Fixtures.insurer) } == .accessDenied)
        try await v.store.close()
    }

    @Test func concurrentAuditedOperationsWithEvictionKeepEveryChainWhole() async throws {
        let c = Fixtures.evicting(after: 3)
        let v = try await AuditedVault(configuration: c)
        let patients = Fixtures.patients(8, from: 770_000_000, step: 13)
        for p in patients { try await v.store.createVault(for: p, as: .patient(p), channel: .patientOnline) }
        let store = v.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, p) in patients.enumerated() {
                group.addTask {
                    let d = try await store.deposit(Fixtures.draft(), content: Data([UInt8(i)]), for: p, as: Fixtures.doctor)
                    for _ in 0..<5 {
                        _ = try await store.metadata(of: d.id, for: p, as: .patient(p))
                        try await store.setBreakGlassOpposition(i % 2 == 0, for: p, as: .patient(p))
                        _ = try await store.documents(for: p, as: Fixtures.doctor)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Eviction is opportunistic: it skips vaults with records in flight,
        // so it may lag under load; the next use with nothing in flight
        // brings memory back under the limit. Buffered groups (the reads'
        // audit entries, the activity copies flushed in the background) may
        // still be in flight for a millisecond or so: uses go on until a use
        // finds them done.
        var infos = 0
        try await eventually {
            infos += 1
            _ = try await store.vaultInfo(for: patients[0], as: .patient(patients[0]))
            return store.cache.loadedCount <= 3
        }
        #expect(store.cache.handleCount <= 8)
        for p in patients {
            // create, deposit, 5 × (read, change, list), and the verification
            // (and, for the first, the vaultInfo calls above).
            #expect(try await store.verifyAuditTrail(for: p, as: .patient(p)).entries == (p == patients[0] ? 18 + infos : 18))
        }
        let reopened = try await v.t.reopen(configuration: c)
        for p in patients {
            #expect(try await reopened.verifyAuditTrail(for: p, as: .patient(p)).entries == (p == patients[0] ? 19 + infos : 19))
        }
        try await reopened.close()
    }
}
