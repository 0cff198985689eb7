import Foundation
import Testing
@testable import VaultCrypto
@testable import VaultStorage

/// A stand-in MAC for the engine's own tests (the real one, keyed BLAKE2b,
/// lives above this layer): four CRC-32C chains of the message, each seeded
/// with the secret and a lane number. Not a MAC against an adversary, but
/// one a test cannot recompute without the secret, which is all these
/// tests need.
struct TestAuthenticator: LogAuthenticator {
    let secret: [UInt8]
    func tag(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        (0..<4).flatMap { lane -> [UInt8] in
            let seed = CRC32C.checksum([UInt8(lane)] + secret)
            return withUnsafeBytes(of: CRC32C.checksum(message, continuing: seed).littleEndian, Array.init)
        }
    }
}

/// Frame headers and checkpoints carry a MAC recovery checks (`LogAuthenticator`).
@Suite struct AuthenticationTests {
    func isCorruption(_ error: any Error) -> Bool { (error as? StorageError)?.code == .corrupted }

    func configuration(_ secret: UInt8 = 1) -> LogEngineConfiguration {
        smallConfiguration { $0.authenticator = TestAuthenticator(secret: [secret, 2, 3]) }
    }

    @Test func authenticatedFramesAndCheckpointsReopen() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(configuration())
        for i in 0..<20 { try await engine.appendDurably([EngineRecord(stream: stream(UInt8(i % 3)), payload: payload(i))]) }
        let reopened = try await engine.reopen(dir, configuration())
        #expect(reopened.recoveryReport.usedCheckpoint)
        #expect(try reopened.records(of: stream(1)).count == 7)
        try await reopened.close()
    }

    @Test func anotherKeyRefusesTheCheckpointAndTheFrames() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(configuration())
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])
        try await engine.close()
        #expect { _ = try dir.openEngine(configuration(9)) } throws: { isCorruption($0) }
        // Without the checkpoint, the first frame is refused: its CRC matches,
        // its MAC does not, so it is not a torn write to cut.
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        #expect { _ = try dir.openEngine(configuration(9)) } throws: { isCorruption($0) }
        // With the right key, nothing was lost.
        let reopened = try dir.openEngine(configuration())
        #expect(try reopened.records(of: stream(1)).map(\.payload) == [payload(1)])
        try await reopened.close()
    }

    @Test func aFrameMovedToAnotherOffsetFailsItsMAC() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine(configuration())
        let a = try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])[0]
        let b = try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])[0]
        try await engine.close()
        // The same bytes at another place: the MAC binds the frame to its offset.
        let bytes = try readBytes(dir.segmentPath(1))
        try overwrite(dir.segmentPath(1), at: b.offset, with: Array(bytes[Int(a.offset)..<Int(a.offset + UInt64(a.frameLength))]))
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        #expect { _ = try dir.openEngine(configuration()) } throws: { isCorruption($0) }
    }

    /// A flipped byte anywhere in `index.checkpoint` (its body, its MAC or
    /// its CRC) is restored at open, the MAC proving the one value that
    /// fits, and nothing is lost; two flipped bytes are `corrupted`, as a
    /// damaged checkpoint was before (falling back on an older one, or on
    /// a replay, would let a cut of the newest records go unseen).
    @Test func aCheckpointWithOneDamagedByteIsRestored() async throws {
        let strict = smallConfiguration { $0.authenticator = TestAuthenticator(secret: [4, 2]); $0.replaysWithoutCheckpoint = false }
        let (dir, engine) = try TemporaryDirectory.withEngine(strict)
        for i in 0..<6 { try await engine.appendDurably([EngineRecord(stream: stream(UInt8(i % 3)), payload: payload(i))]) }
        try await engine.close()
        let path = dir.path + "/" + LogFormat.checkpointFileName
        let original = try readBytes(path)
        for position in Swift.stride(from: 0, to: original.count, by: 7) + [original.count - 1] {
            var damaged = original
            damaged[position] ^= 0x3C
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            let reopened = try dir.openEngine(strict)
            #expect(reopened.recoveryReport.usedCheckpoint, "byte \(position)")
            #expect(reopened.recoveryReport.replayedRecords == 0, "byte \(position)")
            #expect(try reopened.records(of: stream(1)).count == 2, "byte \(position)")
            try await reopened.close()
            try Data(original).write(to: URL(fileURLWithPath: path))
        }
        var twice = original
        twice[10] ^= 0x01
        twice[original.count / 2] ^= 0x01
        try Data(twice).write(to: URL(fileURLWithPath: path))
        #expect { _ = try dir.openEngine(strict) } throws: { isCorruption($0) }
    }

    /// A closed engine's log of three durable records of 100 bytes: its
    /// folder, the middle record, the segment's path and bytes.
    func threeClosedRecords(
        _ c: LogEngineConfiguration
    ) async throws -> (TemporaryDirectory, RecordLocation, String, [UInt8]) {
        let (dir, engine) = try TemporaryDirectory.withEngine(c)
        var locations: [RecordLocation] = []
        for i in 0..<3 { locations += try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 100))]) }
        try await engine.close()
        return (dir, locations[1], dir.segmentPath(1), try readBytes(dir.segmentPath(1)))
    }

    /// A flipped byte in the header of a record the checkpoint covers
    /// (never replayed), anywhere in its 96 bytes: the read and a walk of
    /// the log restore it in memory, its CRC and MAC proving the value, and
    /// the record reads whole. Before, it was `corrupted` (and a walk
    /// stopped there). Two flipped bytes are still `corrupted`.
    @Test func aRecordHeaderWithOneDamagedByteReadsWhole() async throws {
        let c = configuration()
        let (dir, middle, path, original) = try await threeClosedRecords(c)
        for byte in [0, 3, 4, 7, 8, 20, 33, 47, 48, 79, 80, 95] {
            var damaged = original
            damaged[Int(middle.offset) + byte] ^= 0x81
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            let reopened = try dir.openEngine(c)
            #expect(reopened.recoveryReport.replayedRecords == 0)
            #expect(try reopened.read(middle).payload == payload(1, size: 100), "byte \(byte)")
            #expect(try reopened.records(of: stream(1)).count == 3, "byte \(byte)")
            try await reopened.close()
            try Data(original).write(to: URL(fileURLWithPath: path))
        }
        var twice = original
        twice[Int(middle.offset) + 20] ^= 0x01
        twice[Int(middle.offset) + 40] ^= 0x01
        try Data(twice).write(to: URL(fileURLWithPath: path))
        let reopened = try dir.openEngine(c)
        #expect { _ = try reopened.read(middle) } throws: { isCorruption($0) }
        try await reopened.close()
    }

    /// One flipped byte of a durable record's payload, under a genuine
    /// header, in the log a checkpoint covers: the read restores it (the
    /// one change that explains the payload's CRC and gives the record's
    /// Merkle leaf, which an inclusion proof checks against the root), and
    /// the file keeps it; padding that is not zeros reads as zeros. Two
    /// flipped bytes, or one in a record whose leaf `merkle.hashes` no
    /// longer proves, are `corrupted`. Before, every case was `corrupted`.
    @Test func aRecordPayloadWithOneDamagedByteReadsWhole() async throws {
        let c = configuration()
        let (dir, middle, path, original) = try await threeClosedRecords(c)
        let header = LogFormat.frameHeaderSize
        for byte in [header, header + 1, header + 50, header + 99, header + 101] {
            var damaged = original
            damaged[Int(middle.offset) + byte] ^= 0x24
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            let reopened = try dir.openEngine(c)
            #expect(try reopened.read(middle).payload == payload(1, size: 100), "byte \(byte)")
            #expect(try reopened.records(of: stream(1)).count == 3, "byte \(byte)")
            try await reopened.close()
            #expect(try readBytes(path) == damaged, "byte \(byte): the file keeps it")
        }
        var twice = original
        twice[Int(middle.offset) + header + 10] ^= 0x01
        twice[Int(middle.offset) + header + 40] ^= 0x01
        try Data(twice).write(to: URL(fileURLWithPath: path))
        let again = try dir.openEngine(c)
        #expect { _ = try again.read(middle) } throws: { isCorruption($0) }
        try await again.close()
        // The leaf the repair would be checked against, altered: nothing proves it.
        var once = original
        once[Int(middle.offset) + header + 10] ^= 0x01
        try Data(once).write(to: URL(fileURLWithPath: path))
        let merkle = dir.path + "/" + MerkleHashFile.fileName
        var hashes = try readBytes(merkle)
        hashes[Int(MerkleHashFile.headerSize) + Int(MerkleTree.storedIndex(level: 0, index: 1)) * 32] ^= 0x01
        try Data(hashes).write(to: URL(fileURLWithPath: merkle))
        let last = try dir.openEngine(c)
        #expect { _ = try last.read(middle) } throws: { isCorruption($0) }
        try await last.close()
    }

    /// A record of a stream about to be compacted, one byte of the prefix
    /// it keeps damaged: the prefix is sealed restored (its leaf proves the
    /// value), never sealed damaged; with two damaged bytes the compaction
    /// refuses the record (`corrupted`). Before, the damaged prefix was
    /// sealed under the compacted body's MAC and read back as genuine.
    @Test func aCompactionNeverSealsADamagedPrefix() async throws {
        let c = configuration()
        let (dir, middle, path, original) = try await threeClosedRecords(c)
        let keep = 40
        let clean = try dir.openEngine(c)
        let lsn = try clean.read(middle).sequence
        try await clean.close()
        for damage in [[10], [10, 30]] {
            var damaged = original
            for i in damage { damaged[Int(middle.offset) + LogFormat.frameHeaderSize + i] ^= 0x11 }
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            let engine = try dir.openEngine(c)
            let reference = RecordReference(sequence: lsn, location: middle)
            if damage.count == 1 {
                _ = try await engine.compact([reference], keepingPrefix: keep)
                let compacted = try await engine.read(reference)
                #expect(compacted.compactedLeaf != nil)
                #expect(compacted.payload == Array(payload(1, size: 100).prefix(keep)))
            } else {
                await #expect { _ = try await engine.compact([reference], keepingPrefix: keep) } throws: { isCorruption($0) }
            }
            try await engine.close()
        }
    }
}
