import Foundation
import PatientVault
import VaultStorage
import VaultSync

/// Storage in memory for tests: a store opened on it
/// (`VaultStore.openInMemory(_:key:configuration:)`, or
/// `withTemporaryStore(storage: .memory)`) touches no disk.
///
/// ```swift
/// let memory = MemoryEngine()
/// let key = try MasterKey.generate()
/// let store = try await VaultStore.openInMemory(memory, key: key)
/// // ... use it, close it, open it again on the same memory:
/// try await store.close()
/// let again = try await VaultStore.openInMemory(memory, key: key)
/// ```
///
/// It keeps what the store's behaviour rests on: atomic groups (a group
/// is appended whole under one lock, or not at all), one order of appends
/// acknowledged in that order, streams read newest first, records named
/// by references only it made, key slots destroyed for good (their value
/// is dropped from memory), a record size limit, one open store at a time
/// (a second open is `storeLocked`), and, if given a capacity, a full
/// disk with its audit reserve. Records stay sealed by the store as on disk
/// (the same encryption and bindings), and a reopening with another key
/// fails at open with `wrongMasterKey`, as on disk (the store's signing-key
/// record does not open).
///
/// What it cannot keep: anything across the process's end (it lives as
/// long as this value), crash and power-loss behaviour (every append is
/// "durable" at once), damage to files, and ``StoreFaults`` (which act on
/// files: an open with them is refused; a capacity gives a full disk).
/// A store in memory has no header and no files: `rotateMasterKey` and
/// `backup(to:)` answer `invalidArgument` there.
public final class MemoryEngine: Sendable {
    fileprivate struct Record {
        var stream: StreamID?
        var payload: [UInt8]
        /// Set once compacted: its leaf hash (`payload` is then the kept
        /// prefix alone).
        var leaf: [UInt8]? = nil
    }

    fileprivate enum Slot {
        case reserved
        case live([UInt8])
        case destroyed
    }

    fileprivate struct Contents {
        /// Every record, in append order; a record's sequence number is its index + 1.
        var records: [Record] = []
        /// Each stream's records, oldest first, as indexes into `records`.
        var streams: [StreamID: [Int]] = [:]
        var slots: [Slot] = []
        var bytes: UInt64 = 0
        var isOpen = false
        /// Counts opens: a write checks, under the lock it writes under,
        /// that its engine is the open one (a write that passed a check of
        /// `closed` must not land in the memory of a later open).
        var generation: UInt64 = 0
    }

    fileprivate let contents = Locked(Contents())
    /// The Merkle tree over its records, kept with them.
    fileprivate let merkle = MerkleLog(empty: MerkleHashArray())
    /// Names it in its stores' `location` (`memory:patientvault-<UUID>`).
    fileprivate let id = UUID()
    /// The most payload bytes it holds (nil: no limit).
    public let capacity: UInt64?

    /// An empty memory.
    /// - Parameter capacity: the most payload bytes it may hold, to test a
    ///   full disk; nil (the default) for no limit. The store's audit
    ///   reserve (`Configuration.auditReserve`: 64 KiB with
    ///   `Configuration.testing`; by default an eighth of the segment size,
    ///   at most 512 KiB) counts
    ///   against it as on disk: a write that would leave less than the
    ///   reserve free is `diskFull`, and a capacity below the reserve and
    ///   the store's first records makes `openInMemory` answer `diskFull`.
    ///   `withTemporaryStore(storage: .memory)` has no capacity: a test of a
    ///   full memory opens its own (`VaultStore.openInMemory(MemoryEngine(capacity: 1 << 20), key: key)`).
    public init(capacity: UInt64? = nil) {
        self.capacity = capacity
    }

    /// The number of records it holds.
    public var recordCount: Int { contents.withLock { $0.records.count } }

    /// Opens the engine on this memory (one at a time).
    func open(_ options: StorageOptions) throws -> any StorageEngine {
        try contents.withLock { c in
            if c.isOpen { throw StorageError(.locked, "this memory engine is already open") }
            c.isOpen = true
            c.generation += 1
            return OpenMemoryEngine(memory: self, options: options, generation: c.generation)
        }
    }
}

/// An open ``MemoryEngine``: the `StorageEngine` a store uses.
private final class OpenMemoryEngine: StorageEngine, KeySlotStore {
    let memory: MemoryEngine
    let options: StorageOptions
    let closed = Locked(false)
    /// This open's number (`Contents.generation`).
    let generation: UInt64

