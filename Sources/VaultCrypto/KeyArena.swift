import CSodium
import VaultSync

/// Guarded memory for keys, without system calls per key.
///
/// `sodium_malloc` gives each allocation its own pages, guard pages, a
/// canary and an `mlock`: five or so system calls per key and as many on
/// release, plus TLB shootdowns across threads, which dominated the cost
/// of creating vaults and documents. The arena takes slabs from
/// `sodium_malloc` (so each slab has guard pages on both sides and is
/// `mlock`ed where allowed) and hands out fixed slots within them. A slot
/// is wiped with `sodium_memzero` when released and reused; slabs are never
/// returned, so the arena's size is the peak number of live keys.
///
/// What it gives up against one allocation per key: no guard page between
/// two keys of the same slab, and slots stay writable (the slab cannot be
/// made read-only while other slots are handed out). The threat model
/// (`Documentation/SecurityModel.md`) does not rely on either.
package final class KeyArena: @unchecked Sendable {
    // @unchecked Sendable: the free list and slab list are only touched
    // under `state`'s lock; slot memory is owned by one SecureBytes at a time.

    /// Bytes per slot: a key with up to fifteen subkeys, or the state of a
    /// secret stream or of a BLAKE2b hash (slots are 64-byte aligned: slabs
    /// are whole pages).
    package static let slotSize = 512
    /// Slots per slab (128 KiB slabs).
    static let slotsPerSlab = 256

    package static let shared = KeyArena()

    /// A separate arena (tests); the library uses ``shared``.
    package init() {}

    /// Addresses, not pointers, so that the state is plainly Sendable.
    private struct State {
        var free: [UInt] = []
        var slabs: [UInt] = []
        var live = 0
    }

    private let state = Locked(State())

    /// A wiped slot of ``slotSize`` bytes.
    package func allocate() throws -> UnsafeMutableRawPointer {
        // sodium_malloc needs libsodium initialised (its page size).
        try Sodium.initialize()
        return try state.withLock { s throws -> UnsafeMutableRawPointer in
            if s.free.isEmpty {
                guard let slab = sodium_malloc(Self.slotSize * Self.slotsPerSlab) else {
                    throw CryptoError(.allocationFailed, "guarded memory exhausted")
                }
                sodium_memzero(slab, Self.slotSize * Self.slotsPerSlab)
                let base = UInt(bitPattern: slab)
                precondition(base % 64 == 0, "slabs are page-aligned: sodium_malloc places a whole-page size at a page boundary")
                s.slabs.append(base)
                s.free.reserveCapacity(s.free.count + Self.slotsPerSlab)
                for i in (0..<Self.slotsPerSlab).reversed() { s.free.append(base + UInt(i * Self.slotSize)) }
            }
            s.live += 1
            return UnsafeMutableRawPointer(bitPattern: s.free.removeLast())!
        }
    }

    /// Wipes a slot and makes it available again.
    package func release(_ slot: UnsafeMutableRawPointer) {
        sodium_memzero(slot, Self.slotSize)
        let address = UInt(bitPattern: slot)
        state.withLock { s in
            s.free.append(address)
            s.live -= 1
        }
    }

    /// Slots in use and slabs allocated, for tests and diagnostics.
    package var usage: (liveSlots: Int, slabs: Int) {
        state.withLock { ($0.live, $0.slabs.count) }
    }
}
