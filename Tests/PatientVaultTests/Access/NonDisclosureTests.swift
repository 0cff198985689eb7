import Foundation
import Testing
@testable import PatientVault

/// Documents a reader may not see do not exist for them: absent from listings, counts, the trail (`AccessPolicy`, `VaultStore.sees`).
@Suite struct NonDisclosureTests {
    @Test func hiddenDocumentsDoNotExistForThoseWhoMayNotSeeThem() async throws {
        let (v, doctor) = try await AuditedVault.authorising(Fixtures.otherDoctor)
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
        // Two host runs at once record the notice once (each finds it due;
        // one at a time, the second finds it recorded).
        let running = v.store, alice = v.alice
        async let first = running.processScheduledEvents(for: alice)
        async let second = running.processScheduledEvents(for: alice)
        #expect(try await first + second == 1)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 0)
        #expect(await code { _ = try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient) } == .unknownDocument)
        v.clock.advance(by: 16 * 86_400)
        // Visible by the time rule, whether or not the event was recorded yet.
        #expect(try await v.store.metadata(of: hidden.id, for: v.alice, as: v.patient).id == hidden.id)
        #expect(try await v.store.processScheduledEvents(for: v.alice) == 1)
        let entries = try await v.entries()
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

    /// A document hidden from the patient and erased by its author before
    /// its release is not announced to the patient as erased: they were
    /// never told it existed. A document they could see is.
    @Test func anErasureOfADocumentHiddenFromThePatientIsNotAnnounced() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let hidden = try await v.store.deposit(
            Fixtures.draft("Résultat", flags: [.hiddenFromPatient]), content: Data([3]), for: v.alice, as: Fixtures.doctor)
        let seen = try await v.store.deposit(Fixtures.draft("Compte rendu"), content: Data([4]), for: v.alice, as: Fixtures.doctor)
        let reason = try ErasureReason("erreur de dossier")
        _ = try await v.store.erase(hidden.id, for: v.alice, reason: reason, as: Fixtures.doctor)
        _ = try await v.store.erase(seen.id, for: v.alice, reason: reason, as: Fixtures.doctor)
        try await v.store.close()
        var kinds: [VaultNotification.Kind] = []
        for await n in listener { kinds.append(n.kind) }
        #expect(kinds.contains(.documentErased(seen.id)))
        #expect(!kinds.contains(.documentErased(hidden.id)))
    }

