import Foundation
import Testing
@testable import PatientVault
@testable import VaultCrypto
@testable import VaultStorage

/// What a record header shows on disk (``RecordHeader``, ``HeaderMask``):
/// no document id, no version number.
@Suite struct HeaderMaskTests {
    static func mask(_ byte: UInt8) throws -> HeaderMask {
        HeaderMask(key: try [UInt8](repeating: byte, count: 32).withUnsafeBytes { try SymmetricKey.copying($0) })
    }
    static let document = DocumentID(bytes: Array(1...16))

    /// A document version's header comes back whole through its mask;
    /// without one, its document and version are unknown; with another
    /// store's mask, they are something else.
    @Test func aDocumentVersionHeaderRoundTripsOnlyThroughItsMask() throws {
        let mask = try Self.mask(1)
        let header = RecordHeader(kind: .documentVersion, sequence: 7, document: Self.document, version: 3, keySlot: KeySlot(40), keyVersion: 1)
        let stored = header.encoded(mask: mask)
        #expect(try RecordHeader.decode(stored, mask: mask) == header)
        let blind = try RecordHeader.decode(stored, mask: nil)
        #expect(blind.document == nil && blind.version == 0)
        #expect((blind.kind, blind.sequence, blind.keySlot, blind.keyVersion) == (.documentVersion, 7, KeySlot(40), 1))
        #expect(try RecordHeader.decode(stored, mask: try Self.mask(2)) != header)
        // Neither the id nor the version's bytes are stored.
        #expect(Data(stored).range(of: Data(Self.document.bytes)) == nil)
        #expect(Array(stored[4..<8]) != [3, 0, 0, 0])
    }

    /// Two versions of one document (two key slots) show nothing in common
    /// where the id is stored.
    @Test func versionsOfOneDocumentLookUnrelated() throws {
        let mask = try Self.mask(1)
        let first = RecordHeader(kind: .documentVersion, sequence: 1, document: Self.document, version: 1, keySlot: KeySlot(10))
        let second = RecordHeader(kind: .documentVersion, sequence: 2, document: Self.document, version: 2, keySlot: KeySlot(11))
        let a = first.encoded(mask: mask), b = second.encoded(mask: mask)
        #expect(Array(a[16..<32]) != Array(b[16..<32]))
        #expect(try RecordHeader.decode(a, mask: mask).document == Self.document)
        #expect(try RecordHeader.decode(b, mask: mask).document == Self.document)
    }

    /// A content chunk's stored header holds zeros where the document and
    /// version would be, and a chunk header holding anything there is
    /// refused.
    @Test func aChunkHeaderNamesNoDocument() throws {
        let chunk = RecordCodec.chunkHeader(document: Self.document, version: 4, keySlot: KeySlot(12), index: 2)
        let stored = chunk.encoded(mask: nil)
        #expect(stored[4..<8].allSatisfy { $0 == 0 } && stored[16..<32].allSatisfy { $0 == 0 })
        let decoded = try RecordHeader.decode(stored, mask: nil)
        #expect((decoded.kind, decoded.sequence, decoded.keySlot, decoded.document) == (.contentChunk, 2, KeySlot(12), nil))
        var named = stored
        named[20] = 1
        #expect(throws: ByteReader.Malformed.self) { _ = try RecordHeader.decode(named, mask: nil) }
    }

    /// A record sealed with its clear header as associated data opens only
    /// when its stored header is unmasked with the right key: a header
    /// read with another mask names another document, which the box
    /// refuses.
    @Test func aRecordOpensOnlyUnderItsOwnMask() throws {
        let mask = try Self.mask(1)
        let key = try SymmetricKey.generate()
        let stream = StreamID(bytes: Array(repeating: 9, count: 32))
        let header = RecordHeader(kind: .documentVersion, sequence: 5, document: Self.document, version: 1, keySlot: KeySlot(20))
        let payload = try RecordCodec.seal(header: header, body: Array("body".utf8), key: key, stream: stream, mask: mask)
        let right = try RecordHeader.decode(payload, mask: mask)
        #expect(try RecordCodec.openWhole(payload, header: right, key: key, stream: stream) == Array("body".utf8))
        let wrong = try RecordHeader.decode(payload, mask: try Self.mask(2))
        #expect(throws: (any Error).self) { _ = try RecordCodec.openWhole(payload, header: wrong, key: key, stream: stream) }
    }
}
