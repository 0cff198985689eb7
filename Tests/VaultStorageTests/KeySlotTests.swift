import Foundation
import Testing
@testable import VaultStorage

/// The key-slot file: reserve, write, read, destroy (`LogEngine` key slots).
@Suite struct KeySlotTests {
    @Test func writeReadDestroyAndReopen() async throws {
        let dir = TemporaryDirectory()
        var slots: [KeySlot] = []
        do {
            let engine = try dir.openEngine()
            for i in 0..<50 {
                let slot = try engine.reserveKeySlot()
                slots.append(slot)
                _ = try await engine.append([], keySlotWrites: [(slot, payload(i, size: 72))], durability: .durable).wait()
            }
            #expect(Set(slots).count == 50)
            #expect(try await engine.readKeySlot(slots[3]) == payload(3, size: 72))
            try await engine.destroyKeySlot(slots[3])
            await #expect { _ = try await engine.readKeySlot(slots[3]) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
            try await engine.close()
        }
        // The destroyed value is nowhere in the key file any more.
        let file = try readBytes(dir.path + "/" + LogFormat.keyFileName)
        #expect(!contains(file, payload(3, size: 72)))
        #expect(contains(file, payload(4, size: 72)))

        let engine = try dir.openEngine()
        #expect(try await engine.readKeySlot(slots[49]) == payload(49, size: 72))
        await #expect { _ = try await engine.readKeySlot(slots[3]) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        // New slots never reuse old numbers.
        let fresh = try engine.reserveKeySlot()
        #expect(fresh.number > slots.map(\.number).max()!)
        await #expect { _ = try await engine.readKeySlot(fresh) } throws: { ($0 as? StorageError)?.code == .keySlotEmpty }
        try await engine.close()
    }

    @Test func tamperedSlotIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        _ = try await engine.append([], keySlotWrites: [(slot, payload(1, size: 72))], durability: .durable).wait()
        try overwrite(dir.path + "/" + LogFormat.keyFileName, at: slot.number * 128 + 30, with: [0x55])
        await #expect { _ = try await engine.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .corrupted }
        try await engine.close()
    }

    @Test func slotsAreDurableBeforeTheRecordsThatFollowThem() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let slot = try engine.reserveKeySlot()
        let loc = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))],
            keySlotWrites: [(slot, payload(2, size: 40))], durability: .durable
        ).wait()
        #expect(try await engine.read(loc[0]).payload == payload(1))
        #expect(try await engine.readKeySlot(slot) == payload(2, size: 40))
        #expect { _ = try engine.append([], keySlotWrites: [(slot, payload(1, size: 105))], durability: .durable) } throws: {
            ($0 as? StorageError)?.code == .tooLarge
        }
        try await engine.close()
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}
