import VaultCrypto
import VaultStorage

/// The sealed-record codec: the one place that knows a record's layout
/// (`header || u32 length || box || rest`) and its associated data (the
/// header's fields bound to the stream id, ``RecordHeader/associatedData(vault:)``).
///
/// Every writer seals through ``seal(header:body:key:stream:rest:)`` and
/// every reader opens through ``open(_:header:key:stream:)``; the box's
/// body is padded to its kind's size class (``RecordPadding``), and the
/// decoder refuses a length that overruns the payload or padding it did
/// not write.
enum RecordCodec {
    /// Builds a record payload: header, then the sealed body (padded to its
    /// kind's size class), then `rest` (inline content, sealed on its own).
    /// `mask`: the store's, for a document version (``HeaderMask``).
    static func seal(
        header: RecordHeader, body: [UInt8], key: SymmetricKey, stream: StreamID, rest: [UInt8] = [], mask: HeaderMask? = nil
    ) throws -> [UInt8] {
        try seal(header: header, bodyCount: body.count, key: key, stream: stream, rest: rest, mask: mask) { out in
            body.withUnsafeBytes { out.copyMemory(from: $0) }
        }
    }

    /// The size of the payload ``seal(header:body:key:stream:rest:)``
    /// makes of a body of `bodyCount` bytes for a record of `kind`, without
    /// `rest`: known before anything is sealed.
    static func sealedCount(bodyCount: Int, kind: RecordKind) -> Int {
        RecordHeader.size + 4 + XChaCha20Poly1305.overhead + RecordPadding.paddedCount(bodyCount, block: kind.paddingBlock)
    }

    /// Builds a record payload whose body `writeBody` writes in place
    /// (exactly `bodyCount` bytes): one allocation, the payload, laid out
    /// as it will be written; the padded body is placed where its
    /// ciphertext goes and sealed over itself.
    static func seal(
        header: RecordHeader, bodyCount: Int, key: SymmetricKey, stream: StreamID, rest: [UInt8] = [], mask: HeaderMask? = nil,
        writeBody: (UnsafeMutableRawBufferPointer) -> Void
    ) throws -> [UInt8] {
        // A document version's header is stored masked, never in clear.
        guard header.kind != .documentVersion || mask != nil else {
            throw PatientVaultError(.io, "internal error: a document version must be sealed with the store's header mask")
        }
        let padded = RecordPadding.paddedCount(bodyCount, block: header.kind.paddingBlock)
        let boxCount = XChaCha20Poly1305.overhead + padded
        var payload: [UInt8] = []
        payload.reserveCapacity(RecordHeader.size + 4 + boxCount + rest.count)
        header.append(to: &payload, mask: mask)
        withUnsafeBytes(of: UInt32(boxCount).littleEndian) { payload.append(contentsOf: $0) }
        let boxStart = payload.count
        payload.appendZeros(boxCount)
        try payload.withUnsafeMutableBytes { raw in
            let box = UnsafeMutableRawBufferPointer(rebasing: raw[boxStart..<(boxStart + boxCount)])
            let bodyStart = XChaCha20Poly1305.nonceByteCount
            writeBody(UnsafeMutableRawBufferPointer(rebasing: box[bodyStart..<(bodyStart + bodyCount)]))
            box[bodyStart + bodyCount] = 0x80
            try header.withAssociatedData(vault: stream) { ad in
                try XChaCha20Poly1305.sealInPlace(box, using: key, authenticating: ad)
            }
        }
        payload.append(contentsOf: rest)
        return payload
    }

    /// Opens the sealed part of a record. Returns the plaintext and the
    /// offset of the bytes after the box (the record kind's own `rest`,
    /// which the caller checks).
    static func open(
        _ payload: [UInt8], header: RecordHeader, key: SymmetricKey, stream: StreamID
    ) throws -> (plaintext: [UInt8], rest: Int) {
        try payload.withUnsafeBytes { raw in
            var r = ByteReader(raw, offset: RecordHeader.size)
            let length = Int(try r.read(UInt32.self))
            let box = try r.slice(count: length)
            let padded = try header.withAssociatedData(vault: stream) { ad in
                try XChaCha20Poly1305.open(box, using: key, authenticating: ad)
            }
            return (try RecordPadding.unpad(padded, block: header.kind.paddingBlock), r.offset)
        }
    }

    /// The plaintext of a store-level record (activity, statistics, marks),
    /// which carries nothing after its box: a record of another kind, or
    /// with trailing bytes, is `broken`.
    static func openStoreRecord(
        _ r: StoredRecord, kind: RecordKind, key: SymmetricKey, stream: StreamID, broken: @autoclosure () -> Error
    ) throws -> [UInt8] {
        let header = try RecordHeader.decode(r.payload, mask: nil)
        guard header.kind == kind else { throw broken() }
        let (plaintext, rest) = try open(r.payload, header: header, key: key, stream: stream)
        guard rest == r.payload.count else { throw broken() }
        return plaintext
    }
}

extension RecordCodec {
    /// Opens a record that carries nothing after its box (every kind but a
    /// document version with inline content): trailing bytes are refused.
    static func openWhole(_ payload: [UInt8], header: RecordHeader, key: SymmetricKey, stream: StreamID) throws -> [UInt8] {
        let (plaintext, rest) = try open(payload, header: header, key: key, stream: stream)
        guard rest == payload.count else { throw ByteReader.Malformed() }
        return plaintext
    }
}

extension RecordCodec {
    /// Where a document version's inline content starts: after the header,
    /// the box length and the box.
    static func inlineContentOffset(_ payload: [UInt8]) throws -> Int {
        try payload.withUnsafeBytes { raw in
            var r = ByteReader(raw, offset: RecordHeader.size)
            let boxLength = Int(try r.read(UInt32.self))
            _ = try r.slice(count: boxLength)
            return r.offset
        }
    }
}

extension RecordCodec {
    /// The header of content chunk `index` of a version: with the vault's
    /// pseudonym, its associated data; its record carries its stored form
    /// (``RecordHeader/encoded(mask:)``: no document, no version). The
    /// writer (``ContentWriter``) and the reader (``DocumentContent``) both
    /// take it from here.
    static func chunkHeader(document: DocumentID, version: UInt32, keySlot: KeySlot, index: UInt64) -> RecordHeader {
        RecordHeader(kind: .contentChunk, sequence: index, document: document, version: version, keySlot: keySlot)
    }
}
