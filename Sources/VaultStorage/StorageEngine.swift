import Logging
import VaultCrypto

/// The 32-byte name of a stream of records (the layer above uses a keyed
/// pseudonym). Opaque to the engine.
package struct StreamID: Hashable, Sendable, Comparable {
    // Four words rather than an array: 32 inline bytes, cheap to hash,
    // no allocation per index entry.
    package let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// Byte size of a stream id.
    package static let byteCount = 32

    /// A stream id from exactly 32 bytes.
    package init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "a StreamID is 32 bytes")
        let a = Array(bytes)
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(a[i * 8 + k]) << (8 * UInt64(k)) }
            return v
        }
        w0 = word(0); w1 = word(1); w2 = word(2); w3 = word(3)
    }

    /// A stream id from its four little-endian words.
    package init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// Writes the 32 bytes at the start of `out`: no allocation.
    package func write(into out: UnsafeMutableRawBufferPointer) {
        out.storeBytes(of: w0.littleEndian, toByteOffset: 0, as: UInt64.self)
        out.storeBytes(of: w1.littleEndian, toByteOffset: 8, as: UInt64.self)
        out.storeBytes(of: w2.littleEndian, toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: w3.littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// The 32 bytes.
    package var bytes: [UInt8] {
        var w = ByteWriter(capacity: 32)
        w.write(w0); w.write(w1); w.write(w2); w.write(w3)
        return w.bytes
    }

    package static func < (a: StreamID, b: StreamID) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}

/// Where a record is: its segment, byte offset and frame length.
package struct RecordLocation: Hashable, Sendable, Comparable {
    /// Segment number in the high 24 bits, offset in the low 40.
    package let raw: UInt64
    /// The whole frame's length in bytes (header and payload).
    package let frameLength: UInt32

    package init(segment: UInt32, offset: UInt64, frameLength: UInt32) {
        precondition(offset < (1 << 40) && segment < (1 << 24), "location out of range")
        raw = UInt64(segment) << 40 | offset
        self.frameLength = frameLength
    }

    package init(raw: UInt64, frameLength: UInt32) {
        self.raw = raw
        self.frameLength = frameLength
    }

    /// The segment number.
    package var segment: UInt32 { UInt32(raw >> 40) }
    /// The byte offset within the segment.
    package var offset: UInt64 { raw & ((1 << 40) - 1) }

    package static func < (a: RecordLocation, b: RecordLocation) -> Bool { a.raw < b.raw }
}

/// A position in the log: where a frame starts (or the next one will).
/// Positions order like the log itself.
package struct LogPosition: Hashable, Sendable, Comparable {
    package var segment: UInt32
    package var offset: UInt64

    package init(segment: UInt32, offset: UInt64) {
        (self.segment, self.offset) = (segment, offset)
    }

    package static func < (a: LogPosition, b: LogPosition) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }
}

/// An engine-defined reference to a stored record: what the layers above
/// keep, sealed in their own records (a document's chunk list), to read
/// the record again with ``StorageEngine/read(_:)``.
///
/// Opaque: 20 bytes that the layers above store and hand back unchanged,
/// and only the engine that made them reads. Each engine says what they
/// mean and keeps them valid for the record's life (``LogEngine`` makes
/// them from the record's log sequence number, which no rewrite of its
/// files changes, and a place to look first).
package struct RecordReference: Hashable, Sendable {
    /// Byte size of a reference as stored by the layers above.
    package static let byteCount = 20
    package let w0: UInt64, w1: UInt64, w2: UInt32

    /// A reference from its engine-defined words (engines only).
    package init(w0: UInt64, w1: UInt64, w2: UInt32) {
        (self.w0, self.w1, self.w2) = (w0, w1, w2)
    }

    /// Reads the 20 bytes written by ``write(to:)``.
    package init(from reader: inout ByteReader) throws {
        self.init(w0: try reader.read(), w1: try reader.read(), w2: try reader.read())
    }

    /// Writes the 20 bytes.
    package func write(to writer: inout ByteWriter) {
        writer.write(w0)
        writer.write(w1)
        writer.write(w2)
    }
}

