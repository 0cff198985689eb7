import Foundation
import PatientVault
import PatientVaultTesting
import Testing

/// The memory engine as a downstream test uses it (`MemoryEngine`,
/// `withTemporaryStore(storage: .memory)`): public API only.
@Suite struct MemoryEngineTests {
    let alice = INS.example(1)
    let doctor = Principal.professional(HealthProfessional(rpps: .example(1), profession: .doctor))
    let draft = DocumentDraft(typeCode: .consultationNote, category: .report, title: "Note", createdAt: Date(), mimeType: "text/plain")

    /// No folder: its location is a `memory:` URL naming nothing on disk.
    /// (Listing the temporary directory before and after would race with
    /// the folder stores of the tests running beside this one.)
    @Test func aStoreInMemoryHasNoFolderAndReopensWithItsRecords() async throws {
        try await withTemporaryStoreFolder(storage: .memory) { temporary in
            #expect(temporary.store.location.scheme == "memory")
            #expect(!FileManager.default.fileExists(atPath: temporary.store.location.path))
            #expect(temporary.memory != nil)
            try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            let doc = try await temporary.store.deposit(draft, content: Data("note".utf8), for: alice, as: doctor)
            let store = try await temporary.reopen()
            #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == Data("note".utf8))
            #expect(store.vaultCount == 1)
            let verification = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
            #expect(verification.entries == 4, "creation, deposit, read, and this verification: \(verification.entries)")
        }
    }

    @Test func oneStoreAtATimeAndTheRightKeyOnly() async throws {
        let memory = MemoryEngine()
        let key = try MasterKey.generate()
        let store = try await VaultStore.openInMemory(memory, key: key)
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        await #expect { _ = try await VaultStore.openInMemory(memory, key: key) } throws: {
            ($0 as? PatientVaultError)?.code == .storeLocked
        }
        try await store.close()
        // Another key finds none of the store's keys: refused at open.
        await #expect { _ = try await VaultStore.openInMemory(memory, key: try MasterKey.generate()) } throws: {
            ($0 as? PatientVaultError)?.code == .wrongMasterKey
        }
        // The right key still opens it, the refused open left nothing behind.
        let again = try await VaultStore.openInMemory(memory, key: key)
        #expect(try await again.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0)
        try await again.close()
    }

    /// With a capacity, a full memory refuses writes with `diskFull` and
    /// changes nothing, while reads still leave their entries (the reserve).
    @Test func aFullMemoryRefusesWritesAndKeepsReadsAudited() async throws {
        let memory = MemoryEngine(capacity: 200_000)
        let store = try await VaultStore.openInMemory(memory, key: try MasterKey.generate())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await store.deposit(draft, content: Data("kept".utf8), for: alice, as: doctor)
        var refused: PatientVaultError?
        for _ in 0..<40 where refused == nil {
            do {
                _ = try await store.deposit(draft, content: Data(repeating: 7, count: 16_000), for: alice, as: doctor)
            } catch {
                refused = error
            }
        }
        #expect(refused?.code == .diskFull)
        let records = memory.recordCount
        #expect(try await store.content(of: doc.id, for: alice, as: doctor) == Data("kept".utf8))
        #expect(memory.recordCount > records, "the read's audit entry went into the reserve")
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await store.close()
    }
}
