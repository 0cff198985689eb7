import Foundation
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// `scrub(as:)`: every record read whole, a damaged byte whose value is
/// proven written back, so that what a read restores in memory the files
/// hold again (and a backup's restore, which hashes the bytes as stored,
/// takes the store).
@Suite struct ScrubTests {
    let alice = Fixtures.alice
    let dpo = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    func configuration() -> Configuration {
        var c = Fixtures.configuration()
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        return c
    }

    /// A closed store with a 200 KB document, and the middle of its first
    /// chunk damaged: `flips` bytes of it.
    /// Returns the store, the document, its content, the segment's bytes
    /// as written, the segment, and the damaged frame's range in it.
    func damagedStore(flips: Int) async throws -> (TestStore, DocumentID, Data, [UInt8], URL, Range<Int>) {
        let t = try await TestStore(configuration: configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let content = Fixtures.content("SCRUB", size: 200_000)
        let m = try await t.store.deposit(Fixtures.draft(), content: content, for: alice, as: Fixtures.doctor)
        try await t.store.close()
        let frame = try await t.firstLargeChunk()
        let segment = t.folder.appendingPathComponent(LogFormat.segmentFileName(frame.location.segment))
        let original = [UInt8](try Data(contentsOf: segment))
        var damaged = original
        for i in 0..<flips { damaged[Int(frame.location.offset) + LogFormat.frameHeaderSize + frame.payload.count / 2 + 17 * i] ^= 0x08 }
        try Data(damaged).write(to: segment)
        let range = Int(frame.location.offset)..<(Int(frame.location.offset) + Int(frame.location.frameLength))
        return (t, m.id, content, original, segment, range)
    }

    /// One flipped byte: reads already answer right; a backup's restore
    /// refuses the copy until a scrub writes the byte back; afterwards
    /// the file is as written, the backup restores, and a second scrub
    /// finds nothing. The scrub is audited like any store-level call,
    /// and refused to a patient.
    @Test func aScrubWritesBackWhatAReadRestores() async throws {
        let (t, id, content, original, segment, frame) = try await damagedStore(flips: 1)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration())
        #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        let before = TestFolder()
        _ = try await store.backup(to: before.url)
        let refused = await code {
            _ = try await VaultStore.restore(from: before.url, to: TestFolder().url, key: .key(t.key), configuration: configuration())
        }
        #expect(refused == .checkpointNotExtended || refused == .corrupted, "refused: \(String(describing: refused))")

        #expect(await code { try await store.scrub(as: .patient(alice)) } == .accessDenied)
        let report = try await store.scrub(as: dpo)
        #expect(report.recordsRestored == 1)
        #expect(report.recordsDamaged == 0)
        #expect(report.recordsChecked > 3)
        #expect([UInt8](try Data(contentsOf: segment))[frame] == original[frame], "written back")
        let again = try await store.scrub(as: dpo)
        #expect(again.recordsRestored == 0 && again.recordsDamaged == 0 && again.recordsChecked > report.recordsChecked)
        let after = TestFolder()
        _ = try await store.backup(to: after.url)
        let target = TestFolder()
        _ = try await VaultStore.restore(from: after.url, to: target.url, key: .key(t.key), configuration: configuration())
        let restored = try await VaultStore.open(at: target.url, key: .key(t.key), configuration: configuration())
        #expect(try await restored.content(of: id, for: alice, as: .patient(alice)) == content)
        try await restored.close()
        // Each call recorded in the reviewer's stream (read back raw): the
        // two allowed ones.
        let stream = store.keys.reviewerStream(of: try SystemPrincipal("dpo"))
        var scrubs = 0
        try await store.loader.walkBack(stream, broken: PatientVaultError(.corrupted, "")) { r in
            let plain = try RecordCodec.openStoreRecord(
                r, kind: .activityEntry, key: store.keys.activity, stream: stream, broken: PatientVaultError(.corrupted, ""))
            for copy in try ActivityBatch.decode(plain).copies where try AuditEntry.decode(copy.entry).action == .scrub { scrubs += 1 }
            return true
        }
        #expect(scrubs == 2)
        try await store.close()
    }

    /// Two flipped bytes: nothing proves a repair; the scrub counts the
    /// record damaged and writes nothing; the rest of the store reads.
    @Test func aRecordDamagedBeyondARepairIsCountedNotTouched() async throws {
        let (t, id, _, _, segment, frame) = try await damagedStore(flips: 2)
        let damaged = [UInt8](try Data(contentsOf: segment))
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: configuration())
        let report = try await store.scrub(as: dpo)
        #expect(report.recordsDamaged == 1)
        #expect(report.recordsRestored == 0)
        #expect([UInt8](try Data(contentsOf: segment))[frame] == damaged[frame])
        #expect(await code { _ = try await store.content(of: id, for: alice, as: .patient(alice)) } == .corrupted)
        #expect(try await store.documents(for: alice, as: .patient(alice)).count == 1)
        try await store.close()
    }

    /// Writers go on during a scrub, which walks only what is durable (a
    /// frame being written would read torn): an undamaged store scrubbed
    /// under 8 writers reports nothing damaged and nothing restored.
    @Test func writersGoOnDuringAScrubThatFindsNothing() async throws {
        let t = try await TestStore(configuration: configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for i in 0..<20 {
            _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("S\(i)", size: 5_000), for: alice, as: Fixtures.doctor)
        }
        let store = t.store
        let report = try await withThrowingTaskGroup(of: ScrubReport?.self) { group in
            for w in 0..<8 {
                group.addTask {
                    for i in 0..<10 {
                        _ = try await store.deposit(
                            Fixtures.draft(), content: Fixtures.content("W\(w)-\(i)", size: 3_000), for: Fixtures.alice, as: Fixtures.doctor)
                    }
                    return nil
                }
            }
            group.addTask { try await store.scrub(as: dpo) }
            var found: ScrubReport?
            for try await r in group { if let r { found = r } }
            return try #require(found)
        }
        #expect(report.recordsDamaged == 0 && report.recordsRestored == 0)
        #expect(report.recordsChecked > 20)
        #expect(try await store.documents(for: alice, as: .patient(alice)).count == 100)
        try await t.close()
    }
}