/// An engine-defined place in the log, for ``StorageEngine/scan(from:only:_:)``:
/// every record appended after the cursor was taken is after it. Opaque
/// like ``RecordReference``: 16 bytes the layers above store and hand back.
package struct LogCursor: Hashable, Sendable {
    /// Byte size of a cursor as stored by the layers above.
    package static let byteCount = 16
    package let w0: UInt64, w1: UInt64

    /// A cursor from its engine-defined words (engines only).
    package init(w0: UInt64, w1: UInt64) {
        (self.w0, self.w1) = (w0, w1)
    }

    /// Reads the 16 bytes written by ``write(to:)``.
    package init(from reader: inout ByteReader) throws {
        self.init(w0: try reader.read(), w1: try reader.read())
    }

    /// Writes the 16 bytes.
    package func write(to writer: inout ByteWriter) {
        writer.write(w0)
        writer.write(w1)
    }
}

/// A record to append.
///
/// On the write path its payload's digest is computed once, here: the
/// engine's Merkle leaf and the vault anchor the domain seals both commit
/// to it (``PayloadDigest``), and no caller can pair a payload with
/// another's digest. (Reads that check a stored record hash its bytes
/// again: the loader for the anchor, recovery for the leaf.)
package struct EngineRecord: Sendable {
    /// The stream it extends, or nil for a record reached only by its
    /// reference (e.g. a chunk of large content).
    package let stream: StreamID?
    /// The bytes to store.
    package let payload: [UInt8]
    /// BLAKE2b-256 of ``payload``.
    package let digest: PayloadDigest

    package init(stream: StreamID?, payload: [UInt8]) {
        self.stream = stream
        self.payload = payload
        digest = payload.withUnsafeBytes { PayloadDigest(of: $0) }
    }
}

/// A record whose payload is sealed when the engine writes it, not when it
/// is queued: the audit entry of a read that does not wait for it (batched
/// audit), whose sealing, digest, checksum and frame then cost the
/// engine's writer, not the reader.
///
/// Its place in the log is fixed when it is queued, as any record's: the
/// order of appends is the order of calls. If `seal` throws, or returns
/// other than ``payloadCount`` bytes, the write fails as a failed `write`
/// does: the engine stops (``StorageError/Code/durabilityLost``).
package struct DeferredRecord: Sendable {
    /// The stream it extends.
    package let stream: StreamID
    /// The exact size of the payload `seal` returns.
    package let payloadCount: Int
    /// Makes the payload (once, on whatever thread the engine writes from).
    package let seal: @Sendable () throws -> [UInt8]

    package init(stream: StreamID, payloadCount: Int, seal: @escaping @Sendable () throws -> [UInt8]) {
        (self.stream, self.payloadCount, self.seal) = (stream, payloadCount, seal)
    }

    /// The payload, checked against the size announced.
    package func sealed() throws -> [UInt8] {
        let payload = try seal()
        guard payload.count == payloadCount else {
            throw StorageError(.io, "a deferred record's payload is not the size it announced")
        }
        return payload
    }
}

/// BLAKE2b-256 of a record's payload (its sealed bytes): what a record's
/// Merkle leaf commits to (``MerkleLog/leafData(stream:payload:)``) and
/// what a vault's anchor hashes under its key. 32 bytes, held inline.
package struct PayloadDigest: Sendable, Equatable {
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    /// The digest of `payload`.
    package init(of payload: UnsafeRawBufferPointer) {
        withUnsafeMutableBytes(of: &self) { out in
            BLAKE2b.hash(payload, key: nil, into: out)
        }
    }

    /// The digest of `payload`.
    package init(of payload: [UInt8]) {
        self = payload.withUnsafeBytes { PayloadDigest(of: $0) }
    }

    /// Copies the 32 bytes into `out`.
    package func write(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == 32)
        Swift.withUnsafeBytes(of: self) { out.copyMemory(from: $0) }
    }

    /// Calls `body` with the 32 bytes.
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self, body)
    }
}

