import Foundation
import Testing
@testable import VaultStorage

/// Appends, reads and streams of the log engine (`LogEngine`).
@Suite struct LogEngineTests {
    @Test func appendThenReadBack() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        var locations: [RecordLocation] = []
        for i in 0..<10 {
            locations += try await engine.appendDurably([EngineRecord(stream: stream(UInt8(i % 3)), payload: payload(i))])
        }
        for (i, location) in locations.enumerated() {
            let record = try engine.read(location)
            #expect(record.payload == payload(i))
            #expect(record.stream == stream(UInt8(i % 3)))
            #expect(record.sequence == UInt64(i + 1))
        }
        #expect(try engine.records(of: stream(0)).map(\.payload) == [0, 3, 6, 9].map { payload($0) })
        #expect(engine.streamCount == 3)
        try await engine.close()
    }

    /// A reference names its record by sequence number; the location in it
    /// is only where to look. One that names another record there (a
    /// spliced or stale reference) is refused, never served.
    @Test func aReferenceNamesItsRecordBySequenceNumber() async throws {
        let dir = TemporaryDirectory()
        let engine = try LogEngine.open(directory: dir.path, configuration: smallConfiguration())
        let references = try await engine.append(
            [EngineRecord(stream: nil, payload: payload(1)), EngineRecord(stream: stream(1), payload: payload(2))],
            keySlotWrites: [], durability: .durable
        ).wait()
        #expect(try await engine.read(references[0]).payload == payload(1))
        #expect(try await engine.read(references[1]).reference == references[1])
        var newest: [StoredRecord] = []
        try await engine.visitNewestFirst(stream(1)) { newest.append($0); return true }
        #expect(newest.map(\.reference) == [references[1]])
        // A stream's record: its reference says where; one naming another
        // LSN at that place is refused.
        let stale = RecordReference(sequence: references[1].sequence + 1, location: references[1].location)
        await #expect { try await engine.read(stale) } throws: { ($0 as? StorageError)?.code == .corrupted }
        // A chunk (no stream): its reference names its LSN alone.
        #expect(!references[0].hasLocation && references[1].hasLocation)
        var cursorScan: [UInt64] = []
        try await engine.scan(from: nil, only: { _ in true }) { cursorScan.append($0.sequence); return true }
        #expect(cursorScan == references.map(\.sequence))
        try await engine.close()
    }

    /// A cursor names a place in the log by sequence number: a scan from it
    /// visits exactly the records appended after it was taken, across
    /// segments, starting at a landmark (every 256th record) kept in the
    /// checkpoint or rebuilt by replay; from the end it reads nothing.
    @Test(arguments: [false, true])
    func aCursorIsASequenceNumberAcrossSegments(replaying: Bool) async throws {
        let (dir, first) = try TemporaryDirectory.withEngine()
        var engine = first
        let records = (0..<700).map { EngineRecord(stream: $0 % 5 == 0 ? nil : stream(UInt8($0 % 3)), payload: payload($0, size: 300)) }
        for r in records[..<400] { try await engine.appendDurably([r]) }
        let cursor = engine.endCursor
        for r in records[400...] { try await engine.appendDurably([r]) }
        #expect(engine.appendPosition.segment >= 3, "the records span segments")
        for round in 0..<2 {
            var seen: [[UInt8]] = []
            try await engine.scan(from: cursor, only: { _ in true }) { seen.append($0.payload); return true }
            #expect(seen == records[400...].map(\.payload), "round \(round)")
            // Landmarks at LSN 256, 512 (and on): the scan starts at 256.
            #expect(engine.core.state.withLock { $0.landmarks.atOrBefore(cursor.sequence)?.lsn } == 256)
            var none = 0
            try await engine.scan(from: engine.endCursor, only: { _ in true }) { _ in none += 1; return true }
            #expect(none == 0)
            try await engine.close()
            if replaying { try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName) }
            engine = try dir.openEngine()
        }
        try await engine.close()
    }

    @Test func recordsWithoutStreamAreNotIndexed() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let loc = try await engine.appendDurably([EngineRecord(stream: nil, payload: payload(1))])
        #expect(engine.streamCount == 0)
        #expect(try engine.read(loc[0]).payload == payload(1))
        #expect(try engine.read(loc[0]).stream == nil)
        try await engine.close()
    }

    @Test(arguments: [false, true])
    func reopenRestoresEverything(viaCheckpoint: Bool) async throws {
        let dir = TemporaryDirectory()
        var written: [(StreamID, [UInt8])] = []
        do {
            let engine = try dir.openEngine()
            // Enough to span several 64 KiB segments.
            for i in 0..<300 {
                let s = stream(UInt8(i % 5))
                let p = payload(i, size: 100 + (i % 7) * 200)
                try await engine.appendDurably([EngineRecord(stream: s, payload: p)])
                written.append((s, p))
            }
            try await engine.close()
        }
        if !viaCheckpoint {
            try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        }
        let engine = try dir.openEngine()
        #expect(engine.recoveryReport.usedCheckpoint == viaCheckpoint)
        #expect(engine.recoveryReport.truncatedAt == nil)
        for n in 0..<5 {
            let expected = written.filter { $0.0 == stream(UInt8(n)) }.map(\.1)
            #expect(try engine.records(of: stream(UInt8(n))).map(\.payload) == expected)
        }
        #expect(engine.nextSequence == 301)
        // And it keeps appending after the recovered tail.
        let loc = try await engine.appendDurably([EngineRecord(stream: stream(0), payload: payload(999))])
        #expect(try engine.read(loc[0]).sequence == 301)
        try await engine.close()
    }

    @Test func secondOpenIsRefused() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        #expect {
            _ = try dir.openEngine()
        } throws: { ($0 as? StorageError)?.code == .locked }
        try await engine.close()
        // Released by close.
        let again = try dir.openEngine()
        try await again.close()
    }

    @Test func concurrentAppendersAreAllAcknowledgedAndPresent() async throws {
        let dir = TemporaryDirectory()
        let writers = 32, perWriter = 20
        do {
            let engine = try dir.openEngine()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        for i in 0..<perWriter {
                            try await engine.appendDurably([EngineRecord(stream: stream(UInt8(w)), payload: payload(w * 1000 + i))])
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await engine.close()
        }
        let engine = try dir.openEngine()
        for w in 0..<writers {
            let got = try engine.records(of: stream(UInt8(w))).map(\.payload)
            #expect(got == (0..<perWriter).map { payload(w * 1000 + $0) })
        }
        #expect(engine.nextSequence == UInt64(writers * perWriter + 1))
        try await engine.close()
    }

    /// Small buffered groups do not wake the committer one by one: it
    /// lets them gather for at most `lazyWriteDelay`, and writes them
    /// together. Nobody waiting, they are written (readable from the
    /// index) within that delay; a caller that waits for one gets it at
    /// once; a durable group behind them carries them with it, in order.
    @Test func smallBufferedGroupsAreWrittenTogetherWithinTheDelay() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        defer { withExtendedLifetime(dir) {} }
        let tickets = try (0..<10).map { i in
            try engine.append([EngineRecord(stream: stream(1), payload: payload(i))], keySlotWrites: [], durability: .buffered)
        }
        // Nobody waits: written within the delay (1 ms), well within a second.
        let deadline = ContinuousClock.now + .seconds(1)
        while engine.head(of: stream(1)) == nil || !tickets.allSatisfy(\.isDone) {
            #expect(ContinuousClock.now < deadline, "small buffered groups never written")
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .microseconds(200))
        }
        #expect(try engine.records(of: stream(1)).map(\.payload) == (0..<10).map { payload($0) })
        // A waiter gets its own at once (its wait wakes the committer).
        let waited = try engine.append([EngineRecord(stream: stream(2), payload: payload(20))], keySlotWrites: [], durability: .buffered)
        let reference = try await waited.wait()
        #expect(try engine.read(engine.location(of: reference[0])).payload == payload(20))
        // Buffered then durable: the durable one's sync covers both.
        _ = try engine.append([EngineRecord(stream: stream(3), payload: payload(30))], keySlotWrites: [], durability: .buffered)
        try await engine.appendDurably([EngineRecord(stream: stream(3), payload: payload(31))])
        #expect(try engine.records(of: stream(3)).map(\.payload) == [payload(30), payload(31)])
        #expect(engine.durableRecordCount == 13)
        try await engine.close()
    }

    @Test func appendAfterCloseFails() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        try await engine.close()
        #expect {
            _ = try engine.append([EngineRecord(stream: nil, payload: [1])], keySlotWrites: [], durability: .durable)
        } throws: { ($0 as? StorageError)?.code == .closed }
    }

    @Test func oversizedRecordIsRefusedAndNothingWritten() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let before = engine.nextSequence
        #expect {
            _ = try engine.append([EngineRecord(stream: stream(1), payload: payload(1, size: 9 << 10))], keySlotWrites: [], durability: .durable)
        } throws: { ($0 as? StorageError)?.code == .tooLarge }
        #expect(engine.nextSequence == before)
        #expect(engine.head(of: stream(1)) == nil)
        try await engine.close()
    }

    @Test func readingAForeignLocationIsAnError() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let loc = try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])[0]
        // Shifted by 8 bytes: lands mid-record, which no checksum accepts.
        let shifted = RecordLocation(segment: loc.segment, offset: loc.offset + 8, frameLength: loc.frameLength)
        #expect { _ = try engine.read(shifted) } throws: { ($0 as? StorageError)?.code == .corrupted }
        let missing = RecordLocation(segment: 99, offset: 64, frameLength: loc.frameLength)
        #expect { _ = try engine.read(missing) } throws: { ($0 as? StorageError)?.code == .invalidLocation }
        try await engine.close()
    }
}
