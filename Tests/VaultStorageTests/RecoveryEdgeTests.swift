import Foundation
import Testing
@testable import VaultStorage

/// Recovery edge cases: damaged headers, crashes while switching segments,
/// reopening with another configuration, forged checkpoints.
@Suite struct RecoveryEdgeTests {
    func removeCheckpoint(_ dir: TemporaryDirectory) {
        try? FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
    }

    func isCorruption(_ error: any Error, segment: UInt32? = nil, offset: UInt64? = nil) -> Bool {
        guard let e = error as? StorageError, e.code == .corrupted else { return false }
        return (segment == nil || e.segment == segment) && (offset == nil || e.offset == offset)
    }

    /// Fills several segments; returns every location, oldest first.
    func manySegments(_ dir: TemporaryDirectory, count: Int = 100) async throws -> [RecordLocation] {
        let engine = try dir.openEngine()
        var locations: [RecordLocation] = []
        for i in 0..<count {
            locations += try await engine.appendDurably([EngineRecord(stream: stream(9), payload: payload(i, size: 2000))])
        }
        try await engine.close()
        removeCheckpoint(dir)
        return locations
    }

    /// Bytes flipped in a segment's unused space right after its last
    /// record (where the next frame header would be), the next segment
    /// beginning with the very record expected there (a genuine frame):
    /// no record is missing, so the open passes them over, reports them
    /// and zeroes them (every later walk of the log, a scrub's, a
    /// verification's, a backup's, then ends the segment there too).
    /// Before, the open refused the store. A flip in the last record's own
    /// header, beyond what one byte's repair proves, is still damage.
    @Test func damagedUnusedSpaceAfterASegmentsLastRecordIsPassedOver() async throws {
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir, count: 60)
        let last = try #require(locations.last { $0.segment == 1 })
        let unused = last.offset + UInt64(last.frameLength)
        for (offset, byte) in [(unused, UInt8(0x5A)), (unused + 7, 0x01), (unused + UInt64(LogFormat.frameHeaderSize) - 1, 0x80)] {
            try overwrite(dir.segmentPath(1), at: offset, with: [byte])
            let engine = try dir.openEngine()
            #expect(engine.recoveryReport.damagedUnusedSpace.map(\.segment) == [1])
            #expect(engine.recoveryReport.damagedUnusedSpace.map(\.offset) == [unused])
            #expect(try engine.records(of: stream(9)).map(\.payload) == (0..<60).map { payload($0, size: 2000) })
            try await engine.close()
            #expect(Array(try readBytes(dir.segmentPath(1))[Int(unused)..<(Int(unused) + LogFormat.frameHeaderSize)]).allSatisfy { $0 == 0 })
            removeCheckpoint(dir)
            let again = try dir.openEngine()
            #expect(again.recoveryReport.damagedUnusedSpace.isEmpty)
            try await again.close()
            removeCheckpoint(dir)
        }
        // Two bytes of the last record's header: not unused space.
        try overwrite(dir.segmentPath(1), at: last.offset + 2, with: [0xEE])
        try overwrite(dir.segmentPath(1), at: last.offset + 9, with: [0xEE])
        #expect { _ = try dir.openEngine() } throws: { isCorruption($0) }
    }

    @Test func damagedHeaderOfTheOnlySegmentWithRecordsIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])
        try await engine.close()
        removeCheckpoint(dir)
        // Two bytes (one alone is restored: `aSegmentHeaderWithOneDamagedByteIsRestored`).
        try overwrite(dir.segmentPath(1), at: 20, with: [0xEE])
        try overwrite(dir.segmentPath(1), at: 31, with: [0xEE])
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1, offset: 0) }
        // The header was not rewritten: the damage is still there to see.
        #expect(try readBytes(dir.segmentPath(1))[20] == 0xEE)
    }

    @Test func damagedHeaderOfAnOlderSegmentIsCorruption() async throws {
        let dir = TemporaryDirectory()
        _ = try await manySegments(dir)
        try overwrite(dir.segmentPath(1), at: 30, with: [0x01, 0x02])
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1, offset: 0) }
    }

    @Test func aLeftoverTemporarySegmentIsRemoved() async throws {
        // A crash while creating a segment leaves only its temporary file:
        // segments are renamed into place once whole.
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir, count: 10)
        let next = locations.last!.segment + 1
        let leftover = dir.segmentPath(next) + ".tmp"
        try Data(count: 64 << 10).write(to: URL(fileURLWithPath: leftover))
        let engine = try dir.openEngine()
        #expect(try engine.records(of: stream(9)).count == 10)
        #expect(!FileManager.default.fileExists(atPath: leftover))
        try await engine.close()
    }

    @Test func aNewestSegmentWithoutItsHeaderIsCorruption() async throws {
        // Cut below its header (or zeroed): a segment file only ever appears
        // whole, so this is damage, and its records must not vanish silently.
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir, count: 10)
        let newest = locations.last!.segment
        try truncate(dir.segmentPath(newest), to: 40)
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: newest, offset: 0) }
    }

    /// One flipped byte of a segment's header (which every open reads):
    /// restored and written back where its value is proven: known bytes
    /// (magic, version, sizes, number, zeros) always; the salt and the first
    /// LSN by the first frame's CRC and MAC; the size by the configuration.
    /// Without frame MACs, a salt byte is `corrupted`; two damaged bytes
    /// are `corrupted`. Before, every case refused the store.
    @Test(arguments: [false, true])
    func aSegmentHeaderWithOneDamagedByteIsRestored(authenticated: Bool) async throws {
        let c = authenticated ? smallConfiguration { $0.authenticator = TestAuthenticator(secret: [3]) } : smallConfiguration()
        let (dir, engine) = try TemporaryDirectory.withEngine(c)
        for i in 0..<3 { try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 100))]) }
        try await engine.close()
        let path = dir.segmentPath(1)
        let original = try readBytes(path)
        for byte in [0, 7, 9, 13, 16, 20, 24, 33, 39, 40, 47, 50, 57, 60, 63] {
            try overwrite(path, at: UInt64(byte), with: [original[byte] ^ 0x08])
            let salt = (24..<40).contains(byte)
            guard authenticated || !salt && !(40..<48).contains(byte) else {
                #expect(throws: (any Error).self, "byte \(byte)") { _ = try dir.openEngine(c) }
                try overwrite(path, at: UInt64(byte), with: [original[byte]])
                continue
            }
            let reopened = try dir.openEngine(c)
            #expect(try reopened.records(of: stream(1)).count == 3, "byte \(byte)")
            try await reopened.close()
            #expect(Array(try readBytes(path)[0..<64]) == Array(original[0..<64]), "byte \(byte): written back")
        }
        try overwrite(path, at: 30, with: [original[30] ^ 0x01, original[31] ^ 0x01])
        #expect { _ = try dir.openEngine(c) } throws: { isCorruption($0, segment: 1, offset: 0) }
    }

    @Test func aMissingSegmentTheCheckpointNamesIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var last = RecordLocation(raw: 0, frameLength: 0)
        for i in 0..<100 { last = try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(i, size: 2000))])[0] }
        try await engine.close()
        #expect(last.segment > 1)
        try FileManager.default.removeItem(atPath: dir.segmentPath(last.segment))
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: last.segment) }
    }

    @Test func aSegmentShorterThanTheCheckpointIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var last = RecordLocation(raw: 0, frameLength: 0)
        for i in 0..<5 { last = try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(i))])[0] }
        try await engine.close()
        try truncate(dir.segmentPath(last.segment), to: last.offset)
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: last.segment) }
    }

    @Test(arguments: [false, true])
    func aMissingOrEmptyKeyFileIsCorruptionOnceTheLogExists(empty: Bool) async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(1))])
        try await engine.close()
        let keys = dir.path + "/" + LogFormat.keyFileName
        if empty { try Data().write(to: URL(fileURLWithPath: keys)) } else { try FileManager.default.removeItem(atPath: keys) }
        #expect { _ = try dir.openEngine() } throws: { isCorruption($0) }
    }

    @Test func aMissingFirstSegmentIsCorruption() async throws {
        let dir = TemporaryDirectory()
        _ = try await manySegments(dir, count: 100)
        try FileManager.default.removeItem(atPath: dir.segmentPath(1))
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1) }
    }

    @Test func aScanOverAForgedFrameLengthIsCorruptionNotATrap() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let a = try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(1))])[0]
        try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(2))])
        // The first frame claims a payload of 2³² − 1 bytes, its header CRC
        // recomputed (the salt is in clear).
        var bytes = try readBytes(dir.segmentPath(1))
        let o = Int(a.offset)
        let salt = Array(bytes[24..<40])
        withUnsafeBytes(of: UInt32.max.littleEndian) { bytes.replaceSubrange((o + 8)..<(o + 12), with: $0) }
        let crc = CRC32C.checksum(Array(bytes[(o + 8)..<(o + LogFormat.frameHeaderSize)]), continuing: CRC32C.checksum(salt))
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((o + 4)..<(o + 8), with: $0) }
        try overwrite(dir.segmentPath(1), at: 0, with: bytes)
        #expect { try engine.scan(from: LogPosition(segment: 1, offset: 0), only: { _ in true }) { _ in true } }
            throws: { isCorruption($0) }
        try await engine.close()
    }

    @Test func anOpenThatReplayedLeavesACheckpoint() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(i))]) }
        try await engine.close()
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        let replaying = try dir.openEngine()
        #expect(replaying.recoveryReport.replayedRecords == 5)
        // Killed without a write or a close: the next open still starts from a checkpoint.
        #expect(FileManager.default.fileExists(atPath: dir.path + "/" + LogFormat.checkpointFileName))
        let next = try await replaying.reopen(dir)
        #expect(next.recoveryReport.usedCheckpoint && next.recoveryReport.replayedRecords == 0)
        try await next.close()
    }

    @Test func crashWhileSwitchingSegmentsRecoversToTheLastDurableRecord() async throws {
        // The tail of segment 1 never reached the disk, but segment 2 was
        // created (its header expects the lost records' successors) and got
        // nothing durable: the log ends inside segment 1.
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir)
        let inFirst = locations.filter { $0.segment == 1 }
        let lost = inFirst.last!
        let second = locations.filter { $0.segment == 2 }
        #expect(!second.isEmpty)
        // A preallocated file keeps its size: the lost tail reads as zeros.
        let firstSize = try readBytes(dir.segmentPath(1)).count
        try overwrite(dir.segmentPath(1), at: lost.offset, with: [UInt8](repeating: 0, count: firstSize - Int(lost.offset)))
        // Zero segment 2's body, keep its header; remove later segments.
        let size = try readBytes(dir.segmentPath(2)).count
        try overwrite(dir.segmentPath(2), at: UInt64(LogFormat.segmentHeaderSize), with: [UInt8](repeating: 0, count: size - LogFormat.segmentHeaderSize))
        for n in UInt32(3)...(locations.last!.segment) where n >= 3 {
            try FileManager.default.removeItem(atPath: dir.segmentPath(n))
        }
        // Segment 2 was either made at the switch (its header names the
        // lost records' successor: it goes) or ahead of need (first LSN 0,
        // an empty continuation: the log goes on in it).
        let secondHeader = try LogFormat.decodeSegmentHeader(try readBytes(dir.segmentPath(2)))
        let engine = try dir.openEngine()
        #expect(try engine.records(of: stream(9)).count == inFirst.count - 1)
        #expect(engine.recoveryReport.removedSegments.contains(2) || secondHeader?.firstLSN == 0)
        #expect(engine.nextSequence == UInt64(inFirst.count))
        // Appending goes on from there and survives a reopen.
        try await appendingGoesOn(engine, dir, stream: stream(9), marker: 500)
    }

    @Test func lostSegmentSwitchWithDurableRecordsAfterItIsCorruption() async throws {
        // Same shape, but segment 2 still holds frames that say the lost
        // records were durable: that is damage, not a crash.
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir)
        let lost = locations.filter { $0.segment == 1 }.last!
        try truncate(dir.segmentPath(1), to: lost.offset)
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1) }
    }

    /// Appending goes on after a recovery and survives a reopen: a record
    /// (`payload(marker)`) appended durably to `engine` is the last of its
    /// stream once `dir` is reopened. Closes the engines.
    func appendingGoesOn(
        _ engine: LogEngine, _ dir: TemporaryDirectory, stream s: StreamID, marker: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await engine.appendDurably([EngineRecord(stream: s, payload: payload(marker))])
        let reopened = try await engine.reopen(dir)
        #expect(try reopened.records(of: s).last?.payload == payload(marker), sourceLocation: sourceLocation)
        try await reopened.close()
    }

    /// Appends 2000-byte records to stream 7 until the committer's next
    /// segment exists (asking for it after each append, as the committer
    /// does after each batch), with `durability`.
    func fillUntilTheSpareExists(_ engine: LogEngine, _ dir: TemporaryDirectory, durability: Durability) async throws -> [RecordLocation] {
        var locations: [RecordLocation] = []
        var i = 0
        while !FileManager.default.fileExists(atPath: dir.segmentPath(2)) {
            locations += try await engine.append(
                [EngineRecord(stream: stream(7), payload: payload(i, size: 2000))], keySlotWrites: [], durability: durability
            ).wait().map(engine.location(of:))
            engine.core.createSpareIfDue()
            i += 1
        }
        return locations
    }

    @Test func theNextSegmentIsCreatedAheadAndTheSwitchTakesIt() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var locations = try await fillUntilTheSpareExists(engine, dir, durability: .durable)
        // Made ahead: whole, empty, "continues the previous segment".
        #expect(locations.allSatisfy { $0.segment == 1 })
        let header = try #require(try LogFormat.decodeSegmentHeader(try readBytes(dir.segmentPath(2))))
        #expect(header.firstLSN == 0)
        for i in 0..<40 {
            locations += try await engine.appendDurably([EngineRecord(stream: stream(7), payload: payload(100 + i, size: 2000))])
        }
        #expect(locations.contains { $0.segment == 2 })
        let written = try engine.records(of: stream(7)).map(\.payload)
        try await engine.close()
        // Replayed from the start (no checkpoint): the same records, in order.
        removeCheckpoint(dir)
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(7)).map(\.payload) == written)
        #expect(reopened.nextSequence == UInt64(locations.count) + 1)
        try await reopened.close()
    }

    @Test func anEmptyNextSegmentAtCloseIsWhereTheLogGoesOn() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let locations = try await fillUntilTheSpareExists(engine, dir, durability: .durable)
        try await engine.close()
        removeCheckpoint(dir)
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(7)).count == locations.count)
        try await appendingGoesOn(reopened, dir, stream: stream(7), marker: 999)
    }

    @Test func aSegmentMadeAheadStillVouchesForTheOneBefore() async throws {
        // Segment 2 made ahead (first LSN 0) gets frames only once segment 1
        // is whole and synced: segment 1 cut at a frame boundary is
        // corruption there, even for buffered records, which carry no
        // testimony of durability.
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var locations = try await fillUntilTheSpareExists(engine, dir, durability: .buffered)
        for i in 0..<20 {
            locations += try await engine.append(
                [EngineRecord(stream: stream(7), payload: payload(200 + i, size: 2000))], keySlotWrites: [], durability: .buffered
            ).wait().map(engine.location(of:))
        }
        try await engine.close()
        #expect(try LogFormat.decodeSegmentHeader(try readBytes(dir.segmentPath(2)))?.firstLSN == 0)
        #expect(locations.contains { $0.segment == 2 })
        removeCheckpoint(dir)
        let lost = locations.filter { $0.segment == 1 }.last!
        try truncate(dir.segmentPath(1), to: lost.offset)
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1, offset: lost.offset) }
    }

    @Test func anOlderSegmentCutAtAFrameBoundaryIsCorruptionWhileANewerOneHoldsData() async throws {
        // Buffered records carry no testimony of durability, and without
        // the checkpoint nothing vouches for segment 1's end, but segment 2
        // got frames only once segment 1 was whole and synced.
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var locations: [RecordLocation] = []
        for i in 0..<40 {
            locations += try await engine.append(
                [EngineRecord(stream: stream(5), payload: payload(i, size: 2000))], keySlotWrites: [], durability: .buffered
            ).wait().map(engine.location(of:))
        }
        try await engine.close()
        #expect(locations.last!.segment == 2)
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        let lost = locations.filter { $0.segment == 1 }.last!
        try truncate(dir.segmentPath(1), to: lost.offset)
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1, offset: lost.offset) }
    }

    /// The key-slot journal's key is part of the store: a key file without a
    /// valid one while the log exists, one that does not open a manifest
    /// (another key, same epoch), or one older than a manifest's epoch, is
    /// damage, never a reason to skip the manifest's slots.
    @Test(arguments: ["no journal key", "another journal key", "an older journal key"])
    func aJournalKeyThatDoesNotFitTheLogIsCorruption(case what: String) async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        if what == "an older journal key" {
            // A destruction moves the key file to epoch 2.
            try await engine.destroyKeySlot(try engine.reserveKeySlot())
        }
        let slot = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(6), payload: payload(2))], keySlotWrites: [(slot, [7, 7, 7])], durability: .durable
        ).wait()
        try await engine.close()
        removeCheckpoint(dir)
        let path = dir.path + "/" + LogFormat.keyFileName
        let salt = try #require(try LogFormat.decodeKeyFileHeader(Array(try readBytes(path).prefix(LogFormat.keySlotSize))))
        let keys = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try keys.seek(toOffset: UInt64(LogFormat.keySlotSize))
        var slots = Data(count: 2 * LogFormat.keySlotSize)
        if what != "no journal key" {
            // Epoch 1 with a random key, in slot 1; slot 2 wiped.
            var value = [UInt8](repeating: 0, count: 40)
            value[0] = 1
            for i in 8..<40 { value[i] = UInt8.random(in: 0...255) }
            slots.replaceSubrange(
                0..<LogFormat.keySlotSize,
                with: LogFormat.encodeKeySlot(KeySlot(1), value: value, magic: LogFormat.keySlotJournalKey, salt: salt))
        }
        try keys.write(contentsOf: slots)
        try keys.close()
        #expect { _ = try dir.openEngine() } throws: { isCorruption($0) }
    }

    /// The key file is not synced on the commit path: a group's slots are in
    /// its manifest (the key-slot journal), and recovery writes back a slot
    /// the key file lost or holds torn. A destroyed slot is never written
    /// back: the manifest's copy is sealed under a journal key the
    /// destruction replaced. Its tombstone was synced before that key
    /// went, so a slot found empty then is damage: `corrupted`, never a
    /// slot taken for one never written (before, the open passed).
    @Test(arguments: ["lost", "torn", "destroyed, tombstone lost"])
    func aGroupsKeySlotIsWrittenBackFromItsManifest(case what: String) async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let a = try await engine.appendDurably([EngineRecord(stream: stream(6), payload: payload(1))])[0]
        let slot = try engine.reserveKeySlot()
        let b = try await engine.append(
            [EngineRecord(stream: stream(6), payload: payload(2))], keySlotWrites: [(slot, [7, 7, 7])], durability: .durable
        ).wait()[0].location
        // The manifest frame comes first in the group and is nobody's record.
        #expect(b.offset > a.offset + UInt64(a.frameLength))
        if what.hasPrefix("destroyed") { try await engine.destroyKeySlot(slot) }
        try await engine.close()
        // Replay from the start (the checkpoint synced the key file).
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        let keys = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "/" + LogFormat.keyFileName))
        try keys.seek(toOffset: slot.number * UInt64(LogFormat.keySlotSize))
        try keys.write(contentsOf: what == "torn" ? Data([UInt8](repeating: 0xA5, count: 64)) : Data(count: LogFormat.keySlotSize))
        try keys.close()
        if what.hasPrefix("destroyed") {
            #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
            return
        }
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(6)).map(\.payload) == [payload(1), payload(2)])
        #expect(reopened.recoveryReport.truncatedAt == nil)
        #expect(reopened.recoveryReport.restoredKeySlots == 1)
        #expect(try await reopened.readKeySlot(slot) == [7, 7, 7])
        try await reopened.close()
    }


    @Test func zeroedMiddleFrameHeaderIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var locations: [RecordLocation] = []
        for i in 0..<3 {
            locations += try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 300))])
        }
        try await engine.close()
        removeCheckpoint(dir)
        try overwrite(dir.segmentPath(1), at: locations[1].offset, with: [UInt8](repeating: 0, count: LogFormat.frameHeaderSize))
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0, segment: 1, offset: locations[1].offset) }
    }

    @Test func reopeningWithSmallerLimitsKeepsEveryRecord() async throws {
        // Bounds come from each segment's own header, not the configuration
        // of the current open.
        let dir = TemporaryDirectory()
        let locations = try await manySegments(dir, count: 60)
        var smaller = smallConfiguration()
        smaller.segmentSize = 16 << 10
        smaller.maximumRecordSize = 1 << 10
        let engine = try dir.openEngine(smaller)
        #expect(try engine.records(of: stream(9)).map(\.payload) == (0..<60).map { payload($0, size: 2000) })
        #expect(try engine.read(locations[0]).payload == payload(0, size: 2000))
        try await engine.close()
    }

    @Test(arguments: [UInt64(7), 1 << 40, 63, 65])
    func forgedCheckpointTailIsIgnored(tail: UInt64) async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i))]) }
        try await engine.close()
        // A well-formed checkpoint (valid checksum) whose tail is nonsense.
        try LogEngineCore.writeCheckpoint(
            .init(segment: 1, tail: tail, nextLSN: 1, last: nil, index: StreamIndex()), directory: dir.path, authenticator: nil, files: PosixLogFiles())
        let reopened = try dir.openEngine()
        #expect(reopened.recoveryReport.usedCheckpoint == false)
        #expect(try reopened.records(of: stream(2)).count == 5)
        try await reopened.close()
    }

    @Test func checkpointNamingAMissingRecordIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let loc = try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(1))])[0]
        try await engine.close()
        let ghost = RecordLocation(segment: 1, offset: loc.offset + 4096, frameLength: loc.frameLength)
        try LogEngineCore.writeCheckpoint(
            .init(segment: 1, tail: loc.offset + 8192, nextLSN: 9, last: ghost, index: { var i = StreamIndex(); i[stream(2)] = ghost; return i }()), directory: dir.path, authenticator: nil, files: PosixLogFiles())
        #expect { _ = try dir.openEngine() }
            throws: { isCorruption($0) }
    }

    /// The newest record the checkpoint names, damaged by a flipped byte
    /// after a clean close: its payload is that record's problem (read
    /// restored, its Merkle leaf proving the one byte value; a second
    /// damaged byte is `corrupted`), its header with frame MACs (which prove the
    /// one byte value that restores it) is restored and written back, and
    /// the store opens; a header without a MAC to prove a repair still
    /// refuses the store. Before, any such byte refused the store.
    @Test(arguments: [30, 150], [false, true])
    func aDamagedByteInTheRecordTheCheckpointNamesAffectsThatRecordOnly(byteInRecord: Int, authenticated: Bool) async throws {
        let c = authenticated ? smallConfiguration { $0.authenticator = TestAuthenticator(secret: [5]) } : smallConfiguration()
        let (dir, engine) = try TemporaryDirectory.withEngine(c)
        let first = try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(1, size: 200))])[0]
        let last = try await engine.appendDurably([EngineRecord(stream: stream(3), payload: payload(2, size: 200))])[0]
        try await engine.close()
        var bytes = try readBytes(dir.segmentPath(1))
        bytes[Int(last.offset) + byteInRecord] ^= 0x21
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        guard byteInRecord >= LogFormat.frameHeaderSize || authenticated else {
            #expect { _ = try dir.openEngine(c) } throws: { isCorruption($0, segment: 1, offset: last.offset) }
            return
        }
        let reopened = try dir.openEngine(c)
        #expect(reopened.recoveryReport.usedCheckpoint)
        if byteInRecord < LogFormat.frameHeaderSize {
            // Restored and written back: whole again.
            #expect(reopened.recoveryReport.restoredRecords.map(\.offset) == [last.offset])
            #expect(try reopened.read(last).payload == payload(2, size: 200))
        } else {
            #expect(try reopened.read(last).payload == payload(2, size: 200))
            try await reopened.close()
            bytes[Int(last.offset) + byteInRecord + 7] ^= 0x02
            try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
            let again = try dir.openEngine(c)
            #expect { _ = try again.read(last) } throws: { isCorruption($0, segment: 1, offset: last.offset) }
            #expect(try again.read(first).payload == payload(1, size: 200))
            try await again.close()
            return
        }
        #expect(try reopened.read(first).payload == payload(1, size: 200))
        try await reopened.close()
    }

    @Test func readsAfterCloseAreRefused() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let loc = try await engine.appendDurably([EngineRecord(stream: stream(3), payload: payload(3))])[0]
        try await engine.close()
        #expect { _ = try engine.read(loc) } throws: { ($0 as? StorageError)?.code == .closed }
    }
}
