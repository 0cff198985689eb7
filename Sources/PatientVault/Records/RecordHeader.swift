import VaultCrypto
import VaultStorage

/// The kinds of record the domain layer writes.
enum RecordKind: UInt8 {
    /// First record of a vault's stream (sequence 0).
    case vaultCreated = 1
    /// One version of a document: metadata and content descriptor.
    case documentVersion = 2
    /// A chunk of large content (not in the vault's stream; reached by
    /// location from its document version).
    case contentChunk = 3
    /// A change of who may access the vault, or an access event the vault
    /// must remember (first access, hidden-document notice).
    case vaultEvent = 4
    /// An entry of the vault's audit trail (in the vault's audit stream).
    case auditEntry = 5
    /// A copy of an audit entry in the acting professional's activity
    /// stream, for reviewers.
    case activityEntry = 6
    /// A record of the store's statistics stream.
    case statistics = 7
    /// How far the activity copies are written (``ActivityWriter``).
    case activityMark = 8
    /// A checkpoint signing key of the store (``SigningKeyRing``).
    case signingKey = 9
    /// A vault closed, reopened or destroyed (``VaultLifecycleIndex``).
    case lifecycle = 10
    /// What compaction must remove, or how far it went (``CompactionTicket``).
    case compaction = 11
}

extension RecordKind {
    /// The size class a sealed body is padded to (a multiple of this), so
    /// that record sizes tell less: audit entries and their activity copies
    /// pad to 512 bytes (every entry the API can produce but the largest
    /// principals fits one class, so a break-glass entry looks like any
    /// other), vault records and metadata to 256, statistics and lifecycle records to 128.
    var paddingBlock: Int {
        switch self {
        case .auditEntry, .activityEntry: return 512
        case .vaultCreated, .vaultEvent, .documentVersion: return 256
        // Every statistics record fits one block of 128 (a tested bound),
        // so all kinds look alike on disk.
        case .statistics, .lifecycle: return 128
        case .compaction: return 256
        case .activityMark, .signingKey: return 64
        case .contentChunk: return 1
        }
    }
}

/// ISO/IEC 7816-4 padding of sealed bodies: `0x80`, then zeros to the next
/// multiple of the block (always at least one byte). Removing it refuses
/// anything else, so a body decodes only in the one form it was written.
enum RecordPadding {
    /// The padded size of a body of `count` bytes: the next multiple of
    /// `block` above it (at least one byte of padding).
    static func paddedCount(_ count: Int, block: Int) -> Int { (count / block + 1) * block }

    /// Pads in place when the caller hands its array over (no copy).
    static func pad(_ body: consuming [UInt8], block: Int) -> [UInt8] {
        var out = consume body
        let total = (out.count / block + 1) * block
        out.reserveCapacity(total)
        out.append(0x80)
        out.appendZeros(total - out.count)
        return out
    }

    /// Unpads in place when the caller hands its array over (no copy).
    static func unpad(_ padded: consuming [UInt8], block: Int) throws -> [UInt8] {
        var out = consume padded
        guard !out.isEmpty, out.count % block == 0 else { throw ByteReader.Malformed() }
        var end = out.count - 1
        while end >= 0 && out[end] == 0 { end -= 1 }
        guard end >= 0, out[end] == 0x80, out.count - end <= block else { throw ByteReader.Malformed() }
        out.removeSubrange(end...)
        return out
    }

    /// How many zero bytes pad a content of `size` bytes whose last chunk
    /// holds `last` of them: to the next power of two from 256 bytes to
    /// 4 KiB, then to the next multiple of 4 KiB, never past a chunk. The
    /// content's exact size is sealed in its metadata; on disk it shows
    /// only in these classes.
    static func contentPadding(last: Int, chunkSize: Int) -> Int {
        var target = 256
        while target < last && target < 4096 { target *= 2 }
        if last > 4096 { target = (last + 4095) / 4096 * 4096 }
        return max(0, min(target, chunkSize) - last)
    }
}

