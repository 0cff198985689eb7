import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Reading the trail: order, pages, filters, and one professional's activity across vaults (`VaultStore+AuditQueries`).
@Suite struct AuditQueryTests {
    @Test func patientReadsTheTrailNewestFirstPagedAndFiltered() async throws {
        let (v, doctor) = try await AuditedVault.authorising(Fixtures.doctor)
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

    /// A secret connection is secret for everything the patient does
    /// through it, not for reads alone: whom they authorise, block or
    /// name, what they deposit and erase, their reads of the trail and
    /// their exports.
    @Test func aSecretConnectionHidesEveryCallOfThePatientFromRepresentatives() async throws {
        let v = try await AuditedVault()
        let parent = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))
        try await v.store.nameRepresentative(parent, for: v.alice, as: v.patient)
        let secretly = v.store.vault(for: v.alice, as: v.patient, secret: true)
        #expect(secretly.secret)
        let before = try await v.entries().count
        try await secretly.authorise(Fixtures.doctor)
        try await secretly.block(Fixtures.otherDoctor)
        try await secretly.setBreakGlassOpposition(true)
        let own = try await secretly.deposit(Fixtures.draft(), content: Data([1]))
        _ = try await secretly.whoCouldRead(own.id, at: v.clock.now())
        _ = try await v.store.erase(own.id, for: v.alice, as: v.patient, secret: true)
        _ = try await secretly.auditTrail()
        _ = try await secretly.verifyAuditTrail()
        _ = try await v.store.exportVault(for: v.alice, as: v.patient, secret: true)
        let written = try await v.entries().dropFirst(before)
        #expect(written.count == 9)
        #expect(written.allSatisfy { $0.isSecretAccess })
        // The patient's own view keeps them; the representative's has none.
        let theirs = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: parent)
        #expect(!theirs.contains { $0.actor == v.patient && $0.action != .nameRepresentative && $0.action != .createVault })
        #expect(theirs.contains { $0.action == .nameRepresentative })
        // Only the holder connects secretly; another's call through such a
        // value is refused and audited, not secret.
        let refused = await code { try await v.store.vault(for: v.alice, as: parent, secret: true).authorise(Fixtures.doctor) }
        #expect(refused == .invalidArgument)
        let last = try #require(try await v.entries().last)
        #expect(last.actor == parent && last.outcome == .denied && !last.isSecretAccess)
        try await v.store.close()
    }

    /// A read of the trail answers up to its own entry: entries written
    /// between its decision and its walk (deposits racing it here) are not
    /// in its answer, whose first entry is always the read itself.
    @Test func aTrailReadEndsWithItsOwnEntry() async throws {
        let v = try await AuditedVault()
        let store = v.store, alice = v.alice, patient = v.patient
        let firsts = try await withThrowingTaskGroup(of: [AuditEntry].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<60 { _ = try await store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor) }
                    return []
                }
            }
            group.addTask {
                var firsts: [AuditEntry] = []
                for _ in 0..<150 {
                    firsts += try await store.auditTrail(for: alice, matching: AuditQuery(limit: 1), as: patient)
                }
                return firsts
            }
            return try await group.reduce([], +)
        }
        #expect(firsts.count == 150)
        #expect(firsts.allSatisfy { $0.action == .readAuditTrail && $0.actor == patient })
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
        #expect(v.store.engine.contains(v.store.keys.reviewerStream(of: try SystemPrincipal("curious"))))
        // A patient trying it is recorded too, in the stream of its kind.
        #expect(await code { _ = try await v.store.activity(of: GrantHolder(doctor)!, as: v.patient) } == .accessDenied)
        #expect(v.store.engine.contains(v.store.keys.reviewerStream(of: try SystemPrincipal("kind-patient"))))
        try await v.store.close()
    }

    /// An entry naming a version that never was (a read of version 9 of a
    /// document with one) is the patient's to see, judged by the document:
    /// attempts, refused ones included, are shown.
    @Test func anEntryNamingAVersionThatNeverWasIsShown() async throws {
        let (v, doctor) = try await AuditedVault.authorising(Fixtures.doctor)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: doctor)
        #expect(await code { _ = try await v.store.content(of: doc.id, version: 9, for: v.alice, as: doctor) } == .unknownDocument)
        let own = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(actor: doctor, actions: [.readContent]), as: v.patient)
        #expect(own.count == 1 && own.first?.version == 9 && own.first?.outcome == .denied)
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).withheld == 0)
        try await v.store.close()
    }

    /// A host that relays the patient's notifications to representatives
    /// can tell which to keep from them: those of the patient's secret
    /// calls, and those about a document hidden from representatives (its
    /// deposit, a first access made by reading it).
    @Test func notificationsSayWhatRepresentativesMustNotBeTold() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let ordinary = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let confidential = try await v.store.deposit(
            Fixtures.draft(flags: [.hiddenFromLegalRepresentatives]), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        try await v.store.vault(for: v.alice, as: v.patient, secret: true).authorise(Fixtures.otherDoctor)
        _ = try await v.store.content(of: confidential.id, for: v.alice, as: Fixtures.otherDoctor)
        try await v.store.close()
        var hidden: [VaultNotification.Kind: Bool] = [:]
        for await n in listener { hidden[n.kind] = n.hiddenFromRepresentatives }
        #expect(hidden == [
            .newDocument(ordinary.id): false, .newDocument(confidential.id): true,
            .authorisationChanged(.authorise): true, .firstAccess(Fixtures.otherDoctor): true,
        ])
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

    /// Only an entry nobody waits for is sealed by the engine's writer: a
    /// read's in batched audit mode. A read's in durable audit mode, or
    /// under relaxed durability (whose groups are buffered too), a trail
    /// query's in batched mode, and a refused write's are sealed by their
    /// caller, who waits for them.
    @Test(arguments: [
        (AuditMode.batched(maxDelay: .milliseconds(20)), DurabilityMode.synchronous),
        (AuditMode.durable, DurabilityMode.synchronous), (AuditMode.durable, DurabilityMode.relaxed),
    ])
    func onlyAnEntryNobodyWaitsForIsSealedByTheWriter(mode: AuditMode, durability: DurabilityMode) async throws {
        var c = Fixtures.configuration()
        c.auditMode = mode
        c.durability = durability
        let v = try await AuditedVault(configuration: c, storage: .folder)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let engine = try #require(v.store.engine as? LogEngine)
        let before = engine.deferredRecordCount
        _ = try await v.store.metadata(of: doc.id, for: v.alice, as: v.patient)
        let afterRead = engine.deferredRecordCount
        _ = try await v.store.auditTrail(for: v.alice, as: v.patient)
        _ = await code { _ = try await v.store.deposit(Fixtures.draft(), content: Data([2]), for: v.alice, as: .insurer(try SystemPrincipal("cpam-75"))) }
        let batched = if case .batched = mode { true } else { false }
        #expect(afterRead - before == (batched ? 1 : 0))
        #expect(engine.deferredRecordCount == afterRead)
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).entries >= 4)
        try await v.store.close()
    }

    @Test func batchedAuditModeKeepsEveryEntry() async throws {
        var c = Fixtures.configuration()
        c.auditMode = .batched(maxDelay: .milliseconds(20))
        let v = try await AuditedVault(configuration: c, storage: .folder)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        for _ in 0..<20 { _ = try await v.store.metadata(of: doc.id, for: v.alice, as: v.patient) }
        // The reads returned before their entries were synced; nothing else
        // is written now, so only the flusher can make them durable: every
        // record written becomes durable within the bound (allow for a
        // loaded machine).
        let engine = try #require(v.store.engine as? LogEngine)
        func allDurable() -> Bool { engine.core.state.withLock { $0.durableLSN == $0.nextLSN && $0.queue.isEmpty } }
        var waited = 0
        while !allDurable() && waited < 3000 {  // up to 30 s
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(allDurable(), "the batched entries were never made durable")
        let store = try await v.t.reopen(configuration: c)
        #expect(try await store.verifyAuditTrail(for: v.alice, as: v.patient).entries == 23)
        try await store.close()
    }
}
