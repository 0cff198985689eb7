import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// A full disk degrades the store: deposits fail with `diskFull`, reads
/// and listings go on and leave their entries (from the audit reserve),
/// and the same handle works again once space returns. Simulated with the
/// engine's fault injection: every reservation of space fails with ENOSPC.
@Suite struct FullDiskTests {
    let alice = Fixtures.alice

    func configuration(_ faults: FaultInjection) -> Configuration {
        Fixtures.injecting(faults, segmentSize: 4 << 20, auditReserve: 128 << 10)
    }

    @Test func readsAndListingsGoOnWhileDepositsFail() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT"), for: alice, as: Fixtures.doctor)
        faults.diskFull = true
        // Deposits fill what is preallocated, short of the reserve, then fail.
        var deposited = [kept.id: Fixtures.content("KEPT")]
        var refused = false
        for i in 0..<100 {
            let content = Fixtures.content("FILL\(i)", size: 40_000)
            do {
                let d = try await t.store.deposit(Fixtures.draft("Fill \(i)"), content: content, for: alice, as: Fixtures.doctor)
                deposited[d.id] = content
            } catch let e {
                #expect(e.code == .diskFull)
                refused = true
                break
            }
        }
        #expect(refused, "the first segment's 1 MiB preallocation must run out")
        let entriesBefore = try await t.store.verifyAuditTrail(for: alice, as: .patient(alice)).entries
        // Reads and listings go on, each with its entry, from the reserve.
        var reads = 0
        while reads < 2_000 {
            do {
                #expect(try await t.store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT"))
                _ = try await t.store.documents(for: alice, as: Fixtures.doctor)
                reads += 1
            } catch let e {
                #expect(e.code == .diskFull, "once the reserve is used up, reads fail with diskFull too")
                break
            }
        }
        #expect(reads >= 30, "a 128 KiB reserve holds the entries of dozens of reads (\(reads))")
        #expect(reads < 2_000, "the reserve is finite")
        // Space comes back: the same handle deposits again.
        faults.diskFull = false
        let after = try await t.store.deposit(Fixtures.draft("After"), content: Fixtures.content("AFTER"), for: alice, as: Fixtures.doctor)
        deposited[after.id] = Fixtures.content("AFTER")
        let store = try await t.reopen(configuration: configuration(FaultInjection()))
        for (id, content) in deposited {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        // Every read that returned has its entry: two per round, plus the
        // verification itself, the deposit after, and the refused read (an
        // allowed read whose entry could not be written leaves nothing).
        let entries = try await store.verifyAuditTrail(for: alice, as: .patient(alice)).entries
        #expect(entries >= entriesBefore + 1 + 2 * reads + 1)
        try await store.close()
    }

