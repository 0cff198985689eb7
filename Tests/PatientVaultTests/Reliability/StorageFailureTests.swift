import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Durability modes and storage failures seen through the public API.
@Suite struct StorageFailureTests {
    let alice = Fixtures.alice

    func configuration(_ faults: FaultInjection, segmentSize: UInt64 = 1 << 20) -> Configuration {
        var c = Fixtures.injecting(faults, segmentSize: segmentSize)
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        return c
    }

    @Test func fullDiskIsATypedErrorThatChangesNothing() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("KEPT"), for: alice, as: Fixtures.doctor)
        faults.diskFull = true
        // 2 MiB cannot fit in the 1 MiB segment: a new one is needed and refused.
        let big = Fixtures.content("BIG", size: 2 << 20)
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor) } == .diskFull)
        #expect(try await t.store.documents(for: alice, as: .patient(alice)).map(\.id) == [kept.id])
        faults.diskFull = false
        let later = try await t.store.deposit(Fixtures.draft(), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor)
        let store = try await t.reopen(configuration: configuration(FaultInjection()))
        #expect(Set(try await store.documents(for: alice, as: .patient(alice)).map(\.id)) == [kept.id, later.id])
        #expect(try await store.content(of: later.id, for: alice, as: .patient(alice)) == big)
        try await store.close()
    }

    @Test func failedSyncStopsAcknowledgingWrites() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.syncFails = true
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
        faults.syncFails = false
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
        // Reads stop too: no content is returned without a durable audit entry.
        #expect(await code { _ = try await t.store.vaultInfo(for: alice, as: .patient(alice)) } == .durabilityLost)
        // close() reports the same code, and reopening recovers the vault.
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(FaultInjection()))
        #expect(try await store.vaultInfo(for: alice, as: .patient(alice)).channel == .patientOnline)
        try await store.close()
    }

    /// A failed sync met by a call, refused or allowed, gives its caller
    /// no vault id (the error-level log line keeps it for the operator):
    /// an employer, refused whatever the vault holds, learns nothing that
    /// names it from the entry its refusal waited for.
    @Test func aFailedSyncNamesNoVaultToItsCaller() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.syncFails = true
        let refused = await error { _ = try await t.store.vaultInfo(for: alice, as: .employer(try SystemPrincipal("acme"))) }
        #expect(refused?.code == .durabilityLost)
        #expect(refused != nil && refused?.vaultID == nil)
        faults.syncFails = false
        let allowed = await error { _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor) }
        #expect(allowed?.code == .durabilityLost)
        #expect(allowed != nil && allowed?.vaultID == nil && allowed?.segment == nil)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        // A second close learns the same: the store did not close cleanly.
        #expect(await code { try await t.store.close() } == .durabilityLost)
    }

    /// I/O faults at each site of the commit path: the failed call reports
    /// `durabilityLost` (so do later calls and `close()`), and after a
    /// reopen everything acknowledged is there and the failed deposit is
    /// whole or absent, with every chain verifying. The key file is not on
    /// the commit path (a deposit's key slot is in its group's manifest):
    /// a failed sync of it stops the store at the checkpoint of `close()`,
    /// and the deposit acknowledged before is kept.
    @Test(arguments: ["sync key file", "sync segment", "write EIO", "short write"])
    func anIOFaultStopsTheStoreAndReopeningKeepsWhatWasAcknowledged(fault: String) async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 5000), for: alice, as: Fixtures.doctor)
        switch fault {
        case "sync key file": faults.syncFailsOn = "key file"
        case "sync segment": faults.syncFailsOn = "segment"
        case "write EIO": faults.writeFault = .eio
        default: faults.writeFault = .short
        }
        let failed = Fixtures.content("FAILED", size: 70_000)
        var acknowledged: DocumentMetadata?
        if fault == "sync key file" {
            acknowledged = try await t.store.deposit(Fixtures.draft("Failed"), content: failed, for: alice, as: Fixtures.doctor)
        } else {
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), content: failed, for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { _ = try await t.store.documents(for: alice, as: .patient(alice)) } == .durabilityLost)
        }
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(FaultInjection()))
        let docs = try await store.documents(for: alice, as: .patient(alice))
        #expect(docs.contains { $0.id == kept.id })
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 5000))
        if let acknowledged {
            #expect(try await store.content(of: acknowledged.id, for: alice, as: .patient(alice)) == failed)
        }
        for d in docs where d.title == "Failed" {
            #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == failed, "the failed deposit is whole if present")
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        // And the store takes writes again.
        _ = try await store.deposit(Fixtures.draft("After"), content: Data([1]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// `EIO` (after half the bytes, for writes) at each site outside the
    /// commit path's frames: every failed write or sync stops the store
    /// (`durabilityLost` for the call that met it or the next one, every
    /// later one and `close()`), even where the file concerned holds
    /// nothing acknowledged (a new segment, a checkpoint) and even on the
    /// committer's work ahead of need, whose failure no caller sees when it
    /// happens (Linux reports a writeback error once: the next sync of the
    /// same file succeeds although earlier data never reached the disk).
    /// A key file whose creation failed is created again at the next open.
    /// After each, a reopen finds everything acknowledged.
    @Test(arguments: FaultInjection.Site.allCases)
    func anIOFaultAtEachOtherSiteKeepsWhatWasAcknowledged(site: FaultInjection.Site) async throws {
        let faults = FaultInjection()
        if site == .keyFileCreation {
            let folder = TestFolder()
            let key = try MasterKey.generate()
            faults.failingSite = site
            #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(faults)) } == .io)
            let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(FaultInjection()))
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            try await store.close()
            return
        }
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 5000), for: alice, as: Fixtures.doctor)
        var acknowledged = [kept.id: Fixtures.content("KEPT", size: 5000)]
        faults.failingSite = site
        // 1.5 MiB does not fit in the first 1 MiB segment: a new one is needed.
        let big = Fixtures.content("BIG", size: 3 << 19)
        switch site {
        case .keySlotWrite, .merkleWrite:
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), content: Data([1]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { try await t.store.close() } == .durabilityLost)
        case .segmentCreationWrite, .segmentCreationSync:
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("Failed"), streaming: chunks(of: big, size: 100_000), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(!FileManager.default.fileExists(atPath: t.folder.appendingPathComponent("segment-0000000002.log.tmp").path))
            faults.failingSite = nil
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { try await t.store.close() } == .durabilityLost)
        case .preallocationSync, .growthSync:
            return  // aFailedSyncOfPreallocatedSpaceStopsTheStore
        case .restorationWrite:
            // The log's last record (the one the checkpoint names) with one
            // flipped header byte: the open restores it and writes it back,
            // and that write fails: the open fails, nothing is lost.
            faults.failingSite = nil
            try await t.store.close()
            let path = t.folder.appendingPathComponent(LogFormat.segmentFileName(1))
            var bytes = [UInt8](try Data(contentsOf: path))
            let last = try #require(try ReplayedDamageTests.frames(of: bytes).last)
            bytes[last.offset + 20] ^= 0x01
            try Data(bytes).write(to: path)
            faults.failingSite = .restorationWrite
            let failed = await code { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(faults)) }
            #expect(failed == .io || failed == .durabilityLost, "\(String(describing: failed))")
        case .compactionIntent, .compactionWrite, .compactionSync:
            // A compaction's failed write or sync stops the store; the
            // next open finishes the batch from its intent (CompactionTests).
            let erased = try await t.store.deposit(Fixtures.draft("Erased"), content: Fixtures.content("GONE", size: 200_000), for: alice, as: Fixtures.doctor)
            try await t.store.erase(erased.id, for: alice, reason: try ErasureReason("wrong patient"), as: Fixtures.doctor)
            #expect(await code { try await t.store.compact(as: .auditReviewer(try SystemPrincipal("dpo"))) } == .durabilityLost)
            #expect(await code { _ = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost)
            #expect(await code { try await t.store.close() } == .durabilityLost)
        case .journalKeyWrite:
            // An erasure that rotates the journal key is acknowledged once
            // its record is durable; the older key's replacement follows,
            // and its failure stops the store (the next open replaces it).
            let erased = try await t.store.deposit(Fixtures.draft("Erased"), content: Data([3]), for: alice, as: Fixtures.doctor)
            try await t.store.erase(erased.id, for: alice, reason: try ErasureReason("wrong patient"), as: Fixtures.doctor)
            try await eventually {
                await code { _ = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor) } == .durabilityLost
            }
            #expect(await code { try await t.store.close() } == .durabilityLost)
            faults.failingSite = nil
            let reopened = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(FaultInjection()))
            #expect(await code { _ = try await reopened.content(of: erased.id, for: alice, as: .patient(alice)) } == .erased)
            try await reopened.close()
        default:
            // The checkpoint at close fails: what was acknowledged is
            // durable, but the failed write or sync stops the store all the
            // same, and close says so.
            let after = try await t.store.deposit(Fixtures.draft("After"), content: Data([2]), for: alice, as: Fixtures.doctor)
            acknowledged[after.id] = Data([2])
            #expect(await code { try await t.store.close() } == .durabilityLost)
            #expect(!FileManager.default.fileExists(atPath: t.folder.appendingPathComponent("index.checkpoint.tmp").path))
            // The checkpoint written when the store was created is still there.
            #expect(FileManager.default.fileExists(atPath: t.folder.appendingPathComponent("index.checkpoint").path))
        }
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(FaultInjection()))
        let docs = try await store.documents(for: alice, as: .patient(alice))
        for (id, content) in acknowledged {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        for d in docs where d.title == "Failed" {
            #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == Data([1]), "the failed deposit is whole if present")
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        _ = try await store.deposit(Fixtures.draft("Again"), content: Data([3]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// A failed sync of preallocated zeros stops the store like any other
    /// (before, the committer's growth ahead of need swallowed it and
    /// placement returned `io` once, and later deposits were acknowledged
    /// on a file whose earlier writeback had failed). Segments of 8 MiB
    /// start at 1 MiB, with a 2 MiB audit reserve: the store's first group
    /// must grow the segment under its append (placement); deposits of
    /// 2 MiB make the committer grow it ahead of need.
    @Test(arguments: [FaultInjection.Site.preallocationSync, .growthSync])
    func aFailedSyncOfPreallocatedSpaceStopsTheStore(site: FaultInjection.Site) async throws {
        let faults = FaultInjection()
        var c = configuration(faults, segmentSize: 8 << 20)
        c.auditReserve = 2 << 20
        if site == .preallocationSync {
            // The store's first group (its signing key) must grow the
            // segment under its append: the open fails, and a later open
            // without the fault finds a working store.
            let folder = FileManager.default.temporaryDirectory.appending(path: "pv-preallocation-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let key = try MasterKey.generate()
            faults.failingSite = site
            #expect(await code { _ = try await VaultStore.open(at: folder, key: .key(key), configuration: c) } == .durabilityLost)
            faults.failingSite = nil
            let store = try await VaultStore.open(at: folder, key: .key(key), configuration: configuration(FaultInjection(), segmentSize: 8 << 20))
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
            try await store.close()
            return
        }
        let t = try await TestStore(configuration: c)
        var acknowledged: [DocumentID: Data] = [:]
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.failingSite = site
        var failed = false
        for i in 0..<12 where !failed {
            do {
                let content = Fixtures.content("G\(i)", size: 2 << 20)
                let id = try await t.store.deposit(
                    Fixtures.draft("Grow \(i)"), streaming: chunks(of: content, size: 1 << 20), for: alice, as: Fixtures.doctor).id
                acknowledged[id] = content
            } catch {
                #expect(error.code == .durabilityLost)
                failed = true
            }
        }
        #expect(failed, "the failed sync of \(site) must stop the store")
        faults.failingSite = nil
        #expect(await code { try await t.store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration(FaultInjection(), segmentSize: 8 << 20))
        for (id, content) in acknowledged {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        try await store.close()
    }

    @Test func relaxedModeKeepsDataAcrossAnOrderlyClose() async throws {
        var c = Fixtures.configuration()
        c.durability = .relaxed
        let t = try await TestStore(configuration: c)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var ids: [DocumentID] = []
        for i in 0..<5 {
            ids.append(try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("R\(i)"), for: alice, as: Fixtures.doctor).id)
        }
        let store = try await t.reopen(configuration: c)
        #expect(Set(try await store.documents(for: alice, as: .patient(alice)).map(\.id)) == Set(ids))
        try await store.close()
    }
}
