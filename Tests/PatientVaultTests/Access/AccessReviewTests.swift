import Foundation
import Testing
@testable import PatientVault

/// Regression tests of the thirteenth session's review of the access rules
/// against DOMAIN.md and AccessModel.md: each fails on the code before its
/// fix.
@Suite struct AccessReviewTests {
    static let nurseRPPS = try! RPPSNumber("10100000111")
    static let nurse = Principal.professional(HealthProfessional(rpps: nurseRPPS, profession: .nurse))
    /// The same person, claiming to be a doctor.
    static let nurseClaimingDoctor = Principal.professional(HealthProfessional(rpps: nurseRPPS, profession: .doctor))

    @Test func aNurseOfTheCareTeamWhoCallsAsADoctorCannotRecordADeath() async throws {
        let v = try await AuditedVault()
        try await v.store.addToCareTeam(Self.nurse, for: v.alice, as: v.patient)
        let e = await error { try await v.store.closeVault(for: v.alice, reason: .death, as: Self.nurseClaimingDoctor) }
        #expect(e?.code == .accessDenied && e?.rule == .onlyDoctorCertifiesDeath)
        // Nor through a grant given to them as a nurse.
        try await v.store.authorise(Self.nurse, for: v.alice, as: v.patient)
        #expect(await code { try await v.store.closeVault(for: v.alice, reason: .death, as: Self.nurseClaimingDoctor) } == .accessDenied)
        #expect(try await v.store.vaultInfo(for: v.alice, as: v.patient).closure == nil)
        // A doctor of the care team does.
        try await v.store.addToCareTeam(Fixtures.otherDoctor, for: v.alice, as: v.patient)
        try await v.store.closeVault(for: v.alice, reason: .death, as: Fixtures.otherDoctor)
        // And only a doctor undoes it: the nurse's claim does not reopen it.
        let reopen = await error { try await v.store.reopenVault(for: v.alice, as: Self.nurseClaimingDoctor) }
        #expect(reopen?.code == .accessDenied && reopen?.rule == .onlyDoctorCertifiesDeath)
        try await v.store.close()
    }

    @Test func aBreakGlassListingByTheAuthorOfOneDocumentIsFlaggedAndNotified() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let emergency = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10100000077"), profession: .doctor))
        let own = try await v.store.deposit(Fixtures.draft("theirs"), content: Data([1]), for: v.alice, as: emergency)
        let patients = try await v.store.deposit(Fixtures.draft("the patient's", category: .patientDeposited), content: Data([2]), for: v.alice, as: v.patient)
        let reason = try BreakGlassReason("unconscious")
        let listed = try await v.store.documents(for: v.alice, as: emergency, purpose: .breakGlass(reason: reason))
        #expect(Set(listed.map(\.id)) == [own.id, patients.id])
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .listDocuments && entry.isBreakGlass && entry.rule == .breakGlass)
        // Without break-glass the author lists their own document only, unflagged.
        #expect(try await v.store.documents(for: v.alice, as: emergency).map(\.id) == [own.id])
        #expect(try await v.entries().last?.isBreakGlass == false)
        try await v.store.close()
        var kinds: [VaultNotification.Kind] = []
        for await n in listener { kinds.append(n.kind) }
        #expect(kinds.contains(.breakGlass(emergency)))
    }

    @Test func aBlockedAuthorStillErasesAtThePatientsRequest() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        try await v.store.block(Fixtures.doctor, for: v.alice, as: v.patient)
        let tombstone = try await v.store.erase(doc.id, for: v.alice, reason: try ErasureReason("wrong patient"), as: Fixtures.doctor)
        #expect(tombstone.id == doc.id)
        #expect(await code { _ = try await v.store.content(of: doc.id, for: v.alice, as: v.patient) } == .erased)
        // Someone else's document stays unknown to them.
        let other = try await v.store.deposit(Fixtures.draft(), content: Data([2]), for: v.alice, as: Fixtures.otherDoctor)
        #expect(await code {
            _ = try await v.store.erase(other.id, for: v.alice, reason: try ErasureReason("no"), as: Fixtures.doctor)
        } == .unknownDocument)
        try await v.store.close()
    }

    @Test func onlyTheHolderMakesASecretAccess() async throws {
        let v = try await AuditedVault()
        let parent = LegalRepresentative(ins: Fixtures.bob, relationship: .parent)
        try await v.store.nameRepresentative(.representative(parent), for: v.alice, as: v.patient)
        let stranger = Fixtures.ins("1850275123456")
        let e = await error { _ = try await v.store.documents(for: v.alice, as: .patient(stranger), secret: true) }
        #expect(e?.code == .invalidArgument)
        let entry = try #require(try await v.entries().last)
        #expect(entry.actor == .patient(stranger) && !entry.isSecretAccess && entry.outcome == .denied)
        // The representatives see the stranger's attempt.
        let view = try await v.store.auditTrail(for: v.alice, as: .representative(parent))
        #expect(view.contains { $0.actor == .patient(stranger) })
        // The holder's own secret access stays secret.
        _ = try await v.store.documents(for: v.alice, as: v.patient, secret: true)
        #expect(try await v.entries().last?.isSecretAccess == true)
        try await v.store.close()
    }

    @Test func theListOfErasuresIsDecidedByTheRuleItsEntryRecords() async throws {
        let v = try await AuditedVault()
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: v.patient)
        _ = try await v.store.erase(doc.id, for: v.alice, as: v.patient)
        #expect(try await v.store.erasedDocuments(for: v.alice, as: dpo).map(\.id) == [doc.id])
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .queryAccessHistory && entry.rule == .configuredReviewer && entry.outcome == .allowed)
        // The one decision agrees with the entry.
        let decision = try await v.store.withVault(v.alice) { vault in
            AccessPolicy.decide(v.store.request(.queryAccessHistory, by: dpo, vault: vault, time: Date()))
        }
        #expect(decision == .allow(.configuredReviewer))
        // A professional is refused, and recorded so.
        #expect(await code { _ = try await v.store.erasedDocuments(for: v.alice, as: Fixtures.doctor) } == .accessDenied)
        #expect(try await v.entries().last?.rule == .notAuthorised)
        try await v.store.close()
    }
}
