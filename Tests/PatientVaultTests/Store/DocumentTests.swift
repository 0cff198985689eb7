import Foundation
import Testing
@testable import PatientVault

/// Deposits, reads, listings and replacements of documents (`VaultStore+Deposit`, `VaultStore+Read`).
@Suite struct DocumentTests {
    func storeWithVault(_ clock: ManualClock = ManualClock()) async throws -> TestStore {
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: testStorage)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        return t
    }

    let alice = Fixtures.alice
    var patient: Principal { .patient(alice) }

    /// The deposit path does not measure metadata: every field of a draft
    /// is bounded, so the largest one, by the largest author, replacing a
    /// version, must encode within `Limits.versionMetadata` (which the chunk
    /// count of a version record is computed from).
    @Test func theLargestDraftFitsTheMetadataBound() throws {
        let longest = DocumentDraft(
            typeCode: DocumentTypeCode(
                system: String(repeating: "s", count: Limits.typeCodeSystem), code: String(repeating: "c", count: Limits.typeCode)),
            category: .administeredTreatment, title: String(repeating: "é", count: Limits.title / 2),
            createdAt: Date(timeIntervalSince1970: 1e11), serviceStart: Date(timeIntervalSince1970: Limits.dateSeconds.lowerBound),
            serviceEnd: Date(timeIntervalSince1970: 1e11), mimeType: "a/" + String(repeating: "b", count: Limits.mimeType - 2),
            confidentiality: ConfidentialityFlags(rawValue: 0b111))
        let authors: [Principal] = [
            .professional(try HealthProfessional(
                rpps: Fixtures.doctor.healthProfessional!.rpps, profession: .doctor,
                speciality: String(repeating: "x", count: Limits.speciality))),
            Fixtures.hospital, Fixtures.insurer, .patient(Fixtures.alice),
            .representative(LegalRepresentative(ins: Fixtures.bob, relationship: .guardian)),
        ]
        for author in authors {
            try VaultStore.validate(longest, author: author)
            var metadata = DocumentMetadata(
                id: DocumentID(bytes: [UInt8](repeating: 0xFF, count: 16)), version: Int(UInt32.max), draft: longest, author: author,
                depositedAt: Date(timeIntervalSince1970: 1e11), size: Int64.max, contentHash: [UInt8](repeating: 0xFF, count: 32),
                status: .current)
            metadata.replaces = (Int(UInt32.max) - 1, .enteredInError)
            let body = DocumentVersionBody(
                metadata: metadata, content: ContentDescriptor(streamHeader: [UInt8](repeating: 0, count: 24), chunkCount: 1, chunks: []))
            #expect(body.encoded().count <= Limits.versionMetadata / 4, "\(author.kind)")
        }
    }

    @Test(arguments: [0, 1, 100, 16 << 10, (16 << 10) + 1, 64 << 10, (64 << 10) + 1, 300_000])
    func depositAndReadBackAnySize(size: Int) async throws {
        let clock = ManualClock()
        let t = try await storeWithVault(clock)
        let content = Fixtures.content("SIZE-\(size)", size: size)
        let m = try await t.store.deposit(Fixtures.draft(), content: content, for: alice, as: Fixtures.doctor)
        #expect(m.version == 1)
        #expect(m.size == Int64(content.count))
        #expect(m.author == Fixtures.doctor)
        #expect(m.depositedAt == clock.now())
        #expect(m.status == .current)
        #expect(try await t.store.content(of: m.id, for: alice, as: patient) == content)
        #expect(try await t.store.content(of: m.id, for: alice, as: Fixtures.doctor) == content)
        #expect(try await t.store.metadata(of: m.id, for: alice, as: patient) == m)
        let store = try await t.reopen()
        #expect(try await store.content(of: m.id, for: alice, as: patient) == content)
        #expect(try await store.metadata(of: m.id, for: alice, as: patient) == m)
        try await store.close()
    }

    @Test func streamedDepositAndStreamedReadKeepChunksBounded() async throws {
        let t = try await storeWithVault()
        let content = Fixtures.content("LARGE", size: 1_000_000)
        let m = try await t.store.deposit(
            Fixtures.draft("Scanner", category: .medicalImaging, type: .imagingStudy),
            streaming: chunks(of: content, size: 77_777), for: alice, as: Fixtures.hospital)
        let stream = try await t.store.contentStream(of: m.id, for: alice, as: patient)
        #expect(stream.size == 1_000_000)
        var got = Data()
        var largest = 0
        var count = 0
        for try await chunk in stream {
            largest = max(largest, chunk.count)
            got.append(chunk)
            count += 1
        }
        #expect(got == content)
        #expect(largest <= 64 << 10)  // the configured chunk size
        #expect(count == (1_000_000 + (64 << 10) - 1) / (64 << 10))
        try await t.store.close()
    }

    @Test func failingUploadLeavesNothingVisible() async throws {
        struct UploadFailed: Error {}
        let t = try await storeWithVault()
        let failing = AsyncThrowingStream<Data, any Error> { c in
            c.yield(Fixtures.content("PART", size: 200_000))
            c.finish(throwing: UploadFailed())
        }
        let c = await code { _ = try await t.store.deposit(Fixtures.draft(), streaming: failing, for: alice, as: Fixtures.doctor) }
        // The caller's failure, given back as theirs (HTTP 400), not as the store's `io` (500).
        #expect(c == .contentSourceFailed)
        #expect(c?.httpStatus == 400)
        #expect(try await t.store.documents(for: alice, as: patient).isEmpty)
        let store = try await t.reopen()
        #expect(try await store.documents(for: alice, as: patient).isEmpty)
        try await store.close()
    }

    @Test func listingIsNewestFirstAndFiltered() async throws {
        let clock = ManualClock()
        let t = try await storeWithVault(clock)
        let base = Date(timeIntervalSince1970: 1_600_000_000)
        var ids: [DocumentID] = []
        let specs: [(DocumentCategory, DocumentTypeCode, Principal, Double)] = [
            (.report, .consultationNote, Fixtures.doctor, 0),
            (.prescription, .prescription, Fixtures.doctor, 10),
            (.medicalImaging, .imagingStudy, Fixtures.hospital, 20),
            (.report, .summaryOfEpisode, Fixtures.otherDoctor, 30),
        ]
        for (i, (category, type, author, offset)) in specs.enumerated() {
            clock.advance(by: 60)
            let m = try await t.store.deposit(
                Fixtures.draft("Document \(i)", category: category, type: type, createdAt: base.addingTimeInterval(offset * 86_400)),
                content: Fixtures.content("D\(i)"), for: alice, as: author)
            ids.append(m.id)
        }
        let all = try await t.store.documents(for: alice, as: patient)
        #expect(all.map(\.id) == ids.reversed())
        #expect(try await t.store.documents(for: alice, matching: DocumentQuery(categories: [.report]), as: patient).map(\.id) == [ids[3], ids[0]])
        #expect(try await t.store.documents(for: alice, matching: DocumentQuery(typeCode: .prescription), as: patient).map(\.id) == [ids[1]])
        #expect(try await t.store.documents(for: alice, matching: DocumentQuery(author: Fixtures.hospital), as: patient).map(\.id) == [ids[2]])
        let range = base.addingTimeInterval(5 * 86_400)...base.addingTimeInterval(25 * 86_400)
        #expect(try await t.store.documents(for: alice, matching: DocumentQuery(createdBetween: range), as: patient).map(\.id) == [ids[2], ids[1]])
        // An author sees only their own; vault info counts only those.
        #expect(try await t.store.documents(for: alice, as: Fixtures.doctor).map(\.id) == [ids[1], ids[0]])
        // Authorship opens the author's documents, not the vault's own information.
        #expect(await code { _ = try await t.store.vaultInfo(for: alice, as: Fixtures.doctor) } == .accessDenied)
        #expect(try await t.store.vaultInfo(for: alice, as: patient).documentCount == 4)
        try await t.store.close()
    }

    @Test func replaceKeepsHistoryAndDeprecatesTheOldVersion() async throws {
        let t = try await storeWithVault()
        let v1 = try await t.store.deposit(Fixtures.draft("Ordonnance"), content: Fixtures.content("V1"), for: alice, as: Fixtures.doctor)
        let v2 = try await t.store.replace(
            v1.id, with: Fixtures.draft("Ordonnance corrigée"), content: Fixtures.content("V2"), for: alice, as: Fixtures.doctor)
        let v3 = try await t.store.replace(
            v1.id, with: Fixtures.draft("Ordonnance v3"), content: Fixtures.content("V3"), reason: .enteredInError,
            for: alice, as: Fixtures.doctor)
        #expect(v2.id == v1.id && v2.version == 2 && v3.version == 3)
        #expect(v2.replaces?.version == 1 && v2.replaces?.reason == .superseded)
        #expect(v3.replaces?.reason == .enteredInError)
        for reopening in [false, true] {
            let store = reopening ? try await t.reopen() : t.store
            let history = try await store.versions(of: v1.id, for: alice, as: patient)
            #expect(history.map(\.status) == [.superseded(by: 2), .enteredInError(correctedBy: 3), .current])
            #expect(try await store.content(of: v1.id, for: alice, as: patient) == Fixtures.content("V3"))
            #expect(try await store.metadata(of: v1.id, for: alice, as: patient).title == "Ordonnance v3")
            // Reading a deprecated version is a typed error unless asked for.
            #expect(await code { _ = try await store.content(of: v1.id, version: 1, for: alice, as: patient) } == .deprecatedVersion)
            #expect(await code { _ = try await store.metadata(of: v1.id, version: 2, for: alice, as: patient) } == .deprecatedVersion)
            #expect(try await store.content(of: v1.id, version: 1, includingDeprecated: true, for: alice, as: patient) == Fixtures.content("V1"))
            #expect(await code { _ = try await store.metadata(of: v1.id, version: 9, for: alice, as: patient) } == .unknownDocument)
            // Listings show current versions unless asked for history.
            #expect(try await store.documents(for: alice, as: patient).map(\.version) == [3])
            #expect(try await store.documents(for: alice, matching: DocumentQuery(status: .all), as: patient).count == 3)
            #expect(try await store.documents(for: alice, matching: DocumentQuery(status: .deprecated), as: patient).map(\.version) == [2, 1])
        }
    }

    @Test func onlyTheAuthorReplaces() async throws {
        let t = try await storeWithVault()
        let m = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("X"), for: alice, as: Fixtures.doctor)
        #expect(await code { _ = try await t.store.replace(m.id, with: Fixtures.draft(), content: Data([1]), for: alice, as: patient) } == .accessDenied)
        // A professional who cannot see it gets "unknown", not "denied".
        _ = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: alice, as: Fixtures.otherDoctor)
        #expect(await code { _ = try await t.store.replace(m.id, with: Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.otherDoctor) } == .unknownDocument)
        #expect(try await t.store.versions(of: m.id, for: alice, as: patient).count == 1)
        try await t.store.close()
    }

    @Test func concurrentReplacementsOfOneVersionConflict() async throws {
        let t = try await storeWithVault()
        let store = t.store
        let m = try await store.deposit(Fixtures.draft(), content: Fixtures.content("BASE"), for: alice, as: Fixtures.doctor)
        let big = Fixtures.content("R", size: 400_000)
        let entriesBefore = try await store.withVault(alice) { $0.auditNext }
        let results = await withTaskGroup(of: PatientVaultError.Code?.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    await code { _ = try await store.replace(m.id, with: Fixtures.draft(), streaming: chunks(of: big, size: 50_000), for: Fixtures.alice, as: Fixtures.doctor) }
                }
            }
            var out: [PatientVaultError.Code?] = []
            for await r in group { out.append(r) }
            return out
        }
        let versions = try await store.versions(of: m.id, for: alice, as: patient)
        // Every call either made exactly the next version or was refused as a conflict.
        #expect(results.allSatisfy { $0 == nil || $0 == .conflict })
        #expect(versions.count == 1 + results.filter { $0 == nil }.count)
        #expect(versions.map(\.version) == Array(1...versions.count))
        // One entry per call, whichever way it ended: allowed for each new
        // version, abandoned for each conflict (and one for the listing).
        var entries: [AuditEntry] = []
        try await store.loader.auditEntries(of: try await store.snapshot(of: alice)) { entries.append($0); return entries.count < 5 }
        #expect(try await store.withVault(alice) { $0.auditNext } == entriesBefore + 5)
        let replaces = entries.filter { $0.action == .replace }
        #expect(replaces.count == 4)
        #expect(replaces.filter { $0.outcome == .allowed }.count == results.filter { $0 == nil }.count)
        #expect(replaces.filter { $0.outcome == .abandoned }.count == results.filter { $0 == .conflict }.count)
        try await store.close()
    }

    @Test func concurrentDepositsAreAllAcknowledgedAndPresent() async throws {
        let t = try await storeWithVault()
        let store = t.store
        let ids = try await withThrowingTaskGroup(of: DocumentID.self) { group in
            for i in 0..<40 {
                group.addTask {
                    try await store.deposit(Fixtures.draft("Doc \(i)"), content: Fixtures.content("C\(i)", size: 4096), for: Fixtures.alice, as: Fixtures.doctor).id
                }
            }
            var out: [DocumentID] = []
            for try await id in group { out.append(id) }
            return out
        }
        let reopened = try await t.reopen()
        let listed = try await reopened.documents(for: alice, as: patient)
        #expect(Set(listed.map(\.id)) == Set(ids))
        for m in listed {
            let i = Int(m.title.dropFirst(4))!
            #expect(try await reopened.content(of: m.id, for: alice, as: patient) == Fixtures.content("C\(i)", size: 4096))
        }
        try await reopened.close()
    }
}
