import Foundation
import PatientVaultProof
import Synchronization
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Online backup and restore: a consistent copy while writers go on,
/// checked against its own signed checkpoint; a restore holds exactly what
/// the checkpoint covers; a damaged backup is refused.
@Suite struct BackupTests {
    let alice = Fixtures.alice

    @Test func aBackupWhileWritersGoOnRestoresExactlyItsCheckpoint() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var before: [DocumentMetadata] = []
        for i in 0..<20 {
            before.append(try await t.store.deposit(Fixtures.draft("before \(i)"), content: Fixtures.content("B\(i)", size: 30_000), for: alice, as: Fixtures.doctor))
        }
        let erasedLater = before[0]
        // Writers go on during the backup.
        let store = t.store
        let writer = Task {
            var ids: [DocumentID] = []
            for i in 0..<30 {
                ids.append(try await store.deposit(Fixtures.draft("during \(i)"), content: Data([UInt8(i)]), for: Fixtures.alice, as: Fixtures.doctor).id)
            }
            return ids
        }
        let backup = TestFolder()
        let checkpoint = try await t.store.backup(to: backup.url)
        let during = try await writer.value
        try await t.store.erase(erasedLater.id, for: alice, reason: try ErasureReason("wrong record"), as: Fixtures.doctor)
        let after = try await t.store.deposit(Fixtures.draft("after"), content: Data([9]), for: alice, as: Fixtures.doctor)
        // The store goes on extending the backup's checkpoint.
        try await t.store.verify(against: checkpoint)
        let verifierKey = t.store.checkpointVerifierKey
        try await t.close()