    init(memory: MemoryEngine, options: StorageOptions, generation: UInt64) {
        self.memory = memory
        self.options = options
        self.generation = generation
    }

    deinit {
        if !closed.withLock({ $0 }) { releaseMemory() }
    }

    private func ensureOpen() throws {
        if closed.withLock({ $0 }) { throw StorageError(.closed, "the store is closed") }
    }

    /// Runs a write under the memory's lock, if this engine is still the
    /// open one: checked under that lock, so a write racing `close()` (and
    /// a later open of the same memory) never lands.
    private func writing<R>(_ body: (inout MemoryEngine.Contents) throws -> R) throws -> R {
        try memory.contents.withLock { c in
            guard c.isOpen, c.generation == generation else { throw StorageError(.closed, "the store is closed") }
            return try body(&c)
        }
    }

    private func releaseMemory() {
        memory.contents.withLock { c in if c.generation == generation { c.isOpen = false } }
    }

    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool
    ) throws -> AppendTicket {
        try ensureOpen()
        var size: UInt64 = 0
        for r in records {
            guard r.payload.count <= options.maximumRecordSize else {
                throw StorageError(.tooLarge, "record of \(r.payload.count) bytes exceeds the maximum")
            }
            size += UInt64(r.payload.count)
        }
        let references = try writing { c -> [RecordReference] in
            for (slot, _) in keySlotWrites {
                guard slot.number >= 1, slot.number <= UInt64(c.slots.count) else {
                    throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
                }
            }
            if let capacity = memory.capacity {
                let room = size + (mayUseReserve ? 0 : options.reserve)
                guard c.bytes + room <= capacity else { throw StorageError(.diskFull, "the memory engine is full") }
            }
            for (slot, value) in keySlotWrites { c.slots[Int(slot.number - 1)] = .live(value) }
            var references: [RecordReference] = []
            references.reserveCapacity(records.count)
            var leaves: [UInt8] = []
            for r in records {
                let index = c.records.count
                leaves += MerkleLog.leafHash(stream: r.stream, digest: r.digest)
                c.records.append(MemoryEngine.Record(stream: r.stream, payload: r.payload))
                if let stream = r.stream { c.streams[stream, default: []].append(index) }
                references.append(RecordReference(w0: UInt64(index + 1), w1: 0, w2: 0))
            }
            c.bytes += size
            // In memory, under the same lock: appending cannot fail.
            try memory.merkle.append(leafHashes: leaves)
            return references
        }
        let ticket = AppendTicket()
        ticket.complete(.success(references))
        return ticket
    }

    private func record(at index: Int, in c: MemoryEngine.Contents) -> StoredRecord {
        let r = c.records[index]
        return StoredRecord(
            reference: RecordReference(w0: UInt64(index + 1), w1: 0, w2: 0), sequence: UInt64(index + 1), stream: r.stream,
            payload: r.payload, compactedLeaf: r.leaf)
    }

    /// The payload is dropped from memory but for its prefix; its leaf
    /// hash stays. Atomic per call, under the one lock.
    func compact(_ references: [RecordReference], keepingPrefix keep: Int) async throws -> CompactionResult {
        try ensureOpen()
        return try writing { c in
            var result = CompactionResult()
            for reference in references {
                guard reference.w1 == 0, reference.w2 == 0, reference.w0 >= 1, reference.w0 <= UInt64(c.records.count) else {
                    throw StorageError(.invalidLocation, "no such record")
                }
                let index = Int(reference.w0 - 1)
                var r = c.records[index]
                if r.leaf != nil {
                    result.alreadyCompacted += 1
                    continue
                }
                guard r.payload.count >= 40 + keep else {
                    result.tooSmall += 1
                    continue
                }
                r.leaf = try memory.merkle.leaf(UInt64(index))
                result.bytesRemoved += UInt64(r.payload.count - keep)
                c.bytes -= UInt64(r.payload.count - keep)
                r.payload = Array(r.payload.prefix(keep))
                c.records[index] = r
                result.compacted += 1
            }
            return result
        }
    }

    func read(_ reference: RecordReference) async throws -> StoredRecord {
        try ensureOpen()
        return try memory.contents.withLock { c in
            guard reference.w1 == 0, reference.w2 == 0, reference.w0 >= 1, reference.w0 <= UInt64(c.records.count) else {
                throw StorageError(.invalidLocation, "no such record")
            }
            return record(at: Int(reference.w0 - 1), in: c)
        }
    }

    func contains(_ stream: StreamID) -> Bool {
        memory.contents.withLock { $0.streams[stream] != nil }
    }

    func visitNewestFirst(_ stream: StreamID, _ visit: (StoredRecord) throws -> Bool) async throws {
        try ensureOpen()
        let records = memory.contents.withLock { c in (c.streams[stream] ?? []).reversed().map { record(at: $0, in: c) } }
        for r in records where try !visit(r) { return }
    }

    var streamCount: Int { memory.contents.withLock { $0.streams.count } }

    func forEachStream(_ body: (StreamID) -> Void) {
        memory.contents.withLock { c in for stream in c.streams.keys { body(stream) } }
    }

    var endCursor: LogCursor { memory.contents.withLock { LogCursor(w0: UInt64($0.records.count), w1: 0) } }
    var merkleTree: MerkleLog { memory.merkle }
    /// Everything appended is acknowledged at once, so "durable" here.
    var durableRecordCount: UInt64 { memory.merkle.size }

    func scan(from cursor: LogCursor?, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) async throws {
        try ensureOpen()
        let (start, end) = memory.contents.withLock { c in (Int(min(cursor?.w0 ?? 0, UInt64(c.records.count))), c.records.count) }
        for index in start..<end {
            let r = memory.contents.withLock { c in wanted(c.records[index].stream) ? record(at: index, in: c) : nil }
            if let r, try !visit(r) { return }
        }
    }

    func visitEveryRecord(_ visit: (StoredRecord) throws -> Bool) async throws {
        try await scan(from: nil, only: { _ in true }, visit)
    }

    func reserveKeySlot() throws -> KeySlot {
        try ensureOpen()
        return try writing { c in
            c.slots.append(.reserved)
            return KeySlot(UInt64(c.slots.count))
        }
    }

    func readKeySlot(_ slot: KeySlot) async throws -> [UInt8] {
        try ensureOpen()
        return try memory.contents.withLock { c in
            guard slot.number >= 1, slot.number <= UInt64(c.slots.count) else {
                throw StorageError(.keySlotEmpty, "key slot \(slot.number) is empty")
            }
            switch c.slots[Int(slot.number - 1)] {
            case .reserved: throw StorageError(.keySlotEmpty, "key slot \(slot.number) is empty")
            case .destroyed: throw StorageError(.keySlotDestroyed, "key slot \(slot.number) was destroyed")
            case .live(let value): return value
            }
        }
    }

    func destroyKeySlot(_ slot: KeySlot) async throws {
        try ensureOpen()
        try writing { c in
            guard slot.number >= 1, slot.number <= UInt64(c.slots.count) else {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            c.slots[Int(slot.number - 1)] = .destroyed
        }
    }

    /// Its own slots: a destroyed one's value is dropped from memory.
    var keySlots: any KeySlotStore { self }

    func close() async throws {
        // A second close does nothing, as the log engine's.
        let wasOpen = closed.withLock { c in
            defer { c = true }
            return !c
        }
        if wasOpen { releaseMemory() }
    }
}

