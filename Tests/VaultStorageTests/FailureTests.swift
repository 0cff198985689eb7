import Foundation
import Testing
@testable import VaultStorage

func fileLength(_ path: String) throws -> UInt64 {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
}

/// Full disks and failing syncs, simulated.
@Suite struct FailureTests {
    /// A small engine on `dir`, with faults the test injects.
    func faultyEngine(in dir: TemporaryDirectory) throws -> (FaultInjection, LogEngine) {
        let faults = FaultInjection()
        return (faults, try dir.openEngine(smallConfiguration { $0.faults = faults }))
    }

    @Test func failedSyncIsNeverAcknowledgedAndStopsTheEngine() async throws {
        let dir = TemporaryDirectory()
        let (faults, e) = try faultyEngine(in: dir)
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
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(1)).first?.payload == payload(1))
        try await reopened.appendDurably([EngineRecord(stream: stream(1), payload: payload(4))])
        try await reopened.close()
    }

    @Test func fullDiskAtASegmentSwitchRefusesCleanlyAndRecovers() async throws {
        let dir = TemporaryDirectory()
        let (faults, e) = try faultyEngine(in: dir)
        // Fill the first 64 KiB segment as far as ordinary groups go (they
        // leave the 4 KiB reserve free).
        for i in 0..<7 { try await e.appendDurably([EngineRecord(stream: stream(2), payload: payload(i, size: 8000))]) }
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
        #expect(try e.records(of: stream(2)).count == 8)
        try await e.close()
    }

    @Test func onAFullDiskOnlyGroupsAllowedTheReserveGoOn() async throws {
        let dir = TemporaryDirectory()
        let (faults, e) = try faultyEngine(in: dir)
        // 16 KiB preallocated at first; the reserve is 4 KiB.
        #expect(try fileLength(dir.segmentPath(1)) == 16 << 10)
        // No new space (a disk that filled up while the preallocated space
        // lasts; `diskFull` would refuse ordinary groups at once).
        faults.allocationsBeforeDiskFull = 0
        var ordinary = 0
        while (try? e.append([EngineRecord(stream: stream(1), payload: payload(ordinary, size: 500))], keySlotWrites: [], durability: .durable)) != nil {
            ordinary += 1
        }
        // Ordinary groups (600-byte frames) stopped where the next one
        // would have cut into the 4 KiB reserve...
        let stopped = e.appendPosition.offset
        #expect(stopped + 600 + (4 << 10) > 16 << 10 && stopped + (4 << 10) <= 16 << 10)
        // ... which groups allowed the reserve use, without new space.
        var audit = 0
        while (try? e.append([EngineRecord(stream: stream(2), payload: payload(audit, size: 500))], keySlotWrites: [], durability: .durable, mayUseReserve: true)) != nil {
            audit += 1
        }
        #expect(audit >= 5 && audit <= 7)
        #expect(try fileLength(dir.segmentPath(1)) == 16 << 10)
        // Space comes back: the same handle grows the file (doubling) and
        // both kinds of groups go on.
        faults.allocationsBeforeDiskFull = nil
        try await e.appendDurably([EngineRecord(stream: stream(1), payload: payload(1000, size: 500))])
        _ = try await e.append([EngineRecord(stream: stream(2), payload: payload(1001, size: 500))], keySlotWrites: [], durability: .durable, mayUseReserve: true).wait()
        #expect(try fileLength(dir.segmentPath(1)) == 32 << 10)
        let reopened = try await e.reopen(dir)
        #expect(try reopened.records(of: stream(1)).count == ordinary + 1)
        #expect(try reopened.records(of: stream(2)).count == audit + 1)
        try await reopened.close()
    }

    @Test func aSmallLogHoldsSpaceInProportionToItsData() async throws {
        let dir = TemporaryDirectory()
        let c = smallConfiguration { $0.segmentSize = 1 << 20 }
        let e = try dir.openEngine(c)
        #expect(try fileLength(dir.segmentPath(1)) == 16 << 10)
        #expect(try fileLength(dir.path + "/keys.slots") < 4 << 10)
        // 100 KiB of records: the file doubles to 128 KiB, not to 1 MiB.
        for i in 0..<100 { try await e.appendDurably([EngineRecord(stream: stream(3), payload: payload(i, size: 900))]) }
        #expect(try fileLength(dir.segmentPath(1)) == 128 << 10)
        let reopened = try await e.reopen(dir, c)
        #expect(try reopened.records(of: stream(3)).count == 100)
        try await reopened.close()
    }

    @Test func fullDiskWhenTheKeyFileMustGrow() async throws {
        let dir = TemporaryDirectory()
        let (faults, e) = try faultyEngine(in: dir)
        // The header and the two journal-key slots (256 bytes when created),
        // then 4 KiB of growth: key slots 3 to 33.
        var reserved: [KeySlot] = []
        for _ in 0..<(34 - Int(LogFormat.firstKeySlot)) { reserved.append(try e.reserveKeySlot()) }
        faults.diskFull = true
        #expect { _ = try e.reserveKeySlot() } throws: { ($0 as? StorageError)?.code == .diskFull }
        faults.diskFull = false
        let next = try e.reserveKeySlot()
        #expect(next.number == reserved.last!.number + 1)
        try await e.close()
    }
}
