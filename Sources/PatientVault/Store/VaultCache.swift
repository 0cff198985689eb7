import Synchronization
import VaultSync
import VaultStorage

/// The decrypted vaults in memory: one handle per vault in use, loaded on
/// first use, evicted least recently used past ``Configuration/loadedVaultLimit``.
///
/// Locks: a handle's `state` lock guards one vault's memory and is never
/// held for I/O. Loading (a read of the vault's whole stream) happens in
/// the handle's `loading` gate instead (an ``AsyncGate``: waiters suspend),
/// so concurrent first uses of one vault load it once (single flight)
/// while other vaults, and callers of this vault's already loaded state,
/// never wait on its reads. Order: `loading`, then `state`, then the
/// cache's handle map.
final class VaultCache: Sendable {
    /// One handle per vault in memory: a handle is replaced only after
    /// eviction retired it, so one lock always guards one vault's positions.
    private let handles = Locked<[StreamID: VaultHandle]>([:])
    /// Loaded vaults and when each was last used, for eviction.
    private let uses = Locked<(clock: UInt64, lastUse: [StreamID: UInt64])>((0, [:]))
    private let limit: Int
    /// Whether eviction may drop a loaded vault: no write waiting for its
    /// acknowledgement (its state holds the reserved positions), nothing
    /// of it still queued (reloading from disk would miss it).
    private let isIdle: @Sendable (StreamID, VaultState) -> Bool

    init(limit: Int, isIdle: @escaping @Sendable (StreamID, VaultState) -> Bool) {
        self.limit = limit
        self.isIdle = isIdle
    }

    /// Vaults counted as in use (loaded, or touched since their eviction).
    var loadedCount: Int { uses.withLock { $0.lastUse.count } }
    /// Live handles.
    var handleCount: Int { handles.withLock { $0.count } }

    /// The live handle of a vault, created if needed.
    func handle(for pseudonym: StreamID) -> VaultHandle {
        handles.withLock { h in
            if let handle = h[pseudonym] { return handle }
            let handle = VaultHandle(pseudonym: pseudonym)
            h[pseudonym] = handle
            return handle
        }
    }

    /// Runs `body` on the vault's state under its lock, loading the vault
    /// first (outside that lock) with `load` if it is not in memory.
    /// `exists` says whether the vault has a stream at all; a vault whose
    /// creation is not yet acknowledged is reported as `missing`.
    func withState<R>(
        _ pseudonym: StreamID, missing: @autoclosure () -> Error, exists: () -> Bool, load: () async throws -> VaultState,
        _ body: (inout VaultState) throws -> R
    ) async throws -> R {
        defer { noteUse(of: pseudonym) }
        while true {
            let handle = handle(for: pseudonym)
            if case .done(let result) = try attempt(handle, missing: missing(), body) { return result }
            if handle.retired.load(ordering: .relaxed) { continue }
            // Not in memory: load once, outside the state lock.
            try await handle.loading.withGate {
                if handle.retired.load(ordering: .relaxed) || handle.state.withLock({ $0 != nil }) { return }
                guard exists() else { throw missing() }
                // No write reaches a vault that is not in memory (every
                // write loads it first), so the stream cannot move while it
                // is read; a creation sets the state itself, and a load that
                // finds it set drops what it read. A handle retired meanwhile
                // keeps its state unreachable: the next turn takes the new one.
                let state = try await load()
                handle.state.withLock { if $0 == nil { $0 = state } }
            }
        }
    }

    /// Runs `body` on the state of a vault that may not exist yet (its
    /// creation): `body` sees nil for a vault not in memory and sets it.
    /// Under the state lock only: a load running meanwhile (which found
    /// no state) installs what it read only if the state is still nil.
    func withCreation<R>(_ pseudonym: StreamID, _ body: (inout VaultState?) throws -> R) rethrows -> R {
        while true {
            let handle = handle(for: pseudonym)
            let result = try handle.state.withLock { state -> Attempt<R> in
                if handle.retired.load(ordering: .relaxed) { return .retry }
                return .done(try body(&state))
            }
            if case .done(let r) = result { return r }
        }
    }

