import Foundation
import Testing
@testable import PatientVault

/// Regression tests of the twentieth session's review of access and audit
/// against DOMAIN.md, AccessModel.md and AuditTrail.md: each fails on the
/// code before its fix.
@Suite struct AccessReviewTwoTests {
    static let parent = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))

    /// A professional's first read of a document hidden from the patient
    /// is neither recorded nor notified: the notification would name its
    /// reader before the result is announced in person. Their next read of
    /// a visible document is the first access the patient is told of.
    @Test func aFirstReadOfADocumentHiddenFromThePatientIsNotNotified() async throws {
        let v = try await AuditedVault()
        let listener = v.store.notifications()
        let hidden = try await v.store.deposit(
            Fixtures.draft(flags: [.hiddenFromPatient]), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        try await v.store.authorise(Fixtures.otherDoctor, for: v.alice, as: v.patient)
        _ = try await v.store.content(of: hidden.id, for: v.alice, as: Fixtures.otherDoctor)
        #expect(try await v.store.snapshot(of: v.alice).accessedBy.isEmpty)
        let visible = try await v.store.deposit(Fixtures.draft(), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.metadata(of: visible.id, for: v.alice, as: Fixtures.otherDoctor)
        try await v.store.close()
        var firstAccesses: [VaultNotification.Kind] = []
        for await n in listener {
            if case .firstAccess = n.kind { firstAccesses.append(n.kind) }
        }
        #expect(firstAccesses == [.firstAccess(Fixtures.otherDoctor)])
    }

    /// A representative who closed the vault is another person: their INS
    /// reaches the patient's side, not a professional reading vault info.
    @Test func aRepresentativeWhoClosedTheVaultIsNotNamedToProfessionals() async throws {
        let v = try await AuditedVault()
        try await v.store.nameRepresentative(Self.parent, for: v.alice, as: v.patient)
        try await v.store.authorise(Fixtures.otherDoctor, for: v.alice, as: v.patient)
        try await v.store.closeVault(for: v.alice, reason: .patientRequest, as: Self.parent)
        #expect(try await v.store.vaultInfo(for: v.alice, as: v.patient).closure?.closedBy == Self.parent)
        #expect(try await v.store.vaultInfo(for: v.alice, as: Self.parent).closure?.closedBy == Self.parent)
        let seen = try await v.store.vaultInfo(for: v.alice, as: Fixtures.otherDoctor).closure
        #expect(seen?.reason == .patientRequest)
        #expect(seen?.closedBy == nil)
        try await v.store.close()
    }

    /// A document hidden from representatives stays closed only to a
    /// reader whom representatives alone designated: the patient's own
    /// grant opens it, even when a representative also named that reader
    /// médecin traitant (the basis checked first).
    @Test func thePatientsOwnDesignationOpensADocumentHiddenFromRepresentatives() {
        let t = AccessRuleTableTests.self
        let doctor = AccessRuleTableTests.pro("10100000123", .doctor)
        var policy = VaultPolicy()
        policy.apply(.nameRepresentative(t.rep), at: t.t0)
        policy.apply(.setMedecinTraitant(doctor), at: t.t0, by: .representative(t.rep))
        let document = t.document(flags: [.hiddenFromLegalRepresentatives])
        let byRepresentativeOnly = AccessPolicy.decide(t.req(.readContent, .professional(doctor), policy: policy, document: document))
        #expect(!byRepresentativeOnly.isAllowed && byRepresentativeOnly.rule == .hiddenFromLegalRepresentatives)
        policy.apply(.authorise(.professional(doctor), until: nil), at: t.t0, by: .patient(t.holder))
        let alsoByThePatient = AccessPolicy.decide(t.req(.readContent, .professional(doctor), policy: policy, document: document))
        #expect(alsoByThePatient.isAllowed)
        // And the other way round: the patient's care team, a
        // representative's grant.
        var other = VaultPolicy()
        other.apply(.nameRepresentative(t.rep), at: t.t0)
        other.apply(.authorise(.professional(doctor), until: nil), at: t.t0, by: .representative(t.rep))
        #expect(!AccessPolicy.decide(t.req(.readContent, .professional(doctor), policy: other, document: document)).isAllowed)
        other.apply(.addToCareTeam(doctor), at: t.t0, by: .patient(t.holder))
        #expect(AccessPolicy.decide(t.req(.readContent, .professional(doctor), policy: other, document: document)).isAllowed)
    }

    /// `whoCouldRead` on a document the asker cannot see answers
    /// `unknownDocument`, and its entry says denied, not allowed.
    @Test func whoCouldReadOnAnUnknownDocumentIsRecordedAsDenied() async throws {
        let v = try await AuditedVault()
        let made = DocumentID(bytes: [UInt8](repeating: 9, count: 16))
        #expect(await code { _ = try await v.store.whoCouldRead(made, at: v.clock.now(), for: v.alice, as: v.patient) } == .unknownDocument)
        let entry = try #require(try await v.entries().last)
        #expect(entry.action == .queryAccessHistory && entry.outcome == .denied && entry.rule == .unknownDocument)
        try await v.store.close()
    }

    /// An erasure without a reason is bad input only from a professional
    /// or organisation (who must state why); from someone with no say in
    /// the vault it is refused by the rules, as with a reason.
    @Test func anErasureWithoutAReasonByAStrangerIsRefusedByTheRules() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        let stranger = Principal.patient(Fixtures.bob)
        let e = await error { _ = try await v.store.erase(doc.id, for: v.alice, as: stranger) }
        #expect(e?.code != .invalidArgument)
        #expect(e?.code == .unknownDocument)
        #expect(await code { _ = try await v.store.erase(doc.id, for: v.alice, as: Fixtures.otherDoctor) } == .invalidArgument)
        try await v.store.close()
    }

    /// An author whose grant lapsed (expired, or revoked) erases their
    /// document and, asking for it, is told it was erased, as one who never
    /// had a grant is: their authorship of it ended with it.
    @Test func anAuthorWhoseGrantLapsedIsStillToldTheirDocumentWasErased() async throws {
        let v = try await AuditedVault()
        try await v.store.authorise(Fixtures.otherDoctor, until: v.clock.now().addingTimeInterval(86_400), for: v.alice, as: v.patient)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.otherDoctor)
        v.clock.advance(by: 2 * 86_400)
        _ = try await v.store.erase(doc.id, for: v.alice, reason: try ErasureReason("wrong patient"), as: Fixtures.otherDoctor)
        #expect(await code { _ = try await v.store.metadata(of: doc.id, for: v.alice, as: Fixtures.otherDoctor) } == .erased)
        // Someone else's document is not theirs to learn of.
        let other = try await v.store.deposit(Fixtures.draft(), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        let e = await error { _ = try await v.store.metadata(of: other.id, for: v.alice, as: Fixtures.otherDoctor) }
        #expect(e?.code == .accessDenied && e?.rule == .grantExpired)
        try await v.store.close()
    }

    /// A professional whose only document here was erased has no author's
    /// rights left: the same answer before and after a reopen. They are
    /// still told their document was erased.
    @Test func anAuthorOfNothingLeftHasNoAuthorsRights() async throws {
        let v = try await AuditedVault(storage: .folder)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.otherDoctor)
        _ = try await v.store.documents(for: v.alice, as: Fixtures.otherDoctor)
        _ = try await v.store.erase(doc.id, for: v.alice, reason: try ErasureReason("wrong patient"), as: Fixtures.otherDoctor)
        let e = await error { _ = try await v.store.documents(for: v.alice, as: Fixtures.otherDoctor) }
        #expect(e?.code == .accessDenied && e?.rule == .notAuthorised)
        #expect(await code { _ = try await v.store.metadata(of: doc.id, for: v.alice, as: Fixtures.otherDoctor) } == .erased)
        let store = try await v.t.reopen(configuration: Fixtures.configuration())
        let after = await error { _ = try await store.documents(for: v.alice, as: Fixtures.otherDoctor) }
        #expect(after?.code == .accessDenied && after?.rule == .notAuthorised)
        #expect(await code { _ = try await store.metadata(of: doc.id, for: v.alice, as: Fixtures.otherDoctor) } == .erased)
        try await store.close()
    }
}
