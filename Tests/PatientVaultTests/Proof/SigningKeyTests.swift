import Foundation
import PatientVaultProof
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// The checkpoint signing key: random, made with the store, wrapped in a
/// key slot under the master key, never derived from it.
@Suite struct SigningKeyTests {
    /// Two stores under one master key sign with different keys: the
    /// signing key is not a function of the master key (so rotating one
    /// need not change the other), and it is the same after a reopen.
    @Test func theSigningKeyIsRandomAndKeptAcrossReopens() async throws {
        let key = try MasterKey.generate()
        let a = FileManager.default.temporaryDirectory.appending(path: "pv-signing-a-\(UUID().uuidString)")
        let b = FileManager.default.temporaryDirectory.appending(path: "pv-signing-b-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        let first = try await VaultStore.open(at: a, key: .key(key), configuration: Fixtures.configuration())
        let second = try await VaultStore.open(at: b, key: .key(key), configuration: Fixtures.configuration())
        let published = first.checkpointVerifierKey
        #expect(published.publicKey != second.checkpointVerifierKey.publicKey)
        #expect(first.checkpointOrigin != second.checkpointOrigin, "the default origin follows the key")
        let checkpoint = try await first.checkpoint()
        try await first.close()
        try await second.close()
        let again = try await VaultStore.open(at: a, key: .key(key), configuration: Fixtures.configuration())
        #expect(again.checkpointVerifierKey == published)
        try await again.verify(against: checkpoint)
        try await again.close()
    }

    /// The wrapped seed sits in the store's first key slot; a slot
    /// destroyed, or overwritten with another slot's wrapped key, leaves a
    /// store that cannot sign: `corrupted` at open, never a new key.
    @Test(arguments: ["destroyed", "swapped"])
    func aSigningKeySlotThatDoesNotOpenIsCorruption(damage: String) async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        try await t.close()
        let engine = try t.rawEngine()
        let signingSlot = KeySlot(LogFormat.firstKeySlot)
        if damage == "destroyed" {
            try await engine.keySlots.destroyKeySlot(signingSlot)
        } else {
            // The vault's wrapped key, a valid box under another key and
            // context, written where the signing seed was.
            let vaultKey = try await engine.keySlots.readKeySlot(KeySlot(LogFormat.firstKeySlot + 1))
            _ = try await engine.append([], keySlotWrites: [(signingSlot, vaultKey)], durability: .durable).wait()
        }
        try await engine.close()
        let failure = await error { _ = try await t.reopen() }
        #expect(failure?.code == .corrupted)
        #expect(failure?.message.contains("signing key") == true)
    }

    /// A rotation: a new key signs from now on, the old public key is kept
    /// so that checkpoints it signed still verify (here, with the Go-format
    /// verifier key of their time, and across a consistency proof that
    /// spans the rotation); the old seed's slot is destroyed; only a
    /// configured reviewer may rotate, and the call is recorded.
    @Test(arguments: suiteEngines)
    func aRotatedKeySignsFromNowOnAndTheOldCheckpointsStillVerify(storage: SuiteStorage) async throws {
        var c = Fixtures.configuration()
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let t = try await TestStore(configuration: c, engine: storage)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        let origin = t.store.checkpointOrigin
        let oldKey = t.store.checkpointVerifierKey
        let before = try await t.store.checkpoint()
        #expect(await code { try await t.store.rotateCheckpointSigningKey(as: .patient(Fixtures.alice)) } == .accessDenied)
        let newKey = try await t.store.rotateCheckpointSigningKey(as: dpo)
        #expect(newKey != oldKey && newKey == t.store.checkpointVerifierKey)
        #expect(t.store.checkpointVerifierKeys == [oldKey, newKey])
        #expect(t.store.checkpointOrigin == origin, "the origin outlives the key")
        _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: Fixtures.alice, as: Fixtures.doctor)
        let after = try await t.store.checkpoint()
        _ = try CheckpointVerifier(logKey: oldKey, origin: origin).verify(before)
        _ = try CheckpointVerifier(logKey: newKey, origin: origin).verify(after)
        #expect(throws: ProofError.self) { _ = try CheckpointVerifier(logKey: oldKey, origin: origin).verify(after) }
        let proof = try await t.store.consistencyProof(from: before, to: after)
        #expect(proof.oldSize == before.treeHead.size && proof.newSize == after.treeHead.size)
        try await t.store.verify(against: before)
        let again = try await t.reopen()
        #expect(again.checkpointVerifierKeys == [oldKey, newKey])
        try await again.verify(against: before)
        try await again.verify(against: after)
        try await t.close()
        if storage == .folder {
            let engine = try t.rawEngine()
            await #expect { _ = try await engine.keySlots.readKeySlot(KeySlot(LogFormat.firstKeySlot)) } throws: {
                ($0 as? StorageError)?.code == .keySlotDestroyed
            }
            try await engine.close()
        }
    }
}
