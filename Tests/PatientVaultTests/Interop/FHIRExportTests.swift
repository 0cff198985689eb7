import Foundation
import Testing
@testable import PatientVault
import PatientVaultFHIR

/// FHIR R4 resources of audit entries and documents (`PatientVaultFHIR`).
@Suite struct FHIRExportTests {
    @Test func auditEventAndDocumentReference() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(
            Fixtures.draft("Compte rendu secret", flags: [.maskedFromProfessionals]), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let emergency = Fixtures.otherDoctor
        _ = try await v.store.documents(for: v.alice, as: emergency, purpose: .breakGlass(reason: try BreakGlassReason("coma")))
        let entries = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 10), as: v.patient)
        let glass = try #require(entries.first { $0.isBreakGlass })
        let json = String(decoding: try FHIR.json(glass.fhirAuditEvent()), as: UTF8.self)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        #expect(object["resourceType"] as? String == "AuditEvent")
        #expect(object["action"] as? String == "E")
        #expect(object["outcome"] as? String == "0")
        #expect(json.contains("\"BTG\"") && json.contains("ETREAT") && json.contains(emergency.healthProfessional!.rpps.idnps))
        #expect(!json.contains(v.alice.digits) && !json.contains("secret"))
        let deposit = try #require(entries.first { $0.action == .deposit })
        let depositJSON = String(decoding: try FHIR.json(deposit.fhirAuditEvent()), as: UTF8.self)
        #expect(depositJSON.contains("DocumentReference/\(doc.id)-1") && depositJSON.contains("\"C\""))

        let reference = try doc.fhirDocumentReference(vaultID: glass.vaultID)
        let refJSON = try JSONSerialization.jsonObject(with: try FHIR.json(reference)) as! [String: Any]
        #expect(refJSON["resourceType"] as? String == "DocumentReference")
        #expect(refJSON["status"] as? String == "current")
        #expect((refJSON["subject"] as? [String: Any])?["reference"] as? String == "Patient/\(glass.vaultID)")
        #expect(String(decoding: try FHIR.json(reference), as: UTF8.self).contains("MASQUE_PS"))
        // Round trip through Codable.
        #expect(try JSONDecoder().decode(FHIR.DocumentReference.self, from: try FHIR.json(reference)) == reference)
        #expect(try JSONDecoder().decode(FHIR.AuditEvent.self, from: try FHIR.json(glass.fhirAuditEvent())) == glass.fhirAuditEvent())
        try await v.store.close()
    }
}
