import Foundation
import Testing
@testable import PatientVault

/// Who could read what, at a past time, from the policy history (`whoCouldRead`, `whatCouldRead`).
@Suite struct TimeTravelTests {
    @Test func whoCouldReadBeforeBetweenAndAfterChanges() async throws {
        let v = try await AuditedVault()
        let gp = Fixtures.doctor.healthProfessional!
        let nurse = HealthProfessional(rpps: try RPPSNumber("10100000099"), profession: .nurse)
        let specialist = Fixtures.otherDoctor
        let doc = try await v.store.deposit(Fixtures.draft(category: .summary), content: Data([1]), for: v.alice, as: Fixtures.hospital)
        let t0 = v.clock.now()
        v.clock.advance(by: 100)
        try await v.store.authorise(specialist, for: v.alice, as: v.patient)
        try await v.store.setMedecinTraitant(.professional(gp), for: v.alice, as: v.patient)
        let t1 = v.clock.now()
        v.clock.advance(by: 100)
        try await v.store.authorise(.professional(nurse), until: v.clock.now().addingTimeInterval(50), for: v.alice, as: v.patient)
        let t2 = v.clock.now()
        v.clock.advance(by: 100)
        try await v.store.revoke(specialist, for: v.alice, as: v.patient)
        try await v.store.block(specialist, for: v.alice, as: v.patient)
        let t3 = v.clock.now()

        func who(_ t: Date) async throws -> [Principal: AccessRule] {
            Dictionary(uniqueKeysWithValues: try await v.store.whoCouldRead(doc.id, at: t, for: v.alice, as: v.patient).map { ($0.principal, $0.rule) })
        }
        #expect(try await who(t0) == [v.patient: .patientIsHolder, Fixtures.hospital: .authorOfDocument])
        #expect(try await who(t1) == [
            v.patient: .patientIsHolder, Fixtures.hospital: .authorOfDocument, specialist: .authorisedByPatient, .professional(gp): .medecinTraitant,
        ])
        #expect(try await who(t2)[.professional(nurse)] == .authorisedByPatient)
        let after = try await who(t3)
        #expect(after[specialist] == nil && after[.professional(nurse)] == nil)
        #expect(after[.professional(gp)] == .medecinTraitant)
        // Before the document existed, nobody could read it.
        #expect(try await v.store.whoCouldRead(doc.id, at: t0.addingTimeInterval(-1), for: v.alice, as: v.patient).isEmpty)
        // A document the asker cannot see (or that does not exist) is unknown.
        #expect(await code { _ = try await v.store.whoCouldRead(try DocumentID.random(), at: t3, for: v.alice, as: v.patient) } == .unknownDocument)

        // What could the specialist read, when.
        #expect(try await v.store.whatCouldRead(specialist, at: t0, for: v.alice, as: v.patient).isEmpty)
        #expect(try await v.store.whatCouldRead(specialist, at: t1, for: v.alice, as: v.patient).map(\.document) == [doc.id])
        #expect(try await v.store.whatCouldRead(specialist, at: t3, for: v.alice, as: v.patient).isEmpty)
        // The nurse's grant had expired by t3 (matrix allows summaries to nurses).
        #expect(try await v.store.whatCouldRead(.professional(nurse), at: t2, for: v.alice, as: v.patient).count == 1)
        #expect(try await v.store.whatCouldRead(.professional(nurse), at: t3, for: v.alice, as: v.patient).isEmpty)
        // The same answers after a reopen (the history is in the log).
        let store = try await v.t.reopen(configuration: { var c = Fixtures.configuration(clock: v.clock); c.clock = v.clock; return c }())
        #expect(try await store.whatCouldRead(specialist, at: t1, for: v.alice, as: v.patient).map(\.document) == [doc.id])
        #expect(try await store.whatCouldRead(specialist, at: t3, for: v.alice, as: v.patient).isEmpty)
        // And the live decision agrees: the blocked specialist is refused.
        #expect(await code { _ = try await store.documents(for: v.alice, as: specialist) } == .accessDenied)
        try await store.close()
    }
}
