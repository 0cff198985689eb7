import Foundation
import Testing
@testable import VaultStorage

/// The engine's part of a backup: the copy it makes opens from the log's
/// index as it was when the copy began, so its first open replays only
/// what was appended after that index, not the whole log.
@Suite struct BackupCopyTests {
    @Test func aCopyReplaysOnlyWhatFollowsTheLogsIndex() async throws {
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
        #expect(opened.recoveryReport.replayedRecords <= 7, "replayed \(opened.recoveryReport.replayedRecords) of 27")
        #expect(opened.durableRecordCount == 27)
        #expect(try opened.merkleTree.root(size: 27) == engine.merkleTree.root(size: 27))
        var seen = 0
        try await opened.recomputeLeaves(count: 27) { seen += $0.count / 32 }
        #expect(seen == 27)
        try await opened.close()
        try await engine.close()
    }

    /// Without an index (a log never checkpointed), the copy is replayed
    /// whole, and holds the same records.
    @Test func aCopyOfALogWithoutAnIndexIsReplayedWhole() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        try? FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        let copy = TemporaryDirectory()
        #expect(try await engine.backup(to: copy.path) == 5)
        let opened = try copy.openEngine()
        #expect(!opened.recoveryReport.usedCheckpoint && opened.recoveryReport.replayedRecords == 5)
        #expect(try opened.merkleTree.root(size: 5) == engine.merkleTree.root(size: 5))
        try await opened.close()
        try await engine.close()
    }
}