/// The authenticated header of every domain record.
///
/// `format(1) kind(1) reserved(2) version(4) sequence(8) document(16)
/// keySlot(8) keyVersion(4) reserved(4)`: 48 bytes. With the vault's
/// pseudonym, its clear form (``withAssociatedData(vault:_:)``) is the
/// associated data of the record's encryption, so a record moved to
/// another vault, position, document or version fails authentication.
/// `keyVersion`, for a document version, says which of the vault's
/// document-key wrapping keys wraps its key (0: the vault key's own;
/// ``VaultStore/rotateVaultKey(for:as:secret:)`` adds the next).
///
/// Its stored form (``append(to:mask:)``) hides the document: a document
/// version's `version` and `document` bytes are masked (``HeaderMask``),
/// a content chunk's are zeros (its reader knows which version it reads,
/// and the associated data binds the chunk to it). Errors and a host's
/// logs name documents by their id: an id in clear on disk would lead
/// from a log line to the vault's frames.
struct RecordHeader: Equatable {
    static let size = 48
    static let formatVersion: UInt8 = 1

    var kind: RecordKind
    /// Position: index in the vault's stream, or chunk index for a chunk.
    var sequence: UInt64
    var document: DocumentID?
    var version: UInt32
    var keySlot: KeySlot?
    /// The wrapping key's version of a document version's key (0 otherwise).
    var keyVersion: UInt32 = 0

    /// The stored form: the 48 bytes a record's payload starts with.
    /// `mask` masks a document version's id and version (without one they
    /// are zeros); it is used for nothing else.
    func encoded(mask: HeaderMask?) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.size) { buffer, count in
            writeStored(into: UnsafeMutableRawBufferPointer(buffer), mask: mask)
            count = Self.size
        }
    }

    /// Writes the stored form at the start of `out`: the clear form, its
    /// document masked (a document version) or zeroed (a content chunk).
    private func writeStored(into out: UnsafeMutableRawBufferPointer, mask: HeaderMask?) {
        write(into: out)
        switch kind {
        case .documentVersion:
            // Masked with the store's mask (``RecordCodec`` refuses to seal
            // a version without it); without one, zeros: never in clear.
            if let mask {
                mask.apply(to: out, kind: kind, sequence: sequence, keySlot: keySlot)
            } else {
                out.baseAddress!.advanced(by: 4).initializeMemory(as: UInt8.self, repeating: 0, count: 4)
                out.baseAddress!.advanced(by: 16).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            }
        case .contentChunk:
            out.baseAddress!.advanced(by: 4).initializeMemory(as: UInt8.self, repeating: 0, count: 4)
            out.baseAddress!.advanced(by: 16).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        default:
            break
        }
    }

    /// Writes the 48 bytes at the start of `out` (which holds at least that).
    func write(into out: UnsafeMutableRawBufferPointer) {
        out.storeBytes(of: Self.formatVersion, toByteOffset: 0, as: UInt8.self)
        out.storeBytes(of: kind.rawValue, toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: UInt16(0), toByteOffset: 2, as: UInt16.self)
        out.storeBytes(of: version.littleEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
        if let document {
            document.bytes.withUnsafeBytes { out.baseAddress!.advanced(by: 16).copyMemory(from: $0.baseAddress!, byteCount: 16) }
        } else {
            out.baseAddress!.advanced(by: 16).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        }
        out.storeBytes(of: (keySlot?.number ?? 0).littleEndian, toByteOffset: 32, as: UInt64.self)
        out.storeBytes(of: keyVersion.littleEndian, toByteOffset: 40, as: UInt32.self)
        out.storeBytes(of: UInt32(0), toByteOffset: 44, as: UInt32.self)
    }

    /// Appends the stored form to `bytes` (the start of a record's payload).
    func append(to bytes: inout [UInt8], mask: HeaderMask?) {
        let start = bytes.count
        bytes.appendZeros(Self.size)
        bytes.withUnsafeMutableBytes { writeStored(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...]), mask: mask) }
    }

    /// Runs `body` on the associated data (header bytes then the vault's
    /// pseudonym, 80 bytes), built on the stack: no allocation.
    func withAssociatedData<R>(vault: StreamID, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: Self.size + StreamID.byteCount, alignment: 8) { out in
            write(into: out)
            vault.write(into: UnsafeMutableRawBufferPointer(rebasing: out[Self.size...]))
            return try body(UnsafeRawBufferPointer(out))
        }
    }

    /// Decodes the stored form at the start of `payload`. A document
    /// version's document and version are unmasked with `mask`; without
    /// one (a reader outside the store, such as an export's verifier) they
    /// come back as nil and 0, and the caller sets what it expects: the
    /// record then opens only if that is what its header hides. A content
    /// chunk's come back as nil and 0 (stored as zeros, anything else is
    /// refused): its reader knows them.
    static func decode(_ payload: [UInt8], mask: HeaderMask?) throws -> RecordHeader {
        guard payload.count >= size else { throw ByteReader.Malformed() }
        // Unmasked in a copy on the stack: no allocation.
        return try withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) { out in
            payload.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
            var r = ByteReader(UnsafeRawBufferPointer(out))
            guard try r.read(UInt8.self) == formatVersion else {
                throw PatientVaultError(.unsupportedFormat, "unknown record format")
            }
            guard let kind = RecordKind(rawValue: try r.read()) else { throw ByteReader.Malformed() }
            // Reserved bytes must be zero: they are part of the associated
            // data, and a header is only accepted in its one encoding.
            guard try r.read(UInt16.self) == 0 else { throw ByteReader.Malformed() }
            _ = try r.read(UInt32.self)
            let sequence: UInt64 = try r.read()
            _ = try r.read(count: 16)
            let slot: UInt64 = try r.read()
            let keyVersion: UInt32 = try r.read()
            guard try r.read(UInt32.self) == 0 else { throw ByteReader.Malformed() }
            // Only a document version names a wrapping key's version.
            guard keyVersion == 0 || kind == .documentVersion else { throw ByteReader.Malformed() }
            let keySlot = slot == 0 ? nil : KeySlot(slot)
            var known = true
            switch kind {
            case .documentVersion:
                if let mask { mask.apply(to: out, kind: kind, sequence: sequence, keySlot: keySlot) } else { known = false }
            case .contentChunk:
                guard UnsafeRawBufferPointer(rebasing: out[4..<8]).allSatisfy({ $0 == 0 }),
                      UnsafeRawBufferPointer(rebasing: out[16..<32]).allSatisfy({ $0 == 0 })
                else { throw ByteReader.Malformed() }
                known = false
            default:
                // Other kinds name no document: their encoders write zeros.
                guard UnsafeRawBufferPointer(rebasing: out[4..<8]).allSatisfy({ $0 == 0 }),
                      UnsafeRawBufferPointer(rebasing: out[16..<32]).allSatisfy({ $0 == 0 })
                else { throw ByteReader.Malformed() }
            }
            let version = known ? UInt32(littleEndian: out.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) : 0
            let doc = known ? Array(UnsafeRawBufferPointer(rebasing: out[16..<32])) : [UInt8](repeating: 0, count: 16)
            return RecordHeader(
                kind: kind, sequence: sequence,
                document: doc.allSatisfy { $0 == 0 } ? nil : DocumentID(bytes: doc),
                version: version, keySlot: keySlot, keyVersion: keyVersion)
        }
    }
}

