import Foundation
import Testing
@testable import PatientVault
import PatientVaultFHIR
@testable import VaultStorage

@Suite struct NonDisclosureTests {
    @Test func hiddenDocumentsDoNotExistForThoseWhoMayNotSeeThem() async throws {
        let v = try await AuditedVault()
        let doctor = Fixtures.otherDoctor
        try await v.store.authorise(doctor, for: v.alice, as: v.patient)
        let visible = try await v.store.deposit(Fixtures.draft("Visible"), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let masked = try await v.store.deposit(
            Fixtures.draft("Sérologie VIH", flags: [.maskedFromProfessionals]), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        let hidden = try await v.store.deposit(
            Fixtures.draft("Résultat biopsie", flags: [.hiddenFromPatient]), content: Data([3]), for: v.alice, as: Fixtures.doctor)
        // The authorised doctor: the masked one is absent, uncounted, unknown by id.
        #expect(try await v.store.documents(for: v.alice, as: doctor).map(\.id) == [hidden.id, visible.id])
        #expect(try await v.store.vaultInfo(for: v.alice, as: doctor).documentCount == 2)
        let never = try DocumentID.random()
        for (id, expected) in [(masked.id, PatientVaultError.Code.unknownDocument), (never, .unknownDocument)] {
            #expect(await code { _ = try await v.store.metadata(of: id, for: v.alice, as: doctor) } == expected)
            #expect(await code { _ = try await v.store.content(of: id, for: v.alice, as: doctor) } == expected)
            #expect(await code { _ = try await v.store.versions(of: id, for: v.alice, as: doctor) } == expected)
        }
        // The two errors are the same apart from the id asked for.
        let e1 = await error { _ = try await v.store.content(of: masked.id, for: v.alice, as: doctor) }
        let e2 = await error { _ = try await v.store.content(of: never, for: v.alice, as: doctor) }
        #expect(e1?.message == e2?.message && e1?.rule == nil && e2?.rule == nil)
        #expect(e1.map { !$0.description.contains("VIH") } ?? false)
        // The patient: the hidden one is absent until released.
        #expect(Set(try await v.store.documents(for: v.alice, as: v.patient).map(\.id)) == [visible.id, masked.id])
        #expect(try await v.store.vaultInfo(for: v.alice, as: v.patient).documentCount == 2)
        #expect(await code { _ = try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient) } == .unknownDocument)
        // Nor does the patient's trail reveal it: the entries about it (its
        // deposit, naming the author, and every access to it) are withheld
        // until it is released, counted by the verification.
        _ = try await v.store.metadata(of: hidden.id, for: v.alice, as: doctor)
        _ = await code { _ = try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient) }
        let trail = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        #expect(!trail.contains { $0.document == hidden.id })
        #expect(trail.contains { $0.document == visible.id })
        #expect(trail.filter { $0.action == .deposit }.count == 2)
        let verification = try await v.store.verifyAuditTrail(for: v.alice, as: v.patient)
        #expect(verification.withheld == 4)  // its deposit, the doctor's read, the patient's two refused reads
        // A probe of an id that names no document shows, without the id: no rule, no legal basis.
        _ = await code { _ = try await v.store.metadata(of: never, for: v.alice, as: v.patient) }
        let redacted = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(actions: [.readMetadata], limit: 1), as: v.patient)
        #expect(redacted.first?.document == nil && redacted.first?.rule == .unknownDocument && redacted.first?.legalBasis == nil)
        // Released by its author, it appears, and so do the entries about
        // it, in place (their positions in the chain).
        try await v.store.releaseToPatient(hidden.id, for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.vaultInfo(for: v.alice, as: v.patient).documentCount == 3)
        let released = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        #expect(released.filter { $0.document == hidden.id }.count == 5)  // the four withheld, and the release
        #expect(released.map(\.sequence) == released.map(\.sequence).sorted(by: >))
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).withheld == 0)
        try await v.store.close()
    }

    @Test func hiddenDocumentBecomesVisibleAfterAMonthAndTheEventsAreRecorded() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let hidden = try await v.store.deposit(
            Fixtures.draft("Résultat", flags: [.hiddenFromPatient]), content: Data([3]), for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 0)
        v.clock.advance(by: 14 * 86_400)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 1)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 0)
        #expect(await code { _ = try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient) } == .unknownDocument)
        v.clock.advance(by: 16 * 86_400)
        // Visible by the time rule, whether or not the event was recorded yet.
        #expect(try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient).id == hidden.id)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 1)
        let entries = try v.entries()
        #expect(entries.filter { $0.actor == .system }.map(\.action) == [.hiddenDocumentNotice, .automaticRelease])
        #expect(entries.last { $0.action == .readMetadata }?.rule == .hiddenDocumentReleasedByTime)
        // The events survive a reopen and are not repeated.
        let store = try await v.t.reopen(configuration: { var c = Fixtures.configuration(clock: v.clock); c.clock = v.clock; return c }())
        #expect(try await store.processScheduledEvents(for: v.alice) == 0)
        try await store.close()
        var kinds: [VaultNotification.Kind] = []
        for await n in listener { kinds.append(n.kind) }
        #expect(kinds.contains(.hiddenDocumentNotice(hidden.id)))
        // Not announced as new: the patient cannot see it yet.
        #expect(!kinds.contains(.newDocument(hidden.id)))
    }
}

