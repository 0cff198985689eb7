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
        self.segment = segment
        self.offset = offset
    }

    package static func < (a: LogPosition, b: LogPosition) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }
}

/// A record to append.
package struct EngineRecord: Sendable {
    /// The stream it extends, or nil for a record reached only by location
    /// (e.g. a chunk of large content).
    package var stream: StreamID?
    /// The bytes to store.
    package var payload: [UInt8]

    package init(stream: StreamID?, payload: [UInt8]) {
        self.stream = stream
        self.payload = payload
    }
}

/// A record as read back.
package struct StoredRecord: Sendable {
    /// Where it is.
    package var location: RecordLocation
    /// The log sequence number: increases by one per record, store-wide.
    package var sequence: UInt64
    /// Its stream, if any.
    package var stream: StreamID?
    /// The previous record of the same stream, if any.
    package var previous: RecordLocation?
    /// The stored bytes.
    package var payload: [UInt8]
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

/// The storage contract of the layers above: an append-only log of framed
/// records grouped in streams, and a file of destroyable key slots.
///
/// The engine knows nothing of what records mean. An implementation over a
/// database server can take the place of ``LogEngine`` without changes
/// above this protocol.
package protocol StorageEngine: AnyObject, Sendable {
    /// Queues `records` (one atomic group: after a crash, all or none of them
    /// are present) and `keySlotWrites`, in call order, and returns at once.
    /// Key slots become durable with the records (synced in parallel); after
    /// a crash, a group whose slots are not all durable is absent.
    ///
    /// Space: a group with `mayUseReserve` false leaves the engine's
    /// reserve of preallocated space ahead of it, or fails with
    /// ``StorageError/Code/diskFull``; a group with `mayUseReserve` true
    /// (audit entries of reads, listings and refusals) may use that
    /// reserve, so that on a full disk reads still leave their entries.
    ///
    /// The returned ticket's ``AppendTicket/wait()`` returns the records'
    /// locations once they are acknowledged under `durability`.
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

    /// Reads and verifies the record at `location`. Cost: one `pread`.
    /// - Throws: ``StorageError/Code/corrupted`` naming segment and offset.
    func read(_ location: RecordLocation) throws -> StoredRecord

    /// The last record of `stream`, or nil if it has none. O(1).
    func head(of stream: StreamID) -> RecordLocation?

    /// The number of streams. O(1).
    var streamCount: Int { get }

    /// The number of streams whose id starts with the byte `streamClass`
    /// (the layers above use the first byte to tell kinds of streams
    /// apart). O(streams).
    func streamCount(inClass streamClass: UInt8) -> Int

    /// Whether records of `stream` are queued but not yet written (their
    /// location is not yet the stream's head). O(1).
    func hasQueuedRecords(in stream: StreamID) -> Bool

    /// The streams whose id starts with the byte `streamClass`. O(streams).
    func streams(inClass streamClass: UInt8) -> [StreamID]

    /// Where the next appended record will go: every record appended so
    /// far (queued or written) is before it. O(1).
    var appendPosition: LogPosition { get }

    /// Visits the written records from `position` to the end of the log, in
    /// log order, until `visit` returns false: only those whose stream
    /// `wanted` accepts are read whole (the others, by their header only).
    /// Records still queued are not visited; meant for open, when nothing
    /// is being written. Cost: one header read per record, one more read
    /// per record visited.
    /// - Throws: ``StorageError/Code/corrupted`` for a damaged header or a
    ///   damaged record visited.
    func scan(from position: LogPosition, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) throws

    /// Reserves a new, never used key slot. O(1), except when the key file
    /// must grow.
    /// - Throws: ``StorageError/Code/diskFull``.
    func reserveKeySlot() throws -> KeySlot

    /// Reads the value of a key slot.
    /// - Throws: ``StorageError/Code/keySlotDestroyed``,
    ///   ``StorageError/Code/keySlotEmpty``, ``StorageError/Code/corrupted``.
    func readKeySlot(_ slot: KeySlot) throws -> [UInt8]

    /// Overwrites a key slot in place with a tombstone and makes it durable:
    /// its former value cannot be read back from this store's files.
    func destroyKeySlot(_ slot: KeySlot) async throws

    /// Waits for queued writes, writes a checkpoint of the index and
    /// releases the store. Further calls throw ``StorageError/Code/closed``.
    func close() async throws
}

extension StorageEngine {
    /// Appends a group that may not use the reserve (see
    /// ``append(_:keySlotWrites:durability:mayUseReserve:)``).
    package func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability
    ) throws -> AppendTicket {
        try append(records, keySlotWrites: keySlotWrites, durability: durability, mayUseReserve: false)
    }
}
