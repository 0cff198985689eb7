/// Records of the log by sequence number: two of them in the engine.
///
/// - The **chunk table**: every record without a stream (content chunks),
///   what resolves a ``RecordReference`` that names an LSN alone, the only
///   form the layers above seal (24 bytes per chunk, one chunk per
///   ``LogEngineConfiguration/maximumRecordSize`` of content at most).
/// - The **landmarks**: every 256th record (by LSN), where a scan from a
///   ``LogCursor`` (a sequence number) starts, so it passes over at most
///   255 frame headers to reach it.
///
/// Two parallel arrays in LSN order (records are appended, replayed and
/// checkpointed in log order), searched by bisection. A rewrite of the
/// files (a future compaction) changes the locations here, never the
/// references and cursors the layers above hold.
package struct SequenceTable: Sendable, Equatable {
    private(set) var lsns: [UInt64] = []
    private(set) var locations: [RecordLocation] = []

    package init() {}

    /// The number of records it holds.
    package var count: Int { lsns.count }

    /// Adds the record of sequence number `lsn`, which follows every one
    /// the table holds.
    /// - Returns: false, and nothing added, if `lsn` does not follow them.
    @discardableResult
    package mutating func append(_ lsn: UInt64, at location: RecordLocation) -> Bool {
        if let last = lsns.last, lsn <= last { return false }
        lsns.append(lsn)
        locations.append(location)
        return true
    }

    /// The entry of the greatest LSN at or before `lsn`, if any.
    package func atOrBefore(_ lsn: UInt64) -> (lsn: UInt64, location: RecordLocation)? {
        var low = 0
        var high = lsns.count
        while low < high {
            let middle = (low + high) / 2
            if lsns[middle] <= lsn { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : (lsns[low - 1], locations[low - 1])
    }

    /// Where the record of sequence number `lsn` is, if the table has it.
    package func location(of lsn: UInt64) -> RecordLocation? {
        var low = 0
        var high = lsns.count
        while low < high {
            let middle = (low + high) / 2
            if lsns[middle] < lsn { low = middle + 1 } else { high = middle }
        }
        return low < lsns.count && lsns[low] == lsn ? locations[low] : nil
    }

    /// Every entry, in LSN order.
    package var entries: Zip2Sequence<[UInt64], [RecordLocation]> { zip(lsns, locations) }
}