    /// The same on a real full disk (`Scripts/full-disk.sh` mounts a small
    /// ext4 image and names it in `PV_FULL_DISK_DIR`): every file that
    /// grows while a read is audited (`merkle.hashes` too, which has no
    /// fault-injection site for space) must not stop the store. Deposits
    /// fill the disk; then reads go on from the reserve until it is used
    /// up, each refused read a `diskFull`, never `durabilityLost`, and the
    /// store closes cleanly and reopens with everything acknowledged.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PV_FULL_DISK_DIR"] != nil))
    func readsGoOnWhenARealDiskIsFull() async throws {
        let root = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PV_FULL_DISK_DIR"]!)
        let folder = root.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = try MasterKey.generate()
        let c = Fixtures.configuration()
        let store = try await VaultStore.open(at: folder, key: .key(key), configuration: c)
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var deposited: [DocumentID: Data] = [:]
        var filled = false
        for i in 0..<10_000 {
            let content = Fixtures.content("FILL\(i)", size: 200_000)
            do {
                let d = try await store.deposit(Fixtures.draft("Fill \(i)"), content: content, for: alice, as: Fixtures.doctor)
                deposited[d.id] = content
            } catch let e {
                #expect(e.code == .diskFull)
                filled = true
                break
            }
        }
        #expect(filled, "the disk must fill up")
        let kept = try #require(deposited.first)
        var reads = 0
        var refusal: PatientVaultError.Code?
        while reads < 20_000 {
            do {
                #expect(try await store.content(of: kept.key, for: alice, as: .patient(alice)) == kept.value)
                reads += 1
            } catch let e {
                refusal = e.code
                break
            }
        }
        #expect(refusal == nil || refusal == .diskFull, "a read on a full disk is refused for space, not for durability: \(String(describing: refusal))")
        #expect(reads >= 200, "the audit reserve holds hundreds of reads (\(reads))")
        print("full disk: \(deposited.count) deposits filled it; \(reads) reads audited from the reserve, then \(refusal.map { "\($0)" } ?? "none refused")")
        try await store.close()
        let reopened = try await VaultStore.open(at: folder, key: .key(key), configuration: c)
        for (id, content) in deposited.prefix(5) {
            #expect(try await reopened.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        try await reopened.close()
    }

    /// ENOSPC at each reservation of space in turn (segment creation and
    /// growth, key file growth, checkpoint), over a workload that reaches
    /// each: the failing call is a typed `diskFull` that changes nothing,
    /// the same handle goes on once space returns, and after a reopen
    /// every acknowledged deposit is there and the trail verifies.
    @Test func diskFullAtEveryAllocationSite() async throws {
        var sites = Set<String>()
        var trial = 0
        while true {
            let faults = FaultInjection()
            faults.allocationsBeforeDiskFull = trial
            let folder = TestFolder()
            let key = try MasterKey.generate()
            var c = configuration(faults)
            c.segmentSize = 2 << 20
            c.auditReserve = 64 << 10
            var failures = 0
            func note(_ e: PatientVaultError) {
                #expect(e.code == .diskFull, "trial \(trial): \(e)")
                failures += 1
                faults.allocationsBeforeDiskFull = nil
            }
            var store: VaultStore
            do {
                store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
            } catch let e {
                note(e)
                store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
            }
            var acknowledged: [DocumentID: Data] = [:]
            var createdVault = false
            for step in 0..<14 {
                // Each step retried once: the retry runs with space back.
                for _ in 0..<2 {
                    do {
                        if !createdVault {
                            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
                            createdVault = true
                        }
                        let content = Fixtures.content("S\(step)", size: 150_000)
                        let d = try await store.deposit(Fixtures.draft("Step \(step)"), content: content, for: alice, as: Fixtures.doctor)
                        acknowledged[d.id] = content
                        #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == content)
                        break
                    } catch let e {
                        note(e)
                    }
                }
            }
            do { try await store.close() } catch let e { Issue.record("trial \(trial): close failed: \(e)") }
            let reopened = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(FaultInjection()))
            let listed = try await reopened.documents(for: alice, as: .patient(alice))
            #expect(Set(listed.map(\.id)).isSuperset(of: acknowledged.keys), "trial \(trial)")
            for (id, content) in acknowledged {
                #expect(try await reopened.content(of: id, for: alice, as: .patient(alice)) == content, "trial \(trial)")
            }
            _ = try await reopened.verifyAuditTrail(for: alice, as: .patient(alice))
            try await reopened.close()
            // The reservations before the refused one succeeded; the refused
            // one is the trial's site. A trial past the last one refuses none.
            let attempted = faults.allocationSites
            guard trial < attempted.count else { break }
            sites.insert(attempted[trial].split(separator: " ")[0].description)
            #expect(failures <= 1, "trial \(trial): only the call that needed the space fails")
            trial += 1
        }
        // The workload reached every kind of reservation, and each failed once.
        #expect(sites == ["segment", "key", "checkpoint"], "\(sites)")
        #expect(trial >= 4)
    }

    /// A vault-key rotation is decided, then reserves its key's slot: on a
    /// full disk that the key file cannot grow on, that reservation fails
    /// after an allowed decision. The call still leaves its one entry
    /// (abandoned), as every rotation whose records the disk refused does.
    @Test func aRotationWhoseKeySlotTheDiskRefusesLeavesItsEntry() async throws {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: Fixtures.injecting(faults, segmentSize: 16 << 20, auditReserve: 2 << 20))
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        faults.diskFull = true
        // The key file holds 512 slots before its first growth, which the
        // full disk refuses: past them, the reservation itself fails.
        for _ in 0..<640 {
            let before = try await t.store.withVault(alice) { $0.auditNext }
            #expect(await code { try await t.store.rotateVaultKey(for: alice, as: .patient(alice)) } == .diskFull)
            #expect(try await t.store.withVault(alice) { $0.auditNext } == before + 1, "one entry per refused rotation")
        }
        #expect(faults.allocationSites.contains { $0.hasPrefix("key") }, "the key file's growth was reached")
        faults.diskFull = false
        let entries = try await t.store.auditTrail(for: alice, as: .patient(alice))
        #expect(entries.first { $0.action == .rotateVaultKey }?.outcome == .abandoned)
        try await t.store.rotateVaultKey(for: alice, as: .patient(alice))
        try await t.store.close()
    }

    @Test func aFreshStoreHoldsLittleDisk() async throws {
        var defaults = Configuration()
        defaults.clock = ManualClock()
        let t = try await TestStore(configuration: defaults)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("SMALL"), for: alice, as: Fixtures.doctor)
        try await t.store.close()
        let total = try filesAndBytes(in: t.folder).reduce(0) { $0 + $1.1.count }
        #expect(total < 2_000_000, "\(total) bytes")
    }
}
