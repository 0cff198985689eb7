import Foundation
import VaultCrypto
import VaultStorage
import VaultSync

/// What the store's lifecycle stream says of one vault: closed (and when),
/// reopened, or destroyed (its tombstone and the key slots of its keys:
/// the vault key's, then its rotated wrapping keys').
enum LifecycleRecord: Hashable, Sendable {
    case closed(vault: StreamID, at: Date, reason: ClosureReason)
    case reopened(vault: StreamID)
    case destroyed(vault: StreamID, keySlots: [KeySlot], tombstone: DestroyedVault)

    var vault: StreamID {
        switch self {
        case .closed(let v, _, _), .reopened(let v), .destroyed(let v, _, _): v
        }
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        switch self {
        case .closed(let vault, let at, let reason):
            w.write(UInt8(1))
            w.write(bytes: vault.bytes)
            w.write(date: at)
            w.write(Self.code(reason))
        case .reopened(let vault):
            w.write(UInt8(2))
            w.write(bytes: vault.bytes)
        case .destroyed(let vault, let slots, let t):
            w.write(UInt8(3))
            w.write(bytes: vault.bytes)
            w.writeVarint(UInt64(slots.count))
            for slot in slots { w.write(slot.number) }
            w.write(string: t.vaultID)
            w.write(date: t.createdAt)
            w.write(date: t.closedAt)
            w.write(Self.code(t.reason))
            w.write(date: t.destroyedAt)
            w.write(principal: t.destroyedBy)
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> LifecycleRecord {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let tag: UInt8 = try r.read()
            let vault = StreamID(bytes: try r.read(count: StreamID.byteCount))
            let record: LifecycleRecord
            switch tag {
            case 1:
                record = .closed(vault: vault, at: try r.readDate(), reason: try reason(try r.read()))
            case 2:
                record = .reopened(vault: vault)
            case 3:
                let count = try r.readVarint()
                guard count >= 1, count <= UInt64(r.remaining / 8) else { throw ByteReader.Malformed() }
                let slots = try (0..<count).map { _ in KeySlot(try r.read(UInt64.self)) }
                let vaultID = try r.readString(limit: Limits.publicVaultID)
                guard vaultID.utf8.count == Limits.publicVaultID, vaultID.allSatisfy(\.isHexDigit) else { throw ByteReader.Malformed() }
                let createdAt = try r.readDate()
                let closedAt = try r.readDate()
                let why = try reason(try r.read())
                let destroyedAt = try r.readDate()
                let by = try r.readPrincipal()
                record = .destroyed(
                    vault: vault, keySlots: slots,
                    tombstone: DestroyedVault(
                        vaultID: vaultID, createdAt: createdAt, closedAt: closedAt, reason: why, destroyedAt: destroyedAt, destroyedBy: by))
            default:
                throw ByteReader.Malformed()
            }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return record
        }
    }

    private static func code(_ reason: ClosureReason) -> UInt8 { reason == .patientRequest ? 1 : 2 }

    private static func reason(_ code: UInt8) throws -> ClosureReason {
        switch code {
        case 1: .patientRequest
        case 2: .death
        default: throw ByteReader.Malformed()
        }
    }

    /// The record as a payload of the lifecycle stream, sealed under the
    /// store's lifecycle key.
    func sealed(keys: StoreKeys) throws -> EngineRecord {
        let header = RecordHeader(kind: .lifecycle, sequence: 0, document: nil, version: 0, keySlot: nil)
        return EngineRecord(
            stream: keys.lifecycleStream,
            payload: try RecordCodec.seal(header: header, body: encoded(), key: keys.lifecycle, stream: keys.lifecycleStream))
    }
}

/// The store's index of closed and destroyed vaults, rebuilt at open from
/// its lifecycle stream (one record per closure, reopening and
/// destruction, so O(those) at open, never a walk of every vault), and
/// kept up to date as those operations are acknowledged. It is what
/// ``VaultStore/destroyExpiredVaults(at:)`` walks, and what refuses every
/// call on a destroyed vault.
final class VaultLifecycleIndex: Sendable {
    private let state = Locked<(closed: [StreamID: Date], destroyed: [StreamID: DestroyedVault])>(([:], [:]))
    /// Vaults whose destruction is queued: kept here, not only in the
    /// vault's loaded state, which an eviction between the destruction's
    /// acknowledgement and ``apply(_:)`` would drop (a second destruction
    /// would then reload the vault and go through).
    private let beingDestroyed = Locked<Set<StreamID>>([])

    /// Notes that `vault`'s destruction is queued.
    func markBeingDestroyed(_ vault: StreamID) { _ = beingDestroyed.withLock { $0.insert(vault) } }

    /// Whether `vault`'s destruction is queued or done.
    func isBeingDestroyed(_ vault: StreamID) -> Bool { beingDestroyed.withLock { $0.contains(vault) } }

    /// Applies an acknowledged record.
    func apply(_ record: LifecycleRecord) {
        state.withLock { s in
            switch record {
            case .closed(let vault, let at, _): s.closed[vault] = at
            case .reopened(let vault): s.closed[vault] = nil
            case .destroyed(let vault, _, let tombstone):
                s.closed[vault] = nil
                s.destroyed[vault] = tombstone
            }
        }
    }

    /// The tombstone of a destroyed vault, or nil.
    func tombstone(of vault: StreamID) -> DestroyedVault? { state.withLock { $0.destroyed[vault] } }

    /// The closed (not destroyed) vaults and when each was closed.
    var closed: [(vault: StreamID, closedAt: Date)] { state.withLock { $0.closed.map { ($0.key, $0.value) } } }

    /// Every destroyed vault's tombstone.
    var destroyed: [DestroyedVault] { state.withLock { Array($0.destroyed.values) } }

    /// How many vaults were destroyed.
    var destroyedCount: Int { state.withLock { $0.destroyed.count } }

    /// Reads the lifecycle stream (oldest first) and finishes the
    /// destructions a crash cut short: a destroyed vault whose key slot
    /// still reads has it destroyed now.
    /// - Throws: ``PatientVaultError/Code/corrupted`` for a record that does not open.
    static func load(engine: any StorageEngine, keys: StoreKeys) async throws -> VaultLifecycleIndex {
        let index = VaultLifecycleIndex()
        var records: [StoredRecord] = []
        try await engine.visitNewestFirst(keys.lifecycleStream) { records.append($0); return true }
        let broken = PatientVaultError(.corrupted, "a vault lifecycle record is damaged")
        var slots: [KeySlot] = []
        for record in records.reversed() {
            let body = try RecordCodec.openStoreRecord(record, kind: .lifecycle, key: keys.lifecycle, stream: keys.lifecycleStream, broken: broken)
            let decoded: LifecycleRecord
            do { decoded = try LifecycleRecord.decode(body) } catch { throw broken }
            index.apply(decoded)
            if case .destroyed(_, let destroyed, _) = decoded { slots += destroyed }
        }
        try await engine.keySlots.finishDestruction(of: slots)
        return index
    }
}