extension VaultStore {
    /// Opens a store on `memory` (see ``MemoryEngine``): what a previous
    /// store on the same memory wrote is there, as after a clean restart.
    /// - Parameters:
    ///   - memory: where the records are kept.
    ///   - key: the master key; the same for every open of one memory.
    ///   - configuration: the store's settings; `Configuration/testing` by
    ///     default (its file settings change nothing here, but for the
    ///     segment size, which sets the default audit reserve).
    /// - Throws: `PatientVaultError` `storeLocked` if a store is open
    ///   on `memory`, `invalidArgument` for a bad
    ///   configuration, or one with ``StoreFaults`` injected: they act on
    ///   files, which a store in memory has none of (a full disk in memory
    ///   is ``MemoryEngine/init(capacity:)``'s); `diskFull` if `memory`'s
    ///   capacity cannot hold the reserve and the new store's first records.
    public static func openInMemory(
        _ memory: MemoryEngine, key: MasterKey, configuration: Configuration = .testing
    ) async throws(PatientVaultError) -> VaultStore {
        guard configuration.faults == nil else {
            throw PatientVaultError(
                .invalidArgument, "storage faults act on a store's files: a store in memory takes none (MemoryEngine(capacity:) fills up)")
        }
        return try await open(
            engine: { try memory.open($0) }, key: key, location: URL(string: "memory:patientvault-\(memory.id.uuidString)")!,
            configuration: configuration)
    }
}
