import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Inputs the fuzzer (`Fuzz/`, run by `Scripts/fuzz.sh`) found crashing,
/// replayed against the decoders themselves. The dispatch of fuzz inputs
/// exists once, in the fuzzer, which also checks that the committed corpus
/// (`Fuzz/Corpus/`, seeds and crash inputs) decodes as its names say
/// (`PV_FUZZ_CHECK_CORPUS`, before every fuzzing run in CI).
@Suite struct FuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    /// A corpus file's bytes, without the selector byte.
    static func input(_ name: String) throws -> [UInt8] {
        Array([UInt8](try Data(contentsOf: corpus.appendingPathComponent(name))).dropFirst())
    }

    /// `bytes` with its trailing CRC-32C (of everything before it) fixed.
    static func withCRCFixed(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        let crc = CRC32C.checksum(Array(out[0..<(out.count - 4)]))
        withUnsafeBytes(of: crc.littleEndian) { for j in 0..<4 { out[out.count - 4 + j] = $0[j] } }
        return out
    }

    /// A checkpoint whose checksum (and MAC) match, one of whose entries
    /// has a frame length of 0, trapped in `StreamIndex` ("a frame has a
    /// length": 0 marks its empty slots). Found in under 500 executions of
    /// `checkpointFixed`. Now malformed: nil, and recovery replays the log.
    @Test func aCheckpointEntryOfLengthZeroIsMalformedNotATrap() throws {
        // The same defect in a checkpoint as the engine writes it (three
        // entries; the first entry's length at bytes 104..<108), read
        // without an authenticator so that only the CRC guards it.
        let valid = try Self.input("08-checkpoint-valid-1")
        var zero = valid
        zero.replaceSubrange(104..<108, with: [0, 0, 0, 0])
        zero = Self.withCRCFixed(zero)
        #expect(try LogEngineCore.decodeCheckpoint(valid, authenticator: nil)?.index.count == 3)
        #expect(try LogEngineCore.decodeCheckpoint(zero, authenticator: nil)?.index.count == nil)
    }

    /// The chunk table of a checkpoint is read as strictly as it is
    /// written: chunks in LSN order, below the next LSN, each somewhere.
    /// A table out of order (checksum fixed) is malformed, never a table
    /// that would resolve a reference to the wrong chunk.
    @Test func aCheckpointChunkTableOutOfOrderIsMalformed() throws {
        // Header (64 bytes), three stream entries (48 each), the chunk
        // count (8), then two chunks of 24 bytes: LSNs at 216 and 240.
        let valid = try Self.input("08-checkpoint-valid-1")
        let decoded = try LogEngineCore.decodeCheckpoint(valid, authenticator: nil)
        #expect(decoded?.chunks.count == 2)
        #expect(decoded?.chunks.location(of: 2) == RecordLocation(segment: 1, offset: 4160, frameLength: 4096))
        #expect(decoded?.landmarks.atOrBefore(299)?.lsn == 256)
        // Out of order, at or past the next LSN (300), a landmark off the
        // 256 grid (at 272, after the landmark count at 264).
        for (offset, lsn) in [(240, UInt64(1)), (216, UInt64(300)), (272, UInt64(255))] {
            var bad = valid
            withUnsafeBytes(of: lsn.littleEndian) { bad.replaceSubrange(offset..<(offset + 8), with: $0) }
            bad = Self.withCRCFixed(bad)
            #expect(try LogEngineCore.decodeCheckpoint(bad, authenticator: nil) == nil, "LSN \(lsn) at \(offset)")
        }
    }
}
