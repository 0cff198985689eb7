import Testing
@testable import VaultStorage

/// The largest atomic group an engine takes, as an import checks it
/// before it writes any content.
@Suite struct GroupCapacityTests {
    /// The log engine's: its payloads with their frames and one manifest
    /// record of its slots, within a segment less its reserve.
    @Test func theLogEnginesGroupIsOneSegmentLessItsReserve() async throws {
        let dir = TemporaryDirectory()
        var configuration = smallConfiguration()
        configuration.reserve = configuration.segmentSize / 8
        let engine = try dir.openEngine(configuration)
        let c = engine.groupCapacity
        #expect(c.bytes == configuration.segmentSize - UInt64(LogFormat.segmentHeaderSize) - configuration.reserve)
        #expect(c.keySlotWrites == (configuration.maximumRecordSize - LogFormat.manifestHeaderSize) / LogFormat.journaledSlotSize)
        let frame = LogFormat.frameHeaderSize + 8
        let room = Int(c.bytes) - frame
        #expect(c.fits(payloads: [room], keySlotWrites: 0))
        #expect(!c.fits(payloads: [room + 1], keySlotWrites: 0))
        // A slot brings its manifest's frame and its own bytes.
        #expect(!c.fits(payloads: [room], keySlotWrites: 1))
        #expect(c.fits(payloads: [room - frame - LogFormat.journaledSlotSize], keySlotWrites: 1))
        #expect(!c.fits(payloads: [], keySlotWrites: c.keySlotWrites + 1))
        try await engine.close()
    }

    /// Sizes from a file a caller hands over: a sum past `UInt64.max`, or a
    /// negative size, does not fit, and traps nowhere (the unbounded
    /// capacity of the engines whose groups are one transaction).
    @Test func hostileSizesDoNotFitAndDoNotTrap() {
        let unbounded = GroupCapacity.unbounded
        #expect(unbounded.fits(payloads: [1, 2, 3], keySlotWrites: 3))
        #expect(!unbounded.fits(payloads: [Int.max, Int.max, Int.max, Int.max], keySlotWrites: 0))
        #expect(!unbounded.fits(payloads: [-1], keySlotWrites: 0))
        #expect(!unbounded.fits(payloads: [], keySlotWrites: -1))
        let large = GroupCapacity(keySlotWrites: .max, bytes: .max, perRecordOverhead: 104, manifestBytesPerSlot: 176)
        #expect(!large.fits(payloads: [], keySlotWrites: .max))
    }
}
