import Foundation
import Testing
@testable import PatientVault

/// Bad input: a typed error, and nothing written.
@Suite struct BadInputTests {
    let alice = Fixtures.alice

    func draft(_ change: (inout DocumentDraft) -> Void) -> DocumentDraft {
        var d = Fixtures.draft()
        change(&d)
        return d
    }

    @Test func badDraftsAreRefusedWithTheirEntryAndNothingElse() async throws {
        let t = try await TestStore()
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let before = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        let bad: [DocumentDraft] = [
            draft { $0.title = "" },
            draft { $0.title = "   \n" },
            draft { $0.title = String(repeating: "é", count: 600) },
            draft { $0.mimeType = "pdf" },
            draft { $0.mimeType = "text/ plain" },
            draft { $0.typeCode = DocumentTypeCode(code: "") },
            draft { $0.typeCode = DocumentTypeCode(system: "", code: "1") },
            draft { $0.typeCode = DocumentTypeCode(code: String(repeating: "9", count: 65)) },
            draft { $0.serviceStart = Date(timeIntervalSince1970: 100); $0.serviceEnd = Date(timeIntervalSince1970: 50) },
            draft { $0.confidentiality = ConfidentialityFlags(rawValue: 0x80) },
            draft { $0.createdAt = Date(timeIntervalSince1970: .nan) },
            draft { $0.serviceStart = Date(timeIntervalSince1970: .infinity) },
            draft { $0.serviceEnd = Date(timeIntervalSince1970: 1e12) },
        ]
        for d in bad {
            #expect(await code { _ = try await t.store.deposit(d, content: Data([1, 2, 3]), for: alice, as: Fixtures.doctor) } == .invalidArgument)
        }
        // An oversized speciality cannot even be built: bounded where created.
        #expect(throws: PatientVaultError.self) {
            try HealthProfessional(rpps: try RPPSNumber("10101234567"), profession: .doctor, speciality: String(repeating: "x", count: 20_000))
        }
        // Nothing of the deposits; one refusal entry each.
        let after = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        #expect(after.0 == before.0 && after.1 == before.1 + UInt64(bad.count))
        let entries = try await t.store.auditTrail(for: alice, matching: AuditQuery(actions: [.deposit]), as: .patient(alice))
        #expect(entries.count == bad.count && entries.allSatisfy { $0.outcome == .denied && $0.rule == .invalidRequest })
        #expect(try await t.store.documents(for: alice, as: .patient(alice)).isEmpty)
        try await t.store.close()
    }

    @Test func unknownDocumentAndDeniedAccessWriteOnlyTheirAuditEntries() async throws {
        let t = try await TestStore()
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft(), content: Data([9]), for: alice, as: Fixtures.doctor)
        let before = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        let unknown = try DocumentID.random()
        #expect(await code { _ = try await t.store.metadata(of: unknown, for: alice, as: .patient(alice)) } == .unknownDocument)
        #expect(await code { _ = try await t.store.content(of: unknown, for: alice, as: .patient(alice)) } == .unknownDocument)
        #expect(await code { _ = try await t.store.versions(of: unknown, for: alice, as: .patient(alice)) } == .unknownDocument)
        #expect(await code { _ = try await t.store.replace(unknown, with: Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor) } == .unknownDocument)
        // Insurer: never reads; deposits reimbursement data only.
        #expect(await code { _ = try await t.store.content(of: m.id, for: alice, as: Fixtures.insurer) } == .accessDenied)
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.insurer) } == .accessDenied)
        // Another patient cannot deposit into this vault.
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: .patient(Fixtures.bob)) } == .accessDenied)
        // A professional with no document here is denied at vault level; the
        // error names the rule.
        do {
            _ = try await t.store.documents(for: alice, as: Fixtures.otherDoctor)
            Issue.record("expected a denial")
        } catch {
            #expect(error.code == .accessDenied)
            #expect(error.rule == .notAuthorised)
            #expect(!error.description.contains(alice.digits))
        }
        // The vault's own records did not change; each attempt left exactly
        // one audit entry, denied.
        let after = try await t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
        #expect(after.0 == before.0)
        #expect(after.1 == before.1 + 8)
        let trail = try await t.store.auditTrail(for: alice, matching: AuditQuery(limit: 9), as: .patient(alice))
        #expect(trail.first?.action == .readAuditTrail)
        #expect(trail.dropFirst().allSatisfy { $0.outcome == .denied })
        #expect(trail.dropFirst().map(\.action) == [
            .listDocuments, .deposit, .deposit, .readContent, .replace, .listVersions, .readContent, .readMetadata,
        ])
        // The insurer's reimbursement deposit is accepted.
        _ = try await t.store.deposit(
            Fixtures.draft("Remboursements", category: .reimbursement), content: Data([1]), for: alice, as: Fixtures.insurer)
        try await t.store.close()
    }
}
