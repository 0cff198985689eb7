import Testing
@testable import VaultStorage

@Suite struct CRC32CTests {
    @Test func checkValue() {
        // The catalogue's check value of CRC-32/ISCSI (CRC-32C).
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
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
}