/// Hides a document version's document id and version in its stored
/// header: XORed with 20 bytes of keyed BLAKE2b (the store's header-mask
/// key, ``StoreKeys``) of the header's kind, sequence and key slot. A
/// store never reserves a key slot twice, so no two of its records share
/// a mask (but a restored store reserves again the slots of the history
/// the restore lost: StorageFormat.md), and records of one document show
/// nothing in common. The clear values stay the
/// associated data of the record's encryption: a mask altered on disk
/// unmasks to values the record does not open under (`corrupted`).
struct HeaderMask: Sendable {
    let key: SymmetricKey
    /// The mask's domain: the first 7 bytes of every input.
    static let tag: [UInt8] = Array("PV1-hdr".utf8)

    /// XORs the mask of (kind, sequence, keySlot) over the version (bytes
    /// 4..<8) and document (16..<32) of the header at the start of `header`.
    func apply(to header: UnsafeMutableRawBufferPointer, kind: RecordKind, sequence: UInt64, keySlot: KeySlot?) {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { input in
            input.initializeMemory(as: UInt8.self, repeating: 0)
            input.copyBytes(from: Self.tag)
            input[7] = kind.rawValue
            input.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
            input.storeBytes(of: (keySlot?.number ?? 0).littleEndian, toByteOffset: 16, as: UInt64.self)
            withUnsafeTemporaryAllocation(byteCount: 20, alignment: 8) { stream in
                BLAKE2b.hash(UnsafeRawBufferPointer(input), key: key, into: stream)
                for i in 0..<4 { header[4 + i] ^= stream[i] }
                for i in 0..<16 { header[16 + i] ^= stream[4 + i] }
            }
        }
    }
}
