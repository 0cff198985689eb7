import VaultCrypto
import VaultStorage
import VaultSync

/// A bounded cache of unwrapped document keys, for documents read again
/// and again: a hit saves the key slot's `pread`, its unwrapping
/// (XChaCha20-Poly1305) and the subkeys' derivation.
///
/// Each entry is one slot of guarded memory (``KeyArena``, 512 bytes:
/// the document key and its two subkeys); an entry leaves the cache when
/// it is the least recently used past ``Configuration/documentKeyCacheLimit``,
/// and every entry leaves at `close()`; its memory is wiped when its last
/// reference goes (a read in progress keeps the key it took until it ends).
/// A key is cached under its vault and its slot, which no other version
/// shares; anything that destroys a slot must ``remove(vault:slot:)`` it.
/// A removal also moves the cache to a new generation: a read that began
/// unwrapping before it (and may hold the destroyed slot's key) does not
/// put its key back, so an erased key never re-enters the cache.
final class DocumentKeyCache: Sendable {
    struct Key: Hashable {
        var vault: StreamID
        var slot: KeySlot
    }

    private let entries = Locked<(map: [Key: (keys: DocumentKeys, lastUse: UInt64)], clock: UInt64, generation: UInt64)>(
        ([:], 0, 0))
    private let limit: Int

    /// A cache of at most `limit` keys (0: no caching).
    init(limit: Int) { self.limit = limit }

    /// The cache's generation now: a read takes it with its decision,
    /// under the vault's lock, and passes it to
    /// ``keys(vault:slot:since:unwrap:)``.
    var generation: UInt64 { entries.withLock { $0.generation } }

    /// The keys of the version whose key is in `slot`: from the cache, or
    /// from `unwrap` (called outside the cache's lock), then kept unless a
    /// slot was removed since `since`, the generation the read took with
    /// its decision (a destruction decided after it may have run between
    /// that decision and this unwrap).
    func keys(vault: StreamID, slot: KeySlot, since: UInt64, unwrap: () async throws -> DocumentKeys) async rethrows -> DocumentKeys {
        guard limit > 0 else { return try await unwrap() }
        let key = Key(vault: vault, slot: slot)
        let cached = entries.withLock { e -> DocumentKeys? in
            guard let hit = e.map[key] else { return nil }
            e.clock += 1
            e.map[key]!.lastUse = e.clock
            return hit.keys
        }
        if let cached { return cached }
        let keys = try await unwrap()
        insert(keys, vault: vault, slot: slot, ifGeneration: since)
        return keys
    }

    /// Keeps `keys` (a version just written, likely read soon); with
    /// `ifGeneration`, only if no slot was removed since that generation.
    func insert(_ keys: DocumentKeys, vault: StreamID, slot: KeySlot, ifGeneration generation: UInt64? = nil) {
        guard limit > 0 else { return }
        // Dropped outside the lock: their wiping is not the lock's work.
        let dropped = entries.withLock { e -> [DocumentKeys] in
            if let generation, generation != e.generation { return [] }
            e.clock += 1
            e.map[Key(vault: vault, slot: slot)] = (keys, e.clock)
            guard e.map.count > limit else { return [] }
            // Down to 7/8 of the limit at once, so the O(n) choice is rare.
            let keep = limit - limit / 8
            let victims = e.map.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(e.map.count - keep)
            return victims.compactMap { e.map.removeValue(forKey: $0.key)?.keys }
        }
        _ = dropped
    }

    /// Forgets the key of a destroyed slot, and refuses the keys of reads
    /// that began before (a new generation).
    func remove(vault: StreamID, slot: KeySlot) {
        _ = entries.withLock { e -> DocumentKeys? in
            e.generation &+= 1
            return e.map.removeValue(forKey: Key(vault: vault, slot: slot))?.keys
        }
    }

    /// Forgets every key of one vault (a destroyed vault), and refuses the
    /// keys of reads that began before (a new generation).
    func removeAll(vault: StreamID) {
        let dropped = entries.withLock { e -> [DocumentKeys] in
            e.generation &+= 1
            let keys = e.map.keys.filter { $0.vault == vault }
            return keys.compactMap { e.map.removeValue(forKey: $0)?.keys }
        }
        _ = dropped
    }

    /// Forgets every key (at close), and refuses the keys of reads that
    /// began before (a new generation).
    func removeAll() {
        let all = entries.withLock { e -> [Key: (keys: DocumentKeys, lastUse: UInt64)] in
            e.generation &+= 1
            defer { e.map.removeAll() }
            return e.map
        }
        _ = all
    }

    /// Keys held now.
    var count: Int { entries.withLock { $0.map.count } }
}