    /// Where a vault's creation stands in memory.
    enum CreationStatus {
        /// Not in memory: never created here, or evicted.
        case absent
        /// Queued; the ticket completes when its sync does (or fails).
        case pending(AppendTicket)
        case acknowledged
    }

    /// Where the creation of the vault of `pseudonym` stands in memory.
    func creationStatus(of pseudonym: StreamID) -> CreationStatus {
        withCreation(pseudonym) { state in
            guard let state else { return .absent }
            if state.isAcknowledged { return .acknowledged }
            return state.creationTicket.map { .pending($0) } ?? .absent
        }
    }

    /// Marks a vault's creation acknowledged (its ticket completed
    /// successfully); called by the creator and by attempts that waited.
    func acknowledgeCreation(of pseudonym: StreamID) {
        withCreation(pseudonym) { state in
            state?.isAcknowledged = true
            state?.creationTicket = nil
        }
    }

    private func attempt<R>(
        _ handle: VaultHandle, missing: @autoclosure () -> Error, _ body: (inout VaultState) throws -> R
    ) throws -> Attempt<R> {
        try handle.state.withLock { (state: inout VaultState?) throws -> Attempt<R> in
            if handle.retired.load(ordering: .relaxed) { return .retry }
            guard state != nil else { return .retry }
            guard state!.isAcknowledged else { throw missing() }
            return .done(try body(&state!))
        }
    }

    /// Records a use of a vault and, past the limit, drops the least
    /// recently used idle vaults (`isIdle` says which may go: no write
    /// waiting for its acknowledgement, nothing queued). Called outside
    /// every vault lock.
    func noteUse(of pseudonym: StreamID) {
        let victims: [(key: StreamID, value: UInt64)] = uses.withLock { u in
            u.clock += 1
            u.lastUse[pseudonym] = u.clock
            guard u.lastUse.count > limit else { return [] }
            // Evict down to 7/8 of the limit at once, so the O(n) choice of
            // victims is paid rarely.
            let keep = limit - limit / 8
            return Array(u.lastUse.sorted { $0.value < $1.value }.prefix(u.lastUse.count - keep))
        }
        // A victim's use is forgotten only if it is still the one chosen: a
        // use noted meanwhile (its vault reloaded on a new handle) stays.
        func forget(_ victim: (key: StreamID, value: UInt64)) {
            uses.withLock { u in
                if u.lastUse[victim.key] == victim.value { u.lastUse[victim.key] = nil }
            }
        }
        for victim in victims where victim.key != pseudonym {
            // No handle: another caller evicted the vault after this use was
            // noted; nothing is in memory, so only the use goes.
            guard let handle = handles.withLock({ $0[victim.key] }) else {
                forget(victim)
                continue
            }
            // Not under `loading`: a load running meanwhile installs its
            // state in a retired handle, which no caller reaches again.
            let evicted = handle.state.withLock { state -> Bool in
                if let v = state, !isIdle(victim.key, v) { return false }
                state = nil
                // Retire the handle too, so the map does not grow with
                // every vault ever touched.
                handle.retired.store(true, ordering: .relaxed)
                handles.withLock { if $0[victim.key] === handle { $0[victim.key] = nil } }
                return true
            }
            if evicted { forget(victim) }
        }
    }

    /// Drops one vault from memory now (a destroyed vault: its keys are
    /// wiped as its state goes), whatever is pending on it.
    func drop(_ pseudonym: StreamID) {
        guard let handle = handles.withLock({ $0[pseudonym] }) else { return }
        handle.state.withLock { state in
            state = nil
            handle.retired.store(true, ordering: .relaxed)
            handles.withLock { if $0[pseudonym] === handle { $0[pseudonym] = nil } }
        }
        uses.withLock { _ = $0.lastUse.removeValue(forKey: pseudonym) }
    }

    /// Drops every vault from memory (their keys are wiped as they go).
    func dropAll() {
        let all = handles.withLock { Array($0.values) }
        for h in all { h.state.withLock { $0 = nil } }
    }
}

/// One try at a vault's lock: done, or retry on the vault's new handle.
enum Attempt<R> {
    case done(R)
    case retry
}
