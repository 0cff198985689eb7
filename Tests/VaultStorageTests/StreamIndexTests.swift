import Foundation
import Testing
@testable import VaultStorage

/// The index from stream to its newest record (`StreamIndex`).
@Suite struct StreamIndexTests {
    func id(_ i: Int) -> StreamID {
        var g = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { g ^= g >> 29; g &*= 0xBF58_476D_1CE4_E5B9; return g }
        return StreamID(w0: UInt64(i % 3 + 1), w1: next(), w2: next(), w3: UInt64(i))
    }

    @Test func insertUpdateLookupAndGrow() {
        var index = StreamIndex()
        var reference: [StreamID: RecordLocation] = [:]
        for i in 0..<50_000 {
            let l = RecordLocation(segment: UInt32(1 + i % 7), offset: UInt64(64 + i * 8), frameLength: UInt32(80 + i % 100))
            index[id(i)] = l
            reference[id(i)] = l
            if i % 3 == 0 {
                // Update an earlier head: the count does not change.
                let j = i / 2
                let newer = RecordLocation(segment: 9, offset: UInt64(64 + i * 8), frameLength: 96)
                index[id(j)] = newer
                reference[id(j)] = newer
            }
        }
        #expect(index.count == reference.count)
        for (k, v) in reference { #expect(index[k] == v) }
        #expect(index[id(1_000_000)] == nil)
        #expect(Dictionary(uniqueKeysWithValues: index.map { ($0.0, $0.1) }) == reference)
        #expect(index.newest == reference.values.max())
    }

    @Test func structuredIdsCollideAndStillWork() {
        // Ids whose hash word is equal all land in one slot and probe on.
        var index = StreamIndex(minimumCapacity: 4)
        for i in 0..<200 {
            index[StreamID(w0: 1, w1: 42, w2: UInt64(i), w3: 0)] = RecordLocation(segment: 1, offset: UInt64(64 + i), frameLength: 80)
        }
        #expect(index.count == 200)
        for i in 0..<200 {
            #expect(index[StreamID(w0: 1, w1: 42, w2: UInt64(i), w3: 0)]?.offset == UInt64(64 + i))
        }
    }
}
