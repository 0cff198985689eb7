/// A frame of the log as read back: the record and where the log keeps it.
package struct LogFrame: Sendable {
    /// Where it is.
    package var location: RecordLocation
    /// Its log sequence number: increases by one per record, store-wide.
    package var sequence: UInt64
    /// Its stream, if any.
    package var stream: StreamID?
    /// The previous record of the same stream, if any.
    package var previous: RecordLocation?
    /// The stored bytes (a compacted record's kept prefix alone).
    package var payload: [UInt8]
    /// Set when the record was compacted: its Merkle leaf hash
    /// (``StoredRecord/compactedLeaf``).
    package var compactedLeaf: [UInt8]? = nil
}

extension StoredRecord {
    /// The record of a frame, referenced by its sequence number and location.
    init(_ frame: LogFrame) {
        self.init(
            reference: RecordReference(sequence: frame.sequence, location: frame.location), sequence: frame.sequence,
            stream: frame.stream, payload: frame.payload, compactedLeaf: frame.compactedLeaf)
    }
}

extension RecordReference {
    /// ``LogEngine``'s reference: the record's log sequence number, which
    /// names it for good (no rewrite of the files changes it), and its
    /// location, where to look for it (a frame found there with another
    /// sequence number is `corrupted`).
    package init(sequence: UInt64, location: RecordLocation) {
        self.init(w0: sequence, w1: location.raw, w2: location.frameLength)
    }

    /// ``LogEngine``'s reference to a record without a stream (a chunk,
    /// the only kind the layers above seal): its LSN alone, which the
    /// engine's ``SequenceTable`` resolves.
    package init(sequence: UInt64) {
        self.init(w0: sequence, w1: 0, w2: 0)
    }

    /// Whether it says where to look (a stream's record, referenced in
    /// memory only); a chunk's names its LSN alone (no record has
    /// location 0: segments are numbered from 1).
    package var hasLocation: Bool { w1 != 0 }

    /// The log sequence number it names.
    package var sequence: UInt64 { w0 }
    /// Where ``LogEngine`` looks for it.
    package var location: RecordLocation { RecordLocation(raw: w1, frameLength: w2) }
}

extension LogCursor {
    /// ``LogEngine``'s cursor: the sequence number of the next record when
    /// it was taken (the records after it have this LSN or a greater one).
    package init(sequence: UInt64) {
        self.init(w0: sequence, w1: 0)
    }

    /// The first sequence number after the cursor.
    package var sequence: UInt64 { w0 }
}
