import Foundation
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// A vault with a patient, a doctor who wrote one document, and helpers to
/// look at the audit chain without adding to it.
struct AuditedVault {
    let t: TestStore
    let clock: ManualClock
    let alice = Fixtures.alice
    var patient: Principal { .patient(alice) }

    /// - Parameter storage: ``testStorage`` unless the test looks at files.
    init(configuration: Configuration? = nil, storage: SuiteStorage = testStorage) async throws {
        let clock = ManualClock()
        self.clock = clock
        var c = configuration ?? Fixtures.configuration(clock: clock)
        c.clock = clock
        c.auditReviewers = [try SystemPrincipal("dpo")]
        t = try await TestStore(configuration: c, engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
    }

    var store: VaultStore { t.store }

    /// A vault whose patient has authorised `professional` (an audited
    /// grant), and that professional.
    static func authorising(_ professional: Principal) async throws -> (AuditedVault, Principal) {
        let v = try await AuditedVault()
        try await v.store.authorise(professional, for: v.alice, as: v.patient)
        return (v, professional)
    }

    /// The chain, oldest first, read directly (no entry added).
    func entries() async throws -> [AuditEntry] {
        let vault = try await store.snapshot(of: alice)
        var out: [AuditEntry] = []
        try await store.loader.auditEntries(of: vault) { out.append($0); return true }
        return out.reversed()
    }

    func count() async throws -> UInt64 { try await store.withVault(alice) { $0.auditNext } }
}

/// Every call on an existing vault leaves exactly one audit entry, allowed, denied, refused for bad input or abandoned (`OperationPipeline`, `AuditWriter`).
@Suite struct AuditCompletenessTests {
    typealias Op = @Sendable (AuditedVault, DocumentID) async throws -> Void

    static let doctor = Fixtures.doctor
    static let patient = Principal.patient(Fixtures.alice)
    static let stranger = Fixtures.otherDoctor

    /// An operation called once as `allowed` (allowed) and once as `denied`
    /// (denied): the same call, `as` the principal it is given.
    static func row(
        _ name: String, _ action: VaultAction, _ allowed: Principal, _ denied: Principal,
        _ call: @escaping @Sendable (AuditedVault, DocumentID, Principal) async throws -> Void
    ) -> (String, VaultAction, Op, Op) {
        (name, action, { v, d in try await call(v, d, allowed) }, { v, d in try await call(v, d, denied) })
    }

