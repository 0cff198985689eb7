import Foundation
import PatientVaultFHIR
import Testing
@testable import PatientVault
@testable import VaultStorage
@testable import VaultCrypto

/// Regression tests of the security findings (issue 8): each test names
/// the attack it replays and fails on the code before its fix.
@Suite struct SecurityFindingsTests {
    static let hostileIntegers: [Int] = [Int.min, -1, 0, Int(UInt32.max) + 1, Int.max]

    // MARK: - 1. Integers from callers never trap

    @Test func outOfRangeVersionsAreTypedErrorsWithTheirEntryInThisProcess() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1, 2, 3]), for: v.alice, as: Fixtures.doctor).id
        let employer = Fixtures.employerPrincipal
        for version in Self.hostileIntegers {
            for principal in [v.patient, employer] {
                let before = try await v.count()
                #expect(await code { _ = try await v.store.metadata(of: doc, version: version, for: v.alice, as: principal) } == .invalidArgument)
                #expect(await code { _ = try await v.store.content(of: doc, version: version, for: v.alice, as: principal) } == .invalidArgument)
                #expect(await code { _ = try await v.store.contentStream(of: doc, version: version, for: v.alice, as: principal) } == .invalidArgument)
                let entries = try await v.entries()
                #expect(try await v.count() == before + 3, "version \(version)")
                #expect(entries.suffix(3).allSatisfy { $0.outcome == .denied && $0.rule == .invalidRequest && $0.version == nil })
                #expect(entries.suffix(3).allSatisfy { $0.document == doc })
            }
        }
        // The trail still reads back and verifies.
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).entries > 30)
        try await v.store.close()
    }

    @Test func auditPagesWithHostileIntegersAreRefusedAndRecorded() async throws {
        let v = try await AuditedVault()
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let subject = GrantHolder.professional(Fixtures.doctor.healthProfessional!.rpps)
        for n in Self.hostileIntegers {
            let before = try await v.count()
            let offsetResult = await code { _ = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(offset: n), as: v.patient) }
            #expect(offsetResult == (n >= 0 ? nil : .invalidArgument), "offset \(n)")
            #expect(await code { _ = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(limit: n), as: v.patient) } == .invalidArgument)
            #expect(try await v.count() == before + 2)
            #expect(await code { _ = try await v.store.activity(of: subject, matching: AuditQuery(limit: n), as: dpo) } == .invalidArgument)
        }
        // Each refused review was recorded in the reviewer's stream (read back raw).
        let stream = v.store.keys.reviewerStream(of: try SystemPrincipal("dpo"))
        var recorded = 0
        try await v.store.loader.walkBack(stream, broken: PatientVaultError(.corrupted, "")) { r in
            let plain = try RecordCodec.openStoreRecord(
                r, kind: .activityEntry, key: v.store.keys.activity, stream: stream, broken: PatientVaultError(.corrupted, ""))
            for copy in try ActivityBatch.decode(plain).copies where try AuditEntry.decode(copy.entry).rule == .invalidRequest {
                recorded += 1
            }
            return true
        }
        #expect(recorded == Self.hostileIntegers.count)
        try await v.store.close()
    }

    @Test func configurationIntegersAreBoundedWithTheFieldNamed() async throws {
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let cases: [(String, (inout Configuration) -> Void)] = [
            ("contentChunkSize", { $0.contentChunkSize = Int.min }),
            ("contentChunkSize", { $0.contentChunkSize = Int.max }),
            ("inlineContentLimit", { $0.inlineContentLimit = -1 }),
            ("inlineContentLimit", { $0.inlineContentLimit = Int.max }),
            ("loadedVaultLimit", { $0.loadedVaultLimit = Int.min }),
            ("loadedVaultLimit", { $0.loadedVaultLimit = 0 }),
            ("loadedVaultLimit", { $0.loadedVaultLimit = Int.max }),
            ("documentKeyCacheLimit", { $0.documentKeyCacheLimit = -1 }),
            ("documentKeyCacheLimit", { $0.documentKeyCacheLimit = 65_537 }),
            ("segmentSize", { $0.segmentSize = 0 }),
            ("segmentSize", { $0.segmentSize = UInt64.max }),
            // Not a multiple of 4 KiB: a full segment's length would be
            // one recovery takes for a file cut short.
            ("segmentSize", { $0.segmentSize = (64 << 20) + 512 }),
            ("auditMode", { $0.auditMode = .batched(maxDelay: .seconds(-1)) }),
            // Positive but below a millisecond: the background loops that
            // sleep for them would spin.
            ("auditMode", { $0.auditMode = .batched(maxDelay: .nanoseconds(1)) }),
            ("auditMode", { $0.auditMode = .batched(maxDelay: .microseconds(999)) }),
            ("checkpointCadence.interval", { $0.checkpointCadence = CheckpointCadence(interval: .nanoseconds(1)) }),
            ("checkpointCadence.interval", { $0.checkpointCadence = CheckpointCadence(interval: .zero) }),
            // Below the law's 10 years: read at each destruction pass, it
            // would shorten the retention of every vault already closed
            // (one open with 1 year, and they are all shredded).
            ("closedVaultRetentionYears", { $0.closedVaultRetentionYears = 9 }),
            ("closedVaultRetentionYears", { $0.closedVaultRetentionYears = 101 }),
        ]
        for (field, change) in cases {
            var c = Fixtures.configuration()
            change(&c)
            let e = await error { _ = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c) }
            #expect(e?.code == .invalidArgument)
            #expect(e?.message.contains(field) == true, "\(String(describing: e))")
        }
        // Nothing was created by a refused configuration.
        #expect(!FileManager.default.fileExists(atPath: folder.url.path))
        // The floors themselves are accepted.
        var floor = Fixtures.configuration()
        floor.auditMode = .batched(maxDelay: .milliseconds(1))
        floor.checkpointCadence = CheckpointCadence(interval: .milliseconds(1))
        try floor.validate()
    }

    @Test func identifierParsersNeverTrapOnAnyText() throws {
        for text in ["😷😷😷a", "ééééééa", "2A😷😷😷", String(repeating: "\u{0}", count: 13), "", "1234567890123"] {
            _ = INS.key(forNIR: text)
            #expect(throws: PatientVaultError.self) { try INS(text + "00") }
        }
        #expect(INS.key(forNIR: "😷😷😷a") == nil)
        #expect(throws: PatientVaultError.self) { try DocumentID(String(repeating: "é", count: 16)) }
        #expect(throws: PatientVaultError.self) { try RPPSNumber("١٢٣٤٥٦٧٨٩٠١") }
        #expect(throws: PatientVaultError.self) { try FINESSNumber("😷😷") }
    }

    @Test func hostileDatesAreRefusedAsArguments() async throws {
        let v = try await AuditedVault()
        for seconds in [Double.nan, .infinity, -.infinity, 1e300, -1e12] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(await code { try await v.store.authorise(Fixtures.pharmacist, until: date, for: v.alice, as: v.patient) } == .invalidArgument)
        }
        #expect(try await v.store.withVault(v.alice) { $0.policy.grants.isEmpty })
        try await v.store.close()
    }

    // MARK: - 2. What a caller builds can be written and read back

    @Test func callerStringsAreBoundedWhereCreated() throws {
        let rpps = try RPPSNumber("10101234567")
        #expect(throws: PatientVaultError.self) {
            try HealthProfessional(rpps: rpps, profession: .doctor, speciality: String(repeating: "x", count: (1 << 20) + 100))
        }
        #expect(throws: PatientVaultError.self) { try HealthProfessional(rpps: rpps, profession: .doctor, speciality: "") }
        #expect(throws: PatientVaultError.self) { try HealthProfessional(rpps: rpps, profession: .doctor, speciality: "psy\u{0}") }
        #expect(throws: PatientVaultError.self) {
            try HealthProfessional(rpps: rpps, profession: .doctor, speciality: String(repeating: "é", count: 33))
        }
        #expect((try? HealthProfessional(rpps: rpps, profession: .doctor, speciality: String(repeating: "é", count: 32))) != nil)
        #expect(throws: PatientVaultError.self) {
            try AccessMatrix(version: String(repeating: "v", count: 129), professions: [:], organisations: [])
        }
        #expect(throws: PatientVaultError.self) { try SystemPrincipal(String(repeating: "a", count: 65)) }
    }

    @Test func aDeniedReadByTheLargestAcceptedPrincipalKeepsTheVaultReadable() async throws {
        // The attack: a refused professional with an oversized speciality
        // made an entry the decoder refused, and the vault answered
        // `corrupted` for ever. The largest principal the API accepts now
        // decodes back, through a restart.
        var c = Fixtures.configuration()
        c.accessMatrix = try AccessMatrix(
            version: String(repeating: "m", count: 64), professions: AccessMatrix.default2023.professions,
            organisations: AccessMatrix.default2023.organisations)
        let v = try await AuditedVault(configuration: c)
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor).id
        let big = Principal.professional(try HealthProfessional(
            rpps: try RPPSNumber("10109999999"), profession: .doctor, speciality: String(repeating: "é", count: 32)))
        #expect(await code { _ = try await v.store.content(of: doc, for: v.alice, as: big) } == .accessDenied)
        #expect(await code {
            _ = try await v.store.content(
                of: doc, for: v.alice, as: big, purpose: .breakGlass(reason: try BreakGlassReason("coma" + String(repeating: "😷", count: 255))))
        } == nil)
        let store = try await v.t.reopen(configuration: c)
        let trail = try await store.auditTrail(for: v.alice, as: v.patient)
        #expect(trail.contains { $0.actor == big && $0.outcome == .denied })
        #expect(trail.contains { $0.actor == big && $0.isBreakGlass })
        _ = try await store.verifyAuditTrail(for: v.alice, as: v.patient)
        #expect(try await store.documents(for: v.alice, as: v.patient).count == 1)
        try await store.close()
    }

    // MARK: - 4. Every refusal writes exactly one entry

    @Test func everyRefusalWhateverItsInputWritesExactlyOneEntry() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor).id
        let stranger = Fixtures.otherDoctor
        let refusals: [(String, () async throws -> Void)] = [
            ("denied read", { _ = try await v.store.content(of: doc, for: v.alice, as: Fixtures.employerPrincipal) }),
            ("denied read, bad version", { _ = try await v.store.metadata(of: doc, version: -5, for: v.alice, as: Fixtures.employerPrincipal) }),
            ("unknown document", { _ = try await v.store.metadata(of: try DocumentID.random(), for: v.alice, as: stranger) }),
            ("secret by a stranger", { _ = try await v.store.documents(for: v.alice, as: stranger, secret: true) }),
            ("system", { _ = try await v.store.vaultInfo(for: v.alice, as: .system) }),
            ("bad draft by a stranger", { _ = try await v.store.deposit(Fixtures.draft(""), content: Data(), for: v.alice, as: stranger) }),
            ("bad grant by a stranger", { try await v.store.authorise(.patient(Fixtures.bob), for: v.alice, as: stranger) }),
            ("bad page by a stranger", { _ = try await v.store.auditTrail(for: v.alice, matching: AuditQuery(offset: -1), as: stranger) }),
            ("replace unknown", { _ = try await v.store.replace(try DocumentID.random(), with: Fixtures.draft(), content: Data([1]), for: v.alice, as: stranger) }),
        ]
        for (name, call) in refusals {
            let before = try await v.count()
            let e = await error { try await call() }
            #expect(e != nil, "\(name)")
            #expect(try await v.count() == before + 1, "\(name)")
            #expect(try await v.entries().last?.outcome == .denied, "\(name)")
            // 8. A refusal names no vault.
            #expect(e?.vaultID == nil, "\(name)")
        }
        try await v.store.close()
    }

    // MARK: - 5. The one-month rule cannot be dodged by replacing

    @Test func replacingAHiddenDocumentDoesNotRestartItsMonth() async throws {
        let v = try await AuditedVault()
        let hidden = Fixtures.draft("Résultat", flags: [.hiddenFromPatient])
        let doc = try await v.store.deposit(hidden, content: Data([1]), for: v.alice, as: Fixtures.doctor).id
        // Replaced every 13 days: the notice still comes at 14 days, the
        // release at 30, both counted from the first hidden deposit.
        var notices = 0
        for day in stride(from: 13, through: 39, by: 13) {
            v.clock.advance(by: 13 * 86_400)
            _ = try await v.store.replace(doc, with: hidden, content: Data([UInt8(day)]), for: v.alice, as: Fixtures.doctor)
            v.clock.advance(by: 86_400)
            notices += try await v.store.processScheduledEvents(for: v.alice)
            let visible = try await v.store.documents(for: v.alice, as: v.patient).contains { $0.id == doc }
            #expect(visible == (day + 1 >= 30), "day \(day + 1)")
        }
        #expect(notices == 2)  // the 2-week notice and the automatic release
        let actions = try await v.entries().map(\.action)
        #expect(actions.contains(.hiddenDocumentNotice) && actions.contains(.automaticRelease))
        try await v.store.close()
    }

    @Test func aNewHiddenPeriodStartsItsOwnMonth() async throws {
        // v1 hidden, v2 visible, v3 hidden again: v3's month starts at v3.
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft("R", flags: [.hiddenFromPatient]), content: Data([1]), for: v.alice, as: Fixtures.doctor).id
        v.clock.advance(by: 40 * 86_400)
        _ = try await v.store.replace(doc, with: Fixtures.draft("R"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        v.clock.advance(by: 86_400)
        _ = try await v.store.replace(doc, with: Fixtures.draft("R", flags: [.hiddenFromPatient]), content: Data([3]), for: v.alice, as: Fixtures.doctor)
        #expect(try await v.store.documents(for: v.alice, as: v.patient).isEmpty)
        v.clock.advance(by: 31 * 86_400)
        #expect(try await v.store.documents(for: v.alice, as: v.patient).map(\.id) == [doc])
        try await v.store.close()
    }

    @Test func aPatientsSecretAccessStaysSecretWhenTheCallIsRefused() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.doctor).id
        #expect(await code { _ = try await v.store.metadata(of: doc, version: 0, for: v.alice, as: v.patient, secret: true) } == .invalidArgument)
        #expect(try await v.entries().last?.isSecretAccess == true)
        try await v.store.close()
    }

    // MARK: - 6. No atomic group links a vault to a professional

    /// The stream classes of every atomic group in the store's segments,
    /// read from the clear frame headers as a copy of the files shows them.
    static func groupsOfStreamClasses(_ folder: URL) throws -> [Set<UInt8>] {
        var groups: [Set<UInt8>] = []
        var current = Set<UInt8>()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("segment-") }.sorted()
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            let salt = try LogFormat.decodeSegmentHeader(bytes)!.salt
            var offset = LogFormat.segmentHeaderSize
            while offset + LogFormat.frameHeaderSize <= bytes.count {
                guard let h = bytes[offset..<(offset + LogFormat.frameHeaderSize)].withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: salt) })
                else { break }
                if let stream = h.stream { current.insert(stream.bytes[0]) } else { current.insert(0) }
                if !h.groupContinues { groups.append(current); current = [] }
                offset += LogFormat.frameLength(payloadCount: Int(h.payloadLength))
            }
        }
        return groups
    }

    @Test func noGroupHoldsAVaultRecordAndAnActivityCopy() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let doctors = [Fixtures.doctor, Fixtures.otherDoctor, Fixtures.pharmacist]
        let patients = [Fixtures.alice, Fixtures.bob, Fixtures.ins("1850275000003"), Fixtures.ins("2920175000004")]
        for p in patients { try await t.store.createVault(for: p, as: .patient(p), channel: .patientOnline) }
        for round in 0..<8 {
            for (i, p) in patients.enumerated() {
                let by = doctors[(i + round) % doctors.count]
                let d = try await t.store.deposit(Fixtures.draft(category: .prescription), content: Data([UInt8(round)]), for: p, as: by)
                _ = try await t.store.metadata(of: d.id, for: p, as: by)
            }
        }
        try await t.store.close()
        let groups = try Self.groupsOfStreamClasses(t.folder)
        let vault: UInt8 = 1, audit: UInt8 = 2, activity: UInt8 = 3
        #expect(groups.contains { $0.contains(activity) })
        #expect(!groups.contains { $0.contains(activity) && ($0.contains(vault) || $0.contains(audit)) })
        // And the reviewer's index is complete after a reopen.
        var c = Fixtures.configuration()
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: c)
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        var total = 0
        for d in doctors { total += try await store.activity(of: GrantHolder(d)!, matching: AuditQuery(limit: 1000), as: dpo).count }
        #expect(total == 64)
        try await store.close()
    }

    @Test func copiesLostInACrashAreRebuiltAtOpen() async throws {
        let live = TestFolder()
        let folder = TestFolder()
        let key = try MasterKey.generate()
        var c = Fixtures.configuration()
        c.auditReviewers = [try SystemPrincipal("dpo")]
        // The files as a crash leaves them: every deposit acknowledged
        // (durable with its audit entry), the copies still pending in memory.
        let running = try await VaultStore.open(at: live.url, key: .key(key), configuration: c)
        try await running.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        for i in 0..<5 { _ = try await running.deposit(Fixtures.draft(), content: Data([UInt8(i)]), for: Fixtures.alice, as: Fixtures.doctor) }
        #expect(running.auditWriter.activity.pendingCount == 5)
        try FileManager.default.copyItem(at: live.url, to: folder.url)
        try await running.close()
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let seen = try await store.activity(of: GrantHolder(Fixtures.doctor)!, as: dpo)
        #expect(seen.map(\.action) == Array(repeating: .deposit, count: 5))
        try await store.close()
        // Rebuilt once: a second open finds nothing to rebuild.
        let again = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        #expect(try await again.activity(of: GrantHolder(Fixtures.doctor)!, as: dpo).count == 5)
        try await again.close()
    }

    // MARK: - 7. Representatives see no gaps

    @Test func representativesGetNoPositionsAndCannotCountTheChain() async throws {
        let v = try await AuditedVault()
        let parent = LegalRepresentative(ins: Fixtures.bob, relationship: .parent)
        try await v.store.nameRepresentative(.representative(parent), for: v.alice, as: v.patient)
        _ = try await v.store.documents(for: v.alice, as: v.patient, secret: true)
        _ = try await v.store.documents(for: v.alice, as: v.patient)
        let view = try await v.store.auditTrail(for: v.alice, as: .representative(parent))
        #expect(!view.isEmpty)
        #expect(view.allSatisfy { $0.sequence == 0 && $0.previousHash.isEmpty && !$0.isSecretAccess })
        let e = await error { _ = try await v.store.verifyAuditTrail(for: v.alice, as: .representative(parent)) }
        #expect(e?.code == .accessDenied && e?.rule == .notAuthorised)
        // The patient still verifies the whole chain, secret access included.
        #expect(try await v.store.verifyAuditTrail(for: v.alice, as: v.patient).entries == Int(try await v.count()))
        try await v.store.close()
    }

    // MARK: - 8. No stream id in what the API shows

    @Test func errorsAndResultsNeverCarryTheOnDiskStreamID() async throws {
        let v = try await AuditedVault()
        let streamHex = hexEncoded(v.store.keys.vaultPseudonym(for: v.alice).bytes)
        let info = try await v.store.vaultInfo(for: v.alice, as: v.patient)
        #expect(info.vaultID.count == 32 && !streamHex.contains(info.vaultID))
        let denied = await error { _ = try await v.store.documents(for: v.alice, as: Fixtures.employerPrincipal) }
        #expect(denied?.code == .accessDenied && denied?.vaultID == nil)
        let unknown = await error { _ = try await v.store.documents(for: Fixtures.bob, as: Fixtures.employerPrincipal) }
        #expect(unknown?.code == .unknownVault && unknown?.vaultID == nil)
        let trail = try await v.store.auditTrail(for: v.alice, as: v.patient)
        #expect(trail.allSatisfy { $0.vaultID == info.vaultID })
        #expect(!"\(String(describing: denied))".contains(streamHex.prefix(16)))
        try await v.store.close()
    }

    // MARK: - 9. The insurer publishes reimbursement data only

    @Test func theInsurerCannotReplaceItsDocumentWithAClinicalOne() async throws {
        let v = try await AuditedVault()
        let insurer = Fixtures.insurer
        let doc = try await v.store.deposit(Fixtures.draft("Remboursements", category: .reimbursement), content: Data([1]), for: v.alice, as: insurer)
        let e = await error {
            _ = try await v.store.replace(doc.id, with: Fixtures.draft("Compte rendu", category: .report), content: Data([2]), for: v.alice, as: insurer)
        }
        #expect(e?.code == .accessDenied && e?.rule == .insurerDepositsReimbursementOnly)
        // Its own reimbursement history it may still correct.
        let v2 = try await v.store.replace(doc.id, with: Fixtures.draft("Remboursements", category: .reimbursement), content: Data([3]), for: v.alice, as: insurer)
        #expect(v2.version == 2)
        try await v.store.close()
    }

    // MARK: - 10. A representative's designations do not open what is hidden from them

    @Test func aRepresentativesGrantDoesNotOpenDocumentsHiddenFromRepresentatives() async throws {
        let v = try await AuditedVault()
        let parent = LegalRepresentative(ins: Fixtures.bob, relationship: .parent)
        try await v.store.nameRepresentative(.representative(parent), for: v.alice, as: v.patient)
        let gyn = Principal.professional(try HealthProfessional(rpps: try RPPSNumber("10105555555"), profession: .doctor, speciality: "gynecologie"))
        let secret = try await v.store.deposit(
            Fixtures.draft("Consultation", flags: [.hiddenFromLegalRepresentatives]), content: Data([1]), for: v.alice, as: gyn)
        let open = try await v.store.deposit(Fixtures.draft("Vaccin"), content: Data([2]), for: v.alice, as: Fixtures.doctor)
        // The parent authorises a doctor of their choice, and adds another to the care team.
        let friend = Fixtures.otherDoctor
        try await v.store.authorise(friend, for: v.alice, as: .representative(parent))
        try await v.store.addToCareTeam(Fixtures.pharmacist, for: v.alice, as: .representative(parent))
        #expect(await code { _ = try await v.store.content(of: secret.id, for: v.alice, as: friend) } == .unknownDocument)
        #expect(try await v.store.content(of: open.id, for: v.alice, as: friend) == Data([2]))
        // The same grant by the patient opens it.
        try await v.store.authorise(friend, for: v.alice, as: v.patient)
        #expect(try await v.store.content(of: secret.id, for: v.alice, as: friend) == Data([1]))
        // The representative's trail shows nothing about the hidden document, nor its author.
        let view = try await v.store.auditTrail(for: v.alice, as: .representative(parent))
        #expect(!view.contains { $0.document == secret.id || $0.actor == gyn })
        try await v.store.close()
    }

    // MARK: - 12. A block applies to replacements

    @Test func aBlockedAuthorCannotReplaceTheirDocument() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.otherDoctor).id
        try await v.store.block(Fixtures.otherDoctor, for: v.alice, as: v.patient)
        let e = await error { _ = try await v.store.replace(doc, with: Fixtures.draft(), content: Data([2]), for: v.alice, as: Fixtures.otherDoctor) }
        #expect(e?.code == .accessDenied && e?.rule == .blockedByPatient)
        #expect(try await v.store.versions(of: doc, for: v.alice, as: v.patient).count == 1)
        try await v.store.close()
    }

    // MARK: - 13. The matrix judges the profession the grant recorded

    @Test func aGrantedNurseClaimingToBeADoctorIsJudgedAsANurse() async throws {
        let v = try await AuditedVault()
        let rpps = try RPPSNumber("10107777777")
        let nurse = Principal.professional(HealthProfessional(rpps: rpps, profession: .nurse))
        let claimsDoctor = Principal.professional(HealthProfessional(rpps: rpps, profession: .doctor))
        let imaging = try await v.store.deposit(Fixtures.draft(category: .medicalImaging), content: Data([1]), for: v.alice, as: Fixtures.doctor)
        try await v.store.authorise(nurse, for: v.alice, as: v.patient)
        // Nurses do not read imaging in the default matrix, whatever they claim.
        #expect(await code { _ = try await v.store.content(of: imaging.id, for: v.alice, as: nurse) } == .unknownDocument)
        #expect(await code { _ = try await v.store.content(of: imaging.id, for: v.alice, as: claimsDoctor) } == .unknownDocument)
        #expect(try await v.entries().last?.rule == .professionMatrix)
        try await v.store.close()
    }

    // MARK: - 14. Authorship does not open the vault's information

    @Test func oneDepositDoesNotOpenTheVaultsCreationDetails() async throws {
        let v = try await AuditedVault()
        _ = try await v.store.deposit(Fixtures.draft(), content: Data([1]), for: v.alice, as: Fixtures.otherDoctor)
        let e = await error { _ = try await v.store.vaultInfo(for: v.alice, as: Fixtures.otherDoctor) }
        #expect(e?.code == .accessDenied && e?.rule == .notAuthorised)
        // The author still lists what they wrote.
        #expect(try await v.store.documents(for: v.alice, as: Fixtures.otherDoctor).count == 1)
        try await v.store.close()
    }

    // MARK: - 15. Record sizes tell less

    @Test func breakGlassEntriesAndNearbyContentSizesLookTheSameOnDisk() async throws {
        let v = try await AuditedVault()
        let small = try await v.store.deposit(Fixtures.draft("A"), content: Fixtures.content("S", size: 1100), for: v.alice, as: Fixtures.doctor)
        let larger = try await v.store.deposit(Fixtures.draft("B"), content: Fixtures.content("L", size: 1900), for: v.alice, as: Fixtures.doctor)
        let emergency = Fixtures.otherDoctor
        _ = try await v.store.metadata(of: small.id, for: v.alice, as: Fixtures.doctor)
        _ = try await v.store.metadata(of: small.id, for: v.alice, as: emergency, purpose: .breakGlass(reason: try BreakGlassReason("unconscious on arrival")))
        let vault = try await v.store.snapshot(of: v.alice)
        // The stored sizes, as any engine keeps them (a record's payload).
        let sizes = try await { () async throws -> (versions: [Int], entries: [Int]) in
            var versions: [Int] = []
            for id in [small.id, larger.id] {
                versions.append(try await v.store.engine.read(vault.entry(id, version: nil)!.reference!).payload.count)
            }
            var entries: [Int] = []
            try await v.store.loader.walkBack(v.store.keys.auditStream(of: vault.pseudonym), broken: PatientVaultError(.corrupted, "")) {
                entries.append($0.payload.count)
                return entries.count < 2
            }
            return (versions, entries)
        }()
        // 1,100 and 1,900 bytes of content: the same record size (2 KiB class).
        #expect(sizes.versions[0] == sizes.versions[1])
        // The break-glass read (reason hash, emergency purpose) and the
        // ordinary read: the same audit record size.
        #expect(sizes.entries[0] == sizes.entries[1])
        // Content still reads back exactly, padding stripped.
        #expect(try await v.store.content(of: larger.id, for: v.alice, as: v.patient) == Fixtures.content("L", size: 1900))
        try await v.store.close()
    }

    // MARK: - 18. Hygiene

    @Test func closeWipesTheMasterDerivedKeys() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let keys = t.store.keys
        #expect(!keys.log.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        try await t.store.close()
        for key in [keys.check, keys.keyEncryption, keys.pseudonym, keys.activity, keys.statistics, keys.publicID, keys.log] {
            #expect(key.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        }
    }

    @Test func theBreakGlassReasonHashHasAKeyOfItsOwn() async throws {
        let v = try await AuditedVault()
        let reason = "unconscious on arrival"
        _ = try await v.store.documents(for: v.alice, as: Fixtures.otherDoctor, purpose: .breakGlass(reason: try BreakGlassReason(reason)))
        let hash = try await v.entries().last!.reasonHash!
        let (own, chain) = try await v.store.withVault(v.alice) {
            (BLAKE2b.hash(Array(reason.utf8), key: $0.keys.reasonHash), BLAKE2b.hash(Array(reason.utf8), key: $0.keys.auditChain))
        }
        #expect(hash == own && hash != chain)
        try await v.store.close()
    }

    // MARK: - 16. One audited read, one pass

    @Test func contentStreamsAreSinglePass() async throws {
        let v = try await AuditedVault()
        let doc = try await v.store.deposit(Fixtures.draft(), content: Fixtures.content("X", size: 5000), for: v.alice, as: Fixtures.doctor).id
        let stream = try await v.store.contentStream(of: doc, for: v.alice, as: Fixtures.doctor)
        var first = Data()
        for try await chunk in stream { first.append(chunk) }
        #expect(first == Fixtures.content("X", size: 5000))
        // Blocked now: iterating the old value again must not read.
        try await v.store.block(Fixtures.doctor, for: v.alice, as: v.patient)
        var iterator = stream.makeAsyncIterator()
        let again = await code { _ = try await iterator.next() }
        #expect(again == .invalidArgument)
        try await v.store.close()
    }
    /// Values that hold patient data or secrets print without them, however
    /// a host prints them (interpolation, `debugPrint`, `dump`, reflection);
    /// a destroyed vault's error, thrown before any decision, carries no id.
    @Test func patientDataAndSecretsNeverPrint() async throws {
        let ins = Fixtures.alice
        var draft = Fixtures.draft("Compte rendu de Mme Dupont")
        draft.typeCode = DocumentTypeCode(system: "http://loinc.org", code: "11488-4")
        let reason = try ErasureReason("déposé dans le dossier de Mme Dupont par erreur")
        let glass = try BreakGlassReason("arrêt cardiaque de Mme Dupont aux urgences")
        let source = MasterKeySource.passphrase("correct horse battery staple")
        func printed(_ value: Any) -> String {
            var dumped = ""
            dump(value, to: &dumped)
            return "\(value) \(String(reflecting: value)) \(dumped) \(Mirror(reflecting: value).children.map { "\($0.value)" })"
        }
        for (value, secret) in [(ins, ins.digits), (draft, "Dupont"), (draft, "11488"), (reason, "Dupont"), (glass, "Dupont"),
                                (source, "horse")] as [(Any, String)] {
            #expect(!printed(value).contains(secret), "\(type(of: value))")
        }
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: .memory)
        try await t.store.createVault(for: ins, as: .patient(ins), channel: .patientOnline)
        let metadata = try await t.store.deposit(draft, content: Data("Mme Dupont".utf8), for: ins, as: Fixtures.doctor)
        #expect(!printed(metadata).contains("Dupont") && printed(metadata).contains(metadata.id.description))
        let content = try await t.store.contentStream(of: metadata.id, for: ins, as: .patient(ins))
        #expect(printed(content).hasPrefix("DocumentContent(redacted) DocumentContent(redacted)"), "neither its keys nor where it is")
        // An export's documents (short content shows in `Data`'s mirror),
        // the FHIR resources built from them, a closure's reason, a query's
        // filters, the store itself.
        let export = try await t.store.exportVault(for: ins, as: .patient(ins))
        #expect(!printed(export.documents).contains("Mme Dupont") && !printed(export.documents).contains("content"))
        let reference = try metadata.fhirDocumentReference(vaultID: export.vaultID)
        #expect(!printed(reference).contains("Dupont") && !printed(reference).contains("11488"))
        let bundle = try FHIR.Bundle(export: export)
        #expect(!printed(bundle).contains("Dupont") && !printed(bundle).contains("11488"))
        #expect(!printed(DocumentQuery(typeCode: draft.typeCode)).contains("11488"))
        try await t.store.closeVault(for: ins, reason: .patientRequest, as: .patient(ins))
        let info = try await t.store.vaultInfo(for: ins, as: .patient(ins))
        #expect(info.closure != nil)
        #expect(!printed(info).contains("patientRequest") && !printed(info.closure as Any).contains("patientRequest"))
        #expect(!printed(t.store).contains("StreamID"))
        try await t.close()
    }
}
