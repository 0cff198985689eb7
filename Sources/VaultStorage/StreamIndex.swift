/// The index of stream heads: stream id → location of its newest record.
///
/// An open-addressing hash table with linear probing, sized to the number
/// of streams (load factor up to 0.8) rather than to the next power of two:
/// about 60 bytes per stream, where a `Dictionary` of two million streams
/// takes 100. Stream ids are expected to be uniform (keyed hashes, as the
/// layer above makes them), so their second word serves as the hash.
/// Streams are never removed, so there are no tombstones.
package struct StreamIndex: Sequence, Sendable {
    private struct Entry {
        var stream: StreamID
        var raw: UInt64
        /// 0 marks an empty slot (a real frame is at least 80 bytes).
        var frameLength: UInt32
    }

    private static let empty = Entry(stream: StreamID(w0: 0, w1: 0, w2: 0, w3: 0), raw: 0, frameLength: 0)
    private static let maximumLoad = 0.8

    private var entries: [Entry]
    /// The number of streams.
    package private(set) var count = 0

    /// An index with room for `minimumCapacity` streams before it grows.
    package init(minimumCapacity: Int = 0) {
        entries = Array(repeating: Self.empty, count: Self.slots(for: minimumCapacity))
    }

    private static func slots(for capacity: Int) -> Int {
        Swift.max(16, Int((Double(capacity) / maximumLoad).rounded(.up)) + 1)
    }

    package var isEmpty: Bool { count == 0 }

    private func home(_ stream: StreamID) -> Int {
        Int(truncatingIfNeeded: stream.w1.multipliedFullWidth(by: UInt64(entries.count)).high)
    }

    /// The slot holding `stream`, or the empty slot where it would go.
    private func find(_ stream: StreamID) -> Int {
        var i = home(stream)
        while true {
            let e = entries[i]
            if e.frameLength == 0 || e.stream == stream { return i }
            i += 1
            if i == entries.count { i = 0 }
        }
    }

    /// The head of `stream`; setting stores a new head (never nil: streams
    /// are not removed).
    package subscript(stream: StreamID) -> RecordLocation? {
        get {
            let e = entries[find(stream)]
            return e.frameLength == 0 ? nil : RecordLocation(raw: e.raw, frameLength: e.frameLength)
        }
        set {
            guard let location = newValue else { preconditionFailure("streams are never removed from the index") }
            precondition(location.frameLength > 0, "a frame has a length")
            var i = find(stream)
            if entries[i].frameLength == 0 {
                if Double(count + 1) > Double(entries.count) * Self.maximumLoad {
                    grow()
                    i = find(stream)
                }
                count += 1
            }
            entries[i] = Entry(stream: stream, raw: location.raw, frameLength: location.frameLength)
        }
    }

    private mutating func grow() {
        let old = entries
        entries = Array(repeating: Self.empty, count: Self.slots(for: count + count / 2 + 16))
        for e in old where e.frameLength != 0 {
            entries[find(e.stream)] = e
        }
    }

    /// The newest head (the greatest location), if any.
    package var newest: RecordLocation? {
        var best: Entry?
        for e in entries where e.frameLength != 0 && e.raw >= (best?.raw ?? 0) { best = e }
        return best.map { RecordLocation(raw: $0.raw, frameLength: $0.frameLength) }
    }

    /// Every (stream, head), in no particular order.
    package func makeIterator() -> AnyIterator<(StreamID, RecordLocation)> {
        var i = 0
        let entries = self.entries
        return AnyIterator {
            while i < entries.count {
                let e = entries[i]
                i += 1
                if e.frameLength != 0 { return (e.stream, RecordLocation(raw: e.raw, frameLength: e.frameLength)) }
            }
            return nil
        }
    }
}
