/// Where the log's records without a stream (content chunks) are, by log
/// sequence number: what resolves a ``RecordReference`` that names an LSN
/// alone, the only form the layers above seal.
///
/// Two parallel arrays in LSN order (chunks are appended, replayed and
/// checkpointed in log order), searched by bisection: 24 bytes per chunk,
/// one chunk per ``LogEngineConfiguration/maximumRecordSize`` of content
/// at most. A rewrite of the files (a future compaction) changes the
/// locations here, never the references the layers above hold.
package struct ChunkTable: Sendable, Equatable {
    private(set) var lsns: [UInt64] = []
    private(set) var locations: [RecordLocation] = []

    package init() {}

    /// The number of chunks.
    package var count: Int { lsns.count }

    /// Adds the chunk with sequence number `lsn`, which follows every one
    /// the table holds.
    /// - Returns: false, and nothing added, if `lsn` does not follow them.
    @discardableResult
    package mutating func append(_ lsn: UInt64, at location: RecordLocation) -> Bool {
        if let last = lsns.last, lsn <= last { return false }
        lsns.append(lsn)
        locations.append(location)
        return true
    }

    /// Where the chunk of sequence number `lsn` is, if the table has it.
    package func location(of lsn: UInt64) -> RecordLocation? {
        var low = 0
        var high = lsns.count
        while low < high {
            let middle = (low + high) / 2
            if lsns[middle] < lsn { low = middle + 1 } else { high = middle }
        }
        return low < lsns.count && lsns[low] == lsn ? locations[low] : nil
    }

    /// Every chunk, in LSN order.
    package var entries: Zip2Sequence<[UInt64], [RecordLocation]> { zip(lsns, locations) }
}
