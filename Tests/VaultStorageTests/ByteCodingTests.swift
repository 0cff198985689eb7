import Testing
@testable import VaultStorage

/// Little-endian encoding and bounded decoding (`ByteCoding`).
@Suite struct ByteCodingTests {
    @Test func roundTrip() throws {
        var w = ByteWriter()
        w.write(UInt8(7)); w.write(UInt32(0xDEAD_BEEF)); w.write(UInt64.max)
        w.writeVarint(0); w.writeVarint(300); w.writeVarint(UInt64.max)
        w.write(string: "héllo"); w.write(lengthPrefixed: [1, 2, 3])
        let bytes = w.bytes
        try bytes.withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            #expect(try r.read(UInt8.self) == 7)
            #expect(try r.read(UInt32.self) == 0xDEAD_BEEF)
            #expect(try r.read(UInt64.self) == .max)
            #expect(try r.readVarint() == 0)
            #expect(try r.readVarint() == 300)
            #expect(try r.readVarint() == .max)
            #expect(try r.readString() == "héllo")
            #expect(try r.readLengthPrefixed() == [1, 2, 3])
            #expect(r.remaining == 0)
            #expect(throws: ByteReader.Malformed.self) { try r.read(UInt8.self) }
        }
    }

    /// One value, one encoding: a varint with a trailing zero byte (an
    /// overlong form the writer never makes) is malformed; every value the
    /// writer encodes reads back.
    @Test func aVarintIsReadInItsShortestFormOnly() throws {
        for overlong: [UInt8] in [[0x83, 0x00], [0x80, 0x00], [0x80, 0x80, 0x00], [0xFF, 0x80, 0x00]] {
            overlong.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                #expect(throws: ByteReader.Malformed.self) { try r.readVarint() }
            }
        }
        for value: UInt64 in [0, 1, 127, 128, 255, 16_383, 16_384, 1 << 35, .max - 1, .max] {
            var w = ByteWriter()
            w.writeVarint(value)
            try w.bytes.withUnsafeBytes { raw throws in
                var r = ByteReader(raw)
                #expect(try r.readVarint() == value)
                #expect(r.remaining == 0)
            }
        }
    }

    @Test func truncatedInputThrows() {
        var w = ByteWriter()
        w.write(string: "a longer string")
        let bytes = Array(w.bytes.dropLast())
        bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(throws: ByteReader.Malformed.self) { try r.readString() }
        }
    }
}
