import Foundation
import Testing
@testable import PatientVault
import VaultStorage

@Suite struct DocumentTests {
    func storeWithVault(_ clock: ManualClock = ManualClock()) async throws -> TestStore {
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock))
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        return t
    }

    let alice = Fixtures.alice
    var patient: Principal { .patient(alice) }

    /// The deposit path does not measure metadata: every field of a draft
    /// is bounded, so the largest one, by the largest author, replacing a
    /// version, must encode within `maximumMetadataSize` (which the chunk
    /// count of a version record is computed from).
    @Test func theLargestDraftFitsTheMetadataBound() throws {
        let longest = DocumentDraft(
            typeCode: DocumentTypeCode(
                system: String(repeating: "s", count: Limits.typeCodeSystem), code: String(repeating: "c", count: Limits.typeCode)),
            category: .administeredTreatment, title: String(repeating: "é", count: Limits.title / 2),
            createdAt: Date(timeIntervalSince1970: 1e11), serviceStart: Date(timeIntervalSince1970: -1e11),
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
                metadata: metadata, content: ContentDescriptor(streamHeader: [UInt8](repeating: 0, count: 24), chunkCount: 1, chunkLocations: []))
            #expect(body.encoded().count <= VaultStore.maximumMetadataSize / 4, "\(author.kind)")
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
        let entriesBefore = try store.withVault(alice) { $0.auditNext }
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
        try store.withVault(alice) { vault in
            try store.loader.auditEntries(of: vault) { entries.append($0); return entries.count < 5 }
        }
        #expect(try store.withVault(alice) { $0.auditNext } == entriesBefore + 5)
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
        let before = try t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
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
        let after = try t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
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
        let before = try t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
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
        let after = try t.store.withVault(alice) { ($0.nextSequence, $0.auditNext) }
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

/// Durability modes and storage failures seen through the public API.
@Suite struct StorageFailureTests {
    let alice = Fixtures.alice

    func configuration(_ faults: FaultInjection, segmentSize: UInt64 = 1 << 20) -> Configuration {
        var c = Fixtures.configuration()
        c.segmentSize = segmentSize
        c.contentChunkSize = 64 << 10
        c.faults = faults
        return c
    }

    @Test func fullDiskIsATypedErrorThatChangesNothing() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("KEPT"), for: alice, as: Fixtures.doctor)
        faults.diskFull = true
        // 2 MiB cannot fit in the 1 MiB segment: a new one is needed and refused.
        let big = Fixtures.content("BIG", size: 2 << 20)
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor) } == .diskFull)
        #expect(try await t.store.documents(for: alice, as: .patient(alice)).map(\.id) == [kept.id])
        faults.diskFull = false
        let later = try await t.store.deposit(Fixtures.draft(), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor)
        let store = try await t.reopen(configuration: configuration(FaultInjection()))
        #expect(Set(try await store.documents(for: alice, as: .patient(alice)).map(\.id)) == [kept.id, later.id])
        #expect(try await store.content(of: later.id, for: alice, as: .patient(alice)) == big)
        try await store.close()
    }

    @Test func failedSyncStopsAcknowledgingWrites() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.syncFails = true
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
        faults.syncFails = false
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
        // Reads stop too: no content is returned without a durable audit entry.
        #expect(await code { _ = try await t.store.vaultInfo(for: alice, as: .patient(alice)) } == .durabilityLost)
        // close() reports the same code, and reopening recovers the vault.
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder.url, key: .key(t.key), configuration: configuration(FaultInjection()))
        #expect(try await store.vaultInfo(for: alice, as: .patient(alice)).channel == .patientOnline)
        try await store.close()
    }

    /// I/O faults at each site of the commit path: the failed call reports
    /// `durabilityLost` (so do later calls and `close()`), and after a
    /// reopen everything acknowledged is there and the failed deposit is
    /// whole or absent, with every chain verifying.
    @Test(arguments: ["sync key file", "sync segment", "write EIO", "short write"])
    func anIOFaultStopsTheStoreAndReopeningKeepsWhatWasAcknowledged(fault: String) async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 5000), for: alice, as: Fixtures.doctor)
        switch fault {
        case "sync key file": faults.syncFailsOn = "key file"
        case "sync segment": faults.syncFailsOn = "segment"
        case "write EIO": faults.writeFault = .eio
        default: faults.writeFault = .short
        }
        let failed = Fixtures.content("FAILED", size: 70_000)
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), content: failed, for: alice, as: Fixtures.doctor) } == .durabilityLost)
        #expect(await code { _ = try await t.store.documents(for: alice, as: .patient(alice)) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder.url, key: .key(t.key), configuration: configuration(FaultInjection()))
        let docs = try await store.documents(for: alice, as: .patient(alice))
        #expect(docs.contains { $0.id == kept.id })
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 5000))
        for d in docs where d.title == "Failed" {
            #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == failed, "the failed deposit is whole if present")
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        // And the store takes writes again.
        _ = try await store.deposit(Fixtures.draft("After"), content: Data([1]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// `EIO` (after half the bytes, for writes) at each site outside the
    /// commit path's frames: every failed write or sync stops the store
    /// (`durabilityLost` for the call that met it or the next one, every
    /// later one and `close()`), even where the file concerned holds
    /// nothing acknowledged (a new segment, a checkpoint) and even on the
    /// committer's work ahead of need, whose failure no caller sees when it
    /// happens (Linux reports a writeback error once: the next sync of the
    /// same file succeeds although earlier data never reached the disk).
    /// A key file whose creation failed is created again at the next open.
    /// After each, a reopen finds everything acknowledged.
    @Test(arguments: FaultInjection.Site.allCases)
    func anIOFaultAtEachOtherSiteKeepsWhatWasAcknowledged(site: FaultInjection.Site) async throws {
        let faults = FaultInjection()
        if site == .keyFileCreation {
            let folder = TestFolder()
            let key = try MasterKey.generate()
            faults.failingSite = site
            #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(faults)) } == .io)
            let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(FaultInjection()))
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            try await store.close()
            return
        }
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 5000), for: alice, as: Fixtures.doctor)
        var acknowledged = [kept.id: Fixtures.content("KEPT", size: 5000)]
        faults.failingSite = site
        // 1.5 MiB does not fit in the first 1 MiB segment: a new one is needed.
        let big = Fixtures.content("BIG", size: 3 << 19)
        switch site {
        case .keySlotWrite:
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), content: Data([1]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { try await t.store.close() } == .durabilityLost)
        case .segmentCreationWrite, .segmentCreationSync:
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(!FileManager.default.fileExists(atPath: t.folder.url.appendingPathComponent("segment-0000000002.log.tmp").path))
            faults.failingSite = nil
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { try await t.store.close() } == .durabilityLost)
        case .preallocationSync, .growthSync:
            return  // aFailedSyncOfPreallocatedSpaceStopsTheStore
        default:
            // The checkpoint at close fails: what was acknowledged is
            // durable, but the failed write or sync stops the store all the
            // same, and close says so.
            let after = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor)
            acknowledged[after.id] = Data([2])
            #expect(await code { try await t.store.close() } == .durabilityLost)
            #expect(!FileManager.default.fileExists(atPath: t.folder.url.appendingPathComponent("index.checkpoint.tmp").path))
            // The checkpoint written when the store was created is still there.
            #expect(FileManager.default.fileExists(atPath: t.folder.url.appendingPathComponent("index.checkpoint").path))
        }
        let store = try await VaultStore.open(at: t.folder.url, key: .key(t.key), configuration: configuration(FaultInjection()))
        let docs = try await store.documents(for: alice, as: .patient(alice))
        for (id, content) in acknowledged {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        for d in docs where d.title == "Failed" {
            #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == Data([1]), "the failed deposit is whole if present")
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        _ = try await store.deposit(Fixtures.draft("Again"), content: Data([3]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// A failed sync of preallocated zeros stops the store like any other
    /// (before, the committer's growth ahead of need swallowed it and
    /// placement returned `io` once, and later deposits were acknowledged
    /// on a file whose earlier writeback had failed). Segments of 8 MiB
    /// start at 1 MiB; with a 2 MiB audit reserve the first vault's group
    /// must grow the segment under its append (placement); deposits of
    /// 2 MiB make the committer grow it ahead of need.
    @Test(arguments: [FaultInjection.Site.preallocationSync, .growthSync])
    func aFailedSyncOfPreallocatedSpaceStopsTheStore(site: FaultInjection.Site) async throws {
        let faults = FaultInjection()
        var c = configuration(faults, segmentSize: 8 << 20)
        c.auditReserve = 2 << 20
        let t = try await TestStore(configuration: c)
        var acknowledged: [DocumentID: Data] = [:]
        if site == .preallocationSync {
            faults.failingSite = site
            #expect(await code { try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline) } == .durabilityLost)
        } else {
            try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            faults.failingSite = site
            var failed = false
            for i in 0..<12 where !failed {
                do {
                    let content = Fixtures.content("G\(i)", size: 2 << 20)
                    let id = try await t.store.deposit(
                        Fixtures.draft("Grow \(i)"), streaming: chunks(of: content, size: 1 << 20), for: alice, as: Fixtures.doctor).id
                    acknowledged[id] = content
                } catch {
                    #expect(error.code == .durabilityLost)
                    failed = true
                }
            }
            #expect(failed, "the committer's failed sync must stop the store")
        }
        faults.failingSite = nil
        #expect(await code { try await t.store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder.url, key: .key(t.key), configuration: configuration(FaultInjection(), segmentSize: 8 << 20))
        for (id, content) in acknowledged {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        if site == .growthSync { _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice)) }
        try await store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        try await store.close()
    }

    @Test func relaxedModeKeepsDataAcrossAnOrderlyClose() async throws {
        var c = Fixtures.configuration()
        c.durability = .relaxed
        let t = try await TestStore(configuration: c)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var ids: [DocumentID] = []
        for i in 0..<5 {
            ids.append(try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("R\(i)"), for: alice, as: Fixtures.doctor).id)
        }
        let store = try await t.reopen(configuration: c)
        #expect(Set(try await store.documents(for: alice, as: .patient(alice)).map(\.id)) == Set(ids))
        try await store.close()
    }
}
