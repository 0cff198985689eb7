import Foundation
import Testing
@testable import VaultStorage

/// The engine's part of a backup: the copy it makes opens from an index
/// the committer takes when the backup begins, so its first open replays
/// only what was appended after that index, not the whole log.
@Suite struct BackupCopyTests {
    @Test func aCopyStartsFromAFreshIndexOfTheLog() async throws {
        let (dir, first) = try TemporaryDirectory.withEngine()
        for i in 0..<20 { try await first.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        // Closed: its index covers the 20 records.
        let engine = try await first.reopen(dir)
        #expect(engine.recoveryReport.usedCheckpoint && engine.recoveryReport.replayedRecords == 0)
        for i in 20..<27 { try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i))]) }
        let copy = TemporaryDirectory()
        let records = try await engine.backup(to: copy.path)
        #expect(records == 27)
        #expect(FileManager.default.fileExists(atPath: copy.path + "/" + LogFormat.checkpointFileName))
        let opened = try copy.openEngine()
        #expect(opened.recoveryReport.usedCheckpoint, "the copy starts from the log's index")
        #expect(opened.recoveryReport.replayedRecords == 0, "the backup's own index covers all 27, not only the first 20")
        #expect(opened.durableRecordCount == 27)
        #expect(try opened.merkleTree.root(size: 27) == engine.merkleTree.root(size: 27))
        var seen = 0
        try await opened.recomputeLeaves(count: 27) { seen += $0.count / 32 }
        #expect(seen == 27)
        try await opened.close()
        try await engine.close()
    }

    /// Buffered groups written since the last durable one (read audit
    /// entries in batched mode, content chunks) are synced for the index
    /// and counted as durable: the copy holds them, and its open replays
    /// nothing.
    @Test func bufferedGroupsBeforeABackupAreInItsIndex() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        defer { withExtendedLifetime(dir) {} }
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        for i in 5..<10 {
            _ = try engine.append([EngineRecord(stream: stream(1), payload: payload(i))], keySlotWrites: [], durability: .buffered)
        }
        let copy = TemporaryDirectory()
        #expect(try await engine.backup(to: copy.path) == 10)
        let opened = try copy.openEngine()
        #expect(opened.recoveryReport.usedCheckpoint && opened.recoveryReport.replayedRecords == 0)
        #expect(try opened.records(of: stream(1)).map(\.payload) == (0..<10).map { payload($0) })
        try await opened.close()
        try await engine.close()
    }

    /// Groups queued behind the committer's current one do not keep it
    /// from taking the index a backup asks for: it covers what is written
    /// (not what is queued), and the copy of a log written meanwhile opens
    /// from it with exactly the records the backup counted.
    @Test func anIndexAskedForWhileWritersRunCoversWhatIsWritten() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(smallConfiguration { $0.segmentSize = 1 << 20 })
        for i in 0..<10 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        let writers = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<4 {
                    group.addTask {
                        for i in 0..<150 {
                            try await engine.appendDurably([EngineRecord(stream: stream(UInt8(2 + w)), payload: payload(i))])
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        var copies: [(TemporaryDirectory, UInt64)] = []
        for _ in 0..<4 {
            let copy = TemporaryDirectory()
            copies.append((copy, try await engine.backup(to: copy.path)))
        }
        try await writers.value
        for (copy, records) in copies {
            let opened = try copy.openEngine(smallConfiguration { $0.segmentSize = 1 << 20 })
            #expect(opened.recoveryReport.usedCheckpoint)
            #expect(opened.durableRecordCount == records)
            #expect(try opened.merkleTree.root(size: records) == engine.merkleTree.root(size: records))
            try await opened.close()
        }
        try await engine.close()
        // The store itself, closed (its index written at close), holds
        // every record.
        let reopened = try dir.openEngine(smallConfiguration { $0.segmentSize = 1 << 20 })
        #expect(reopened.durableRecordCount == 610)
        for w in 0..<4 { #expect(try reopened.records(of: stream(UInt8(2 + w))).count == 150) }
        try await reopened.close()
    }

    /// The index is taken from the committer's memory, not from the
    /// store's file: a store without an `index.checkpoint`, on a full
    /// disk, still gives a copy that opens from an index, and the store's
    /// folder gets no file from it.
    @Test func theCopysIndexComesFromMemoryNotFromTheStoresFile() async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        let engine = try dir.openEngine(smallConfiguration { $0.faults = faults })
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        let indexFile = dir.path + "/" + LogFormat.checkpointFileName
        try? FileManager.default.removeItem(atPath: indexFile)
        #expect(!FileManager.default.fileExists(atPath: indexFile))
        faults.diskFull = true
        let copy = TemporaryDirectory()
        #expect(try await engine.backup(to: copy.path) == 5)
        #expect(!FileManager.default.fileExists(atPath: indexFile))
        faults.diskFull = false
        let opened = try copy.openEngine()
        #expect(opened.recoveryReport.usedCheckpoint && opened.recoveryReport.replayedRecords == 0)
        #expect(try opened.merkleTree.root(size: 5) == engine.merkleTree.root(size: 5))
        #expect(try opened.records(of: stream(1)).count == 5)
        try await opened.close()
        try await engine.close()
    }
}
