import Foundation
import Testing
@testable import VaultStorage

/// Crash recovery: torn tails are cut, corruption is reported.
@Suite struct RecoveryTests {
    /// Writes three durable records, closes without a checkpoint, and
    /// returns their locations.
    func threeRecords(_ dir: TemporaryDirectory, _ configuration: LogEngineConfiguration = smallConfiguration()) async throws -> [RecordLocation] {
        let engine = try dir.openEngine(configuration)
        var locations: [RecordLocation] = []
        for i in 0..<3 {
            locations += try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 150))])
        }
        try await engine.close()
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        return locations
    }

    @Test func tornTailCutAtEveryByteOffsetRecoversTheCompleteRecords() async throws {
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir)
        let last = locations[2]
        let original = try readBytes(dir.segmentPath(1))
        // Tear the last record at every byte offset of its header and
        // payload (a crash during its write: what follows the torn point is
        // the preallocated zeros, the file keeps its length): recovery
        // keeps exactly the first two records. (Zeroing only its padding
        // leaves it whole.)
        let payloadEnd = last.offset + UInt64(LogFormat.frameHeaderSize + 150)
        for cut in last.offset..<payloadEnd {
            try Data(original).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
            try overwrite(dir.segmentPath(1), at: cut, with: [UInt8](repeating: 0, count: Int(last.offset + UInt64(last.frameLength) - cut)))
            let engine = try dir.openEngine()
            let records = try engine.records(of: stream(1))
            #expect(records.map(\.payload) == [payload(0, size: 150), payload(1, size: 150)], "cut at \(cut)")
            if cut > last.offset {
                #expect(engine.recoveryReport.truncatedAt?.offset == last.offset)
            }
            #expect(engine.nextSequence == 3)
            try await engine.close()
            try? FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        }
    }

    /// A segment file cut short from outside, its end inside a record
    /// whose header is whole: no crash leaves that (frames are written
    /// only into space already extended and synced), so it is corruption
    /// naming the record, never a torn tail cut in silence. A cut inside
    /// a header or at a record's start is corruption too, by the file's
    /// length, unless that falls on a multiple of 512 bytes.
    @Test func aFileCutShortInsideARecordIsCorruption() async throws {
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir)
        let original = try readBytes(dir.segmentPath(1))
        for record in [locations[0], locations[2]] {
            for cut in [record.offset + UInt64(LogFormat.frameHeaderSize), record.offset + UInt64(record.frameLength) - 1] {
                try Data(original).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
                try truncate(dir.segmentPath(1), to: cut)
                #expect(throws: StorageError.self, "cut at \(cut)") { _ = try dir.openEngine() }
                #expect { _ = try dir.openEngine() } throws: { e in
                    (e as? StorageError).map { $0.code == .corrupted && $0.segment == 1 && $0.offset == record.offset } ?? false
                }
                try? FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
            }
        }
        // Cut inside the last record's header, or at its start (a whole
        // group gone): no crash leaves a segment file at a length that is
        // neither its size nor a multiple of 512 bytes, so these are files
        // cut from outside too, named by the length they were cut at.
        for cut in [locations[2].offset + 10, locations[2].offset] {
            #expect(cut % LogFormat.segmentLengthGranularity != 0, "the test needs a cut the length check sees")
            try Data(original).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
            try truncate(dir.segmentPath(1), to: cut)
            #expect { _ = try dir.openEngine() } throws: { e in
                (e as? StorageError).map { $0.code == .corrupted && $0.segment == 1 && $0.offset == cut } ?? false
            }
            try? FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        }
        // Cut at a multiple of 512 bytes after the last record: what a
        // power cut in a growth step can leave. The log opens whole.
        let afterLast = (locations[2].offset + UInt64(locations[2].frameLength) + 511) / 512 * 512
        try Data(original).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        try truncate(dir.segmentPath(1), to: afterLast)
        let engine = try dir.openEngine()
        #expect(try engine.records(of: stream(1)).count == 3)
        try await engine.close()
    }

    /// Recovery's own cut of a torn tail leaves the file at a length a
    /// later open accepts, even when the disk is full and the file cannot
    /// be extended again after the cut (so the cut is its length): the
    /// next multiple of 512 bytes, zeros written up to it, not the log's
    /// end, a length the next open would take for a file cut short.
    @Test func recoverysCutLeavesALengthTheNextOpenAccepts() async throws {
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir)
        let last = locations[2]
        #expect(last.offset % LogFormat.segmentLengthGranularity != 0, "the test needs a log end the length check sees")
        // A torn last record (its header damaged, nothing after it).
        try overwrite(dir.segmentPath(1), at: last.offset + 20, with: [UInt8](repeating: 0xA5, count: 40))
        let faults = FaultInjection()
        faults.diskFull = true
        let engine = try dir.openEngine(smallConfiguration { $0.faults = faults })
        #expect(engine.recoveryReport.truncatedAt?.offset == last.offset)
        #expect(try engine.records(of: stream(1)).count == 2)
        try await engine.close()
        let size = try FileManager.default.attributesOfItem(atPath: dir.segmentPath(1))[.size] as! UInt64
        #expect(size == (last.offset + 511) / 512 * 512)
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(1)).count == 2)
        try await reopened.close()
    }

    /// A backup's copy cut short right after a record (its file at that
    /// odd length, the folder marked `backup.copying`), opened on a full
    /// disk, where the file cannot be extended to a length the engine
    /// leaves: the mark stays, so the next open, with space, still takes
    /// the length for the copy's and extends it, instead of refusing the
    /// store as cut from outside.
    @Test func aMarkedCopyOpenedOnAFullDiskKeepsItsMarkUntilItsLengthIsRight() async throws {
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir)
        let end = locations[2].offset + UInt64(locations[2].frameLength)
        #expect(end % LogFormat.segmentLengthGranularity != 0, "the test needs an end the length check sees")
        try truncate(dir.segmentPath(1), to: end)
        let mark = dir.path + "/" + LogFormat.copyInProgressFileName
        #expect(FileManager.default.createFile(atPath: mark, contents: Data()))
        let faults = FaultInjection()
        faults.diskFull = true
        let full = try dir.openEngine(smallConfiguration { $0.faults = faults })
        #expect(try full.records(of: stream(1)).count == 3)
        try await full.close()
        #expect(FileManager.default.fileExists(atPath: mark))
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(1)).count == 3)
        try await reopened.close()
        #expect(!FileManager.default.fileExists(atPath: mark))
        let size = try FileManager.default.attributesOfItem(atPath: dir.segmentPath(1))[.size] as! UInt64
        #expect(size % LogFormat.segmentLengthGranularity == 0)
        let again = try dir.openEngine()
        #expect(try again.records(of: stream(1)).count == 3)
        try await again.close()
    }

    @Test func tornTailOfGarbageInPreallocatedSpaceIsCut() async throws {
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir)
        let last = locations[2]
        // Half-written last record: its second half is zeros, as in a
        // preallocated file after a crash.
        try overwrite(dir.segmentPath(1), at: last.offset + UInt64(last.frameLength / 2), with: [UInt8](repeating: 0, count: Int(last.frameLength)))
        let engine = try dir.openEngine()
        #expect(try engine.records(of: stream(1)).count == 2)
        // The store goes on after the cut, and the new record survives a reopen.
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(7))])
        let reopened = try await engine.reopen(dir)
        #expect(try reopened.records(of: stream(1)).map(\.payload).last == payload(7))
        try await reopened.close()
    }

    /// A flipped byte in the middle one of three durable records, a later
    /// record testifying (under its MAC, where frames have one) that it was
    /// durable: a flipped bit, not a torn write.
    /// - In its payload, under a genuine header, the one byte value that
    ///   explains its CRC and gives the leaf hash `merkle.hashes` holds for
    ///   it is restored and written back (with frame MACs): the record
    ///   reads whole.
    /// - In its header, with frame MACs (as a store has), the one byte value
    ///   that the header's CRC and MAC prove is restored and written back:
    ///   the record reads whole.
    /// - In its padding after an intact payload, the zeros are written
    ///   back: the record reads whole.
    /// The records around it read back, and the store takes new ones.
    /// Without frame MACs (the engine's own tests), no later frame
    /// testifies beyond doubt and no header repair is proven: the open
    /// refuses the store for a damaged header or payload, naming the
    /// record (padding is restored all the same). Before, the whole store
    /// refused to open in every case.
    @Test(arguments: [0, 5, 20, 79, 80, 95, 96, 120, 200, 247], [false, true])
    func damagedMiddleRecord(byteInRecord: Int, authenticated: Bool) async throws {
        let c = authenticated ? smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) } : smallConfiguration()
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir, c)
        let middle = locations[1]
        #expect(middle.frameLength == 248, "the test's byte 247 is padding")
        let clean = try readBytes(dir.segmentPath(1))
        var bytes = clean
        bytes[Int(middle.offset) + byteInRecord] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        let inPadding = byteInRecord >= LogFormat.frameHeaderSize + 150
        // Without frame MACs, no later frame can testify beyond doubt (a
        // CRC anyone can write) and no header repair is proven: damage but
        // to the padding (zeros, whatever the MAC) refuses the store.
        guard authenticated || inPadding else {
            #expect {
                _ = try dir.openEngine(c)
            } throws: { error in
                guard let e = error as? StorageError else { return false }
                return e.code == .corrupted && e.segment == 1 && e.offset == middle.offset
            }
            return
        }
        let engine = try dir.openEngine(c)
        #expect(engine.recoveryReport.truncatedAt == nil)
        #expect(engine.recoveryReport.restoredRecords.map(\.offset) == [middle.offset])
        #expect(engine.recoveryReport.damagedRecords.isEmpty)
        #expect(try engine.read(middle).payload == payload(1, size: 150))
        let frame = Int(middle.offset)..<(Int(middle.offset) + Int(middle.frameLength))
        #expect(Array(try readBytes(dir.segmentPath(1))[frame]) == Array(clean[frame]), "written back")
        #expect(try engine.read(locations[0]).payload == payload(0, size: 150))
        #expect(try engine.read(locations[2]).payload == payload(2, size: 150))
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(9))])
        let reopened = try await engine.reopen(dir, c)
        #expect(try reopened.read(locations[2]).payload == payload(2, size: 150))
        try await reopened.close()
    }

    /// A torn last group (its second frame cut short by a crash) whose
    /// first frame has one flipped header byte: the header is restored in
    /// memory, the group is incomplete and cut, and nothing is written back
    /// past the end the replay keeps (zeros after it, never a stale frame).
    /// Before, the restored header was written back after the cut.
    @Test func aRestoredHeaderOfACutGroupIsNotWrittenBack() async throws {
        let c = smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) }
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine(c)
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(0, size: 150))])
        let group = try await engine.appendDurably([
            EngineRecord(stream: stream(1), payload: payload(1, size: 150)), EngineRecord(stream: stream(2), payload: payload(2, size: 600)),
        ])
        try await engine.close()
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        var bytes = try readBytes(dir.segmentPath(1))
        bytes[Int(group[0].offset) + 20] ^= 0x10
        // The second frame torn: its payload's end never written.
        let tear = Int(group[1].offset) + LogFormat.frameHeaderSize + 300
        for i in tear..<(Int(group[1].offset) + Int(group[1].frameLength)) { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        let reopened = try dir.openEngine(c)
        #expect(reopened.recoveryReport.truncatedAt?.offset == group[0].offset)
        #expect(reopened.recoveryReport.restoredRecords.isEmpty)
        #expect(try reopened.records(of: stream(1)).count == 1)
        try await reopened.close()
        let after = try readBytes(dir.segmentPath(1))
        #expect(after[Int(group[0].offset)..<(Int(group[0].offset) + LogFormat.frameHeaderSize)].allSatisfy { $0 == 0 })
    }

    /// Two flipped bytes in the middle record's payload, beyond a one-byte
    /// repair: kept as it is when a later frame, genuine under its MAC,
    /// testifies it durable (reading it answers `corrupted`); without frame
    /// MACs, the open refuses the store.
    @Test(arguments: [false, true])
    func twoDamagedPayloadBytesKeepTheRecordDamaged(authenticated: Bool) async throws {
        let c = authenticated ? smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) } : smallConfiguration()
        let dir = TemporaryDirectory()
        let locations = try await threeRecords(dir, c)
        let middle = locations[1]
        var bytes = try readBytes(dir.segmentPath(1))
        bytes[Int(middle.offset) + LogFormat.frameHeaderSize + 10] ^= 0x40
        bytes[Int(middle.offset) + LogFormat.frameHeaderSize + 60] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        guard authenticated else {
            #expect { _ = try dir.openEngine(c) } throws: { ($0 as? StorageError).map { $0.code == .corrupted && $0.offset == middle.offset } ?? false }
            return
        }
        let engine = try dir.openEngine(c)
        #expect(engine.recoveryReport.damagedRecords.map(\.offset) == [middle.offset])
        #expect(engine.recoveryReport.restoredRecords.isEmpty)
        #expect { _ = try engine.read(middle) } throws: { ($0 as? StorageError).map { $0.code == .corrupted && $0.offset == middle.offset } ?? false }
        #expect(try engine.read(locations[2]).payload == payload(2, size: 150))
        try await engine.close()
    }

    /// The newest record, acknowledged, with one flipped byte in its
    /// header, its payload or its padding and no later frame to testify for
    /// it: its header's MAC (its leaf in `merkle.hashes`, the padding's
    /// zeros) proves the value, so it is restored and written back, never
    /// cut as a torn tail: the frame is then exactly as the committer wrote
    /// it. Before, it was cut, and an acknowledged record lost.
    @Test(arguments: [20, 130, 247])
    func theNewestRecordWithOneFlippedByteIsRestoredNotCut(byteInRecord: Int) async throws {
        let c = smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) }
        let dir = TemporaryDirectory()
        let last = try await threeRecords(dir, c)[2]
        let clean = try readBytes(dir.segmentPath(1))
        var bytes = clean
        bytes[Int(last.offset) + byteInRecord] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        let engine = try dir.openEngine(c)
        #expect(engine.recoveryReport.truncatedAt == nil)
        #expect(engine.recoveryReport.restoredRecords.map(\.offset) == [last.offset])
        #expect(try engine.read(last).payload == payload(2, size: 150))
        try await engine.close()
        let frame = Int(last.offset)..<(Int(last.offset) + Int(last.frameLength))
        #expect(Array(try readBytes(dir.segmentPath(1))[frame]) == Array(clean[frame]), "written back")
        let again = try dir.openEngine(c)
        #expect(again.recoveryReport.restoredRecords.isEmpty)
        #expect(try again.read(last).payload == payload(2, size: 150))
        try await again.close()
    }

    /// A torn last record (its payload cut short by a crash) followed by a
    /// header that only its CRC vouches for (anyone can write one), which
    /// says the torn record was durable: that testimony never makes the
    /// open keep the torn record; the store is refused, as before.
    @Test func aForgedTestimonyNeverKeepsATornRecord() async throws {
        let c = smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) }
        let dir = TemporaryDirectory()
        let last = try await threeRecords(dir, c)[2]
        var bytes = try readBytes(dir.segmentPath(1))
        // Two bytes: a tear no one-byte repair explains.
        bytes[Int(last.offset) + 120] ^= 0x40
        bytes[Int(last.offset) + 130] ^= 0x40
        let salt = try #require(try LogFormat.decodeSegmentHeader(Array(bytes[0..<LogFormat.segmentHeaderSize]))).salt
        // Past a gap of zeros (replay ends there), saying "durable through
        // the torn record" and no further: once the torn record were kept,
        // it would testify for nothing and be cut as junk.
        let after = Int(last.offset) + Int(last.frameLength) + 64
        let forged = LogFormat.encodeFrameHeader(
            salt: salt, offset: UInt64(after), payloadLength: 8, payloadCRC: 0, lsn: 5, durableThrough: 4, flags: 0, previous: nil,
            stream: stream(1), authenticator: nil)
        bytes.replaceSubrange(after..<(after + forged.count), with: forged)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        #expect { _ = try dir.openEngine(c) } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    /// Two bytes of one header flipped: no single byte restores it, and the
    /// open refuses the store (a repair is never a guess).
    @Test func aHeaderWithTwoDamagedBytesIsCorruption() async throws {
        let c = smallConfiguration { $0.authenticator = TestAuthenticator(secret: [7, 7]) }
        let dir = TemporaryDirectory()
        let middle = try await threeRecords(dir, c)[1]
        var bytes = try readBytes(dir.segmentPath(1))
        bytes[Int(middle.offset) + 20] ^= 0x40
        bytes[Int(middle.offset) + 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: dir.segmentPath(1)))
        #expect {
            _ = try dir.openEngine(c)
        } throws: { ($0 as? StorageError).map { $0.code == .corrupted && $0.segment == 1 && $0.offset == middle.offset } ?? false }
    }

    @Test func damageInAnOlderSegmentIsReportedOnRead() async throws {
        let dir = TemporaryDirectory()
        var first: RecordLocation?
        do {
            let engine = try dir.openEngine()
            for i in 0..<100 {
                let loc = try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i, size: 2000))])
                if first == nil { first = loc[0] }
            }
            try await engine.close()
        }
        try overwrite(dir.segmentPath(1), at: first!.offset + 100, with: [0xFF, 0xFF])
        // With the checkpoint, open does not rescan segment 1; the read does,
        // and names the segment and offset.
        let engine = try dir.openEngine()
        #expect {
            _ = try engine.read(first!)
        } throws: { ($0 as? StorageError).map { $0.code == .corrupted && $0.segment == 1 && $0.offset == first!.offset } ?? false }
        try await engine.close()
        // Without the checkpoint, open replays everything and refuses (no
        // frame MACs here: nothing testifies beyond doubt that the record
        // was durable; `damagedMiddleRecord` has the store's case).
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        #expect {
            _ = try dir.openEngine()
        } throws: { ($0 as? StorageError).map { $0.code == .corrupted && $0.segment == 1 } ?? false }
    }

    @Test func missingMiddleSegmentIsCorruption() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<100 {
            try await engine.appendDurably([EngineRecord(stream: stream(3), payload: payload(i, size: 2000))])
        }
        try await engine.close()
        try FileManager.default.removeItem(atPath: dir.segmentPath(2))
        #expect {
            _ = try dir.openEngine()
        } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    @Test func incompleteAtomicGroupIsCutWhole() async throws {
        let dir = TemporaryDirectory()
        var group: [RecordLocation] = []
        do {
            let engine = try dir.openEngine()
            try await engine.appendDurably([EngineRecord(stream: stream(4), payload: payload(0))])
            group = try await engine.appendDurably([
                EngineRecord(stream: stream(4), payload: payload(1)),
                EngineRecord(stream: stream(5), payload: payload(2)),
                EngineRecord(stream: stream(4), payload: payload(3)),
            ])
            try await engine.close()
            try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        }
        // Lose the group's last frame (zeros from inside its header on, as a
        // crash leaves preallocated space): the first two, although intact,
        // go too.
        let size = try FileManager.default.attributesOfItem(atPath: dir.segmentPath(1))[.size] as! UInt64
        try truncate(dir.segmentPath(1), to: group[2].offset + 10)
        try truncate(dir.segmentPath(1), to: size)
        let engine = try dir.openEngine()
        #expect(try engine.records(of: stream(4)).map(\.payload) == [payload(0)])
        #expect(engine.head(of: stream(5)) == nil)
        #expect(engine.recoveryReport.truncatedAt?.offset == group[0].offset)
        try await engine.close()
    }

    @Test func staleFramesFromAnEarlierFileDoNotCount() async throws {
        // Copy a valid frame from one store into the free space of another:
        // its checksum is salted by the other file, so it is not a record.
        let a = TemporaryDirectory(), b = TemporaryDirectory()
        let engineA = try a.openEngine()
        let foreign = try await engineA.appendDurably([EngineRecord(stream: stream(6), payload: payload(6))])[0]
        try await engineA.close()
        let engineB = try b.openEngine()
        let own = try await engineB.appendDurably([EngineRecord(stream: stream(7), payload: payload(7))])[0]
        try await engineB.close()
        let frame = Array(try readBytes(a.segmentPath(1))[Int(foreign.offset)..<Int(foreign.offset + UInt64(foreign.frameLength))])
        try overwrite(b.segmentPath(1), at: own.offset + UInt64(own.frameLength), with: frame)
        try FileManager.default.removeItem(atPath: b.path + "/" + LogFormat.checkpointFileName)
        let reopened = try b.openEngine()
        #expect(reopened.head(of: stream(6)) == nil)
        #expect(reopened.nextSequence == 2)
        try await reopened.close()
    }

    @Test func damagedCheckpointFallsBackToFullReplay() async throws {
        let dir = TemporaryDirectory()
        do {
            let engine = try dir.openEngine()
            for i in 0..<10 { try await engine.appendDurably([EngineRecord(stream: stream(8), payload: payload(i))]) }
            try await engine.close()
        }
        try overwrite(dir.path + "/" + LogFormat.checkpointFileName, at: 40, with: [0xAB])
        let engine = try dir.openEngine()
        #expect(engine.recoveryReport.usedCheckpoint == false)
        #expect(try engine.records(of: stream(8)).count == 10)
        try await engine.close()
    }

    /// Periodic checkpoints are taken between the committer's groups
    /// whatever is queued behind them (they cover the written groups, not
    /// the queued ones): under four concurrent writers and a checkpoint
    /// every 2 KiB, a copy of the folder taken without a close (as after
    /// a kill) opens from the newest one with every acknowledged record.
    @Test func checkpointsTakenWhileGroupsAreQueuedRecoverEveryRecord() async throws {
        let configuration = smallConfiguration {
            $0.segmentSize = 1 << 20
            $0.checkpointInterval = 2 << 10
            $0.replaysWithoutCheckpoint = false
        }
        let (dir, engine) = try TemporaryDirectory.withEngine(configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<4 {
                group.addTask {
                    for i in 0..<200 {
                        try await engine.appendDurably([EngineRecord(stream: stream(UInt8(10 + w)), payload: payload(i))])
                    }
                }
            }
            try await group.waitForAll()
        }
        let copy = TemporaryDirectory()
        try FileManager.default.removeItem(atPath: copy.path)
        try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
        try? FileManager.default.removeItem(atPath: copy.path + "/LOCK")
        let recovered = try copy.openEngine(configuration)
        #expect(recovered.recoveryReport.usedCheckpoint)
        #expect(recovered.recoveryReport.replayedRecords < 800, "the newest checkpoint is recent")
        #expect(recovered.durableRecordCount == 800)
        #expect(try recovered.merkleTree.root(size: 800) == engine.merkleTree.root(size: 800))
        for w in 0..<4 {
            let frames = try recovered.records(of: stream(UInt8(10 + w)))
            #expect(frames.map(\.payload) == (0..<200).map { payload($0) })
        }
        try await recovered.close()
        try await engine.close()
    }
}
