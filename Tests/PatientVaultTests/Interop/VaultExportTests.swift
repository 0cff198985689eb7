import Foundation
import PatientVaultProof
import PatientVaultTesting
import Testing
@testable import PatientVault

/// The patient's export (issue #20): one self-verifying file, checked
/// offline; sealed to a recipient when it is for someone else.
@Suite struct VaultExportTests {
    let alice = Fixtures.alice
    let doctor = Fixtures.doctor

    /// A vault with an inline document, a chunked one replaced once, a
    /// document hidden from the patient and an erased one.
    func store(_ storage: SuiteStorage) async throws -> (TestStore, [DocumentID: Data]) {
        // Deposit times below the millisecond: the file's JSON keeps
        // milliseconds, the records keep more; both must still agree.
        let clock = ManualClock(Date(timeIntervalSince1970: 1_700_000_000.123_456_7))
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let small = try await t.store.deposit(Fixtures.draft("Small"), content: Data("compte rendu".utf8), for: alice, as: doctor)
        let big = try await t.store.deposit(Fixtures.draft("Big"), content: Fixtures.content("BIG", size: 200_000), for: alice, as: doctor)
        _ = try await t.store.replace(big.id, with: Fixtures.draft("Big v2"), content: Fixtures.content("BIG2", size: 150_000), for: alice, as: doctor)
        _ = try await t.store.deposit(Fixtures.draft("Hidden", flags: .hiddenFromPatient), content: Data("not yet".utf8), for: alice, as: doctor)
        let gone = try await t.store.deposit(Fixtures.draft("Gone"), content: Data("gone".utf8), for: alice, as: .patient(alice))
        try await t.store.erase(gone.id, for: alice, as: .patient(alice))
        return (t, [small.id: Data("compte rendu".utf8), big.id: Fixtures.content("BIG2", size: 150_000)])
    }

    /// Exports in batched audit mode, while the vault is read (the reads'
    /// entries wait up to a second for their sync): each export's trail
    /// ends with its own entry, and none fails. Before, the export's own
    /// entry was appended buffered like a read's, so its proof was against
    /// a checkpoint that did not cover it (`conflict`, every time), and
    /// the trail ran to the newest entry, a read's after the export's.
    @Test func anExportInBatchedModeEndsWithItsOwnEntryWhileTheVaultIsRead() async throws {
        var c = Fixtures.configuration()
        c.auditMode = .batched(maxDelay: .seconds(1))
        let t = try await TestStore(configuration: c)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let d = try await t.store.deposit(Fixtures.draft("Big"), content: Fixtures.content("BIG", size: 300_000), for: alice, as: doctor)
        let store = t.store, patient = alice
        let reader = Task {
            for _ in 0..<300 { _ = try await store.metadata(of: d.id, for: patient, as: .patient(patient)) }
        }
        for _ in 0..<3 {
            let export = try await t.store.exportVault(for: alice, as: .patient(alice))
            #expect(export.auditTrail.last?.action == .exportVault)
        }
        try await reader.value
        try await t.close()
    }

    @Test(arguments: suiteEngines)
    func anExportHoldsWhatThePatientMayReadAndVerifiesOffline(storage: SuiteStorage) async throws {
        let (t, current) = try await store(storage)
        let export = try await t.store.exportVault(for: alice, as: .patient(alice))
        // Every version the patient may read: not the hidden one, not the erased one.
        #expect(export.documents.count == 3)
        for (id, content) in current {
            #expect(export.documents.last { $0.metadata.id == id }?.content == content)
        }
        #expect(export.documents.contains { $0.metadata.title == "Big" && $0.metadata.status == .superseded(by: 2) && $0.content == Fixtures.content("BIG", size: 200_000) })
        #expect(!export.documents.contains { $0.metadata.title == "Hidden" || $0.metadata.title == "Gone" })
        #expect(export.patient == alice && export.exportedBy == .patient(alice))
        // The trail, ending with the export's own entry.
        let trail = try await t.store.auditTrail(for: alice, as: .patient(alice))
        #expect(export.auditTrail.last?.action == .exportVault && export.auditTrail.count == trail.count - 1)
        // Checked offline, against the key the store publishes.
        let again = try VaultExport(verifying: export.bytes, trusting: t.store.checkpointVerifierKeys)
        #expect(again.documents == export.documents && again.auditTrail == export.auditTrail)
        // Checked by the tool the auditor has: the checkpoint with CheckpointVerifier.
        _ = try CheckpointVerifier(logKey: t.store.checkpointVerifierKey).verify(export.checkpoint)
        try await t.store.verify(against: export.checkpoint)
        // Another store's key: not trusted.
        let other = try await TestStore(configuration: Fixtures.configuration(), engine: .memory)
        #expect(await code { _ = try VaultExport(verifying: export.bytes, trusting: [other.store.checkpointVerifierKey]) } == .invalidArgument)
        try await other.close()
        try await t.close()
    }

