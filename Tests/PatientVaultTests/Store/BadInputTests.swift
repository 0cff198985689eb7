import Foundation
import Testing
import VaultStorage
import PatientVaultTesting
@testable import PatientVault

/// Bad input: a typed error, and nothing written.
@Suite struct BadInputTests {
    let alice = Fixtures.alice

    func draft(_ change: (inout DocumentDraft) -> Void) -> DocumentDraft {
        var d = Fixtures.draft()
        change(&d)
        return d
    }

    /// Content larger than a version can reference is bad input found
    /// while the content is written: refused (`invalidArgument`), its entry
    /// a refusal with rule `invalidRequest` (as bad input found at the
    /// commit), not an operation abandoned; no version joins the vault.
    @Test func contentLargerThanTheMaximumIsRefusedAsBadInput() async throws {
        var c = Fixtures.configuration()
        c.contentChunkSize = 4096
        c.inlineContentLimit = 0
        let v = try await AuditedVault(configuration: c)
        let chunk = Data(repeating: 7, count: 64 << 10)
        let chunks = AsyncStream<Data> { continuation in
            for _ in 0..<256 { continuation.yield(chunk) }  // 16 MiB, past the ~3,300 chunks of 4 KiB a version references
            continuation.finish()
        }
        let refused = await code { _ = try await v.store.deposit(Fixtures.draft(), streaming: chunks, for: alice, as: Fixtures.doctor) }
        #expect(refused == .invalidArgument)
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .deposit && entry.outcome == .denied && entry.rule == .invalidRequest)
        #expect(try await v.store.documents(for: alice, as: .patient(alice)).isEmpty)
        try await v.store.close()
    }

    /// The printable check's ASCII shortcut agrees with the Unicode
    /// general categories it stands for, on every ASCII scalar.
    @Test func theASCIIShortcutOfThePrintableCheckAgreesWithUnicode() {
        for value in UInt32(0)..<0x80 {
            let scalar = Unicode.Scalar(value)!
            let control = scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
            #expect(Limits.isPrintable(scalar) == !control, "U+\(String(value, radix: 16))")
        }
    }

    /// Only the store's own finding is bad input: a caller's content
    /// sequence that throws, whatever error it throws (an
    /// `invalidArgument` of its own here), leaves the entry `abandoned`.
    @Test func aContentSourceThrowingIsAbandonedWhateverItThrows() async throws {
        let v = try await AuditedVault()
        let chunks = AsyncThrowingStream<Data, any Error> { continuation in
            continuation.yield(Data([1, 2, 3]))
            continuation.finish(throwing: PatientVaultError(.invalidArgument, "the caller's own"))
        }
        #expect(await code { _ = try await v.store.deposit(Fixtures.draft(), streaming: chunks, for: alice, as: Fixtures.doctor) } == .invalidArgument)
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .deposit && entry.outcome == .abandoned)
        try await v.store.close()
    }

    /// A whole-content read of a document larger than its bound is refused
    /// in the decision (bad input, audited), before anything is read into
    /// memory: a caller cannot make the process allocate a document's size.
    /// The bound is 1 GiB (`wholeContentLimit`); here the same path with a
    /// small one.
    @Test func aWholeContentReadPastItsBoundIsRefusedBeforeReading() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data(repeating: 1, count: 10_000), for: alice, as: Fixtures.doctor)
        let refused = await code {
            _ = try await v.store.openContent(
                of: doc.id, version: nil, includingDeprecated: false, for: alice, as: .patient(alice), purpose: .care, secret: false,
                atMost: 4096)
        }
        #expect(refused == .invalidArgument)
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .readContent && entry.outcome == .denied && entry.rule == .invalidRequest)
        #expect(VaultStore.wholeContentLimit == 1 << 30)
        #expect(try await v.store.content(of: doc.id, for: alice, as: .patient(alice)).count == 10_000)
        try await v.store.close()
    }

    /// A clock the host got wrong (infinite, or past the dates records
    /// hold) reads as the nearest bound (year 1, or 10¹¹ s): the store neither traps
    /// (making a signing key converted the reading to milliseconds) nor
    /// writes a date it cannot read back.
    @Test(arguments: [Double.infinity, 1e17, -1e17, -Double.infinity])
    func aClockOutOfRangeReadsAsItsBound(reading: Double) async throws {
        var c = Fixtures.configuration(clock: ManualClock(Date(timeIntervalSince1970: reading)))
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: c, engine: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let d = try await t.store.deposit(Fixtures.draft(), content: Data("x".utf8), for: alice, as: Fixtures.doctor)
        #expect(d.depositedAt.timeIntervalSince1970 == (reading > 0 ? Limits.dateSeconds.upperBound : Limits.dateSeconds.lowerBound))
        _ = try await t.store.rotateCheckpointSigningKey(as: .auditReviewer(try SystemPrincipal("dpo")))
        let store = try await t.reopen()
        #expect(try await store.documents(for: alice, as: .patient(alice)).map(\.depositedAt) == [d.depositedAt])
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await t.close()
    }

    /// An erasure reason is checked against the Unicode tables when it is
    /// made, and read back on its byte bounds alone: a reason that a build
    /// with newer tables accepted (here, a scalar this one calls
    /// unassigned) does not make the vault unloadable on this one.
    @Test func aStoredErasureReasonReadsBackWhateverTheUnicodeTables() throws {
        let text = "\u{0378} typo"
        #expect(throws: PatientVaultError.self) { _ = try ErasureReason(text) }
        let erasure = Erasure(
            id: try DocumentID.random(), author: Fixtures.doctor, depositedAt: Date(timeIntervalSince1970: 1_700_000_000), versions: 1,
            reason: try ErasureReason(stored: text))
        var w = ByteWriter()
        erasure.write(to: &w)
        let back = try w.bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try Erasure.read(from: &r)
        }
        #expect(back == erasure)
        #expect(throws: PatientVaultError.self) { _ = try ErasureReason(stored: "") }
    }

    /// A draft's dates below the millisecond (a host's `Date()`) are kept
    /// to the millisecond: the metadata a deposit returns, and the one
    /// read back after a reopen, equal their own decoded JSON. Before, the
    /// stored date kept its sub-millisecond part and its JSON did not.
    @Test func aDraftsDatesAreKeptToTheMillisecond() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: testStorage)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var d = Fixtures.draft()
        d.createdAt = Date(timeIntervalSince1970: 1_700_000_000.000_4)
        d.serviceStart = Date(timeIntervalSince1970: 1_699_999_000.123_6)
        d.serviceEnd = Date(timeIntervalSince1970: 1_699_999_500.999_95)
        let m = try await t.store.deposit(d, content: Data([1]), for: alice, as: Fixtures.doctor)
        #expect(m.createdAt == Date(timeIntervalSince1970: 1_700_000_000))
        #expect(m.draft.serviceEnd == Date(timeIntervalSince1970: 1_699_999_501))
        #expect(try JSONDecoder().decode(DocumentMetadata.self, from: JSONEncoder().encode(m)) == m)
        let store = try await t.reopen()
        let read = try await store.metadata(of: m.id, for: alice, as: .patient(alice))
        #expect(read == m)
        #expect(try JSONDecoder().decode(DocumentMetadata.self, from: JSONEncoder().encode(read)) == read)
        try await t.close()
    }

    /// Every date a record can hold survives its JSON form: the bounds of
    /// `Limits.dateSeconds`, in a draft, a version's metadata, an audit
    /// entry and a vault's information, encode and decode to the same
    /// date. Before, the lower bound was −10¹¹ s (year −1200), which
    /// Foundation's ISO 8601 parser cannot read back: such a patient's
    /// export never imported.
    @Test(arguments: [Limits.dateSeconds.lowerBound, Limits.dateSeconds.upperBound])
    func theBoundsOfStorableDatesSurviveTheirJSONForm(seconds: Double) throws {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(Limits.isStorable(date))
        var d = Fixtures.draft()
        (d.createdAt, d.serviceStart, d.serviceEnd) = (date, date, date)
        try VaultStore.validate(d, author: Fixtures.doctor)
        let metadata = DocumentMetadata(
            id: try DocumentID.random(), version: 1, draft: d, author: Fixtures.doctor, depositedAt: date, size: 1,
            contentHash: [UInt8](repeating: 1, count: 32), status: .current)
        #expect(try JSONDecoder().decode(DocumentMetadata.self, from: JSONEncoder().encode(metadata)) == metadata)
        let entry = AuditEntry(
            sequence: 1, time: date, actor: Fixtures.doctor, onBehalfOf: nil, action: .deposit, vaultID: "v", document: nil, version: nil,
            outcome: .allowed, rule: .medecinTraitant, purpose: .care, legalBasis: nil, isBreakGlass: false, isSecretAccess: false, target: nil,
            reasonHash: nil, matrixVersion: "1", previousHash: [])
        #expect(try JSONDecoder().decode(AuditEntry.self, from: JSONEncoder().encode(entry)) == entry)
        var info = VaultInfo(vaultID: "v", createdBy: .patient(alice), channel: .patientOnline, createdAt: date, documentCount: 0)
        info.closure = VaultClosure(reason: .death, closedAt: date, closedBy: Fixtures.doctor)
        info.retainedUntil = date
        #expect(try JSONDecoder().decode(VaultInfo.self, from: JSONEncoder().encode(info)) == info)
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
            // Control and format characters: terminal escapes, a
            // right-to-left override, a NUL, in every text field.
            draft { $0.title = "CR\u{1B}]2;x\u{07}" },
            draft { $0.title = "CR \u{202E}fdp.exe" },
            draft { $0.mimeType = "application/pdf\u{0}" },
            draft { $0.mimeType = "application/pdf\u{7F}" },
            draft { $0.typeCode = DocumentTypeCode(code: "11488\u{1B}-4") },
            draft { $0.typeCode = DocumentTypeCode(system: "http://loinc.org\u{200E}", code: "11488-4") },
            draft { $0.typeCode = DocumentTypeCode(code: "") },
            draft { $0.typeCode = DocumentTypeCode(system: "", code: "1") },
            draft { $0.typeCode = DocumentTypeCode(code: String(repeating: "9", count: 65)) },
            draft { $0.serviceStart = Date(timeIntervalSince1970: 100); $0.serviceEnd = Date(timeIntervalSince1970: 50) },
            draft { $0.confidentiality = ConfidentialityFlags(rawValue: 0x80) },
            draft { $0.createdAt = Date(timeIntervalSince1970: .nan) },
            draft { $0.serviceStart = Date(timeIntervalSince1970: .infinity) },
            draft { $0.serviceEnd = Date(timeIntervalSince1970: 1e12) },
            // Before year 1: Foundation's ISO 8601 parser reads no such
            // year, so its JSON would never read back.
            draft { $0.serviceStart = Date(timeIntervalSince1970: -62_135_596_801) },
            draft { $0.createdAt = Date(timeIntervalSince1970: -1e11) },
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
