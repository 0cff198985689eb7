/// Little-endian binary writing, for the engine's frames and for the
/// layers above that encode their own records.
package struct ByteWriter: Sendable {
    /// The bytes written so far.
    package private(set) var bytes: [UInt8]

    package init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends an integer in little-endian order.
    @inline(__always)
    package mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends raw bytes.
    package mutating func write(bytes other: some Sequence<UInt8>) {
        bytes.append(contentsOf: other)
    }

    /// Appends a length (LEB128 varint) then the bytes.
    package mutating func write(lengthPrefixed other: [UInt8]) {
        writeVarint(UInt64(other.count))
        bytes.append(contentsOf: other)
    }

    /// Appends a string as length-prefixed UTF-8.
    package mutating func write(string: String) {
        writeVarint(UInt64(string.utf8.count))
        bytes.append(contentsOf: string.utf8)
    }

    /// Appends an unsigned LEB128 varint.
    package mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends `count` zero bytes.
    package mutating func writeZeros(_ count: Int) {
        bytes.appendZeros(count)
    }
}

/// Little-endian binary reading with bounds checks: a short or malformed
/// input is a thrown ``ByteReader/Malformed``, never a trap.
package struct ByteReader {
    /// Thrown when the input ends early or a value is out of range.
    package struct Malformed: Error, Sendable {
        package init() {}
    }

    private let bytes: UnsafeRawBufferPointer
    /// The read position.
    package private(set) var offset: Int

    package init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Bytes left to read.
    package var remaining: Int { bytes.count - offset }

    /// Reads an integer in little-endian order.
    @inline(__always)
    package mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw Malformed() }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: v)
    }

    /// Reads `count` raw bytes.
    package mutating func read(count: Int) throws -> [UInt8] {
        guard count >= 0, remaining >= count else { throw Malformed() }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// A view of the next `count` bytes, advancing past them.
    package mutating func slice(count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw Malformed() }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    /// Reads an unsigned LEB128 varint, in its shortest form only (as
    /// ``ByteWriter/writeVarint(_:)`` writes it): a last byte of zero after
    /// others (`83 00` for 3) is malformed, so one value has one encoding.
    package mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b: UInt8 = try read()
            if shift == 63 && b > 1 { throw Malformed() }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                guard b != 0 || shift == 0 else { throw Malformed() }
                return result
            }
            shift += 7
            if shift > 63 { throw Malformed() }
        }
    }

    /// Reads length-prefixed bytes, refusing lengths above `limit`.
    package mutating func readLengthPrefixed(limit: Int = 1 << 26) throws -> [UInt8] {
        let n = try readVarint()
        guard n <= UInt64(limit) else { throw Malformed() }
        return try read(count: Int(n))
    }

    /// Reads a length-prefixed UTF-8 string.
    package mutating func readString(limit: Int = 1 << 20) throws -> String {
        let b = try readLengthPrefixed(limit: limit)
        guard let s = String(validating: b, as: UTF8.self) else { throw Malformed() }
        return s
    }
}