/// A record as read back.
package struct StoredRecord: Sendable {
    /// How to read it again.
    package var reference: RecordReference
    /// Its place in the store-wide order of appends: increases with every
    /// record appended (not necessarily by one).
    package var sequence: UInt64
    /// Its stream, if any.
    package var stream: StreamID?
    /// The stored bytes; for a compacted record, the prefix compaction
    /// kept (``StorageEngine/compact(_:keepingPrefix:)``).
    package var payload: [UInt8]
    /// nil, unless the record was compacted: then its Merkle leaf hash,
    /// which the compacted record keeps in place of the payload it hashed.
    package var compactedLeaf: [UInt8]?

    /// Whether compaction removed the record's payload.
    package var isCompacted: Bool { compactedLeaf != nil }

    package init(reference: RecordReference, sequence: UInt64, stream: StreamID?, payload: [UInt8], compactedLeaf: [UInt8]? = nil) {
        (self.reference, self.sequence, self.stream, self.payload, self.compactedLeaf) = (reference, sequence, stream, payload, compactedLeaf)
    }

    /// The record's Merkle leaf hash: of its payload, or, compacted, the
    /// one it keeps (which a verification compares with the tree's).
    package var leafHash: [UInt8] {
        compactedLeaf ?? payload.withUnsafeBytes { MerkleLog.leafHash(stream: stream, payload: $0) }
    }
}

/// A slot of the key file: a small mutable cell that can be destroyed in
/// place, unlike a record of the append-only log.
package struct KeySlot: Hashable, Sendable, Comparable {
    /// Slot number, from 1.
    package let number: UInt64
    package init(_ number: UInt64) { self.number = number }
    package static func < (a: KeySlot, b: KeySlot) -> Bool { a.number < b.number }
}

/// How long an append waits before it is acknowledged.
package enum Durability: Sendable, Hashable {
    /// Acknowledged once `fdatasync` returned: survives power loss.
    case durable
    /// Acknowledged once written to the operating system: survives a crash
    /// of the process, not of the machine. Made durable by the next durable
    /// append, a segment switch or `close()`.
    case buffered
}

/// The largest atomic group an engine takes (``StorageEngine/groupCapacity``):
/// a caller that can tell ahead (an import, whose content is written before
/// its group) refuses what cannot fit before it writes anything.
package struct GroupCapacity: Sendable, Equatable {
    /// Key slots one group may write.
    package var keySlotWrites: Int
    /// Bytes of one group: its payloads, each with ``perRecordOverhead``,
    /// and its key slots' manifest (``manifestBytesPerSlot`` each).
    package var bytes: UInt64
    /// What the engine adds to each record's payload (a frame's header and padding).
    package var perRecordOverhead: Int
    /// What each key slot a group writes adds to it.
    package var manifestBytesPerSlot: Int

    /// No bound but memory's (an engine whose groups are rows of one transaction).
    package static let unbounded = GroupCapacity(keySlotWrites: .max, bytes: .max, perRecordOverhead: 0, manifestBytesPerSlot: 0)

    package init(keySlotWrites: Int, bytes: UInt64, perRecordOverhead: Int, manifestBytesPerSlot: Int) {
        (self.keySlotWrites, self.bytes, self.perRecordOverhead, self.manifestBytesPerSlot) =
            (keySlotWrites, bytes, perRecordOverhead, manifestBytesPerSlot)
    }

    /// Whether a group of `payloads` (their sizes, each at least 0) and
    /// `keySlotWrites` slots fits. A sum past `UInt64.max` does not (sizes
    /// come from a file a caller hands over).
    package func fits(payloads: [Int], keySlotWrites slots: Int) -> Bool {
        guard slots >= 0, slots <= keySlotWrites else { return false }
        var total = UInt64(slots).multipliedReportingOverflow(by: UInt64(manifestBytesPerSlot))
        guard !total.overflow else { return false }
        // The manifest's record: its slots' bytes counted above, its frame here.
        var records = payloads
        if slots > 0 { records.append(0) }
        for p in records {
            guard p >= 0 else { return false }
            total = total.partialValue.addingReportingOverflow(UInt64(p) + UInt64(perRecordOverhead))
            if total.overflow || total.partialValue > bytes { return false }
        }
        return total.partialValue <= bytes
    }
}

