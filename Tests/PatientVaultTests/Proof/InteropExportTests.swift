import Foundation
import PatientVault
import PatientVaultProof
import PatientVaultTesting
import Testing

/// A store's checkpoints, receipts and consistency proofs, checked here
/// with `CheckpointVerifier`, and written (with `PV_INTEROP_OUT` set) as the
/// input of the Go checker of `Tests/Interop/` (Go's `note.Open`,
/// `tlog.CheckRecord`, `tlog.CheckTree`), which `Scripts/interop.sh` runs
/// in CI: a proof Go rejects fails CI.
@Suite struct InteropExportTests {
    struct Input: Encodable {
        struct Inclusion: Encodable { var checkpoint: Int, index: UInt64, leafData: String, proof: [String] }
        struct Consistency: Encodable { var old: Int, new: Int, proof: [String] }
        var verifierKey: String
        var checkpoints: [String] = []
        var inclusion: [Inclusion] = []
        var consistency: [Consistency] = []
        var proofTexts: [String] = []
        var leafDataForProofTexts: [String] = []
    }

    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    @Test func aStoresProofsAsGoChecksThem() async throws {
        var configuration = Fixtures.configuration()
        configuration.checkpointOrigin = "dmp.example.fr/patientvault-interop"
        let t = try await TestStore(configuration: configuration, storage: .folder)
        let store = t.store
        let verifier = try CheckpointVerifier(logKey: store.checkpointVerifierKey, origin: store.checkpointOrigin)
        var input = Input(verifierKey: store.checkpointVerifierKey.description)
        var checkpoints: [SignedCheckpoint] = []
        var documents: [(INS, DocumentID)] = []
        let patients = Fixtures.patients(3, from: 850_000_001, step: 7)
        for round in 0..<6 {
            for p in 0..<3 {
                let patient = patients[p]
                if round == 0 { try await store.createVault(for: patient, as: .patient(patient), channel: .patientOnline) }
                for i in 0..<(round + 1) {
                    let d = try await store.deposit(
                        Fixtures.draft("R\(round) \(i)"), content: Fixtures.content("R\(round)P\(p)I\(i)", size: 100 + 997 * i),
                        for: patient, as: Fixtures.doctor)
                    documents.append((patient, d.id))
                }
            }
            checkpoints.append(try await store.checkpoint())
        }
        input.checkpoints = checkpoints.map(\.text)
        for (i, c) in checkpoints.enumerated() {
            try verifier.verify(c)
            for j in (i + 1)..<checkpoints.count where j < checkpoints.count {
                let proof = try await store.consistencyProof(from: c, to: checkpoints[j])
                try verifier.verifyConsistency(from: c, to: checkpoints[j], proof: proof)
                input.consistency.append(.init(old: i, new: j, proof: proof.hashes.map(Self.b64)))
            }
        }
        for (k, (patient, id)) in documents.enumerated() where k % 4 == 0 {
            let receipt = try await store.receipt(for: id, for: patient, as: .patient(patient))
            try verifier.verifyInclusion(receipt.proof, leafData: receipt.leafData)
            input.proofTexts.append(receipt.proof.text)
            input.leafDataForProofTexts.append(Self.b64(receipt.leafData))
            // The same proof against the checkpoint it names.
            input.checkpoints.append(receipt.proof.checkpoint.text)
            input.inclusion.append(.init(
                checkpoint: input.checkpoints.count - 1, index: receipt.proof.index, leafData: Self.b64(receipt.leafData),
                proof: receipt.proof.hashes.map(Self.b64)))
        }
        #expect(input.proofTexts.count >= 10 && input.consistency.count == 15)
        if let out = ProcessInfo.processInfo.environment["PV_INTEROP_OUT"] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(input).write(to: URL(fileURLWithPath: out))
        }
        try await t.close()
    }
}
