import Foundation
import PatientVault
import PatientVaultTesting
import Testing

@Test func aRefusedDoctorIsInThePatientsTrail() async throws {
    let alice = INS.example(1)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let report = try await store.deposit(
            DocumentDraft(typeCode: .consultationNote, category: .report, title: "Consultation",
                          createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "text/plain"),
            content: Data("Tension 12/8.".utf8), for: alice, as: .doctor())
        await #expect(throws: PatientVaultError.self) {
            _ = try await store.content(of: report.id, for: alice, as: .doctor(2))
        }
        let trail = try await store.auditTrail(for: alice, as: .patient(alice))
        #expect(trail.contains { $0.actor == .doctor(2) && $0.outcome == .denied })
    }
}