/// What the layers above ask of any engine they open.
package struct StorageOptions: Sendable {
    /// Bytes only groups appended with `mayUseReserve` may use (see
    /// ``StorageEngine/append(_:keySlotWrites:durability:mayUseReserve:)``).
    package var reserve: UInt64
    /// Largest payload of one record; a larger one is `tooLarge`.
    package var maximumRecordSize: Int
    /// The MAC an engine puts on what it keeps outside the process (frame
    /// headers, checkpoints), keyed by the store; nil: nothing is
    /// authenticated (engine tests only).
    package var authenticator: (any LogAuthenticator)?
    /// Where the engine logs (debug and trace only; never record content).
    package var logger: Logger

    package init(reserve: UInt64, maximumRecordSize: Int, authenticator: (any LogAuthenticator)?, logger: Logger) {
        self.reserve = reserve
        self.maximumRecordSize = maximumRecordSize
        self.authenticator = authenticator
        self.logger = logger
    }
}

/// Where a store keeps its key slots: small cells, each written once (a
/// wrapped key) and destroyable, unlike records of the append-only log.
///
/// Its own protocol, because "a destroyed value cannot be read back" is a
/// promise only some stores can make: a server with MVCC, a write-ahead
/// log and backups cannot. A deployment may keep slots in a local file or
/// an HSM while its records live elsewhere. Slots are written through
/// ``StorageEngine/append(_:keySlotWrites:durability:mayUseReserve:)``,
/// durable before the group that names them is acknowledged.
package protocol KeySlotStore: AnyObject, Sendable {
    /// Reserves a new, never used key slot.
    /// - Throws: ``StorageError/Code/diskFull``.
    func reserveKeySlot() throws -> KeySlot

    /// Reads the value of a key slot.
    /// - Throws: ``StorageError/Code/keySlotDestroyed``,
    ///   ``StorageError/Code/keySlotEmpty``, ``StorageError/Code/corrupted``.
    func readKeySlot(_ slot: KeySlot) async throws -> [UInt8]

    /// Overwrites a key slot with a tombstone, durably: its former value
    /// cannot be read back through this store (each store says what it
    /// promises beyond that).
    func destroyKeySlot(_ slot: KeySlot) async throws

    /// Destroys several key slots (a document's versions, a vault's keys)
    /// as ``destroyKeySlot(_:)`` does each; a store may do it at once
    /// (``LogEngine``: at most one journal-key rotation for all,
    /// acknowledged once the journal's new key is synced and the
    /// tombstones written, which the committer syncs within 1 ms).
    func destroyKeySlots(_ slots: [KeySlot]) async throws

}

extension KeySlotStore {
    /// One by one.
    package func destroyKeySlots(_ slots: [KeySlot]) async throws {
        for slot in slots { try await destroyKeySlot(slot) }
    }

    /// Destroys those of `slots` that still read (a destruction a crash or
    /// a failed sync cut short): one read per slot, one destruction of all
    /// those missing one.
    package func finishDestruction(of slots: [KeySlot]) async throws {
        var live: [KeySlot] = []
        for slot in slots {
            do {
                _ = try await readKeySlot(slot)
            } catch let error as StorageError where error.code == .keySlotDestroyed {
                continue
            }
            live.append(slot)
        }
        if !live.isEmpty { try await destroyKeySlots(live) }
    }
}

/// What ``StorageEngine/compact(_:keepingPrefix:)`` did.
package struct CompactionResult: Sendable, Equatable {
    /// Records whose payload this call removed.
    package var compacted = 0
    /// Records found compacted already.
    package var alreadyCompacted = 0
    /// Records too small to compact, left whole.
    package var tooSmall = 0
    /// Payload bytes removed (replaced by zeros, or by a hole in the file
    /// where the file system supports it).
    package var bytesRemoved: UInt64 = 0

    package init() {}

    package static func += (a: inout CompactionResult, b: CompactionResult) {
        a.compacted += b.compacted
        a.alreadyCompacted += b.alreadyCompacted
        a.tooSmall += b.tooSmall
        a.bytesRemoved += b.bytesRemoved
    }
}

