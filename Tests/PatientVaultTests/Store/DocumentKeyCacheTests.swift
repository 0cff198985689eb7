import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage
@testable import VaultSync

/// The cache of unwrapped document keys: bounded, least recently used out,
/// emptied at close, and never in the way of a read's answer.
@Suite struct DocumentKeyCacheTests {
    static func someKeys() throws -> DocumentKeys { try DocumentKeys.generate().keys }

    @Test func aHitDoesNotUnwrapAgain() async throws {
        let cache = DocumentKeyCache(limit: 4)
        let vault = StreamID(bytes: [UInt8](repeating: 1, count: 32))
        var unwraps = 0
        for _ in 0..<3 {
            _ = try await cache.keys(vault: vault, slot: KeySlot(7), since: cache.generation) { unwraps += 1; return try Self.someKeys() }
        }
        #expect(unwraps == 1)
        // Another vault's slot of the same number is another key.
        _ = try await cache.keys(vault: StreamID(bytes: [UInt8](repeating: 2, count: 32)), slot: KeySlot(7), since: cache.generation) {
            unwraps += 1
            return try Self.someKeys()
        }
        #expect(unwraps == 2)
    }

    @Test func theLeastRecentlyUsedGoFirstAndTheLimitHolds() async throws {
        let cache = DocumentKeyCache(limit: 8)
        let vault = StreamID(bytes: [UInt8](repeating: 1, count: 32))
        for slot in 1...8 { cache.insert(try Self.someKeys(), vault: vault, slot: KeySlot(UInt64(slot))) }
        // Slot 1 used again: it outlives the others at the next eviction.
        _ = try await cache.keys(vault: vault, slot: KeySlot(1), since: cache.generation) { Issue.record("slot 1 should be cached"); return try Self.someKeys() }
        cache.insert(try Self.someKeys(), vault: vault, slot: KeySlot(9))
        #expect(cache.count <= 8)
        var unwrapped = false
        _ = try await cache.keys(vault: vault, slot: KeySlot(1), since: cache.generation) { unwrapped = true; return try Self.someKeys() }
        #expect(!unwrapped)
        _ = try await cache.keys(vault: vault, slot: KeySlot(2), since: cache.generation) { unwrapped = true; return try Self.someKeys() }
        #expect(unwrapped, "slot 2, the least recently used, was evicted")
        cache.remove(vault: vault, slot: KeySlot(1))
        cache.removeAll()
        #expect(cache.count == 0)
    }

    /// A read that unwrapped a key before its slot was destroyed does not
    /// put the key back after the destruction's removal (it may finish its
    /// own answer, ordered before the erasure, but no later read finds it).
    @Test func aKeyUnwrappedBeforeItsSlotWasDestroyedIsNotCachedAfter() async throws {
        let cache = DocumentKeyCache(limit: 4)
        let vault = StreamID(bytes: [UInt8](repeating: 1, count: 32))
        _ = try await cache.keys(vault: vault, slot: KeySlot(7), since: cache.generation) {
            // The erasure runs while this read unwraps.
            cache.remove(vault: vault, slot: KeySlot(7))
            return try Self.someKeys()
        }
        #expect(cache.count == 0)
        var unwrapped = false
        _ = try await cache.keys(vault: vault, slot: KeySlot(7), since: cache.generation) { unwrapped = true; return try Self.someKeys() }
        #expect(unwrapped, "the next read finds nothing cached")
        // Reads that begin after the removal cache again.
        #expect(cache.count == 1)
    }

    /// A read takes the generation with its decision: a destruction that
    /// removes the vault's keys between that decision and the read's
    /// unwrap (the read already past its checks) keeps the key out of the
    /// cache; so does `close()`'s removal of every key.
    @Test func aKeyUnwrappedAfterARemovalByAReadDecidedBeforeItIsNotCached() async throws {
        let cache = DocumentKeyCache(limit: 4)
        let vault = StreamID(bytes: [UInt8](repeating: 1, count: 32))
        let decided = cache.generation
        cache.removeAll(vault: vault)
        _ = try await cache.keys(vault: vault, slot: KeySlot(7), since: decided) { try Self.someKeys() }
        #expect(cache.count == 0)
        let beforeClose = cache.generation
        cache.removeAll()
        _ = try await cache.keys(vault: vault, slot: KeySlot(8), since: beforeClose) { try Self.someKeys() }
        #expect(cache.count == 0)
        // A read decided now caches.
        _ = try await cache.keys(vault: vault, slot: KeySlot(9), since: cache.generation) { try Self.someKeys() }
        #expect(cache.count == 1)
    }

    @Test func aLimitOfZeroCachesNothing() async throws {
        let cache = DocumentKeyCache(limit: 0)
        let vault = StreamID(bytes: [UInt8](repeating: 1, count: 32))
        var unwraps = 0
        for _ in 0..<2 { _ = try await cache.keys(vault: vault, slot: KeySlot(1), since: cache.generation) { unwraps += 1; return try Self.someKeys() } }
        #expect(unwraps == 2)
        #expect(cache.count == 0)
    }

    @Test func theStoreCachesWhatItReadsAndForgetsItAtClose() async throws {
        var c = Fixtures.configuration()
        c.documentKeyCacheLimit = 4
        let t = try await TestStore(configuration: c, engine: testStorage)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var ids: [DocumentID] = []
        for i in 0..<10 {
            ids.append(try await t.store.deposit(Fixtures.draft("d\(i)"), content: Fixtures.content("C\(i)"), for: alice, as: Fixtures.doctor).id)
        }
        #expect(t.store.documentKeyCache.count <= 4)
        // Every read answers right whether its key was cached or not.
        for round in 0..<2 {
            for (i, id) in ids.enumerated() {
                #expect(try await t.store.content(of: id, for: alice, as: .patient(alice)) == Fixtures.content("C\(i)"), "round \(round)")
            }
        }
        #expect(t.store.documentKeyCache.count <= 4)
        #expect(t.store.documentKeyCache.count > 0)
        try await t.store.close()
        #expect(t.store.documentKeyCache.count == 0)
    }
}
