#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs of zero bytes, appended with `memcpy` and looked for with `memcmp`
/// over one static block of zeros rather than byte by byte: padding,
/// preallocated space and empty slots are zeros by the megabyte, and a
/// debug build (which the tests run) walks `repeatElement` or a byte loop
/// through generic code, one call per byte.
package enum Zeros {
    /// 64 KiB of zeros, never written.
    static let block = [UInt8](repeating: 0, count: 64 << 10)

    /// The offset of the first byte of `raw` at or after `from` that is not
    /// zero, or nil.
    package static func firstNonZero(in raw: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from >= 0, from < raw.count, let base = raw.baseAddress else { return nil }
        return block.withUnsafeBytes { zeros -> Int? in
            var offset = from
            var step = zeros.count
            while offset < raw.count {
                let length = Swift.min(step, raw.count - offset)
                if memcmp(base + offset, zeros.baseAddress!, length) == 0 {
                    offset += length
                } else if length <= 16 {
                    for i in offset..<(offset + length) where raw[i] != 0 { return i }
                    offset += length
                } else {
                    // Narrowed down inside the block that differs.
                    step = Swift.max(16, length / 16)
                }
            }
            return nil
        }
    }

    /// Whether every byte of `raw` is zero.
    package static func allZero(_ raw: UnsafeRawBufferPointer) -> Bool {
        firstNonZero(in: raw, from: 0) == nil
    }
}

extension Array where Element == UInt8 {
    /// Appends `count` zero bytes; `count` is not negative.
    package mutating func appendZeros(_ count: Int) {
        precondition(count >= 0, "a negative count of zeros")
        var left = count
        while left > 0 {
            let length = Swift.min(left, Zeros.block.count)
            append(contentsOf: Zeros.block[0..<length])
            left -= length
        }
    }

    /// The offset of the first byte at or after `from` that is not zero, or nil.
    package func firstNonZero(from: Int) -> Int? {
        withUnsafeBytes { Zeros.firstNonZero(in: $0, from: from) }
    }
}