@Suite struct VersionRulesTests {
    @Test func eachVersionIsJudgedByItsOwnFlags() async throws {
        let v = try await AuditedVault()
        let doctor = Fixtures.otherDoctor
        try await v.store.authorise(doctor, for: v.alice, as: v.patient)
        let v1 = try await v.store.deposit(
            Fixtures.draft("v1", flags: [.maskedFromProfessionals]), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.replace(v1.id, with: Fixtures.draft("v2"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        // The authorised doctor sees version 2, not the masked version 1.
        #expect(try await v.store.content(of: v1.id, for: v.alice, as: doctor) == Data([2]))
        #expect(await code { _ = try await v.store.content(of: v1.id, version: 1, includingDeprecated: true, for: v.alice, as: doctor) } == .unknownDocument)
        #expect(try await v.store.versions(of: v1.id, for: v.alice, as: doctor).map(\.version) == [2])
        #expect(try await v.store.documents(for: v.alice, matching: DocumentQuery(status: .all), as: doctor).map(\.version) == [2])
        // The patient sees both.
        #expect(try await v.store.versions(of: v1.id, for: v.alice, as: v.patient).map(\.version) == [1, 2])
        try await v.store.close()
    }

    @Test func aReleaseCoversTheVersionsDepositedBeforeIt() async throws {
        let v = try await AuditedVault()
        let hidden: ConfidentialityFlags = [.hiddenFromPatient]
        let v1 = try await v.store.deposit(Fixtures.draft("v1", flags: hidden), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        v.clock.advance(by: 60)
        try await v.store.releaseToPatient(v1.id, for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.content(of: v1.id, for: v.alice, as: v.patient) == Data([1]))
        v.clock.advance(by: 60)
        _ = try await v.store.replace(v1.id, with: Fixtures.draft("v2", flags: hidden), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        // The new version is hidden again until released (or a month old).
        #expect(await code { _ = try await v.store.content(of: v1.id, for: v.alice, as: v.patient) } == .unknownDocument)
        #expect(await code { try await v.store.releaseToPatient(v1.id, for: v.alice, as: v.patient) } == .unknownDocument)
        try await v.store.close()
    }

    @Test func theInsurerCorrectsItsOwnReimbursementHistory() async throws {
        let v = try await AuditedVault()
        let history = try await v.store.deposit(
            Fixtures.draft("Remboursements", category: .reimbursement), content: Data([1]), for: v.alice, as: Fixtures.insurer)
        let corrected = try await v.store.replace(
            history.id, with: Fixtures.draft("Remboursements", category: .reimbursement), content: Data([2]), for: v.alice, as: Fixtures.insurer)
        #expect(corrected.version == 2)
        // It still never reads.
        #expect(await code { _ = try await v.store.content(of: history.id, for: v.alice, as: Fixtures.insurer) } == .accessDenied)
        try await v.store.close()
    }

    @Test func concurrentAuditedOperationsWithEvictionKeepEveryChainWhole() async throws {
        var c = Fixtures.configuration()
        c.loadedVaultLimit = 3
        let v = try await AuditedVault(configuration: c)
        let patients = (0..<8).map { Fixtures.ins("1" + String(format: "%012d", 770_000_000 + $0 * 13)) }
        for p in patients { try await v.store.createVault(for: p, as: .patient(p), channel: .patientOnline) }
        let store = v.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, p) in patients.enumerated() {
                group.addTask {
                    let d = try await store.deposit(Fixtures.draft(), content: Data([UInt8(i)]), for: p, as: Fixtures.doctor)
                    for _ in 0..<5 {
                        _ = try await store.metadata(of: d.id, for: p, as: .patient(p))
                        try await store.setBreakGlassOpposition(i % 2 == 0, for: p, as: .patient(p))
                        _ = try await store.documents(for: p, as: Fixtures.doctor)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Eviction is opportunistic: it skips vaults with records in flight,
        // so it may lag under load; the next use with nothing in flight
        // brings memory back under the limit.
        _ = try await store.vaultInfo(for: patients[0], as: .patient(patients[0]))
        #expect(store.cache.loadedCount <= 3)
        #expect(store.cache.handleCount <= 8)
        for p in patients {
            // create, deposit, 5 × (read, change, list), and the verification
            // (and, for the first, the vaultInfo above).
            #expect(try await store.verifyAuditTrail(for: p, as: .patient(p)).entries == (p == patients[0] ? 19 : 18))
        }
        let reopened = try await v.t.reopen(configuration: c)
        for p in patients {
            #expect(try await reopened.verifyAuditTrail(for: p, as: .patient(p)).entries == (p == patients[0] ? 20 : 19))
        }
        try await reopened.close()
    }
}

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

@Suite struct AuditTamperTests {
    /// Rewrites the frame at `location` with `payload` (same length) or a new
    /// back-pointer, recomputing both checksums and the header's MAC, as an
    /// attacker who holds the log key (but no vault key) would: what is left
    /// to catch the change is the audit chain itself.
    func rewrite(_ t: TestStore, _ location: RecordLocation, payload: [UInt8]? = nil, previous: RecordLocation?? = nil) throws {
        let path = t.folder.url.appendingPathComponent(LogFormat.segmentFileName(location.segment)).path
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let salt = Array(bytes[24..<40])
        let o = Int(location.offset)
        let h = LogFormat.frameHeaderSize
        if let payload {
            bytes.replaceSubrange((o + h)..<(o + h + payload.count), with: payload)
            let crc = LogFormat.payloadCRC(payload)
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((o + 12)..<(o + 16), with: $0) }
        }
        if let previous {
            let raw = previous?.raw ?? 0
            let length = previous?.frameLength ?? 0
            withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange((o + 36)..<(o + 40), with: $0) }
            withUnsafeBytes(of: raw.littleEndian) { bytes.replaceSubrange((o + 40)..<(o + 48), with: $0) }
        }
        let mac = try t.logMAC()
        let tag = Array(bytes[o..<(o + h)]).withUnsafeBytes { header in
            LogFormat.macMessage(salt: salt, offset: location.offset, header: header).withUnsafeBytes { mac.tag($0) }
        }
        bytes.replaceSubrange((o + LogFormat.frameMACOffset)..<(o + h), with: tag)
        let headerCRC = CRC32C.checksum(salt + Array(bytes[(o + 8)..<(o + h)]))
        withUnsafeBytes(of: headerCRC.littleEndian) { bytes.replaceSubrange((o + 4)..<(o + 8), with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A vault with a dozen entries of the same shape; returns its audit
    /// records, oldest first, after closing the store.
    func prepared() async throws -> (AuditedVault, [StoredRecord]) {
        let v = try await AuditedVault()
        for _ in 0..<10 { _ = try await v.store.vaultInfo(for: v.alice, as: v.patient) }
        let stream = v.store.keys.auditStream(of: v.store.keys.vaultPseudonym(for: v.alice))
        var records: [StoredRecord] = []
        var next = v.store.engine.head(of: stream)
        while let l = next {
            let r = try v.store.engine.read(l)
            records.append(r)
            next = r.previous
        }
        try await v.store.close()
        return (v, records.reversed())
    }

    func verify(_ v: AuditedVault) async throws -> PatientVaultError.Code? {
        let store = try await VaultStore.open(at: v.t.folder.url, key: .key(v.t.key), configuration: Fixtures.configuration())
        defer { Task { try? await store.close() } }
        return await code { _ = try await store.verifyAuditTrail(for: v.alice, as: .patient(v.alice)) }
    }

    @Test func anUntouchedChainVerifies() async throws {
        let (v, records) = try await prepared()
        #expect(records.count == 11)
        #expect(try await verify(v) == nil)
    }

    @Test(arguments: [1, 5, 9])
    func alteredEntryIsDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        var payload = records[index].payload
        payload[payload.count - 20] ^= 0x01
        try rewrite(v.t, records[index].location, payload: payload)
        #expect(try await verify(v) == .corrupted)
    }

    @Test(arguments: [1, 5, 8])
    func removedEntryIsDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        // The next entry now points past the removed one.
        try rewrite(v.t, records[index + 1].location, previous: .some(records[index - 1].location))
        #expect(try await verify(v) == .corrupted)
    }

    @Test(arguments: [1, 4, 8])
    func reorderedEntriesAreDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        #expect(records[index].payload.count == records[index + 1].payload.count)
        try rewrite(v.t, records[index].location, payload: records[index + 1].payload)
        try rewrite(v.t, records[index + 1].location, payload: records[index].payload)
        #expect(try await verify(v) == .corrupted)
    }

    @Test func entryMovedFromAnotherVaultIsDetected() async throws {
        let (v, records) = try await prepared()
        let store = try await VaultStore.open(at: v.t.folder.url, key: .key(v.t.key), configuration: Fixtures.configuration())
        try await store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        for _ in 0..<2 { _ = try await store.vaultInfo(for: Fixtures.bob, as: .patient(Fixtures.bob)) }
        let bobStream = store.keys.auditStream(of: store.keys.vaultPseudonym(for: Fixtures.bob))
        let bobHead = try store.engine.read(store.engine.head(of: bobStream)!)
        try await store.close()
        // Bob's entry 2 copied over Alice's entry 2 (same size, valid checksums).
        #expect(bobHead.payload.count == records[2].payload.count)
        try rewrite(v.t, records[2].location, payload: bobHead.payload)
        #expect(try await verify(v) == .corrupted)
    }
}

@Suite struct AuditQueryTests {
    @Test func patientReadsTheTrailNewestFirstPagedAndFiltered() async throws {
        let v = try await AuditedVault()
        let doctor = Fixtures.doctor
        try await v.store.authorise(doctor, for: v.alice, as: v.patient)
        var ids: [DocumentID] = []
        for i in 0..<5 {
            v.clock.advance(by: 60)
            ids.append(try await v.store.deposit(Fixtures.draft("TITRE-\(i)"), content: Data([UInt8(i)]), for: v.alice, as: doctor).id)
        }
        for id in ids { _ = try await v.store.content(of: id, for: v.alice, as: doctor) }
        let all = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        // create, authorise, 5 deposits, 5 reads, and this read of the trail.
        #expect(all.count == 13)
        #expect(all.first?.action == .readAuditTrail)
        #expect(all.map(\.sequence) == (0..<13).reversed().map(UInt64.init))
        let reads = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(actor: doctor, actions: [.readContent], limit: 2), as: v.patient)
        #expect(reads.map(\.document) == [ids[4], ids[3]])
        let next = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(actor: doctor, actions: [.readContent], offset: 2, limit: 2), as: v.patient)
        #expect(next.map(\.document) == [ids[2], ids[1]])
        let deposits = all.filter { $0.action == .deposit }
        let window = deposits[3].time...deposits[1].time
        #expect(try await v.store.auditTrail(for: v.alice, matching: AuditQuery(actions: [.deposit], between: window), as: v.patient).count == 3)
        // What an entry holds: identifiers, outcome, rule, purpose; no title.
        let e = reads[0]
        #expect(e.actor == doctor && e.outcome == .allowed && e.rule == .authorisedByPatient && e.purpose == .care)
        #expect(e.legalBasis == "CSP L1111-17 I" && e.version == 1)
        #expect(!String(describing: e).contains("TITRE"))
        try await v.store.close()
    }

    @Test func secretAccessesAreHiddenFromRepresentatives() async throws {
        let v = try await AuditedVault()
        let parent = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))
        try await v.store.nameRepresentative(.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent)), for: v.alice, as: v.patient)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.content(of: doc.id, for: v.alice, as: v.patient, secret: true)
        let own = try await v.store.auditTrail(for: v.alice, as: v.patient)
        #expect(own.contains { $0.isSecretAccess && $0.action == .readContent })
        let theirs = try await v.store.auditTrail(for: v.alice, as: parent)
        #expect(!theirs.contains { $0.isSecretAccess })
        #expect(theirs.contains { $0.action == .deposit })
        // The representative's own read is recorded on the patient's behalf.
        #expect(theirs.first?.actor == parent && theirs.first?.onBehalfOf == v.patient)
        try await v.store.close()
    }

    @Test func reviewerReadsOneProfessionalsActivityAcrossVaults() async throws {
        let v = try await AuditedVault()
        let doctor = Fixtures.doctor
        let patients = [v.alice, Fixtures.bob, Fixtures.ins("1850275000003")]
        for p in patients.dropFirst() { try await v.store.createVault(for: p, as: .patient(p), channel: .patientOnline) }
        for p in patients {
            let d = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: p, as: doctor)
            _ = try await v.store.content(of: d.id, for: p, as: doctor)
        }
        // A denied attempt is activity too.
        _ = await code { _ = try await v.store.documents(for: v.alice, as: Fixtures.otherDoctor) }
        let reviewer = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let activity = try await v.store.activity(of: GrantHolder(doctor)!, as: reviewer)
        #expect(activity.count == 6)
        #expect(Set(activity.map(\.vaultID)).count == 3)
        #expect(activity.map(\.action) == [.readContent, .deposit, .readContent, .deposit, .readContent, .deposit])
        let other = try await v.store.activity(of: GrantHolder(Fixtures.otherDoctor)!, as: reviewer)
        #expect(other.map(\.outcome) == [.denied])
        // Only a configured reviewer; the refusal is itself recorded.
        let stranger = Principal.auditReviewer(try SystemPrincipal("curious"))
        let refused = await error { _ = try await v.store.activity(of: GrantHolder(doctor)!, as: stranger) }
        #expect(refused?.code == .accessDenied && refused?.rule == .notAReviewer)
        #expect(await code { _ = try await v.store.activity(of: GrantHolder(doctor)!, as: doctor) } == .accessDenied)
        let reviewerLog = v.store.engine.head(of: v.store.keys.reviewerStream(of: try SystemPrincipal("curious")))
        #expect(reviewerLog != nil)
        // A patient trying it is recorded too, in the stream of its kind.
        #expect(await code { _ = try await v.store.activity(of: GrantHolder(doctor)!, as: v.patient) } == .accessDenied)
        #expect(v.store.engine.head(of: v.store.keys.reviewerStream(of: try SystemPrincipal("kind-patient"))) != nil)
        try await v.store.close()
    }

    @Test func notificationsForTheHost() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        try await v.store.authorise(Fixtures.otherDoctor, for: v.alice, as: v.patient)
        _ = try await v.store.content(of: doc.id, for: v.alice, as: Fixtures.otherDoctor)
        _ = try await v.store.content(of: doc.id, for: v.alice, as: Fixtures.otherDoctor)
        let emergency = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10100000077"), profession: .doctor))
        _ = try await v.store.content(of: doc.id, for: v.alice, as: emergency, purpose: .breakGlass(reason: try BreakGlassReason("unconscious")))
        try await v.store.close()
        var kinds: [VaultNotification.Kind] = []
        for await n in listener {
            #expect(n.patient == v.alice)
            kinds.append(n.kind)
        }
        #expect(kinds == [
            .newDocument(doc.id), .authorisationChanged(.authorise), .firstAccess(Fixtures.otherDoctor),
            .firstAccess(emergency), .breakGlass(emergency),
        ])
        // Asked for after close, the sequence is already finished.
        var late = 0
        for await _ in v.store.notifications() { late += 1 }
        #expect(late == 0)
        // Break-glass is flagged in the trail with its purpose and legal basis.
        let store = try await v.t.reopen(configuration: Fixtures.configuration())
        let entry = try await store.auditTrail(for: v.alice, matching: AuditQuery(actor: emergency), as: v.patient).first
        #expect(entry?.isBreakGlass == true && entry?.purpose == .emergency && entry?.legalBasis == "CSP L1111-17 I")
        #expect(entry?.reasonHash?.count == 32)
        try await store.close()
    }

    @Test func batchedAuditModeKeepsEveryEntry() async throws {
        var c = Fixtures.configuration()
        c.auditMode = .batched(maxDelay: .milliseconds(20))
        let v = try await AuditedVault(configuration: c)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        for _ in 0..<20 { _ = try await v.store.metadata(of: doc.id, for: v.alice, as: v.patient) }
        // The reads returned before their entries were synced; nothing else
        // is written now, so only the flusher can make them durable: every
        // record written becomes durable within the bound (allow for a
        // loaded machine).
        let engine = try #require(v.store.engine as? LogEngine)
        func allDurable() -> Bool { engine.core.state.withLock { $0.durableLSN == $0.nextLSN && $0.queue.isEmpty } }
        var waited = 0
        while !allDurable() && waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(allDurable(), "the batched entries were never made durable")
        let store = try await v.t.reopen(configuration: c)
        #expect(try await store.verifyAuditTrail(for: v.alice, as: v.patient).entries == 23)
        try await store.close()
    }
}

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

        let reference = doc.fhirDocumentReference(vaultID: glass.vaultID)
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
