import Foundation
import Testing
@testable import VaultStorage

/// A store writes its first checkpoint when it is created, so that a
/// missing or damaged `index.checkpoint` is damage, never a first open: it
/// would otherwise hide a cut or deleted newest segment (the case:
/// segment 1 cut to 64 bytes and the checkpoint deleted opened an empty
/// store).
@Suite struct MissingCheckpointTests {
    /// The production rule: the engine's tests' replay switched off.
    func strict() -> LogEngineConfiguration {
        smallConfiguration { $0.replaysWithoutCheckpoint = false }
    }

    var checkpoint: (TemporaryDirectory) -> String { { $0.path + "/" + LogFormat.checkpointFileName } }

    @Test func aNewStoreHasACheckpointBeforeItsFirstRecord() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(strict())
        #expect(FileManager.default.fileExists(atPath: checkpoint(dir)))
        try await engine.close()
    }

    @Test func withoutItsCheckpointALogWithRecordsIsDamage() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(strict())
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i))]) }
        try await engine.close()
        try FileManager.default.removeItem(atPath: checkpoint(dir))
        #expect { _ = try dir.openEngine(strict()) } throws: {
            ($0 as? StorageError)?.code == .corrupted
        }
        // The newest segment cut to its header, too: still damage, never an empty store.
        try truncate(dir.segmentPath(1), to: 64)
        #expect { _ = try dir.openEngine(strict()) } throws: {
            ($0 as? StorageError)?.code == .corrupted
        }
    }

    @Test func aCheckpointThatFailsItsChecksumIsDamage() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(strict())
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])
        try await engine.close()
        try overwrite(checkpoint(dir), at: 40, with: [0xAB])
        #expect { _ = try dir.openEngine(strict()) } throws: {
            ($0 as? StorageError)?.code == .corrupted
        }
    }

    /// A crash between segment 1 and the first checkpoint leaves segment 1
    /// alone and empty: nothing was ever acknowledged, and the store opens
    /// (writing the checkpoint then).
    @Test func aCreationCutBeforeItsCheckpointOpens() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(strict())
        try await engine.close()
        try FileManager.default.removeItem(atPath: checkpoint(dir))
        let reopened = try dir.openEngine(strict())
        #expect(FileManager.default.fileExists(atPath: checkpoint(dir)))
        try await reopened.appendDurably([EngineRecord(stream: stream(2), payload: payload(2))])
        try await reopened.close()
    }

    /// The first checkpoint is not best effort: a store that cannot write
    /// it does not open (it could not tell a lost checkpoint from damage).
    @Test func aNewStoreThatCannotWriteItsCheckpointDoesNotOpen() async throws {
        let dir = TemporaryDirectory()
        var c = strict()
        let faults = FaultInjection()
        faults.failingSite = .checkpointSync
        c.faults = faults
        #expect { _ = try dir.openEngine(c) } throws: { $0 is StorageError }
        #expect(!FileManager.default.fileExists(atPath: checkpoint(dir)))
        let engine = try dir.openEngine(strict())
        try await engine.close()
    }
}
