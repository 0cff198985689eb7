import Foundation
@testable import PatientVault
import PatientVaultProof
@testable import VaultCrypto
@testable import VaultStorage


/// The decoders under fuzzing, in the order of the selector: the first
/// byte of an input (modulo the count) picks one, the rest is its input.
/// The committed corpus depends on this order: append, never reorder.
/// The `…Fixed` targets first recompute the input's CRC (and MAC), so that
/// mutations reach the fields behind it; the others take it as it is.
enum FuzzTarget: Int, CaseIterable, Sendable {
    case segmentHeader, segmentHeaderFixed, frameHeader, frameHeaderFixed
    case keyFileHeader, keyFileHeaderFixed, keySlot, keySlotFixed, checkpoint, checkpointFixed
    case recordHeader, vaultCreated, documentVersion, vaultEvent, statistics, auditEntry, vaultAnchor
    case storeHeader, storeHeaderFixed, recordPadding
    case ins, insKey, rpps, finess, documentID, breakGlassReason, systemPrincipal
    case slotManifest
    case activityBatch
    case checkpointNote, tlogProof, verifierKey
    case compactionIntent, compactedPayload
    case exportFile

    var fixesChecksums: Bool {
        switch self {
        case .segmentHeaderFixed, .frameHeaderFixed, .keyFileHeaderFixed, .keySlotFixed, .checkpointFixed, .storeHeaderFixed: true
        default: false
        }
    }
}

/// A stand-in MAC (CRC-32C of a secret and the message, four ways): cheap,
/// so that the fuzzer's executions go to the decoders.
struct FuzzAuthenticator: LogAuthenticator {
    let secret: [UInt8]
    func tag(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<4 {
            let crc = CRC32C.checksum(message, continuing: CRC32C.checksum(secret + [UInt8(i)]))
            withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }
}

/// Runs one input through its decoder. A decoder returns a value (which
/// must re-encode to bytes that decode to the same value), returns nil, or
/// throws; any other outcome (a trap, an untyped error, a value that does
/// not survive re-encoding) is a finding.
enum FuzzHarness {
    /// A decoded value that does not survive its encoder.
    struct RoundTripFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// The errors the decoders are meant to throw.
    static func isTyped(_ error: any Error) -> Bool {
        error is StorageError || error is PatientVaultError || error is ByteReader.Malformed || error is ProofError
    }

    static let authenticator = FuzzAuthenticator(secret: Array("pv-fuzz".utf8))
    /// The offset the frame-header targets place their frame at.
    static let frameOffset: UInt64 = 64
    static let document = DocumentID(bytes: Array(1...16))
    /// A fixed header mask (``HeaderMask``): the seeds' document version
    /// headers are masked with it.
    static let headerMask = HeaderMask(key: try! [UInt8](repeating: 7, count: 32).withUnsafeBytes { try SymmetricKey.copying($0) })
    static let paddingBlocks = [1, 64, 256, 512]

    /// True if the input was accepted, false if its decoder returned nil.
    /// Throws the decoder's error, or a ``RoundTripFailure``.
    static func run(_ input: [UInt8]) throws -> Bool {
        guard let first = input.first else { return false }
        return try run(FuzzTarget.allCases[Int(first) % FuzzTarget.allCases.count], Array(input.dropFirst()))
    }

