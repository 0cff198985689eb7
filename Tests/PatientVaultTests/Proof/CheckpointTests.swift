import Foundation
import Synchronization
import PatientVault
import PatientVaultProof
import PatientVaultTesting
import Testing

/// Signed checkpoints, receipts and consistency proofs of a store, checked
/// with `CheckpointVerifier` alone (what an auditor links); a log rolled
/// back refused against a checkpoint the host kept; bad input refused with
/// typed errors.
@Suite struct CheckpointTests {
    let alice = Fixtures.alice

    func deposit(_ store: VaultStore, _ n: Int) async throws -> [DocumentMetadata] {
        var out: [DocumentMetadata] = []
        for i in 0..<n {
            out.append(try await store.deposit(Fixtures.draft("Note \(i)"), content: Fixtures.content("N\(i)"), for: alice, as: Fixtures.doctor))
        }
        return out
    }

    @Test(arguments: [TemporaryStorage.folder, .memory])
    func checkpointsAreSignedAndEachExtendsTheLast(storage: TemporaryStorage) async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let first = try await t.store.checkpoint()
        _ = try await deposit(t.store, 3)
        let second = try await t.store.checkpoint()
        // The published key, as text, is all an auditor needs.
        let key = try NoteVerifierKey(t.store.checkpointVerifierKey.description)
        #expect(key == t.store.checkpointVerifierKey)
        let verifier = try CheckpointVerifier(logKey: key, origin: t.store.checkpointOrigin)
        let a = try verifier.verify(try SignedCheckpoint(first.text))
        let b = try verifier.verify(second)
        #expect(a.size > 0 && b.size > a.size)
        #expect(second.text.hasPrefix(t.store.checkpointOrigin + "\n\(b.size)\n"))
        let proof = try await t.store.consistencyProof(from: first, to: second)
        try verifier.verifyConsistency(from: first, to: second, proof: proof)
        // Swapped, the proof is refused.
        #expect(throws: ProofError.self) { try verifier.verifyConsistency(from: second, to: first, proof: proof) }
        try await t.store.verify(against: first)
        try await t.store.verify(against: second)
        // The key is the store's: the same after a reopen.
        let store = try await t.reopen()
        #expect(store.checkpointVerifierKey == key)
        try await store.verify(against: second)
        try await t.close()
    }

    @Test(arguments: [TemporaryStorage.folder, .memory])
    func aReceiptProvesAVersionWithoutTheStore(storage: TemporaryStorage) async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let docs = try await deposit(t.store, 5)
        let receipt = try await t.store.receipt(for: docs[2].id, for: alice, as: .patient(alice))
        // Kept as text, checked later with the published key alone.
        let kept = try InclusionProof(receipt.proof.text)
        #expect(kept == receipt.proof)
        let verifier = try CheckpointVerifier(logKey: t.store.checkpointVerifierKey)
        try verifier.verifyInclusion(kept, leafData: receipt.leafData)
        // Another document's leaf, or a flipped byte, is refused.
        let other = try await t.store.receipt(for: docs[3].id, for: alice, as: .patient(alice))
        #expect(throws: ProofError(.notIncluded, "the proof does not lead from the leaf to the checkpoint's root")) {
            try verifier.verifyInclusion(kept, leafData: other.leafData)
        }
        var flipped = receipt.leafData
        flipped[70] ^= 1
        #expect(throws: ProofError.self) { try verifier.verifyInclusion(kept, leafData: flipped) }
        // The leaf data names no patient and no content: it holds no byte
        // of the document.
        #expect(receipt.leafData.count == 80)
        // A principal who may not see the document gets no receipt (and
        // leaves a refused entry).
        let stranger = Principal.professional(HealthProfessional(rpps: .example(9), profession: .doctor))
        #expect(await code { _ = try await t.store.receipt(for: docs[2].id, for: alice, as: stranger) } == .accessDenied)
        try await t.close()
    }

    /// A receipt for an audit entry: for the holder (and reviewers) only,
    /// one entry for the call, checked without the store.
    @Test(arguments: [TemporaryStorage.folder, .memory])
    func aReceiptProvesAnAuditEntry(storage: TemporaryStorage) async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await deposit(t.store, 2)
        let before = try await t.store.verifyAuditTrail(for: alice, as: .patient(alice)).entries
        let receipt = try await t.store.receipt(forAuditEntry: 1, for: alice, as: .patient(alice))
        let after = try await t.store.verifyAuditTrail(for: alice, as: .patient(alice)).entries
        #expect(after == before + 2, "the receipt's entry and the second verification's")
        let verifier = try CheckpointVerifier(logKey: t.store.checkpointVerifierKey)
        try verifier.verifyInclusion(try InclusionProof(receipt.proof.text), leafData: receipt.leafData)
        let first = try await t.store.receipt(forAuditEntry: 0, for: alice, as: .patient(alice))
        #expect(first.leafData != receipt.leafData && first.proof.index < receipt.proof.index)
        #expect(await code { _ = try await t.store.receipt(forAuditEntry: 1, for: alice, as: Fixtures.doctor) } == .accessDenied)
        #expect(await code { _ = try await t.store.receipt(forAuditEntry: 10_000, for: alice, as: .patient(alice)) } == .invalidArgument)
        try await t.close()
    }

    /// The host keeps a checkpoint; the folder is later replaced by an
    /// older copy (a restore, an attacker): every checksum and MAC is
    /// right, but the log does not extend what the host kept.
    @Test func aFolderRolledBackIsRefusedAgainstTheKeptCheckpoint() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await deposit(t.store, 2)
        try await t.store.close()
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("pv-rollback-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: copy) }
        try FileManager.default.copyItem(at: t.folder, to: copy)
        let store = try await t.reopen()
        _ = try await deposit(store, 2)
        let kept = try await store.checkpoint()
        try await store.close()
        // The old copy opens, but not against the kept checkpoint.
        let old = try await VaultStore.open(at: copy, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(await code { try await old.verify(against: kept) } == .checkpointNotExtended)
        try await old.close()
        var trusting = Fixtures.configuration()
        trusting.trustedCheckpoint = kept
        #expect(await code { _ = try await VaultStore.open(at: copy, key: .key(t.key), configuration: trusting) } == .checkpointNotExtended)
        // The current folder opens against it.
        let current = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: trusting)
        try await current.close()
        // A checkpoint of another store is not this store's to verify.
        let other = try await TestStore(configuration: Fixtures.configuration(), storage: .memory)
        let foreign = try await other.store.checkpoint()
        let again = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(await code { try await again.verify(against: foreign) } == .invalidArgument)
        try await again.close()
        try await other.close()
    }

    /// The store makes checkpoints by itself for the host's publisher: on
    /// its cadence while it runs, and one at close; each verifies, and each
    /// extends the one before.
    @Test func theStorePublishesCheckpointsOnItsCadenceAndAtClose() async throws {
        let published = Mutex<[SignedCheckpoint]>([])
        var configuration = Fixtures.configuration()
        configuration.checkpointPublisher = { checkpoint in published.withLock { $0.append(checkpoint) } }
        configuration.checkpointCadence = CheckpointCadence(records: 10)
        let t = try await TestStore(configuration: configuration, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await deposit(t.store, 6)
        let deadline = ContinuousClock.now + .seconds(30)
        while published.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!published.withLock { $0.isEmpty }, "a checkpoint on the cadence")
        let key = t.store.checkpointVerifierKey
        try await t.store.close()
        let all = published.withLock { $0 }
        #expect(all.count >= 2, "and one at close")
        let verifier = try CheckpointVerifier(logKey: key)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        for (older, newer) in zip(all, all.dropFirst()) {
            #expect(older.treeHead.size <= newer.treeHead.size)
            if older.treeHead.size >= 1 {
                try verifier.verifyConsistency(from: older, to: newer, proof: try await store.consistencyProof(from: older, to: newer))
            }
        }
        for checkpoint in all { try await store.verify(against: checkpoint) }
        try await store.close()
    }

    @Test func badInputIsATypedErrorNeverATrap() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .memory)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let good = try await t.store.checkpoint()
        let verifier = try CheckpointVerifier(logKey: t.store.checkpointVerifierKey)
        var lines = good.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func variant(_ edit: (inout [String]) -> Void) -> String {
            var l = lines
            edit(&l)
            return l.joined(separator: "\n")
        }
        let malformed = [
            "", "\n\n", good.text.replacingOccurrences(of: "\n\n", with: "\n"), String(good.text.dropLast()),
            variant { $0[1] = "0" + $0[1] }, variant { $0[1] = "-1" }, variant { $0[2] = String($0[2].dropLast(4)) },
            variant { $0[0] = "" }, good.text + "\n", good.text.replacingOccurrences(of: "\u{2014}", with: "-"),
            String(repeating: "a\n", count: 600_000) + "\n— k AAAAAAA=\n",
        ]
        for text in malformed {
            #expect(throws: ProofError.self) { _ = try SignedCheckpoint(text) }
        }
        // Another size, same signature: the signature fails.
        let forged = try SignedCheckpoint(variant { $0[1] = String(UInt64($0[1])! + 1) })
        #expect(throws: ProofError(.badSignature, "the checkpoint is not signed by the log's key")) { _ = try verifier.verify(forged) }
        lines = good.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Another origin.
        let strict = try CheckpointVerifier(logKey: t.store.checkpointVerifierKey, origin: "example.org/other")
        #expect(throws: ProofError(.wrongOrigin, "the checkpoint is of another log")) { _ = try strict.verify(good) }
        // A tree size beyond the log.
        let store = t.store
        let beyond = try await t.store.checkpoint()
        _ = beyond
        #expect(throws: ProofError.self) { _ = try InclusionProof(index: good.treeHead.size, hashes: [], checkpoint: good) }
        // A proof of the wrong length.
        let docs = try await deposit(store, 3)
        let receipt = try await store.receipt(for: docs[0].id, for: alice, as: .patient(alice))
        let short = try InclusionProof(index: receipt.proof.index, hashes: Array(receipt.proof.hashes.dropLast()), checkpoint: receipt.proof.checkpoint)
        #expect(throws: ProofError.self) { try verifier.verifyInclusion(short, leafData: receipt.leafData) }
        for text in ["", "c2sp.org/tlog-proof@v1\nindex 01\n\n" + good.text, "c2sp.org/tlog-proof@v2\nindex 0\n\n" + good.text,
                     "c2sp.org/tlog-proof@v1\nindex 0\nnot base64\n\n" + good.text] {
            #expect(throws: ProofError.self) { _ = try InclusionProof(text) }
        }
        for key in ["", "a+b+c", "name+00000000+AQ==", t.store.checkpointVerifierKey.description + "x", "na me+12345678+" + String(repeating: "A", count: 44)] {
            #expect(throws: ProofError.self) { _ = try NoteVerifierKey(key) }
        }
        var configuration = Fixtures.configuration()
        configuration.checkpointOrigin = "has space"
        #expect(await code { _ = try await TestStore(configuration: configuration, storage: .memory) } == .invalidArgument)
        try await t.close()
    }
}