    /// Any byte of the file changed, wherever: refused, never a different export.
    @Test func aFlippedByteAnywhereIsRefused() async throws {
        let (t, _) = try await store(.memory)
        let export = try await t.store.exportVault(for: alice, as: .patient(alice))
        let bytes = export.bytes
        var positions = Array(stride(from: 0, to: bytes.count, by: max(1, bytes.count / 400)))
        positions += [0, 30, 100, bytes.count - 1]
        for position in positions {
            var flipped = bytes
            flipped[position] ^= 0x01
            let outcome = await code { _ = try VaultExport(verifying: flipped, trusting: t.store.checkpointVerifierKeys) }
            #expect(outcome == .corrupted || outcome == .invalidArgument, "byte \(position): \(String(describing: outcome))")
        }
        try await t.close()
    }

    /// The signature covers the JSON; the first line that carries it is
    /// read only in the one form the writer makes: the same key and
    /// signature written another way (uppercase key ID, a padded or
    /// re-wrapped encoding) is a different file, refused.
    @Test func theFirstLineIsReadOnlyAsItIsWritten() async throws {
        let (t, _) = try await store(.memory)
        let export = try await t.store.exportVault(for: alice, as: .patient(alice))
        let bytes = export.bytes
        let newline = try #require(bytes.firstIndex(of: 0x0A))
        let first = String(decoding: bytes[..<newline], as: UTF8.self)
        let parts = first.split(separator: " ").map(String.init)
        #expect(parts.count == 3)
        let key = parts[1].split(separator: "+").map(String.init)
        let upper = [key[0], key[1].uppercased(), key[2]].joined(separator: "+")
        var lines = [
            [parts[0], parts[1], parts[2] + "\r"].joined(separator: " "),
            [parts[0], parts[1], " " + parts[2]].joined(separator: " "),
        ]
        // A key ID of digits alone (about 1 store in 40) has no other case.
        if upper != parts[1] { lines.append([parts[0], upper, parts[2]].joined(separator: " ")) }
        for line in lines {
            let changed = Data(line.utf8) + bytes[newline...]
            #expect(await code { _ = try VaultExport(verifying: changed, trusting: t.store.checkpointVerifierKeys) } == .invalidArgument)
        }
        // Not UTF-8 in the first line: refused, not replaced.
        let broken = Data(first.utf8) + Data([0xFF]) + bytes[newline...]
        #expect(await code { _ = try VaultExport(verifying: broken, trusting: t.store.checkpointVerifierKeys) } == .invalidArgument)
        #expect(try VaultExport(verifying: bytes, trusting: t.store.checkpointVerifierKeys).bytes == bytes)
        try await t.close()
    }