    /// (name, action, allowed call, denied call). Each call is one public operation.
    static let operations: [(String, VaultAction, Op, Op)] = [
        row("vaultInfo", .readVaultInfo, patient, stranger) { v, _, p in _ = try await v.store.vaultInfo(for: v.alice, as: p) },
        row("documents", .listDocuments, doctor, Fixtures.insurer) { v, _, p in _ = try await v.store.documents(for: v.alice, as: p) },
        row("metadata", .readMetadata, patient, stranger) { v, d, p in _ = try await v.store.metadata(of: d, for: v.alice, as: p) },
        row("receipt", .readMetadata, patient, stranger) { v, d, p in _ = try await v.store.receipt(for: d, for: v.alice, as: p) },
        row("content", .readContent, doctor, stranger) { v, d, p in _ = try await v.store.content(of: d, for: v.alice, as: p) },
        row("document", .readContent, doctor, stranger) { v, d, p in _ = try await v.store.document(d, for: v.alice, as: p) },
        row("contentStream", .readContent, patient, Fixtures.insurer) { v, d, p in _ = try await v.store.contentStream(of: d, for: v.alice, as: p) },
        row("versions", .listVersions, patient, stranger) { v, d, p in _ = try await v.store.versions(of: d, for: v.alice, as: p) },
        row("deposit", .deposit, doctor, Fixtures.insurer) { v, _, p in _ = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: p) },
        row("replace", .replace, doctor, patient) { v, d, p in _ = try await v.store.replace(d, with: Fixtures.draft(), content: Data([2]), for: v.alice, as: p) },
        row("authorise", .authorise, patient, doctor) { v, _, p in try await v.store.authorise(stranger, for: v.alice, as: p) },
        row("block", .block, patient, doctor) { v, _, p in try await v.store.block(stranger, for: v.alice, as: p) },
        row("revoke", .revoke, patient, doctor) { v, _, p in try await v.store.revoke(stranger, for: v.alice, as: p) },
        row("unblock", .unblock, patient, doctor) { v, _, p in try await v.store.unblock(stranger, for: v.alice, as: p) },
        row("removeFromCareTeam", .updateCareTeam, patient, Fixtures.pharmacist) { v, _, p in try await v.store.removeFromCareTeam(Fixtures.pharmacist, for: v.alice, as: p) },
        row("removeRepresentative", .removeRepresentative, patient, doctor) { v, _, p in try await v.store.removeRepresentative(parent, for: v.alice, as: p) },
        row("setMedecinTraitant", .setMedecinTraitant, patient, doctor) { v, _, p in try await v.store.setMedecinTraitant(doctor, for: v.alice, as: p) },
        row("addToCareTeam", .updateCareTeam, patient, Fixtures.pharmacist) { v, _, p in try await v.store.addToCareTeam(Fixtures.pharmacist, for: v.alice, as: p) },
        row("nameRepresentative", .nameRepresentative, patient, .patient(Fixtures.bob)) { v, _, p in try await v.store.nameRepresentative(parent, for: v.alice, as: p) },
        row("setBreakGlassOpposition", .setBreakGlassOpposition, patient, Fixtures.hospital) { v, _, p in try await v.store.setBreakGlassOpposition(true, for: v.alice, as: p) },
        row("releaseToPatient", .releaseToPatient, doctor, patient) { v, d, p in try await v.store.releaseToPatient(d, for: v.alice, as: p) },
        row("auditTrail", .readAuditTrail, patient, doctor) { v, _, p in _ = try await v.store.auditTrail(for: v.alice, as: p) },
        row("erase", .erase, doctor, patient) { v, d, p in
            try await v.store.erase(d, for: v.alice, reason: try ErasureReason("filed in the wrong record"), as: p)
        },
        row("rotateVaultKey", .rotateVaultKey, patient, doctor) { v, _, p in _ = try await v.store.rotateVaultKey(for: v.alice, as: p) },
        row("exportVault", .exportVault, patient, doctor) { v, _, p in _ = try await v.store.exportVault(for: v.alice, as: p) },
        row("erasedDocuments", .queryAccessHistory, patient, doctor) { v, _, p in _ = try await v.store.erasedDocuments(for: v.alice, as: p) },
        row("closeVault", .closeVault, patient, doctor) { v, _, p in try await v.store.closeVault(for: v.alice, reason: .patientRequest, as: p) },
        row("reopenVault", .reopenVault, patient, doctor) { v, _, p in try await v.store.reopenVault(for: v.alice, as: p) },
        row("authoriseHeir", .authoriseHeir, dpo, doctor) { v, _, p in try await v.store.authoriseHeir(Fixtures.bob, for: v.alice, as: p) },
        row("verifyAuditTrail", .verifyAuditTrail, patient, doctor) { v, _, p in _ = try await v.store.verifyAuditTrail(for: v.alice, as: p) },
        row("whoCouldRead", .queryAccessHistory, patient, doctor) { v, d, p in _ = try await v.store.whoCouldRead(d, at: v.clock.now(), for: v.alice, as: p) },
        row("whatCouldRead", .queryAccessHistory, patient, Fixtures.employerPrincipal) { v, _, p in _ = try await v.store.whatCouldRead(doctor, at: v.clock.now(), for: v.alice, as: p) },
    ]

    static let names = operations.map(\.0)

