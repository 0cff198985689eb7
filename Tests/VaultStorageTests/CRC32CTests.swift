import Testing
@testable import VaultStorage

/// CRC-32C against its published vectors, hardware and software alike (`CRC32C`).
@Suite struct CRC32CTests {
    @Test func checkValue() {
        // The catalogue's check value of CRC-32/ISCSI (CRC-32C).
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// Both paths on the same vectors: the catalogue's check value, RFC
    /// 3720's (iSCSI) test patterns, and every length and alignment up to
    /// 100 bytes of random data, continuing from random states.
    @Test func hardwareAndSoftwarePathsAgree() throws {
        func both(_ bytes: [UInt8], _ crc: UInt32 = 0) -> (UInt32, UInt32?) {
            bytes.withUnsafeBytes { raw in
                (CRC32C.softwareChecksum(raw, continuing: crc),
                 CRC32C.usesHardware ? CRC32C.hardwareChecksum(raw, continuing: crc) : nil)
            }
        }
        let vectors: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xE306_9283),
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E),
            ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ]
        for (bytes, expected) in vectors {
            let (software, hardware) = both(bytes)
            #expect(software == expected)
            if let hardware { #expect(hardware == expected) }
        }
        var generator = SystemRandomNumberGenerator()
        let data = (0..<108).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<8 {
            for length in 0...100 {
                let state = UInt32.random(in: 0...UInt32.max, using: &generator)
                let (software, hardware) = both(Array(data[start..<(start + length)]), state)
                if let hardware { #expect(hardware == software, "start \(start) length \(length)") }
            }
        }
        // This machine's processor has the instruction (x86-64 with SSE 4.2):
        // the fast path is the one in use.
        #if arch(x86_64)
        #expect(CRC32C.usesHardware)
        #endif
    }

    @Test func incrementalEqualsWhole() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(Array(data[..<split]))
            #expect(CRC32C.checksum(Array(data[split...]), continuing: first) == CRC32C.checksum(data))
        }
    }

    @Test func detectsEveryFlippedBit() {
        let data = payload(1, size: 64)
        let reference = CRC32C.checksum(data)
        for i in 0..<data.count {
            for bit in 0..<8 {
                var copy = data
                copy[i] ^= 1 << bit
                #expect(CRC32C.checksum(copy) != reference)
            }
        }
    }

    /// The single-byte errors that explain a mismatch include the one
    /// made, for every position and a spread of values, in a message of a
    /// checkpoint's size and in a short one.
    @Test(arguments: [1, 96, 1000])
    func singleByteErrorsFindTheOneMade(size: Int) {
        let data = payload(3, size: size)
        let reference = CRC32C.checksum(data)
        for i in Swift.stride(from: 0, to: size, by: max(1, size / 97)) {
            for delta: UInt8 in [0x01, 0x5A, 0x80, 0xFF] {
                var copy = data
                copy[i] ^= delta
                let found = CRC32C.singleByteErrors(syndrome: CRC32C.checksum(copy) ^ reference, count: size)
                #expect(found.contains { $0.index == i && $0.delta == delta }, "byte \(i), delta \(delta)")
                // Each candidate found does explain it.
                for f in found {
                    var repaired = copy
                    repaired[f.index] ^= f.delta
                    #expect(CRC32C.checksum(repaired) == reference)
                }
            }
        }
        #expect(CRC32C.singleByteErrors(syndrome: 0, count: size).isEmpty)
    }
}