        let restored = TestFolder()
        let restoredCheckpoint = try await VaultStore.restore(from: backup.url, to: restored.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(restoredCheckpoint == checkpoint)
        let copy = try await VaultStore.open(at: restored.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(copy.checkpointVerifierKey == verifierKey)
        // Everything before: there, whole (the document erased since too).
        for (i, m) in before.enumerated() {
            #expect(try await copy.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("B\(i)", size: 30_000))
        }
        // After: absent. During: a prefix of the writer's deposits.
        #expect(await code { _ = try await copy.metadata(of: after.id, for: self.alice, as: .patient(self.alice)) } == .unknownDocument)
        let present = try await copy.documents(for: alice, as: .patient(alice)).map(\.id)
        let kept = during.prefix { present.contains($0) }
        #expect(Set(present) == Set(before.map(\.id) + kept), "the copy holds the writer's deposits up to one point, none after it")
        _ = try await copy.verifyAuditTrail(for: alice, as: .patient(alice), anchoredTo: checkpoint)
        #expect(copy.engine.durableRecordCount >= checkpoint.treeHead.size)
        try await copy.close()
    }

    @Test func aDamagedBackupIsRefusedAndBadTargetsToo() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("X", size: 50_000), for: alice, as: Fixtures.doctor)
        let backup = TestFolder()
        _ = try await t.store.backup(to: backup.url)
        // Into a folder that holds other files, or into itself: refused.
        let cluttered = TestFolder()
        try FileManager.default.createDirectory(at: cluttered.url, withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: cluttered.url.appendingPathComponent("notes.txt"))
        #expect(await code { _ = try await t.store.backup(to: cluttered.url) } == .io)
        #expect(await code { _ = try await t.store.backup(to: t.folder) } == .invalidArgument)
        // Over another store's backup: refused, that backup untouched.
        let other = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let othersBackup = TestFolder()
        let othersCheckpoint = try await other.store.backup(to: othersBackup.url)
        #expect(await code { _ = try await t.store.backup(to: othersBackup.url) } == .invalidArgument)
        let stillThere = try Data(contentsOf: othersBackup.url.appendingPathComponent(VaultStore.backupCheckpointFileName))
        #expect(String(decoding: stillThere, as: UTF8.self) == othersCheckpoint.text)
        try await other.close()
        let memory = try await TestStore(configuration: Fixtures.configuration(), storage: .memory)
        #expect(await code { _ = try await memory.store.backup(to: TestFolder().url) } == .invalidArgument)
        try await memory.close()
        try await t.close()
        // A byte of the first record of the backup's log flipped.
        let segment = backup.url.appendingPathComponent(LogFormat.segmentFileName(1))
        var bytes = [UInt8](try Data(contentsOf: segment))
        bytes[LogFormat.segmentHeaderSize + 100] ^= 0x20
        try Data(bytes).write(to: segment)
        let refused = await code { _ = try await VaultStore.restore(from: backup.url, to: TestFolder().url, key: .key(t.key), configuration: Fixtures.configuration()) }
        #expect(refused == .corrupted || refused == .checkpointNotExtended, "refused: \(String(describing: refused))")
        #expect(await code { _ = try await VaultStore.restore(from: TestFolder().url, to: TestFolder().url, key: .key(t.key)) } == .invalidArgument)
    }

    /// A key slot of the backup's `keys.slots` damaged beyond a single
    /// flipped byte (which any read restores): the restore, which checks
    /// every slot, refuses it (before, it restored a store whose vault
    /// then answered `corrupted`). One flipped byte restores fine.
    @Test func aBackupWithADamagedKeySlotIsRefused() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("K", size: 500), for: alice, as: Fixtures.doctor)
        let backup = TestFolder()
        _ = try await t.store.backup(to: backup.url)
        try await t.close()
        let keyFile = backup.url.appendingPathComponent(LogFormat.keyFileName)
        let original = [UInt8](try Data(contentsOf: keyFile))
        // The last slot written: the document's key.
        var last = original.count / LogFormat.keySlotSize - 1
        while original[(last * LogFormat.keySlotSize)..<((last + 1) * LogFormat.keySlotSize)].allSatisfy({ $0 == 0 }) { last -= 1 }
        var once = original
        once[last * LogFormat.keySlotSize + 40] ^= 0x11
        try Data(once).write(to: keyFile)
        let restored = TestFolder()
        _ = try await VaultStore.restore(from: backup.url, to: restored.url, key: .key(t.key), configuration: Fixtures.configuration())
        let store = try await VaultStore.open(at: restored.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("K", size: 500))
        try await store.close()
        var twice = once
        twice[last * LogFormat.keySlotSize + 50] ^= 0x22
        try Data(twice).write(to: keyFile)
        let refused = await code {
            _ = try await VaultStore.restore(from: backup.url, to: TestFolder().url, key: .key(t.key), configuration: Fixtures.configuration())
        }
        #expect(refused == .corrupted)
    }

    /// A record of the store damaged where no open reads it (before the
    /// index the copy starts from): a backup copies it as it is (its
    /// check replays only what follows the index), and its restore, which
    /// hashes every record again, refuses it; a backup with
    /// `verifyingEveryRecord` refuses it at once.
    @Test func aDamagedRecordIsFoundByTheRestoreOrByAFullCheck() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("DAMAGED", size: 200_000), for: alice, as: Fixtures.doctor)
        try await t.store.close()
        // A byte in the middle of the first chunk's payload, its CRC left
        // wrong: the index the close wrote covers it.
        try t.flipMiddleByte(of: try await t.firstLargeChunk())
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        let quick = TestFolder()
        _ = try await store.backup(to: quick.url)
        let refused = await code {
            _ = try await VaultStore.restore(from: quick.url, to: TestFolder().url, key: .key(t.key), configuration: Fixtures.configuration())
        }
        #expect(refused == .checkpointNotExtended || refused == .corrupted, "refused: \(String(describing: refused))")
        let fullFolder = TestFolder()
        let full = await code { _ = try await store.backup(to: fullFolder.url, verifyingEveryRecord: true) }
        #expect(full == .checkpointNotExtended || full == .corrupted, "refused: \(String(describing: full))")
        // A first backup refused leaves its folder empty, as it found it:
        // a retry is not refused as a folder not empty.
        #expect(try FileManager.default.contentsOfDirectory(atPath: fullFolder.url.path).isEmpty)
        _ = try await store.backup(to: fullFolder.url)
        // The store itself reads it restored (one byte, its Merkle leaf
        // proves the value), as the backup's checks, which hash the bytes
        // as stored, do not.
        #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("DAMAGED", size: 200_000))
        try await store.close()
    }

    /// A backup whose copy fails its checks leaves the folder's previous
    /// checkpoint in place: the next backup into the folder starts from
    /// the copy that passed, not from one signed for bytes it refused.
    @Test func aBackupThatFailsItsChecksKeepsThePreviousCheckpoint() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("SMALL", size: 2_000), for: alice, as: Fixtures.doctor)
        let folder = TestFolder()
        let first = try await t.store.backup(to: folder.url)
        let file = folder.url.appendingPathComponent("backup.checkpoint")
        let firstText = try Data(contentsOf: file)
        #expect(String(decoding: firstText, as: UTF8.self) == first.text)
        // A record after the first backup, damaged in the store's file:
        // the incremental copy carries the damage, the full check finds it.
        _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("LATER", size: 200_000), for: alice, as: Fixtures.doctor)
        try await t.store.close()
        try t.flipMiddleByte(of: try await t.firstLargeChunk())
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        let refused = await code { _ = try await store.backup(to: folder.url, verifyingEveryRecord: true) }
        #expect(refused == .checkpointNotExtended || refused == .corrupted, "refused: \(String(describing: refused))")
        #expect(try Data(contentsOf: file) == firstText)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".new"))
        try await store.close()
    }

    /// A backup and a compaction say how far they are (for vaultctl's
    /// bars): fractions that only grow, through the copy and then the
    /// verification, ending at 1.
    @Test func aBackupAndACompactionReportTheirProgress() async throws {
        final class Seen: Sendable {
            let values = Mutex<[Double]>([])
            func add(_ value: Double) { values.withLock { $0.append(value) } }
            var all: [Double] { values.withLock { $0 } }
        }
        var configuration = Fixtures.configuration()
        configuration.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: configuration, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var ids: [DocumentID] = []
        for i in 0..<4 {
            ids.append(try await t.store.deposit(
                Fixtures.draft("Scan \(i)"), content: Fixtures.content("S\(i)", size: 3_000_000), for: alice, as: Fixtures.doctor).id)
        }
        let backup = Seen()
        _ = try await t.store.backup(to: TestFolder().url, verifyingEveryRecord: true) { backup.add($0) }
        let b = backup.all
        #expect(b == b.sorted() && b.last == 1, "\(b)")
        #expect(b.contains { $0 > 0 && $0 < 0.5 } && b.contains { $0 > 0.5 && $0 < 1 }, "the copy, then the verification: \(b)")
        for id in ids.prefix(2) {
            try await t.store.erase(id, for: alice, reason: try ErasureReason("wrong record"), as: Fixtures.doctor)
        }
        let compaction = Seen()
        let report = try await t.store.compact(as: .auditReviewer(try SystemPrincipal("dpo"))) { compaction.add($0) }
        #expect(report.erasedDocuments == 2)
        let c = compaction.all
        #expect(!c.isEmpty && c == c.sorted() && c.last == 1, "\(c)")
        try await t.close()
    }

    /// A second backup into the same folder copies only what is new: the
    /// segments the first one copied whole are not written again, and the
    /// folder restores everything up to the new checkpoint.
    @Test func anIncrementalBackupCopiesOnlyWhatIsNew() async throws {
        // 1 MiB segments: the first backup spans several.
        var configuration = Fixtures.configuration()
        configuration.segmentSize = 1 << 20
        let t = try await TestStore(configuration: configuration, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var documents: [(DocumentMetadata, Data)] = []
        func deposit(_ n: Int, _ tag: String) async throws {
            for i in 0..<n {
                let content = Fixtures.content("\(tag)\(i)", size: 200_000)
                documents.append((try await t.store.deposit(Fixtures.draft("\(tag) \(i)"), content: content, for: alice, as: Fixtures.doctor), content))
            }
        }
        try await deposit(15, "first")
        let backup = TestFolder()
        let first = try await t.store.backup(to: backup.url)
        let segmentOne = backup.url.appendingPathComponent(LogFormat.segmentFileName(1))
        let before = try FileManager.default.attributesOfItem(atPath: segmentOne.path)
        try await t.store.erase(documents[0].0.id, for: alice, reason: try ErasureReason("wrong record"), as: Fixtures.doctor)
        try await deposit(15, "second")
        // The backup's folder open as a store (someone opened the copy):
        // the incremental backup is refused, and writes nothing into it,
        // since that store's own writes and the copy's would mix.
        let opened = try await VaultStore.open(at: backup.url, key: .key(t.key), configuration: configuration)
        func files() throws -> [String: [FileAttributeKey: AnyHashable]] {
            var files: [String: [FileAttributeKey: AnyHashable]] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: backup.url.path) {
                let a = try FileManager.default.attributesOfItem(atPath: backup.url.appendingPathComponent(name).path)
                files[name] = [.systemFileNumber: a[.systemFileNumber] as? Int, .size: a[.size] as? Int, .modificationDate: a[.modificationDate] as? Date]
            }
            return files
        }
        // The opened store's own work ahead of need (its committer grows
        // and makes segments after the open returns, late under the thread
        // sanitizer) is let finish first: the folder unchanged for 300 ms.
        var whileOpen = try files()
        for _ in 0..<50 {
            try await Task.sleep(for: .milliseconds(300))
            let now = try files()
            if now == whileOpen { break }
            whileOpen = now
        }
        #expect(await code { _ = try await t.store.backup(to: backup.url) } == .storeLocked)
        #expect(try files() == whileOpen)
        try await opened.close()
        let second = try await t.store.backup(to: backup.url)
        #expect(second.treeHead.size > first.treeHead.size)
        // Segment 1 was kept as it was: the same file, not written again.
        let after = try FileManager.default.attributesOfItem(atPath: segmentOne.path)
        #expect(after[.systemFileNumber] as? Int == before[.systemFileNumber] as? Int)
        #expect(after[.modificationDate] as? Date == before[.modificationDate] as? Date)
        // The new checkpoint extends the first one.
        try await t.store.verify(against: first)
        try await t.close()

        let restored = TestFolder()
        #expect(try await VaultStore.restore(from: backup.url, to: restored.url, key: .key(t.key), configuration: configuration) == second)
        let copy = try await VaultStore.open(at: restored.url, key: .key(t.key), configuration: configuration)
        #expect(await code { _ = try await copy.content(of: documents[0].0.id, for: self.alice, as: .patient(self.alice)) } == .erased)
        for (m, content) in documents.dropFirst() {
            #expect(try await copy.content(of: m.id, for: alice, as: .patient(alice)) == content)
        }
        _ = try await copy.verifyAuditTrail(for: alice, as: .patient(alice), anchoredTo: second)
        try await copy.close()
    }

    /// An incremental backup cut short (the folder as it stands at the
    /// copy's first progress step, as a crash would leave it) still
    /// restores to the previous backup's checkpoint: the previous key file
    /// and index are replaced only by whole, synced files, and the
    /// segments are only extended.
    /// (A verified first backup reads the copy again through its engine
    /// alone: nothing is appended to it, and its index is kept too.)
    /// With large segments the cut falls inside a frame of the segment
    /// being extended, which recovery refuses as a file cut short from
    /// outside, but not in a folder marked as a backup's copy in progress
    /// (`backup.copying`): there it is the copy's torn tail.
    @Test(arguments: [(false, UInt64(1 << 20)), (true, 1 << 20), (false, 64 << 20)])
    func anIncrementalBackupCutShortLeavesThePreviousOneRestorable(verifiedFirst: Bool, segmentSize: UInt64) async throws {
        let c = try await cutIncrementalBackup(verifiedFirst: verifiedFirst, openedFirst: false, segmentSize: segmentSize)
        try await c.restoresToTheFirstBackup()
        // The copy's mark: left by the copy cut short, gone once a finished
        // one's index is in place, and once an open has cut the torn tail.
        let mark = "backup.copying"
        #expect(FileManager.default.fileExists(atPath: c.cut.url.appendingPathComponent(mark).path))
        #expect(!FileManager.default.fileExists(atPath: c.backup.url.appendingPathComponent(mark).path))
        #expect(!FileManager.default.fileExists(atPath: c.restored.url.appendingPathComponent(mark).path))
    }

    /// The folder of a backup opened as a store (its close wrote an index
    /// past the backup's records), then an incremental backup into it cut
    /// short: that index went before the segments were extended, and the
    /// copy's own was never written. Before, the restore refused the
    /// folder (`corrupted`: records and no index); now its check replays
    /// the copy's log from the start and holds it to the backup's signed
    /// checkpoint, and the folder restores to the previous backup.
    @Test func anIncrementalBackupCutShortAfterTheCopyWasOpenedStillRestores() async throws {
        let c = try await cutIncrementalBackup(verifiedFirst: false, openedFirst: true, segmentSize: 1 << 20)
        #expect(!FileManager.default.fileExists(atPath: c.cut.url.appendingPathComponent(LogFormat.checkpointFileName).path))
        try await c.restoresToTheFirstBackup()
        // Anywhere else, a log without its index is damage: the cut folder
        // itself does not open as a store.
        #expect(await code { _ = try await VaultStore.open(at: c.cut.url, key: .key(c.key), configuration: c.configuration) } == .corrupted)
    }

    /// A store's first backup of 8 documents, then (`openedFirst`: after
    /// the backup's folder was opened and closed as a store) 15 more
    /// deposits and an incremental backup into the same folder, `cut`
    /// holding that folder as it stood at the copy's first progress step.
    struct CutBackup {
        let key: MasterKey
        let configuration: Configuration
        let first: [(DocumentMetadata, Data)]
        let checkpoint: SignedCheckpoint
        let backup: TestFolder
        let cut: TestFolder
        let restored = TestFolder()

        /// `cut` restores to the first backup's checkpoint, with its documents.
        func restoresToTheFirstBackup() async throws {
            let alice = Fixtures.alice
            #expect(try await VaultStore.restore(from: cut.url, to: restored.url, key: .key(key), configuration: configuration) == checkpoint)
            let copy = try await VaultStore.open(at: restored.url, key: .key(key), configuration: configuration)
            for (m, content) in first {
                #expect(try await copy.content(of: m.id, for: alice, as: .patient(alice)) == content)
            }
            // (Whole groups the cut copy held past the checkpoint are kept
            // too, as an extension of it.)
            #expect(try await copy.documents(for: alice, as: .patient(alice)).count >= first.count)
            try await copy.close()
        }
    }

    func cutIncrementalBackup(verifiedFirst: Bool, openedFirst: Bool, segmentSize: UInt64) async throws -> CutBackup {
        var configuration = Fixtures.configuration()
        configuration.segmentSize = segmentSize
        let t = try await TestStore(configuration: configuration, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var first: [(DocumentMetadata, Data)] = []
        for i in 0..<8 {
            let content = Fixtures.content("first\(i)", size: 200_000)
            first.append((try await t.store.deposit(Fixtures.draft("first \(i)"), content: content, for: alice, as: Fixtures.doctor), content))
        }
        let backup = TestFolder()
        let checkpoint = try await t.store.backup(to: backup.url, verifyingEveryRecord: verifiedFirst)
        if openedFirst {
            try await VaultStore.open(at: backup.url, key: .key(t.key), configuration: configuration).close()
        }
        for i in 0..<15 {
            _ = try await t.store.deposit(
                Fixtures.draft("second \(i)"), content: Fixtures.content("second\(i)", size: 200_000), for: alice, as: Fixtures.doctor)
        }
        let cut = TestFolder()
        let taken = Mutex(false)
        try await t.store.backup(to: backup.url) { _ in
            let first = taken.withLock { done in
                defer { done = true }
                return !done
            }
            guard first else { return }
            try? FileManager.default.removeItem(at: cut.url)
            try? FileManager.default.copyItem(at: backup.url, to: cut.url)
        }
        try await t.close()
        #expect(taken.withLock { $0 })
        return CutBackup(key: t.key, configuration: configuration, first: first, checkpoint: checkpoint, backup: backup, cut: cut)
    }

    /// A failed sync of the Merkle hashes during a backup stops the store,
    /// as every failed sync does: Linux reports a writeback error once, so
    /// the next checkpoint's sync could succeed over hashes that never
    /// reached the disk.
    @Test func aFailedSyncOfTheMerkleHashesDuringABackupStopsTheStore() async throws {
        let faults = FaultInjection()
        var configuration = Fixtures.configuration()
        configuration.faults = faults
        let t = try await TestStore(configuration: configuration, storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor)
        faults.failingSite = .merkleSync
        #expect(await code { _ = try await t.store.backup(to: TestFolder().url) } == .durabilityLost)
        faults.failingSite = nil
        #expect(await code { _ = try await t.store.deposit(Fixtures.draft(), content: Data([2]), for: self.alice, as: Fixtures.doctor) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
    }

    /// The store's own folder named by another path (`store/.`, a trailing
    /// slash, `..`, a symbolic link), a folder inside it or one holding it:
    /// refused, and the store is untouched. Before, only the exact string
    /// was refused, and an incremental backup ran into the live store
    /// (removing its index checkpoint and segments, truncating files).
    @Test func aBackupIntoTheStoresOwnFolderByAnyPathIsRefused() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var documents: [(DocumentMetadata, Data)] = []
        for i in 0..<5 {
            let content = Fixtures.content("S\(i)", size: 20_000)
            documents.append((try await t.store.deposit(Fixtures.draft("d\(i)"), content: content, for: alice, as: Fixtures.doctor), content))
        }
        // The store's folder holds a backup checkpoint of this store (as a
        // restored store holds its backup's): a copy into the folder would
        // take it as its previous backup and run incrementally.
        let elsewhere = TestFolder()
        _ = try await t.store.backup(to: elsewhere.url)
        try FileManager.default.copyItem(
            at: elsewhere.url.appendingPathComponent(VaultStore.backupCheckpointFileName),
            to: t.folder.appendingPathComponent(VaultStore.backupCheckpointFileName))
        let links = TestFolder()
        try FileManager.default.createDirectory(at: links.url, withIntermediateDirectories: true)
        let link = links.url.appendingPathComponent("store-link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: t.folder)
        let path = t.folder.path
        let targets = [
            URL(fileURLWithPath: path + "/."), URL(fileURLWithPath: path + "/"),
            URL(fileURLWithPath: path + "/../" + t.folder.lastPathComponent), link,
            URL(fileURLWithPath: link.path + "/."), t.folder.appendingPathComponent("inside"),
            URL(fileURLWithPath: "/"),
        ]
        for target in targets {
            #expect(await code { _ = try await t.store.backup(to: target) } == .invalidArgument, "\(target.path)")
        }
        #expect(!FileManager.default.fileExists(atPath: t.folder.appendingPathComponent("inside").path))
        let store = try await t.reopen()
        for (m, content) in documents {
            #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == content)
        }
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await t.close()
    }

    /// A restore that fails (a wrong key, a bad configuration) leaves its
    /// target as it was: a folder it made is removed, an empty one the
    /// caller gave stays, empty. Before, the configuration was checked
    /// after the copy, and a failure left a full copy of the backup.
    @Test func aFailedRestoreLeavesItsTargetAsItWas() async throws {
        let (t, m, backup) = try await backedUpStore(contentSize: 10_000)
        let fm = FileManager.default
        var bad = Fixtures.configuration()
        bad.loadedVaultLimit = 0
        let wrong = try MasterKey.generate()
        // New targets: nothing remains.
        let new = TestFolder()
        #expect(await code { _ = try await VaultStore.restore(from: backup.url, to: new.url, key: .key(t.key), configuration: bad) } == .invalidArgument)
        #expect(!fm.fileExists(atPath: new.url.path))
        #expect(await code {
            _ = try await VaultStore.restore(from: backup.url, to: new.url, key: .key(wrong), configuration: Fixtures.configuration())
        } == .wrongMasterKey)
        #expect(!fm.fileExists(atPath: new.url.path))
        // An empty folder the caller made: still there, still empty.
        let empty = TestFolder()
        try fm.createDirectory(at: empty.url, withIntermediateDirectories: true)
        #expect(await code {
            _ = try await VaultStore.restore(from: backup.url, to: empty.url, key: .key(wrong), configuration: Fixtures.configuration())
        } == .wrongMasterKey)
        #expect(try fm.contentsOfDirectory(atPath: empty.url.path).isEmpty)
        #expect(await code { _ = try await VaultStore.restore(from: backup.url, to: empty.url, key: .key(t.key), configuration: bad) } == .invalidArgument)
        #expect(try fm.contentsOfDirectory(atPath: empty.url.path).isEmpty)
        // Into the backup itself: refused, the backup untouched.
        #expect(await code {
            _ = try await VaultStore.restore(
                from: backup.url, to: backup.url.appendingPathComponent("inside"), key: .key(t.key), configuration: Fixtures.configuration())
        } == .invalidArgument)
        // The same folder then restores with the right key.
        _ = try await VaultStore.restore(from: backup.url, to: empty.url, key: .key(t.key), configuration: Fixtures.configuration())
        let store = try await VaultStore.open(at: empty.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("R", size: 10_000))
        try await store.close()
    }

    /// A restore killed midway leaves part of a backup in its target, with
    /// the mark it wrote first: no open takes that folder for a store. Here
    /// the header and the key file were copied, the segments not yet: an
    /// open without the mark's check would take it for an empty store, and
    /// every record would be gone. A restore into the same folder clears
    /// it and finishes; a restore that finishes leaves no mark.
    @Test func aRestoreCutShortIsNeverOpenedAsAStore() async throws {
        let (t, m, backup) = try await backedUpStore(contentSize: 300_000)
        let fm = FileManager.default
        let marker = VaultStore.restoreMarkerFileName
        let finished = TestFolder()
        _ = try await VaultStore.restore(from: backup.url, to: finished.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(!fm.fileExists(atPath: finished.url.appendingPathComponent(marker).path))
        let cut = TestFolder()
        try fm.createDirectory(at: cut.url, withIntermediateDirectories: true)
        _ = fm.createFile(atPath: cut.url.appendingPathComponent(marker).path, contents: Data())
        for name in ["store.header", LogFormat.keyFileName] {
            try fm.copyItem(at: backup.url.appendingPathComponent(name), to: cut.url.appendingPathComponent(name))
        }
        let before = try fm.contentsOfDirectory(atPath: cut.url.path).sorted()
        #expect(await code { _ = try await VaultStore.open(at: cut.url, key: .key(t.key), configuration: Fixtures.configuration()) } == .corrupted)
        #expect(try fm.contentsOfDirectory(atPath: cut.url.path).sorted() == before)
        // Restored again into the same folder: cleared, then a store.
        _ = try await VaultStore.restore(from: backup.url, to: cut.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(!fm.fileExists(atPath: cut.url.appendingPathComponent(marker).path))
        let store = try await VaultStore.open(at: cut.url, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("R", size: 300_000))
        try await store.close()
    }

    /// A closed store whose vault holds one document of `contentSize`
    /// bytes ("R"), backed up into a folder of its own.
    private func backedUpStore(contentSize: Int) async throws -> (TestStore, DocumentMetadata, TestFolder) {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("R", size: contentSize), for: alice, as: Fixtures.doctor)
        let backup = TestFolder()
        _ = try await t.store.backup(to: backup.url)
        try await t.close()
        return (t, m, backup)
    }
}
