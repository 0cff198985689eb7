// The DocC article "Getting started" (Sources/PatientVault/PatientVault.docc/GettingStarted.md):
// its snippet is this file up to the END marker, verbatim (DocumentationSnippetTests checks it), and
// Scripts/test.sh runs it.
import Foundation
import PatientVault

// A store is a folder (created if missing, mode 0700); here a temporary one.
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("my-store-\(UUID().uuidString)")
let pdf = Data("%PDF-1.7 consultation".utf8)

let store = try await VaultStore.open(at: folder, key: .key(try MasterKey.generate()))
let ins = try INS("2 84 07 75 123 456 07")
let doctor = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10101234567"), profession: .doctor))
try await store.createVault(for: ins, as: .patient(ins), channel: .patientOnline)
let note = try await store.deposit(
    DocumentDraft(typeCode: .consultationNote, category: .report, title: "Consultation",
                  createdAt: .now, mimeType: "application/pdf"),
    content: pdf, for: ins, as: doctor)
let (metadata, content) = try await store.vault(for: ins, as: .patient(ins)).document(note.id)
try await store.close()
// END SNIPPET

precondition(metadata.id == note.id && content == pdf)
try FileManager.default.removeItem(at: folder)
print("Getting started: deposited and read back \(content.count) bytes")
