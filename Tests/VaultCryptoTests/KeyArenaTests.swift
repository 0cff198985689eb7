import Testing
@testable import VaultCrypto

/// Guarded memory slabs for keys (`KeyArena`).
@Suite struct KeyArenaTests {
    @Test func slotsAreDistinctReusedAndWiped() throws {
        let arena = KeyArena()
        var slots: [UnsafeMutableRawPointer] = []
        for i in 0..<600 {
            let p = try arena.allocate()
            // Fresh slots start wiped.
            #expect(UnsafeRawBufferPointer(start: p, count: KeyArena.slotSize).allSatisfy { $0 == 0 })
            p.storeBytes(of: UInt64(i + 1), as: UInt64.self)
            slots.append(p)
        }
        #expect(Set(slots.map { UInt(bitPattern: $0) }).count == 600)
        #expect(Set(slots.map { UInt(bitPattern: $0) % 64 }) == [0])
        #expect(arena.usage == (600, 3))
        for p in slots { arena.release(p) }
        #expect(arena.usage == (0, 3))
        // Reused slots come back wiped, and no new slab is needed.
        for _ in 0..<600 {
            let p = try arena.allocate()
            #expect(UnsafeRawBufferPointer(start: p, count: KeyArena.slotSize).allSatisfy { $0 == 0 })
        }
        #expect(arena.usage.slabs == 3)
    }

    @Test func keysFromTheArenaAreDistinctAndSized() throws {
        let keys = try (0..<300).map { _ in try SymmetricKey.generate() }
        #expect(Set(keys.map { k in k.withUnsafeBytes { Array($0) } }).count == 300)
        keys[7].withUnsafeBytes { #expect($0.count == 32) }
    }
}
