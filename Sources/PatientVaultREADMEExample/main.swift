// The README's usage example, compiled and run by CI (Scripts/test.sh runs
// `swift run PatientVaultREADMEExample`). The lines between the markers are
// in README.md verbatim; a test (DocumentationSnippetTests) checks it.
// BEGIN README
import Foundation
import PatientVault
import PatientVaultFHIR

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("my-store-\(UUID().uuidString)")
let masterKey = try MasterKey.generate()          // keep it in your KMS/HSM
let store = try await VaultStore.open(at: folder, key: .key(masterKey))

let ins = try INS("2 84 07 75 123 456 07")        // validated: 13-char NIR + key
let pharmacist = Principal.professional(
    HealthProfessional(rpps: try RPPSNumber("10003456789"), profession: .pharmacist))
try await store.createVault(for: ins, as: pharmacist, channel: .pharmacy)

let doctor = Principal.professional(
    HealthProfessional(rpps: try RPPSNumber("10101234567"), profession: .doctor))
let pdfData = Data("%PDF-1.7 consultation".utf8)
let note = try await store.deposit(
    DocumentDraft(typeCode: .consultationNote, category: .report,
                  title: "Consultation", createdAt: .now, mimeType: "application/pdf"),
    content: pdfData, for: ins, as: doctor)

// Large files: stream in and out with bounded memory.
let hospital = Principal.organisation(Organisation(finess: try FINESSNumber("750712184"), kind: .hospital))
let imagingDraft = DocumentDraft(typeCode: .imagingStudy, category: .medicalImaging,
                                 title: "IRM cérébrale", createdAt: .now, mimeType: "application/dicom")
let upload = AsyncStream<Data> { c in                 // e.g. an HTTP request body
    for _ in 0..<8 { c.yield(Data(repeating: 0x42, count: 1 << 20)) }
    c.finish()
}
let scan = try await store.deposit(imagingDraft, streaming: upload, for: ins, as: hospital)
var sent = 0
for try await chunk in try await store.contentStream(of: scan.id, for: ins, as: .patient(ins)) {
    sent += chunk.count                               // e.g. write it to a response
}

let mine = try await store.documents(for: ins, matching: DocumentQuery(categories: [.report]), as: .patient(ins))
let correctedDraft = DocumentDraft(typeCode: .consultationNote, category: .report,
                                   title: "Consultation (corrigée)", createdAt: .now, mimeType: "application/pdf")
let v2 = try await store.replace(note.id, with: correctedDraft, content: Data("%PDF-1.7 corrected".utf8),
                                 reason: .enteredInError, for: ins, as: doctor)

// The patient decides who may read; every access is audited.
let gp = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10100000001"), profession: .doctor))
let cardiologist = Principal.professional(
    try HealthProfessional(rpps: try RPPSNumber("10100000002"), profession: .doctor, speciality: "cardiologie"))
try await store.setMedecinTraitant(gp, for: ins, as: .patient(ins))
try await store.authorise(cardiologist, until: .now.addingTimeInterval(90 * 86_400), for: ins, as: .patient(ins))
let blocked = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10100000003"), profession: .doctor))
try await store.block(blocked, for: ins, as: .patient(ins))
let emergencyDoctor = Principal.professional(
    HealthProfessional(rpps: try RPPSNumber("10100000004"), profession: .doctor))
let urgent = try await store.documents(for: ins, as: emergencyDoctor,
                                       purpose: .breakGlass(reason: try BreakGlassReason("unconscious, immediate risk")))
let trail = try await store.auditTrail(for: ins, matching: AuditQuery(limit: 50), as: .patient(ins))
let check = try await store.verifyAuditTrail(for: ins, as: .patient(ins))   // altered/removed/reordered → corrupted
let who = try await store.whoCouldRead(note.id, at: .now, for: ins, as: .patient(ins))
let json = try FHIR.json(trail[0].fhirAuditEvent())                         // FHIR R4 AuditEvent
let events = Task { for await event in store.notifications() { print(event.kind) } }  // ends at close()
try await store.close()
await events.value
// END README

try? FileManager.default.removeItem(at: folder)
precondition(sent == 8 << 20 && mine.count == 1 && v2.version == 2 && urgent.count == 2 && check.entries == trail.count + 1)
precondition(who.contains { $0.principal == cardiologist } && !json.isEmpty)
print("README example: \(trail.count) audit entries, \(who.count) principals could read the note, \(sent) bytes streamed")
