/// The byte layout of segment files, frames, key slots and the checkpoint.
/// `Documentation/StorageFormat.md` describes the same layout for people.
enum LogFormat {
    /// Version of every file layout below (2: frame headers and the
    /// checkpoint carry a MAC; 3: opaque references, chunk table and
    /// landmarks in the checkpoint; 4: the key-slot journal: a group's
    /// manifest carries its slots sealed under the journal key, which
    /// slots 1 and 2 of the key file hold; 5: compacted frames,
    /// ``flagCompacted``, and `compaction.intent`; 6: the checkpoint
    /// records how far `keys.slots` reaches and its journal epoch).
    static let version: UInt32 = 6

    // MARK: - Segment header

    static let segmentMagic: [UInt8] = Array("PVSEG\u{0}\u{0}\u{1}".utf8)
    static let segmentHeaderSize = 64
    static let saltSize = 16

    static func segmentFileName(_ number: UInt32) -> String {
        let digits = String(number)
        return "segment-" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + ".log"
    }

    /// Segment numbers fit in the 24 bits a location gives them.
    static let maximumSegmentNumber: UInt32 = (1 << 24) - 1

    static func segmentNumber(fromFileName name: String) -> UInt32? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".log") else { return nil }
        let digits = name.dropFirst("segment-".count).dropLast(".log".count)
        guard digits.count == 10, digits.allSatisfy(\.isASCII), let n = UInt32(digits),
              n >= 1, n <= maximumSegmentNumber
        else { return nil }
        return n
    }

    /// `magic(8) version(4) headerSize(4) number(8) salt(16) firstLSN(8)
    /// segmentSize(8) reserved(4) crc32c(4)`.
    static func encodeSegmentHeader(number: UInt32, salt: [UInt8], firstLSN: UInt64, size: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: segmentHeaderSize)
        w.write(bytes: segmentMagic)
        w.write(version)
        w.write(UInt32(segmentHeaderSize))
        w.write(UInt64(number))
        w.write(bytes: salt)
        w.write(firstLSN)
        w.write(size)
        w.writeZeros(4)
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    struct SegmentHeader {
        var number: UInt32
        var salt: [UInt8]
        var firstLSN: UInt64
        /// The preallocated size: the bound of every offset in the segment,
        /// whatever the configuration of later opens.
        var size: UInt64
    }

    /// Decodes a segment header; nil if it is not a valid header.
    static func decodeSegmentHeader(_ bytes: [UInt8]) throws -> SegmentHeader? {
        guard bytes.count >= segmentHeaderSize else { return nil }
        return try bytes.withUnsafeBytes { raw -> SegmentHeader? in
            let h = UnsafeRawBufferPointer(rebasing: raw[0..<segmentHeaderSize])
            var r = ByteReader(h)
            guard Array(try r.slice(count: 8)) == segmentMagic else { return nil }
            let crc = h.loadUnaligned(fromByteOffset: segmentHeaderSize - 4, as: UInt32.self).littleEndian
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[0..<(segmentHeaderSize - 4)])) == crc else { return nil }
            let v: UInt32 = try r.read()
            guard v == version else {
                throw StorageError(.unsupportedFormat, "segment format version \(v) is not supported: this build reads version \(version) only")
            }
            _ = try r.read(UInt32.self)
            let number: UInt64 = try r.read()
            let salt = try r.read(count: saltSize)
            let first: UInt64 = try r.read()
            let size: UInt64 = try r.read()
            guard number <= UInt64(maximumSegmentNumber), size > UInt64(segmentHeaderSize), size < (1 << 40) else { return nil }
            return SegmentHeader(number: UInt32(number), salt: salt, firstLSN: first, size: size)
        }
    }

    // MARK: - Frames

    static let frameMagic: UInt32 = 0x3252_5650  // "PVR2" little-endian
    static let frameHeaderSize = 96
    /// Where the MAC sits in a frame header, and its size.
    static let frameMACOffset = 80
    static let macSize = 16
    static let flagHasStream: UInt8 = 1
    static let flagGroupContinues: UInt8 = 2
    /// The frame is the group's key-slot manifest (the engine's own, never
    /// handed to a reader): the slots the group wrote, each slot's 128
    /// bytes sealed under the key-slot journal's key. The key file is not
    /// synced on the commit path: recovery writes a complete group's slots
    /// back from its manifest (see StorageFormat.md, "Key-slot journal").
    static let flagKeySlotManifest: UInt8 = 4

    /// Bytes of one journaled slot in a manifest: its number, then the
    /// slot's bytes sealed with XChaCha20-Poly1305 (nonce, ciphertext, tag).
    static let journaledSlotSize = 8 + 24 + keySlotSize + 16
    /// Bytes of a manifest before its slots: `count(4) reserved(4) epoch(8)`.
    static let manifestHeaderSize = 16

    /// The associated data of a journaled slot's box: `"PVSJ" epoch(8)
    /// number(8)`, so that a box opens only for its slot and its key's epoch.
    static func journalAssociatedData(epoch: UInt64, number: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 20)
        w.write(bytes: Array("PVSJ".utf8))
        w.write(epoch)
        w.write(number)
        return w.bytes
    }

    /// `count(4) reserved(4) epoch(8)`, then per slot `number(8) box(168)`.
    static func encodeSlotManifest(epoch: UInt64, slots: [(number: UInt64, box: [UInt8])]) -> [UInt8] {
        var w = ByteWriter(capacity: manifestHeaderSize + slots.count * journaledSlotSize)
        w.write(UInt32(slots.count))
        w.write(UInt32(0))
        w.write(epoch)
        for slot in slots {
            precondition(slot.box.count == journaledSlotSize - 8)
            w.write(slot.number)
            w.write(bytes: slot.box)
        }
        return w.bytes
    }

    /// A manifest's epoch and its slots' numbers and boxes; nil if it is
    /// not one the encoder can write.
    static func decodeSlotManifest(_ raw: UnsafeRawBufferPointer) -> (epoch: UInt64, slots: [(number: UInt64, box: [UInt8])])? {
        var r = ByteReader(raw)
        guard let count = try? r.read(UInt32.self), (try? r.read(UInt32.self)) == 0, let epoch = try? r.read(UInt64.self),
              count > 0, Int(count) * journaledSlotSize == r.remaining
        else { return nil }
        var slots: [(number: UInt64, box: [UInt8])] = []
        slots.reserveCapacity(Int(count))
        for _ in 0..<count {
            // A slot's byte offset (number × 128) must fit in a file offset.
            guard let number = try? r.read(UInt64.self), number >= firstKeySlot, number < maximumKeySlot,
                  let box = try? r.read(count: journaledSlotSize - 8)
            else { return nil }
            slots.append((number, box))
        }
        return (epoch, slots)
    }

    /// The frame length (header, payload, padding to 8 bytes).
    @inline(__always)
    static func frameLength(payloadCount: Int) -> Int {
        (frameHeaderSize + payloadCount + 7) & ~7
    }

    /// The payload CRC: CRC-32C of the payload and its zero padding, so
    /// that every byte of a frame is covered by a checksum.
    static func payloadCRC(_ payload: UnsafeRawBufferPointer) -> UInt32 {
        let padding = frameLength(payloadCount: payload.count) - frameHeaderSize - payload.count
        let zeros: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]
        return zeros.withUnsafeBytes { z in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: z[0..<padding]), continuing: CRC32C.checksum(payload))
        }
    }

    static func payloadCRC(_ payload: [UInt8]) -> UInt32 {
        payload.withUnsafeBytes { payloadCRC($0) }
    }

    struct FrameHeader {
        var payloadLength: UInt32
        var payloadCRC: UInt32
        var lsn: UInt64
        var durableThrough: UInt64
        var flags: UInt8
        var previous: RecordLocation?
        var stream: StreamID?
        var headerCRC: UInt32

        var groupContinues: Bool { flags & LogFormat.flagGroupContinues != 0 }
        var isSlotManifest: Bool { flags & LogFormat.flagKeySlotManifest != 0 }
    }

    /// `magic(4) headerCRC(4) payloadLength(4) payloadCRC(4) lsn(8)
    /// durableThrough(8) flags(1) reserved(3) prevLength(4) prevLocation(8)
    /// stream(32) mac(16)`; the MAC covers the segment salt, the frame's
    /// offset and bytes 8..<80 (zeros without an authenticator); the header
    /// CRC covers the segment salt and bytes 8..<96.
    static func encodeFrameHeader(
        salt: [UInt8], offset: UInt64, payloadLength: Int, payloadCRC: UInt32, lsn: UInt64, durableThrough: UInt64,
        flags: UInt8, previous: RecordLocation?, stream: StreamID?, authenticator: (any LogAuthenticator)?
    ) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: frameHeaderSize) { buffer, count in
            writeFrameHeader(
                into: UnsafeMutableRawBufferPointer(buffer), salt: salt, offset: offset, payloadLength: payloadLength,
                payloadCRC: payloadCRC, lsn: lsn, durableThrough: durableThrough, flags: flags, previous: previous,
                stream: stream, authenticator: authenticator)
            count = frameHeaderSize
        }
    }

    /// Writes a frame header, as `encodeFrameHeader` encodes it, into the
    /// first 96 bytes of `out`: no allocation.
    static func writeFrameHeader(
        into out: UnsafeMutableRawBufferPointer, salt: [UInt8], offset: UInt64, payloadLength: Int, payloadCRC: UInt32,
        lsn: UInt64, durableThrough: UInt64, flags: UInt8, previous: RecordLocation?, stream: StreamID?,
        authenticator: (any LogAuthenticator)?
    ) {
        let h = UnsafeMutableRawBufferPointer(rebasing: out[0..<frameHeaderSize])
        h.storeBytes(of: frameMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
        h.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        h.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 8, as: UInt32.self)
        h.storeBytes(of: payloadCRC.littleEndian, toByteOffset: 12, as: UInt32.self)
        h.storeBytes(of: lsn.littleEndian, toByteOffset: 16, as: UInt64.self)
        h.storeBytes(of: durableThrough.littleEndian, toByteOffset: 24, as: UInt64.self)
        // flags(1) reserved(3), little-endian: the flags byte first.
        h.storeBytes(of: UInt32(flags).littleEndian, toByteOffset: 32, as: UInt32.self)
        h.storeBytes(of: (previous?.frameLength ?? 0).littleEndian, toByteOffset: 36, as: UInt32.self)
        h.storeBytes(of: (previous?.raw ?? 0).littleEndian, toByteOffset: 40, as: UInt64.self)
        h.storeBytes(of: (stream?.w0 ?? 0).littleEndian, toByteOffset: 48, as: UInt64.self)
        h.storeBytes(of: (stream?.w1 ?? 0).littleEndian, toByteOffset: 56, as: UInt64.self)
        h.storeBytes(of: (stream?.w2 ?? 0).littleEndian, toByteOffset: 64, as: UInt64.self)
        h.storeBytes(of: (stream?.w3 ?? 0).littleEndian, toByteOffset: 72, as: UInt64.self)
        let mac = UnsafeMutableRawBufferPointer(rebasing: h[frameMACOffset..<(frameMACOffset + macSize)])
        if let authenticator {
            withMACMessage(salt: salt, offset: offset, header: UnsafeRawBufferPointer(h)) { authenticator.tag($0, into: mac) }
        } else {
            mac.initializeMemory(as: UInt8.self, repeating: 0)
        }
        let crc = salt.withUnsafeBytes { s in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[8...]), continuing: CRC32C.checksum(s))
        }
        h.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// Runs `body` on what a frame's MAC covers, built on the stack.
    static func withMACMessage<R>(
        salt: [UInt8], offset: UInt64, header: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        withUnsafeTemporaryAllocation(byteCount: salt.count + 8 + frameMACOffset - 8, alignment: 8) { m in
            salt.withUnsafeBytes { m.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: salt.count) }
            m.storeBytes(of: offset.littleEndian, toByteOffset: salt.count, as: UInt64.self)
            m.baseAddress!.advanced(by: salt.count + 8).copyMemory(from: header.baseAddress!.advanced(by: 8), byteCount: frameMACOffset - 8)
            return body(UnsafeRawBufferPointer(m))
        }
    }

    /// What a frame's MAC covers: `salt || offset || header[8..<80]`.
    static func macMessage(salt: [UInt8], offset: UInt64, header: UnsafeRawBufferPointer) -> [UInt8] {
        var m = salt
        m.reserveCapacity(salt.count + 8 + frameMACOffset - 8)
        withUnsafeBytes(of: offset.littleEndian) { m.append(contentsOf: $0) }
        m.append(contentsOf: header[8..<frameMACOffset])
        return m
    }

    /// Whether a frame header whose CRC matched carries the right MAC for
    /// its place. Always true without an authenticator.
    static func frameIsAuthentic(
        _ raw: UnsafeRawBufferPointer, salt: [UInt8], offset: UInt64, authenticator: (any LogAuthenticator)?
    ) -> Bool {
        guard let authenticator else { return true }
        return withMACMessage(salt: salt, offset: offset, header: raw) { m in
            authenticator.verify(m, stored: UnsafeRawBufferPointer(rebasing: raw[frameMACOffset..<(frameMACOffset + macSize)]))
        }
    }

    /// Decodes and checks a frame header at the start of `raw`; nil if the
    /// magic or the header CRC does not match.
    static func decodeFrameHeader(_ raw: UnsafeRawBufferPointer, salt: [UInt8]) -> FrameHeader? {
        guard raw.count >= frameHeaderSize else { return nil }
        guard raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian == frameMagic else { return nil }
        let stored = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
        let crc = CRC32C.checksum(
            UnsafeRawBufferPointer(rebasing: raw[8..<frameHeaderSize]), continuing: CRC32C.checksum(salt))
        guard crc == stored else { return nil }
        func u32(_ o: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian }
        func u64(_ o: Int) -> UInt64 { raw.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian }
        let flags = raw[32]
        let prevLength = u32(36)
        let stream = flags & flagHasStream != 0
            ? StreamID(bytes: UnsafeRawBufferPointer(rebasing: raw[48..<80])) : nil
        return FrameHeader(
            payloadLength: u32(8), payloadCRC: u32(12), lsn: u64(16), durableThrough: u64(24), flags: flags,
            previous: prevLength == 0 ? nil : RecordLocation(raw: u64(40), frameLength: prevLength),
            stream: stream, headerCRC: stored)
    }

    // MARK: - Key slots

    static let keyFileName = "keys.slots"
    static let keyFileMagic: [UInt8] = Array("PVKEYS01".utf8)
    static let keySlotSize = 128
    static let keySlotLive: UInt32 = 0x314B_5650  // "PVK1"
    static let keySlotTombstone: UInt32 = 0x584B_5650  // "PVKX"
    /// A slot holding the key-slot journal's key: `epoch(8) key(32)`.
    static let keySlotJournalKey: UInt32 = 0x4A4B_5650  // "PVKJ"
    /// Largest value a slot holds.
    static let keySlotCapacity = keySlotSize - 24
    /// Slots 1 and 2 hold the journal's key (the newer epoch wins; a
    /// rotation writes the other one, then wipes the older); keys start here.
    static let firstKeySlot: UInt64 = 3
    /// Above every slot a key file can hold (2^48 slots of 128 bytes).
    static let maximumKeySlot: UInt64 = 1 << 48
    static let journalKeySlots: [UInt64] = [1, 2]

    /// `magic(8) version(4) slotSize(4) salt(16) reserved(92) crc32c(4)`.
    static func encodeKeyFileHeader(salt: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: keySlotSize)
        w.write(bytes: keyFileMagic)
        w.write(version)
        w.write(UInt32(keySlotSize))
        w.write(bytes: salt)
        w.writeZeros(keySlotSize - 32 - 4)
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// The salt of a valid key file header, or nil.
    static func decodeKeyFileHeader(_ bytes: [UInt8]) throws -> [UInt8]? {
        guard bytes.count == keySlotSize, Array(bytes[0..<8]) == keyFileMagic else { return nil }
        let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: keySlotSize - 4, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<(keySlotSize - 4)])) == crc else { return nil }
        let v = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian }
        guard v == version else { throw StorageError(.unsupportedFormat, "key file format version \(v) is not supported: this build reads version \(version) only")
        }
        return Array(bytes[16..<32])
    }

    /// `magic(4) crc32c(4) slot(8) length(1) reserved(7) value(≤104) zeros`;
    /// the CRC covers the file salt and bytes 8..<128.
    static func encodeKeySlot(_ slot: KeySlot, value: [UInt8], magic: UInt32, salt: [UInt8]) -> [UInt8] {
        precondition(value.count <= keySlotCapacity)
        var w = ByteWriter(capacity: keySlotSize)
        w.write(magic)
        w.write(UInt32(0))
        w.write(slot.number)
        w.write(UInt8(value.count))
        w.writeZeros(7)
        w.write(bytes: value)
        w.writeZeros(keySlotSize - w.bytes.count)
        var bytes = w.bytes
        let crc = CRC32C.checksum(Array(bytes[8...]), continuing: CRC32C.checksum(salt))
        withUnsafeBytes(of: crc.littleEndian) { c in for i in 0..<4 { bytes[4 + i] = c[i] } }
        return bytes
    }

    /// The value of slot `number`, from the slot's bytes in a key file of
    /// this `salt`. With `tombstone`, the value a genuine tombstone of this
    /// slot holds (``KeySlotFile/tombstoneValue(_:)``, a MAC under the
    /// store's log key): a tombstone holding anything else is `corrupted`,
    /// never taken for a destruction.
    /// - Throws: ``StorageError/Code/keySlotEmpty`` if the bytes are short or
    ///   all zeros, ``StorageError/Code/keySlotDestroyed`` for a tombstone,
    ///   ``StorageError/Code/corrupted`` if the checksum, the number, the
    ///   magic, the length or the tombstone's MAC is wrong.
    static func decodeKeySlot(
        _ bytes: [UInt8], number: UInt64, salt: [UInt8], magic expected: UInt32 = keySlotLive, tombstone: [UInt8]? = nil
    ) throws -> [UInt8] {
        if bytes.count < keySlotSize || bytes.allSatisfy({ $0 == 0 }) {
            throw StorageError(.keySlotEmpty, "key slot \(number) was never written")
        }
        let corrupted = StorageError(.corrupted, "key slot \(number) failed its checksum")
        return try bytes.withUnsafeBytes { raw in
            let magic = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
            let stored = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[8...]), continuing: CRC32C.checksum(salt))
            let stamped = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
            guard crc == stored, stamped == number else { throw corrupted }
            let length = Int(raw[16])
            guard length <= keySlotCapacity else { throw corrupted }
            let value = Array(raw[24..<(24 + length)])
            if magic == keySlotTombstone {
                if let tombstone, value != tombstone {
                    throw StorageError(.corrupted, "key slot \(number) holds a tombstone that does not authenticate")
                }
                throw StorageError(.keySlotDestroyed, "key slot \(number) was destroyed")
            }
            guard magic == expected else { throw corrupted }
            return value
        }
    }

    // MARK: - Checkpoint

    static let checkpointFileName = "index.checkpoint"
    /// Present while a backup writes the log's files of its copy (made
    /// durable before the first byte, removed once the copy's index is in
    /// place): in a folder that holds it, a record the end of a segment
    /// file cuts is the copy's unfinished write, a torn tail.
    static let copyInProgressFileName = "backup.copying"
    /// A segment file's length is its segment's size or a multiple of this:
    /// the engine allocates in 4 KiB steps and cuts at 4 KiB, and a power
    /// cut keeps a growth write's 512-byte sectors, or not, whole. Any
    /// other length is a file cut from outside (see recovery).
    static let segmentLengthGranularity: UInt64 = 512
    static let checkpointMagic: [UInt8] = Array("PVCKPT01".utf8)
    static let checkpointEntrySize = 48
    /// Bytes of one chunk of a checkpoint's chunk table.
    static let checkpointChunkSize = 24
}
