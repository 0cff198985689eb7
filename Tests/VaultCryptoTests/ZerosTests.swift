import Testing
@testable import VaultCrypto

/// Runs of zeros (`Zeros`, `appendZeros`): the same answers as a byte
/// loop, at every block and narrowing boundary.
@Suite struct ZerosTests {
    func naive(_ bytes: [UInt8], from: Int) -> Int? {
        guard from >= 0 else { return nil }
        return bytes.indices.first { $0 >= from && bytes[$0] != 0 }
    }

    @Test func theFirstNonZeroByteIsFoundWhereverItIs() {
        let size = (64 << 10) * 2 + 37
        let zeros = [UInt8](repeating: 0, count: size)
        #expect(zeros.firstNonZero(from: 0) == nil)
        #expect(zeros.firstNonZero(from: size) == nil)
        #expect(zeros.firstNonZero(from: -1) == nil)
        #expect([UInt8]().firstNonZero(from: 0) == nil)
        // Around every boundary of the 64 KiB block and its narrowing steps.
        var positions = [0, 1, 15, 16, 17, 255, 256, 4095, 4096, 4097, size - 1]
        for block in [64 << 10, 128 << 10] { positions += [block - 1, block, block + 1, block + 16, block - 16] }
        for position in positions {
            var bytes = zeros
            bytes[position] = 0x80
            bytes[size - 1] |= 1
            for from in [0, max(0, position - 1), position, position + 1] {
                #expect(bytes.firstNonZero(from: from) == naive(bytes, from: from), "byte \(position), from \(from)")
            }
        }
    }

    @Test func appendedZerosAreZerosOfTheCountAsked() {
        for count in [0, 1, 96, 64 << 10, (64 << 10) + 1, 200_000] {
            var bytes: [UInt8] = [7]
            bytes.appendZeros(count)
            #expect(bytes.count == count + 1 && bytes[0] == 7)
            #expect(bytes.firstNonZero(from: 1) == nil)
        }
    }
}