    static let parent = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))
    static let dpo = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    /// What an operation needs in place before its allowed call (its own
    /// entries are not counted).
    static let setups: [String: Op] = [
        "revoke": { v, _ in try await v.store.authorise(stranger, for: v.alice, as: v.patient) },
        "unblock": { v, _ in try await v.store.block(stranger, for: v.alice, as: v.patient) },
        "removeFromCareTeam": { v, _ in try await v.store.addToCareTeam(Fixtures.pharmacist, for: v.alice, as: v.patient) },
        "removeRepresentative": { v, _ in try await v.store.nameRepresentative(parent, for: v.alice, as: v.patient) },
        "reopenVault": { v, _ in try await v.store.closeVault(for: v.alice, reason: .patientRequest, as: v.patient) },
        "authoriseHeir": { v, _ in
            try await v.store.setMedecinTraitant(doctor, for: v.alice, as: v.patient)
            try await v.store.closeVault(for: v.alice, reason: .death, as: doctor)
        },
    ]

    /// The public operations of `VaultStore` and `VaultAccess` that do not
    /// act on one vault as a caller, each with the test that covers it.
    static let coveredElsewhere: [String: String] = [
        "open": "StoreTests", "close": "StoreTests", "vault": "aScopedVaultManagesWhoMayRead",
        "notifications": "NonDisclosureTests", "makeAsyncIterator": "DocumentTests (content streams)",
        "createVault": "createVaultIsTheFirstEntryInTheSameCommit, aCreationAttemptOnAnExistingVaultIsInItsTrail",
        "processScheduledEvents": "hiddenDocumentBecomesVisibleAfterAMonthAndTheEventsAreRecorded",
        "activity": "AuditQueryTests (recorded in the reviewer's stream)", "statistics": "StatisticsTests",
        // Host operations on the whole log, like open and close: no vault,
        // no principal, nothing of a patient read.
        "checkpoint": "CheckpointTests", "verify": "CheckpointTests", "consistencyProof": "CheckpointTests",
        "compactionBacklog": "CompactionTests (counts only)",
        // Their allowed call leaves no vault to hold the denied one's entry.
        "destroyVault": "LifecycleTests", "destroyExpiredVaults": "LifecycleTests",
        "destroyedVaults": "LifecycleTests (recorded in the reviewer's stream, like activity)",
        "rotateCheckpointSigningKey": "SigningKeyTests (store-level: recorded in the reviewer's stream)",
        "rotateMasterKey": "KeyRotationTests (store-level: recorded in the reviewer's stream)",
        "compact": "CompactionTests (store-level: recorded in the reviewer's stream)",
        "scrub": "ScrubTests (store-level: recorded in the reviewer's stream)",
        // Needs an export and an empty vault: one entry each, allowed or
        // refused, checked there.
        "importVault": "VaultExportTests.anImportKeepsHistoryAuthorshipAndProofs", "importedHistory": "VaultExportTests.anImportKeepsHistoryAuthorshipAndProofs",
        // Host operations on the whole store, like checkpoint: no vault, no
        // principal (the copy's own checks are BackupTests').
        "backup": "BackupTests", "restore": "BackupTests",
    ]

    /// The table is driven by the public API: every public operation of
    /// `VaultStore` and `VaultAccess` (read from their sources) is in it,
    /// or named with the test that covers it. A new operation that nobody
    /// lists fails here.
    @Test func everyPublicOperationIsInTheTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        var files: [URL] = []
        for folder in ["Sources/PatientVault/Store", "Sources/PatientVault/Audit"] {
            let url = root.appendingPathComponent(folder)
            files += try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
                .filter { $0.lastPathComponent.hasPrefix("VaultStore") || $0.lastPathComponent == "VaultAccess.swift" }
        }
        var operations = Set<String>()
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: /public (?:static )?func (\w+)/) { operations.insert(String(match.1)) }
        }
        #expect(operations.count >= 30)
        // `VaultAccess.info()` is `VaultStore.vaultInfo`.
        let tabled = Set(Self.names).union(["info"])
        for operation in operations.sorted() {
            #expect(tabled.contains(operation) || Self.coveredElsewhere[operation] != nil, "\(operation) is in no audit-completeness case")
        }
    }

    @Test(arguments: names)
    func everyOperationLeavesExactlyOneEntryAllowedOrDenied(_ name: String) async throws {
        let (_, action, allowed, denied) = Self.operations.first { $0.0 == name }!
        let v = try await AuditedVault()
        // Only a hidden document can be released; the others use a plain one.
        let flags: ConfidentialityFlags = name == "releaseToPatient" ? [.hiddenFromPatient] : []
        let doc = try await v.store.deposit(Fixtures.draft(flags: flags), content: Data([9]), for: v.alice, as: Self.doctor).id
        try await Self.setups[name]?(v, doc)
        var before = try await v.count()
        try await allowed(v, doc)
        var entries = try await v.entries()
        #expect(try await v.count() == before + 1, "\(name) allowed")
        #expect(entries.last?.action == action && entries.last?.outcome == .allowed, "\(name) allowed")

        before = try await v.count()
        let error = await code { try await denied(v, doc) }
        #expect(error == .accessDenied || error == .unknownDocument, "\(name) denied: \(String(describing: error))")
        entries = try await v.entries()
        #expect(try await v.count() == before + 1, "\(name) denied")
        #expect(entries.last?.action == action && entries.last?.outcome == .denied, "\(name) denied")
        // The chain stays whole.
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).entries == Int(try await v.count()))
        try await v.store.close()
    }

    @Test func createVaultIsTheFirstEntryInTheSameCommit() async throws {
        let v = try await AuditedVault()
        let first = try await v.entries()
        #expect(first.count == 1)
        #expect(first[0].action == .createVault && first[0].outcome == .allowed && first[0].sequence == 0)
        #expect(first[0].actor == v.patient && first[0].purpose == .personalAccess)
        // A denied creation has no vault to hold its entry: nothing is written.
        let bob = Fixtures.bob
        #expect(await code { try await v.store.createVault(for: bob, as: .patient(v.alice), channel: .patientOnline) } == .accessDenied)
        #expect(await code { _ = try await v.store.vaultInfo(for: bob, as: .patient(bob)) } == .unknownVault)
        try await v.store.close()
    }

    @Test func badInputLeavesExactlyOneEntryAndWritesNothingElse() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([9]), for: v.alice, as: Self.doctor).id
        try await v.store.authorise(Self.stranger, until: v.clock.now().addingTimeInterval(3600), for: v.alice, as: v.patient)
        let before = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.auditNext, $0.policy) }
        let now = v.clock.now()
        let bad: [(String, Op)] = [
            ("expiry in the past", { v, _ in try await v.store.authorise(Fixtures.pharmacist, until: now.addingTimeInterval(-1), for: v.alice, as: v.patient) }),
            ("expiry now", { v, _ in try await v.store.authorise(Fixtures.pharmacist, until: now, for: v.alice, as: v.patient) }),
            ("authorise an insurer", { v, _ in try await v.store.authorise(Fixtures.insurer, for: v.alice, as: v.patient) }),
            ("authorise a patient", { v, _ in try await v.store.authorise(.patient(Fixtures.bob), for: v.alice, as: v.patient) }),
            ("authorise a reviewer", { v, _ in try await v.store.authorise(.auditReviewer(try SystemPrincipal("x")), for: v.alice, as: v.patient) }),
            ("revoke what was never granted", { v, _ in try await v.store.revoke(Self.doctor, for: v.alice, as: v.patient) }),
            ("revoke a patient", { v, _ in try await v.store.revoke(.patient(Fixtures.bob), for: v.alice, as: v.patient) }),
            ("block an organisation", { v, _ in try await v.store.block(Fixtures.hospital, for: v.alice, as: v.patient) }),
            ("a care team of an insurer", { v, _ in try await v.store.addToCareTeam(Fixtures.insurer, for: v.alice, as: v.patient) }),
            ("a patient named as representative", { v, _ in try await v.store.nameRepresentative(.patient(Fixtures.bob), for: v.alice, as: v.patient) }),
            ("unblock someone not blocked", { v, _ in try await v.store.unblock(Self.doctor, for: v.alice, as: v.patient) }),
            ("patient as own representative", { v, _ in try await v.store.nameRepresentative(.representative(LegalRepresentative(ins: v.alice, relationship: .guardian)), for: v.alice, as: v.patient) }),
            ("break-glass by a patient", { v, d in _ = try await v.store.content(of: d, for: v.alice, as: v.patient, purpose: .breakGlass(reason: try BreakGlassReason("unconscious"))) }),
            ("secret access by a doctor", { v, d in _ = try await v.store.content(of: d, for: v.alice, as: Self.doctor, secret: true) }),
            ("a médecin traitant who is not a doctor", { v, _ in try await v.store.setMedecinTraitant(Fixtures.pharmacist, for: v.alice, as: v.patient) }),
            ("depositing as the system", { v, _ in _ = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: .system) }),
            ("acting as the system", { v, _ in _ = try await v.store.documents(for: v.alice, as: .system) }),
            ("bad audit page", { v, _ in _ = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: 0), as: v.patient) }),
            ("empty title", { v, _ in _ = try await v.store.deposit(Fixtures.draft(" "), content: Data([1]), for: v.alice, as: Self.doctor) }),
        ]
        for (name, op) in bad {
            let entriesBefore = try await v.store.withVault(v.alice) { $0.auditNext }
            #expect(await code { try await op(v, doc) } == .invalidArgument, "\(name)")
            // Exactly one entry: the refusal, with the rule that says why.
            let entries = try await v.entries()
            #expect(UInt64(entries.count) == entriesBefore + 1, "\(name)")
            #expect(entries.last?.outcome == .denied && entries.last?.rule == .invalidRequest, "\(name)")
        }
        let mid = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.auditNext, $0.policy) }
        #expect(mid.0 == before.0 && mid.2 == before.2)
        // Reasons are bounded where they are created: an invisible one cannot exist.
        for reason in ["", "  ", "\u{0}\u{0}\u{0}\u{0}", "\u{2060}\u{2060}\u{2060}\u{2060}", "\u{FEFF}abcd", "ab", String(repeating: "x", count: 1025),
                       // Blank-looking: Hangul fillers, blank Braille, lone combining marks, symbols only.
                       String(repeating: "\u{3164}", count: 4), String(repeating: "\u{2800}", count: 4),
                       String(repeating: "\u{0301}", count: 8), "\u{115F}\u{1160}\u{FFA0}\u{3164}", "😷😷😷😷", "!!!!-....", "a\u{3164}b\u{2800}c"] {
            #expect(throws: PatientVaultError.self, "\(reason.unicodeScalars.map(\.value))") { try BreakGlassReason(reason) }
        }
        #expect((try? BreakGlassReason("coma")) != nil)
        #expect((try? BreakGlassReason("état 4")) != nil)
        #expect((try? BreakGlassReason("意識不明")) != nil)
        // The médecin traitant cannot be blocked: a typed error, nothing written but its entry.
        try await v.store.setMedecinTraitant(Self.doctor, for: v.alice, as: v.patient)
        let afterMT = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.auditNext) }
        #expect(await code { try await v.store.block(Self.doctor, for: v.alice, as: v.patient) } == .invalidArgument)
        let after = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.auditNext, $0.policy) }
        #expect(afterMT.0 == mid.0 + 1 && afterMT.1 == mid.1 + 1)
        #expect(after.0 == afterMT.0 && after.1 == afterMT.1 + 1)
        #expect(after.2.blocked.isEmpty && after.2.grants.count == 1)
        // A grant by someone who is not the patient: denied, audited, no change.
        #expect(await code { try await v.store.authorise(Fixtures.pharmacist, for: v.alice, as: Self.doctor) } == .accessDenied)
        let denied = try await v.store.withVault(v.alice) { ($0.nextSequence, $0.auditNext, $0.policy) }
        #expect(denied.0 == after.0 && denied.1 == after.1 + 1 && denied.2 == after.2)
        try await v.store.close()
    }

    @Test func unknownPrincipalKindsOnDiskAreRefused() throws {
        // A principal tag the format does not define.
        var w = ByteWriter(capacity: 8)
        w.write(UInt8(42))
        w.write(string: "x")
        #expect(throws: (any Error).self) {
            try w.bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                _ = try r.readPrincipal()
            }
        }
    }
}

extension Fixtures {
    static let employerPrincipal = Principal.employer(try! SystemPrincipal("acme"))
}