    /// A vault with a named parent, and a document hidden from
    /// representatives that the doctor deposited and read.
    func confidentialDocumentRead() async throws -> (AuditedVault, parent: Principal, DocumentMetadata) {
        let v = try await AuditedVault()
        let parent = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))
        try await v.store.nameRepresentative(parent, for: v.alice, as: v.patient)
        let first = try await v.store.deposit(
            Fixtures.draft("Consultation confidentielle", flags: [.hiddenFromLegalRepresentatives]), content: Data([1]),
            for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.content(of: first.id, for: v.alice, as: Fixtures.doctor)
        return (v, parent, first)
    }

    /// A refusal for bad input about a document names that document, so
    /// whoever may not see it does not see the entry either: its actor
    /// (a gynaecologist's speciality) is what the document's flag hides.
    /// Both refusals below are found after the decision (a release of a
    /// document not hidden from the patient; a version number out of
    /// range), where the entry used to name no document.
    @Test func aRefusalForBadInputAboutAHiddenDocumentIsHiddenWithIt() async throws {
        let (v, parent, first) = try await confidentialDocumentRead()
        await #expect(throws: PatientVaultError.self) {
            try await v.store.releaseToPatient(first.id, for: v.alice, as: Fixtures.doctor)
        }
        await #expect(throws: PatientVaultError.self) {
            _ = try await v.store.metadata(of: first.id, version: 0, for: v.alice, as: Fixtures.doctor)
        }
        let own = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        let refusals = own.filter { $0.rule == .invalidRequest }
        #expect(refusals.map(\.action).sorted { $0.rawValue < $1.rawValue } == [.readMetadata, .releaseToPatient])
        #expect(refusals.allSatisfy { $0.document == first.id })
        let theirs = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: parent)
        #expect(!theirs.contains { $0.rule == .invalidRequest && $0.actor == Fixtures.doctor })
        try await v.store.close()
    }

    /// An older version hidden from representatives stays hidden once a
    /// version without the flag replaces it: who deposited and read it, and
    /// who could read it then, are what its flag hides (trail, whoCouldRead,
    /// whatCouldRead judge the version an answer names, not only the newest).
    @Test func anOlderVersionHiddenFromRepresentativesStaysHiddenAfterAReplacement() async throws {
        let (v, parent, first) = try await confidentialDocumentRead()
        let doctor = Fixtures.doctor
        v.clock.advance(by: 60)
        let during = v.clock.now()
        v.clock.advance(by: 60)
        let second = try await v.store.replace(first.id, with: Fixtures.draft("Compte rendu"), content: Data([2]), for: v.alice, as: doctor)
        #expect(second.version == 2)
        let theirs = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: parent)
        #expect(!theirs.contains { $0.document == first.id && $0.version == 1 })
        #expect(theirs.contains { $0.document == first.id && $0.version == 2 && $0.action == .replace })
        #expect(try await v.store.whoCouldRead(first.id, at: during, for: v.alice, as: parent).isEmpty)
        #expect(try await v.store.whatCouldRead(doctor, at: during, for: v.alice, as: parent).isEmpty)
        // The patient, whom the flag does not concern, still sees all of it.
        let own = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        #expect(own.contains { $0.document == first.id && $0.version == 1 && $0.action == .readContent })
        #expect(try await v.store.whoCouldRead(first.id, at: during, for: v.alice, as: v.patient).contains { $0.principal == doctor })
        try await v.store.close()
    }

    /// A document released to the patient, then replaced by a version
    /// hidden from them again, and erased within that version's month:
    /// the earlier release does not cover the later version, so the
    /// tombstone, the `erased` answer and the trail's entries about it
    /// stay hidden from the patient, as the version was.
    @Test func anErasedDocumentHiddenAgainAfterAReleaseStaysHidden() async throws {
        let v = try await AuditedVault()
        let doctor = Fixtures.doctor
        let first = try await v.store.deposit(
            Fixtures.draft("Résultat", flags: [.hiddenFromPatient]), content: Data([1]), for: v.alice, as: doctor)
        try await v.store.releaseToPatient(first.id, for: v.alice, as: doctor)
        v.clock.advance(by: 60)
        _ = try await v.store.replace(
            first.id, with: Fixtures.draft("Résultat complémentaire", flags: [.hiddenFromPatient]), content: Data([2]),
            for: v.alice, as: doctor)
        #expect(await code { _ = try await v.store.metadata(of: first.id, for: v.alice, as: v.patient) } == .unknownDocument)
        _ = try await v.store.erase(first.id, for: v.alice, reason: try ErasureReason("erreur de dossier"), as: doctor)
        #expect(try await v.store.erasedDocuments(for: v.alice, as: v.patient).isEmpty)
        #expect(await code { _ = try await v.store.metadata(of: first.id, for: v.alice, as: v.patient) } == .unknownDocument)
        let own = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        #expect(!own.contains { $0.document == first.id && ($0.action == .replace || $0.action == .erase) })
        // A configured reviewer still sees the tombstone.
        #expect(try await v.store.erasedDocuments(for: v.alice, as: .auditReviewer(try SystemPrincipal("dpo"))).map(\.id) == [first.id])
        // For the month the law hides a document, no longer: after it, the
        // patient sees the tombstone and the entries, as they would have
        // seen the document.
        v.clock.advance(by: AccessPolicy.hiddenDocumentReleaseDelay + 1)
        #expect(try await v.store.erasedDocuments(for: v.alice, as: v.patient).map(\.id) == [first.id])
        let later = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: v.patient)
        #expect(later.contains { $0.document == first.id && $0.action == .erase })
        try await v.store.close()
    }

    /// An erasure keeps every version's secrecy: an older version hidden
    /// from representatives, replaced by one without the flag, then
    /// erased, stays hidden from them with its entries (the tombstone
    /// carries the flag of any version).
    @Test func anErasureKeepsAnOlderVersionsSecrecy() async throws {
        let (v, parent, first) = try await confidentialDocumentRead()
        let doctor = Fixtures.doctor
        _ = try await v.store.replace(first.id, with: Fixtures.draft("Compte rendu"), content: Data([2]), for: v.alice, as: doctor)
        _ = try await v.store.erase(first.id, for: v.alice, reason: try ErasureReason("erreur de dossier"), as: doctor)
        let theirs = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 1000), as: parent)
        #expect(!theirs.contains { $0.document == first.id })
        #expect(try await v.store.erasedDocuments(for: v.alice, as: parent).isEmpty)
        // The patient, whom the flag does not concern, sees all of it.
        #expect(try await v.store.erasedDocuments(for: v.alice, as: v.patient).map(\.id) == [first.id])
        try await v.store.close()
    }

    /// An older version still hidden from the patient, replaced by one
    /// they read, then erased: the tombstone (which cannot tell versions
    /// apart) hides the document from them for the legal month, and they
    /// are not told of the erasure either; the two agree.
    @Test func anErasureWithAnOlderVersionHiddenIsNeitherAnnouncedNorListed() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let first = try await v.store.deposit(
            Fixtures.draft("Résultat", flags: [.hiddenFromPatient]), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.replace(first.id, with: Fixtures.draft("Compte rendu"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.content(of: first.id, for: v.alice, as: v.patient)
        _ = try await v.store.erase(first.id, for: v.alice, reason: try ErasureReason("erreur de dossier"), as: Fixtures.doctor)
        #expect(try await v.store.erasedDocuments(for: v.alice, as: v.patient).isEmpty)
        try await v.store.close()
        var kinds: [VaultNotification.Kind] = []
        for await n in listener { kinds.append(n.kind) }
        #expect(!kinds.contains(.documentErased(first.id)))
    }
}