/// The storage contract of the layers above: an append-only log of
/// records grouped in streams, and, through ``keySlots``, destroyable key
/// slots.
///
/// Reads are `async`, so that an engine over the network suspends instead
/// of blocking a thread of the cooperative pool; appends only queue (and
/// return a ticket to wait on).
///
/// The engine knows nothing of what records mean, and the layers above
/// nothing of where the engine keeps them: they hold only opaque
/// ``RecordReference``s and ``LogCursor``s, never a file, segment or
/// offset. ``LogEngine`` keeps records in local files; `MemoryEngine`
/// (PatientVaultTesting) in memory.
package protocol StorageEngine: AnyObject, Sendable {
    /// The largest atomic group this engine takes (``GroupCapacity``); by
    /// default ``GroupCapacity/unbounded``.
    var groupCapacity: GroupCapacity { get }

    /// Queues `records` (one atomic group: after a crash, all or none of them
    /// are present) and `keySlotWrites`, in call order, and returns at once.
    /// Key slots become durable with the records: after a crash, a group
    /// present has its slots (``LogEngine`` carries them in the group's
    /// manifest and writes them back at recovery), a group absent may have
    /// left slots that nothing names.
    ///
    /// Space: a group with `mayUseReserve` false leaves the engine's
    /// reserve of space ahead of it, or fails with
    /// ``StorageError/Code/diskFull``; a group with `mayUseReserve` true
    /// (audit entries of reads, listings and refusals) may use that
    /// reserve, so that on a full disk reads still leave their entries.
    ///
    /// The returned ticket's ``AppendTicket/wait()`` returns the records'
    /// references once they are acknowledged under `durability`. Groups
    /// are acknowledged in the order they were queued.
    /// - Throws: ``StorageError/Code/diskFull`` (nothing queued; the
    ///   engine keeps working and a later append may succeed),
    ///   ``StorageError/Code/durabilityLost``, ``StorageError/Code/closed``,
    ///   ``StorageError/Code/tooLarge``.
    func append(
        _ records: [EngineRecord],
        keySlotWrites: [(KeySlot, [UInt8])],
        durability: Durability,
        mayUseReserve: Bool
    ) throws -> AppendTicket

    /// Queues a group as ``append(_:keySlotWrites:durability:mayUseReserve:)``
    /// does and, right behind it in the same step, the destruction of the
    /// key slots `destroying` (an erasure's): their tombstones are written
    /// only once every group queued before them is durable (the erasure's
    /// record before its keys go), and the second ticket completes once
    /// they are durable. Nothing is queued if it throws. An engine that
    /// cannot queue a destruction returns nil for it (the default): the
    /// caller then waits for the group and calls
    /// ``KeySlotStore/destroyKeySlots(_:)``.
    func append(
        _ records: [EngineRecord],
        keySlotWrites: [(KeySlot, [UInt8])],
        durability: Durability,
        mayUseReserve: Bool,
        thenDestroying destroying: [KeySlot]
    ) throws -> (group: AppendTicket, destruction: AppendTicket?)

    /// Queues a group of one record sealed later
    /// (``DeferredRecord``), as ``append(_:keySlotWrites:durability:mayUseReserve:)``
    /// queues `[record]`. An engine without a writer of its own seals it
    /// now (the default).
    func append(_ record: DeferredRecord, durability: Durability, mayUseReserve: Bool) throws -> AppendTicket

    /// Reads and verifies the record `reference` names.
    /// - Throws: ``StorageError/Code/corrupted``, or
    ///   ``StorageError/Code/invalidLocation`` for a reference this engine
    ///   never made.
    func read(_ reference: RecordReference) async throws -> StoredRecord

    /// Whether `stream` has a written record. O(1).
    func contains(_ stream: StreamID) -> Bool

    /// Visits the written records of `stream`, newest first, until `visit`
    /// returns false.
    /// - Throws: ``StorageError/Code/corrupted`` if a record is damaged or
    ///   the stream's order is broken.
    func visitNewestFirst(_ stream: StreamID, _ visit: (StoredRecord) throws -> Bool) async throws

    /// The number of streams. O(1).
    var streamCount: Int { get }

    /// Calls `body` with every stream that has a written record, in no
    /// particular order. O(streams); `body` must be quick (an engine may
    /// hold a lock meanwhile) and must not call the engine.
    func forEachStream(_ body: (StreamID) -> Void)

    /// A cursor after every record appended so far (queued or written).
    var endCursor: LogCursor { get }

    /// The Merkle tree over every record (RFC 9162; ``MerkleLog``): leaf
    /// `i` is the record of sequence number `i + 1`, in append order.
    var merkleTree: MerkleLog { get }

    /// How many records are durable, from the first: the largest tree a
    /// signed checkpoint may cover.
    var durableRecordCount: UInt64 { get }

    /// Visits every written record in sequence order, the engine's own
    /// (key-slot manifests) included: the leaves of ``merkleTree``, read
    /// from the records themselves (a full verification). Until `visit`
    /// returns false.
    func visitEveryRecord(_ visit: (StoredRecord) throws -> Bool) async throws

    /// The Merkle leaf hashes of the first `count` records, recomputed from
    /// the records themselves as ``visitEveryRecord(_:)`` reads them (a
    /// full verification), in sequence order: `visit` gets consecutive
    /// batches of them (32 bytes each, concatenated), of about 8 MiB of
    /// records each. Fewer than `count` if the log holds fewer. An engine
    /// may read and hash on every core (the default implementation hashes
    /// each batch on every core while the next is read).
    /// - Throws: ``StorageError/Code/corrupted`` for a damaged record or
    ///   one out of order.
    func recomputeLeaves(count: UInt64, _ visit: ([UInt8]) throws -> Void) async throws

    /// Visits the written records appended after `cursor` (all of them
    /// for nil), in append order, until `visit` returns false; only those
    /// whose stream `wanted` accepts are read whole. Records still queued
    /// are not visited; meant for open, when nothing is being written. A
    /// wanted record that recovery kept damaged (its payload fails its
    /// checks; reading it answers `corrupted`) may be passed over, and is by
    /// the log engine, which logs it.
    /// - Throws: ``StorageError/Code/corrupted`` for damage the engine
    ///   cannot pass over (the log's own structure).
    func scan(from cursor: LogCursor?, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) async throws

    /// Where this engine's key slots are (``LogEngine``: its key file).
    var keySlots: any KeySlotStore { get }

    /// Removes for good the payloads of the durable records `references`
    /// name, but for their first `keepingPrefix` bytes, while readers and
    /// writers go on. Each record keeps its place, sequence number, stream
    /// and Merkle leaf hash, so every reference, cursor, chain, checkpoint
    /// and proof stays valid; reads return the prefix alone, with
    /// ``StoredRecord/compactedLeaf`` set.
    /// Idempotent: a record already compacted is counted and left.
    /// A record whose payload is shorter than the prefix and 40 bytes is
    /// left whole (``CompactionResult/tooSmall``).
    /// - Throws: ``StorageError/Code/invalidLocation`` for a reference this
    ///   engine never made or a record not yet durable,
    ///   ``StorageError/Code/corrupted``, ``StorageError/Code/durabilityLost``
    ///   (a failed write or sync: the engine stops; the next open finishes
    ///   the batch that was cut).
    func compact(_ references: [RecordReference], keepingPrefix: Int) async throws -> CompactionResult

    /// Reads every written record and writes back, synced, a damaged byte
    /// whose value is proven (as a read restores it in memory); lists the
    /// records damaged beyond that. The caller keeps compactions out.
    /// - Throws: ``StorageError/Code/corrupted``,
    ///   ``StorageError/Code/durabilityLost``.
    func scrub(progress: (@Sendable (Double) -> Void)?) async throws -> ScrubResult

    /// Waits for queued writes and releases the store. Further calls throw
    /// ``StorageError/Code/closed``.
    func close() async throws
}

extension StorageEngine {
    package var groupCapacity: GroupCapacity { .unbounded }

    /// The group alone: the caller destroys the slots once it is
    /// acknowledged.
    package func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool,
        thenDestroying destroying: [KeySlot]
    ) throws -> (group: AppendTicket, destruction: AppendTicket?) {
        (try append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: mayUseReserve), nil)
    }

    /// The record sealed now, queued as any other.
    package func append(_ record: DeferredRecord, durability: Durability, mayUseReserve: Bool) throws -> AppendTicket {
        try append(
            [EngineRecord(stream: record.stream, payload: try record.sealed())], keySlotWrites: [], durability: durability,
            mayUseReserve: mayUseReserve)
    }

    /// Appends a group that may not use the reserve (see
    /// ``append(_:keySlotWrites:durability:mayUseReserve:)``).
    package func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability
    ) throws -> AppendTicket {
        try append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: false)
    }
}
