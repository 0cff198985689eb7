import Foundation
import Testing
@testable import VaultStorage

/// Full disks and failing syncs, simulated.
@Suite struct FailureTests {
    func engine(_ dir: TemporaryDirectory, _ faults: FaultInjection) throws -> LogEngine {
        var c = smallConfiguration()
        c.faults = faults
        return try LogEngine.open(directory: dir.path, configuration: c)
    }

    @Test func failedSyncIsNeverAcknowledgedAndStopsTheEngine() async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        let e = try engine(dir, faults)
        try await e.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])
        faults.syncFails = true
        await #expect {
            try await e.appendDurably([EngineRecord(stream: stream(1), payload: payload(2))])
        } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        // Even once the disk recovers, no retry pretends it is durable now.
        faults.syncFails = false
        #expect {
            _ = try e.append([EngineRecord(stream: stream(1), payload: payload(3))], keySlotWrites: [], durability: .durable)
        } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        #expect { _ = try e.append([], keySlotWrites: [], durability: .durable) } throws: {
            ($0 as? StorageError)?.code == .durabilityLost
        }
        // close() says the same: durability was lost (not a generic I/O error).
        await #expect { try await e.close() } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        // Reopening recovers: what was acknowledged is there.
        let reopened = try LogEngine.open(directory: dir.path, configuration: smallConfiguration())
        #expect(try reopened.records(of: stream(1)).first?.payload == payload(1))
        try await reopened.appendDurably([EngineRecord(stream: stream(1), payload: payload(4))])
        try await reopened.close()
    }

    @Test func fullDiskAtASegmentSwitchRefusesCleanlyAndRecovers() async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        let e = try engine(dir, faults)
        // Fill most of the first 64 KiB segment.
        for i in 0..<8 { try await e.appendDurably([EngineRecord(stream: stream(2), payload: payload(i, size: 8000))]) }
        faults.diskFull = true
        let before = (e.nextSequence, e.head(of: stream(2)))
        #expect {
            _ = try e.append([EngineRecord(stream: stream(2), payload: payload(99, size: 8000))], keySlotWrites: [], durability: .durable)
        } throws: { ($0 as? StorageError)?.code == .diskFull }
        #expect(e.nextSequence == before.0)
        #expect(e.head(of: stream(2)) == before.1)
        #expect(!FileManager.default.fileExists(atPath: dir.segmentPath(2)))
        // Space comes back: the same append goes through.
        faults.diskFull = false
        try await e.appendDurably([EngineRecord(stream: stream(2), payload: payload(99, size: 8000))])
        #expect(try e.records(of: stream(2)).count == 9)
        try await e.close()
    }

    @Test func fullDiskWhenTheKeyFileMustGrow() async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        let e = try engine(dir, faults)
        // The header slot plus 4 KiB of growth hold slots 1 to 32.
        var reserved: [KeySlot] = []
        for _ in 0..<32 { reserved.append(try e.reserveKeySlot()) }
        faults.diskFull = true
        #expect { _ = try e.reserveKeySlot() } throws: { ($0 as? StorageError)?.code == .diskFull }
        faults.diskFull = false
        let next = try e.reserveKeySlot()
        #expect(next.number == reserved.last!.number + 1)
        try await e.close()
    }
}
