import Foundation
import Testing
@testable import VaultStorage

/// Linux reports a writeback error once per open file description, so a
/// failed `fdatasync` must stop the engine on every path, not only the
/// commit path's (PostgreSQL's "fsyncgate").
@Suite struct SyncFailureLatchTests {
    @Test(arguments: [FaultInjection.Site.preallocationSync, .growthSync])
    func aFailedSyncOfPreallocatedSpaceStopsTheEngine(site: FaultInjection.Site) async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        let e = try dir.openEngine(smallConfiguration { $0.faults = faults })
        try await e.appendDurably([EngineRecord(stream: stream(1), payload: payload(0))])
        faults.failingSite = site
        // Appends of 4 KiB grow the 16 KiB preallocation, under an append
        // or ahead of need: one of them meets the failed sync.
        var stopped = false
        for i in 1..<40 where !stopped {
            do {
                try await e.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 4000))])
            } catch let error as StorageError {
                #expect(error.code == .durabilityLost)
                stopped = true
            }
        }
        #expect(stopped)
        faults.failingSite = nil
        #expect { _ = try e.append([EngineRecord(stream: stream(1), payload: payload(99))], keySlotWrites: [], durability: .durable) } throws: {
            ($0 as? StorageError)?.code == .durabilityLost
        }
        #expect { _ = try e.reserveKeySlot() } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        await #expect { try await e.close() } throws: { ($0 as? StorageError)?.code == .durabilityLost }
    }
}
