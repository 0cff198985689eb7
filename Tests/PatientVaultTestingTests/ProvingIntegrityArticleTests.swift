import Foundation
import PatientVault
import PatientVaultProof
import PatientVaultTesting
import Testing

// The worked example of the "Proving integrity to an auditor" article, verbatim.
func provingIntegrity(at folder: URL, key: MasterKey, patient: INS, author: Principal) async throws -> Bool {
    // 1. The host publishes the verifier key once, and checkpoints as it goes.
    var store = try await VaultStore.open(at: folder, key: .key(key))
    try await store.createVault(for: patient, as: .patient(patient), channel: .patientOnline)
    let publishedKey = store.checkpointVerifierKey.description
    try await store.close()
    let backup = folder.deletingLastPathComponent().appendingPathComponent(UUID().uuidString)
    try FileManager.default.copyItem(at: folder, to: backup)  // an older copy of the folder

    store = try await VaultStore.open(at: folder, key: .key(key))
    let note = DocumentDraft(typeCode: .consultationNote, category: .report, title: "Note", createdAt: Date(), mimeType: "text/plain")
    let document = try await store.deposit(note, content: Data("…".utf8), for: patient, as: author)
    let published = try await store.checkpoint()   // kept where the store cannot reach
    let receipt = try await store.receipt(for: document.id, for: patient, as: .patient(patient))
    try await store.close()

    // 2. The folder is replaced by the older copy: it opens, its checksums
    //    and MACs are right, but it does not extend what was published.
    try FileManager.default.removeItem(at: folder)
    try FileManager.default.moveItem(at: backup, to: folder)
    var trusting = Configuration()
    trusting.trustedCheckpoint = published
    var refused = false
    do {
        try await VaultStore.open(at: folder, key: .key(key), configuration: trusting).close()
    } catch {
        refused = error.code == .checkpointNotExtended   // "the log holds … records; the trusted checkpoint covers …"
    }

    // 3. The patient's receipt still checks, with the published key alone.
    let verifier = try CheckpointVerifier(logKey: NoteVerifierKey(publishedKey))
    try verifier.verifyInclusion(InclusionProof(receipt.proof.text), leafData: receipt.leafData)
    return refused
}

// The overview of the PatientVaultProof catalog, verbatim.
func check(publishedKey: String, checkpointText: String, receiptText: String, leafData: [UInt8]) throws -> TreeHead {
    let verifier = try CheckpointVerifier(logKey: NoteVerifierKey(publishedKey))
    let head = try verifier.verify(SignedCheckpoint(checkpointText))
    try verifier.verifyInclusion(InclusionProof(receiptText), leafData: leafData)
    return head
}

/// The article's example runs: the rolled-back folder is refused at open,
/// and the receipt checks with the published key alone.
@Test func theProvingIntegrityArticlesExample() async throws {
    let parent = FileManager.default.temporaryDirectory.appendingPathComponent("pv-article-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: parent) }
    let doctor = Principal.professional(HealthProfessional(rpps: .example(1), profession: .doctor))
    let refused = try await provingIntegrity(
        at: parent.appendingPathComponent("store"), key: try MasterKey.generate(), patient: .example(1), author: doctor)
    #expect(refused)
}

/// The PatientVaultProof overview's function, on a store's own output.
@Test func theProofProductsOverview() async throws {
    try await withTemporaryStore(storage: .memory) { store in
        let alice = INS.example(2)
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let draft = DocumentDraft(typeCode: .consultationNote, category: .report, title: "Note", createdAt: Date(), mimeType: "text/plain")
        let document = try await store.deposit(draft, content: Data("x".utf8), for: alice, as: .patient(alice))
        let receipt = try await store.receipt(for: document.id, for: alice, as: .patient(alice))
        let head = try check(
            publishedKey: store.checkpointVerifierKey.description, checkpointText: receipt.proof.checkpoint.text,
            receiptText: receipt.proof.text, leafData: receipt.leafData)
        #expect(head.size == receipt.proof.checkpoint.treeHead.size)
    }
}