    /// Sealed to a recipient: only their key opens it; a byte changed in
    /// the box is refused.
    @Test func aSealedExportOpensOnlyForItsRecipient() async throws {
        let (t, current) = try await store(.memory)
        let export = try await t.store.exportVault(for: alice, as: .patient(alice))
        let recipient = try ExportRecipientKey.generate()
        let stored = try ExportRecipientKey(secretKey: recipient.secretKey)
        #expect(stored.publicKey == recipient.publicKey)
        let sealed = try export.sealed(to: try ExportRecipientPublicKey(recipient.publicKey.description))
        #expect(sealed.range(of: Data("compte rendu".utf8)) == nil, "nothing readable in the sealed file")
        let opened = try VaultExport(opening: sealed, with: stored, trusting: t.store.checkpointVerifierKeys)
        for (id, content) in current { #expect(opened.documents.last { $0.metadata.id == id }?.content == content) }
        #expect(await code { _ = try VaultExport(opening: sealed, with: try ExportRecipientKey.generate()) } == .invalidArgument)
        var flipped = sealed
        flipped[sealed.count / 2] ^= 0x80
        #expect(await code { _ = try VaultExport(opening: flipped, with: stored) } == .invalidArgument)
        #expect(await code { _ = try VaultExport(verifying: sealed) } == .invalidArgument, "a sealed file is not read as a plain one")
        try await t.close()
    }

    /// A document whose current version is hidden from the patient is left
    /// out of their export whole: its older, visible versions would tell
    /// that a newer one exists (listings and reads say it does not).
    @Test func anExportLeavesOutADocumentHiddenNowWithItsOlderVersions() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: .memory)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let seen = try await t.store.deposit(Fixtures.draft("Compte rendu"), content: Data([1]), for: alice, as: doctor)
        _ = try await t.store.replace(
            seen.id, with: Fixtures.draft("Résultat", flags: .hiddenFromPatient), content: Data([2]), for: alice, as: doctor)
        #expect(try await t.store.documents(for: alice, as: .patient(alice)).isEmpty)
        let export = try await t.store.exportVault(for: alice, as: .patient(alice))
        #expect(export.documents.isEmpty)
        try await t.close()
    }

    /// Only the patient exports; a refusal is audited, nothing else written.
    @Test func onlyThePatientExports() async throws {
        let (t, _) = try await store(.memory)
        let before = try await t.store.withVault(alice) { $0.auditNext }
        #expect(await code { _ = try await t.store.exportVault(for: alice, as: doctor) } == .accessDenied)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == before + 1)
        let entry = try await t.store.auditTrail(for: alice, as: .patient(alice)).dropFirst().first
        #expect(entry?.action == .exportVault && entry?.outcome == .denied)
        try await t.close()
    }

    /// Export from one store, import into another: every version back with
    /// its id, author, deposit time and content; the source's trail and
    /// checkpoint kept, so the export's proofs still check; one entry per
    /// call, allowed or refused.
    /// An importer pins its source store's key, but that store's build may
    /// bound values differently (or be hostile): an export, signed by its
    /// source, whose vault id this store's records cannot hold (100
    /// characters, where records keep 32) is refused as bad input, with
    /// its entry, and writes nothing; before, it was written and the
    /// vault no longer loaded.
    @Test(arguments: suiteEngines)
    func anExportWhoseValuesThisStoreCannotKeepIsRefused(storage: SuiteStorage) async throws {
        let (source, _) = try await store(.memory)
        let export = try await source.store.exportVault(for: alice, as: .patient(alice))
        let newline = try #require(export.bytes.firstIndex(of: 0x0A))
        let long = String(repeating: "7", count: 100)
        let json = Data(String(decoding: export.bytes[export.bytes.index(after: newline)...], as: UTF8.self)
            .replacingOccurrences(of: "\"vaultID\":\"\(export.vaultID)\"", with: "\"vaultID\":\"\(long)\"").utf8)
        let signature = try source.store.signingKeys.current.signature(for: Array((VaultExport.magic + "\n").utf8) + Array(json))
        var file = Data((VaultExport.magic + " " + source.store.checkpointVerifierKey.description + " "
            + Data(signature).base64EncodedString() + "\n").utf8)
        file.append(json)
        let sourceKeys = source.store.checkpointVerifierKeys
        let forged = try VaultExport(verifying: file, trusting: sourceKeys)
        #expect(forged.vaultID == long)
        try await source.close()
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let entries = try await t.store.withVault(alice) { $0.auditNext }
        let sequence = try await t.store.withVault(alice) { $0.nextSequence }
        let records = try await t.store.checkpoint().treeHead.size
        #expect(await code { try await t.store.importVault(forged, trusting: sourceKeys, as: .patient(alice)) } == .invalidArgument)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entries + 1)
        #expect(try await t.store.withVault(alice) { $0.nextSequence } == sequence, "no record of the vault written")
        // Refused before its content was written: the log holds the
        // entry's group and nothing of the 150 KB document's chunks.
        #expect(try await t.store.checkpoint().treeHead.size <= records + 2)
        let store = try await t.reopen()
        #expect(try await store.documents(for: alice, as: .patient(alice)).isEmpty)
        #expect(try await store.importedHistory(for: alice, as: .patient(alice)).isEmpty)
        let refusal = try #require(try await store.auditTrail(for: alice, as: .patient(alice)).first { $0.action == .importVault })
        #expect(refusal.outcome == .denied && refusal.rule == .invalidRequest)
        // The genuine export still imports.
        #expect(try await store.importVault(export, trusting: sourceKeys, as: .patient(alice)).count == export.documents.count)
    }

    /// A document hidden from the patient that was released to them
    /// before the export is in it, and stays readable by them once
    /// imported: the import releases it (the vault's policy history says
    /// so). Before, it was hidden again until a month after its deposit.
    @Test(arguments: suiteEngines)
    func aReleasedHiddenDocumentStaysVisibleAfterAnImport(storage: SuiteStorage) async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_700_000_000))
        let source = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: .memory)
        try await source.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let hidden = try await source.store.deposit(
            Fixtures.draft("Result", flags: .hiddenFromPatient), content: Data("annonce".utf8), for: alice, as: doctor)
        clock.advance(by: 3 * 86_400)
        try await source.store.releaseToPatient(hidden.id, for: alice, as: doctor)
        clock.advance(by: 7 * 86_400)
        let export = try await source.store.exportVault(for: alice, as: .patient(alice))
        #expect(export.documents.map(\.metadata.id) == [hidden.id])
        let sourceKeys = source.store.checkpointVerifierKeys
        try await source.close()
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice))
        for round in 0..<2 {
            let store = round == 0 ? t.store : try await t.reopen()
            #expect(try await store.content(of: hidden.id, for: alice, as: .patient(alice)) == Data("annonce".utf8), "round \(round)")
            #expect(try await store.documents(for: alice, as: .patient(alice)).map(\.id) == [hidden.id])
        }
        try await t.close()
    }

    /// An import is one atomic group: every version, its key slot, the
    /// history. One larger than this store's engine takes (here 250
    /// versions of 4,000 bytes stored inline, past a 1 MiB segment less its
    /// reserve) is refused in its decision, with nothing written; before,
    /// each version's key slot was reserved and its content prepared, and
    /// the commit failed (`tooLarge`), recorded as abandoned, every time.
    @Test func anImportLargerThanAGroupIsRefusedBeforeAnythingIsWritten() async throws {
        let source = try await TestStore(configuration: Fixtures.configuration(), engine: .memory)
        try await source.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for i in 0..<250 {
            _ = try await source.store.deposit(Fixtures.draft(), content: Fixtures.content("N\(i)", size: 4000), for: alice, as: doctor)
        }
        let export = try await source.store.exportVault(for: alice, as: .patient(alice))
        let sourceKeys = source.store.checkpointVerifierKeys
        try await source.close()
        var c = Fixtures.configuration()
        (c.contentChunkSize, c.inlineContentLimit, c.segmentSize) = (4096, 4096, 1 << 20)
        let t = try await TestStore(configuration: c, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let records = try await t.store.checkpoint().treeHead.size
        let refused = await error { try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice)) }
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.message.contains("atomic group") == true)
        // The refusal's entry alone.
        #expect(try await t.store.checkpoint().treeHead.size <= records + 2)
        let refusal = try #require(try await t.store.auditTrail(for: alice, as: .patient(alice)).first { $0.action == .importVault })
        #expect(refusal.outcome == .denied && refusal.rule == .invalidRequest)
        try await t.close()
    }

    /// An export whose trail, kept as the vault's imported history, is
    /// larger than one of this store's records is refused before any
    /// document's content is written; before, every chunk was written
    /// first and the commit refused it, leaving them in the log.
    @Test func anImportWhoseHistoryCannotFitARecordWritesNothing() async throws {
        let (source, ids) = try await store(.memory)
        let small = try #require(ids.first { $0.value.count < 100 }?.key)
        for _ in 0..<1_500 { _ = try await source.store.content(of: small, for: alice, as: .patient(alice)) }
        let export = try await source.store.exportVault(for: alice, as: .patient(alice))
        let sourceKeys = source.store.checkpointVerifierKeys
        try await source.close()
        var c = Fixtures.configuration()
        c.contentChunkSize = 4096
        c.inlineContentLimit = 1024
        let t = try await TestStore(configuration: c, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let entries = try await t.store.withVault(alice) { $0.auditNext }
        let records = try await t.store.checkpoint().treeHead.size
        #expect(await code { try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice)) } == .invalidArgument)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entries + 1)
        // The entry's group alone: none of the 150 KB document's chunks.
        #expect(try await t.store.checkpoint().treeHead.size <= records + 2)
        let refusal = try #require(try await t.store.auditTrail(for: alice, as: .patient(alice)).first { $0.action == .importVault })
        #expect(refusal.outcome == .denied && refusal.rule == .invalidRequest)
        try await t.close()
    }

    @Test(arguments: suiteEngines)
    func anImportKeepsHistoryAuthorshipAndProofs(storage: SuiteStorage) async throws {
        let (source, _) = try await store(.memory)
        let export = try await source.store.exportVault(for: alice, as: .patient(alice))
        let sourceKeys = source.store.checkpointVerifierKeys
        try await source.close()
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: storage)
        #expect(await code { try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice)) } == .unknownVault)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var entries = try await t.store.withVault(alice) { $0.auditNext }
        #expect(await code { try await t.store.importVault(export, trusting: sourceKeys, as: doctor) } == .accessDenied)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entries + 1)
        // Only from a store whose key the importer pins.
        entries = try await t.store.withVault(alice) { $0.auditNext }
        #expect(await code { try await t.store.importVault(export, trusting: [], as: .patient(alice)) } == .invalidArgument)
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entries + 1)
        let imported = try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice))
        #expect(imported.count == export.documents.count)
        entries = try await t.store.withVault(alice) { $0.auditNext }
        #expect(await code { try await t.store.importVault(export, trusting: sourceKeys, as: .patient(alice)) } == .invalidArgument, "the vault holds documents now")
        #expect(try await t.store.withVault(alice) { $0.auditNext } == entries + 1)
        for round in 0..<2 {
            let store = round == 0 ? t.store : try await t.reopen()
            for document in export.documents {
                let m = try await store.metadata(
                    of: document.metadata.id, version: document.metadata.version, includingDeprecated: true, for: alice, as: .patient(alice))
                #expect(m == document.metadata, "id, version, author, deposit time, status")
                let content = try await store.content(
                    of: document.metadata.id, version: document.metadata.version, includingDeprecated: true, for: alice, as: .patient(alice))
                #expect(content == document.content)
            }
            let histories = try await store.importedHistory(for: alice, as: .patient(alice))
            #expect(histories.count == 1)
            let history = try #require(histories.first)
            #expect(history.auditTrail == export.auditTrail && history.sourceVaultID == export.vaultID)
            #expect(sourceKeys.contains(history.verifierKey))
            _ = try CheckpointVerifier(logKey: history.verifierKey).verify(history.checkpoint)
            // The export file still checks against the key the import kept.
            _ = try VaultExport(verifying: export.bytes, trusting: [history.verifierKey])
            #expect(await code { _ = try await store.importedHistory(for: alice, as: doctor) } == .accessDenied)
            // A legal representative neither: the imported trails were
            // filtered for the patient, not for a representative's view.
            if round == 0 {
                let parent = LegalRepresentative(ins: Fixtures.bob, relationship: .parent)
                try await store.nameRepresentative(.representative(parent), for: alice, as: .patient(alice))
            }
            let representative = Principal.representative(LegalRepresentative(ins: Fixtures.bob, relationship: .parent))
            #expect(await code { _ = try await store.importedHistory(for: alice, as: representative) } == .accessDenied)
            _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        }
        // Authorship kept: the author replaces their imported document.
        let big = try #require(export.documents.last { $0.metadata.title == "Big v2" })
        _ = try await t.store.replace(big.metadata.id, with: Fixtures.draft("Big v3"), content: Data([3]), for: alice, as: doctor)
        try await t.close()
    }
}