    static func run(_ target: FuzzTarget, _ data: [UInt8]) throws -> Bool {
        let fixed = target.fixesChecksums
        var text: String { String(decoding: data, as: UTF8.self) }
        switch target {
        case .segmentHeader, .segmentHeaderFixed:
            var bytes = data
            if fixed { fixCRC(&bytes, over: 0..<60) }
            guard let h = try LogFormat.decodeSegmentHeader(bytes) else { return false }
            try roundTrip("segment header") {
                let e = LogFormat.encodeSegmentHeader(number: h.number, salt: h.salt, firstLSN: h.firstLSN, size: h.size)
                guard let a = try LogFormat.decodeSegmentHeader(e) else { return false }
                return (a.number, a.salt, a.firstLSN, a.size) == (h.number, h.salt, h.firstLSN, h.size)
            }
        case .frameHeader, .frameHeaderFixed:
            // salt(16), then the header.
            guard data.count >= LogFormat.saltSize else { return false }
            let salt = Array(data[..<LogFormat.saltSize])
            var header = Array(data[LogFormat.saltSize...])
            if fixed && header.count >= LogFormat.frameHeaderSize {
                let message = header.withUnsafeBytes { LogFormat.macMessage(salt: salt, offset: frameOffset, header: $0) }
                header.replaceSubrange(80..<96, with: message.withUnsafeBytes { authenticator.tag($0) })
                fixCRC(&header, over: 8..<96, at: 4, salt: salt)
            }
            guard let h = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: salt) }) else { return false }
            let authentic = header.withUnsafeBytes {
                LogFormat.frameIsAuthentic($0, salt: salt, offset: frameOffset, authenticator: authenticator)
            }
            try roundTrip("frame header") {
                let e = LogFormat.encodeFrameHeader(
                    salt: salt, offset: frameOffset, payloadLength: Int(h.payloadLength), payloadCRC: h.payloadCRC, lsn: h.lsn,
                    durableThrough: h.durableThrough, flags: h.flags, previous: h.previous, stream: h.stream,
                    authenticator: authenticator)
                guard let a = e.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: salt) }) else { return false }
                let same = (a.payloadLength, a.payloadCRC, a.lsn, a.durableThrough, a.flags) == (h.payloadLength, h.payloadCRC, h.lsn, h.durableThrough, h.flags)
                return same && a.previous == h.previous && a.stream == h.stream && (authentic || !fixed)
                    && e.withUnsafeBytes { LogFormat.frameIsAuthentic($0, salt: salt, offset: frameOffset, authenticator: authenticator) }
            }
        case .keyFileHeader, .keyFileHeaderFixed:
            var bytes = data
            if fixed { fixCRC(&bytes, over: 0..<124) }
            guard let salt = try LogFormat.decodeKeyFileHeader(bytes) else { return false }
            try roundTrip("key file header") { try LogFormat.decodeKeyFileHeader(LogFormat.encodeKeyFileHeader(salt: salt)) == salt }
        case .keySlot, .keySlotFixed:
            // salt(16), slot number(8), then the slot.
            guard data.count >= 24 else { return false }
            let salt = Array(data[..<16])
            let number = data[16..<24].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var slot = Array(data[24...])
            if fixed && slot.count >= 8 { fixCRC(&slot, over: 8..<slot.count, at: 4, salt: salt) }
            let value = try LogFormat.decodeKeySlot(slot, number: number, salt: salt)
            try roundTrip("key slot") {
                let e = LogFormat.encodeKeySlot(KeySlot(number), value: value, magic: LogFormat.keySlotLive, salt: salt)
                return try LogFormat.decodeKeySlot(e, number: number, salt: salt) == value
            }
        case .checkpoint, .checkpointFixed:
            var bytes = data
            if fixed && bytes.count >= 84 {
                let body = bytes.count - 20
                bytes.replaceSubrange(body..<(body + 16), with: bytes.withUnsafeBytes { authenticator.tag(UnsafeRawBufferPointer(rebasing: $0[..<body])) })
                fixCRC(&bytes, over: 0..<(bytes.count - 4))
            }
            guard let c = try LogEngineCore.decodeCheckpoint(bytes, authenticator: authenticator) else { return false }
            // No encoder over bytes (the checkpoint is written to its file):
            // check what the engine relies on instead.
            try roundTrip("checkpoint") {
                let heads = Array(c.index)
                return heads.count == c.index.count && heads.allSatisfy { c.index[$0.0] == $0.1 && $0.1.frameLength > 0 }
            }
        case .recordHeader:
            let h = try RecordHeader.decode(data, mask: headerMask)
            try roundTrip("record header") { h.encoded(mask: headerMask) == Array(data.prefix(RecordHeader.size)) }
            // Without the mask (an export's verifier): the same fields but
            // a version's document and version, which come back unknown.
            let blind = try RecordHeader.decode(data, mask: nil)
            try roundTrip("record header without its mask") {
                (blind.kind, blind.sequence, blind.keySlot, blind.keyVersion) == (h.kind, h.sequence, h.keySlot, h.keyVersion)
                    && (h.kind != .documentVersion || (blind.document == nil && blind.version == 0))
            }
        case .vaultCreated:
            try stable("vault creation", VaultCreatedBody.decode(data).encoded()) { try VaultCreatedBody.decode($0).encoded() }
        case .documentVersion:
            try stable("document version", DocumentVersionBody.decode(data, id: document, version: 1).encoded()) {
                try DocumentVersionBody.decode($0, id: document, version: 1).encoded()
            }
        case .vaultEvent:
            try stable("vault event", VaultEventBody.decode(data).encoded()) { try VaultEventBody.decode($0).encoded() }
        case .statistics:
            try stable("statistics record", StatisticsRecord.decode(data).encoded()) { try StatisticsRecord.decode($0).encoded() }
        case .auditEntry:
            try stable("audit entry", AuditEntry.decode(data).encoded()) { try AuditEntry.decode($0).encoded() }
        case .vaultAnchor:
            let anchor = try VaultAnchor.decode(data[...])
            try roundTrip("vault anchor") { anchor.encoded() == data }
        case .storeHeader, .storeHeaderFixed:
            var bytes = data
            // Variable length: the CRC is the last 4 bytes.
            if fixed, bytes.count >= 4 { fixCRC(&bytes, over: 0..<(bytes.count - 4)) }
            try stable("store header", StoreHeader.decode(bytes).encoded()) { try StoreHeader.decode($0).encoded() }
        case .recordPadding:
            // block selector(1), then the padded body.
            guard let selector = data.first else { return false }
            let block = paddingBlocks[Int(selector) % paddingBlocks.count]
            let padded = Array(data.dropFirst())
            let body = try RecordPadding.unpad(padded, block: block)
            try roundTrip("record padding") { RecordPadding.pad(body, block: block) == padded }
        case .ins:
            let ins = try INS(text)
            try roundTrip("INS") { try INS(ins.digits) == ins && ins.digits.utf8.count == 15 }
        case .insKey:
            guard let key = INS.key(forNIR: text) else { return false }
            try roundTrip("INS key") { (1...97).contains(key) }
        case .rpps: try identifier("RPPS", RPPSNumber.self, text)
        case .finess: try identifier("FINESS", FINESSNumber.self, text)
        case .documentID: try identifier("document id", DocumentID.self, text)
        case .breakGlassReason:
            let reason = try BreakGlassReason(text)
            try roundTrip("break-glass reason") { try BreakGlassReason(reason.text) == reason }
        case .systemPrincipal: try identifier("system principal", SystemPrincipal.self, text)
        case .slotManifest:
            guard let manifest = data.withUnsafeBytes({ LogFormat.decodeSlotManifest($0) }) else { return false }
            try roundTrip("key-slot manifest") { LogFormat.encodeSlotManifest(epoch: manifest.epoch, slots: manifest.slots) == data }
        case .checkpointNote:
            let note = try SignedCheckpoint(text)
            try roundTrip("signed checkpoint") { try SignedCheckpoint(note.text) == note && note.text == text }
        case .tlogProof:
            let proof = try InclusionProof(text)
            try roundTrip("tlog-proof") { try InclusionProof(proof.text) == proof }
        case .verifierKey:
            let key = try NoteVerifierKey(text)
            try roundTrip("verifier key") { try NoteVerifierKey(key.description) == key }
        case .activityBatch:
            try stable("activity batch", ActivityBatch.decode(data).encoded()) { try ActivityBatch.decode($0).encoded() }
        case .compactionIntent:
            guard let rewrites = LogFormat.decodeCompactionIntent(data) else { return false }
            try roundTrip("compaction intent") { LogFormat.encodeCompactionIntent(rewrites) == data }
        case .exportFile:
            // Untrusted files: a typed error, never a trap (no valid seed:
            // a valid file needs a store to sign it; VaultExportTests).
            _ = try VaultExport(verifying: Data(data))
        case .compactedPayload:
            guard let body = data.withUnsafeBytes({ LogFormat.decodeCompactedPayload($0) }) else { return false }
            try roundTrip("compacted payload") {
                let encoded = LogFormat.encodeCompactedBody(leaf: body.leaf, prefix: body.prefix[...], tag: body.tag)
                return encoded + [UInt8](repeating: 0, count: data.count - encoded.count) == data
            }
        }
        return true
    }

    /// Writes the CRC-32C of `range` (continuing from the salt's, if any)
    /// at `at` (default: just after the range), where the bytes allow.
    static func fixCRC(_ bytes: inout [UInt8], over range: Range<Int>, at: Int? = nil, salt: [UInt8]? = nil) {
        let at = at ?? range.upperBound
        guard range.lowerBound >= 0, range.upperBound <= bytes.count, at >= 0, at + 4 <= bytes.count else { return }
        let crc = CRC32C.checksum(Array(bytes[range]), continuing: salt.map { CRC32C.checksum($0) } ?? 0)
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(at..<(at + 4), with: $0) }
    }

    /// Checks a property of a decoded value; an error in the check (from
    /// decoding what the encoder wrote) is a failure too.
    static func roundTrip(_ what: String, _ check: () throws -> Bool) throws {
        let holds: Bool
        do { holds = try check() } catch { throw RoundTripFailure(description: "\(what): re-encoded bytes fail to decode (\(error))") }
        guard holds else { throw RoundTripFailure(description: "\(what): the value does not survive re-encoding") }
    }

    /// Checks that bytes an encoder wrote decode and encode to themselves.
    /// `text`, if it is a valid `T`, reads back from the identifier's
    /// canonical text as the same identifier.
    static func identifier<T: StringIdentifier & Equatable>(_ what: String, _ type: T.Type, _ text: String) throws {
        let id = try T(text)
        try roundTrip(what) { try T(id.canonicalText) == id }
    }

    static func stable(_ what: String, _ encoded: [UInt8], _ again: ([UInt8]) throws -> [UInt8]) throws {
        try roundTrip(what) { try again(encoded) == encoded }
    }
}
