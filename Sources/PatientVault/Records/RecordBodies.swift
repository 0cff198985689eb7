import Foundation
import VaultStorage

// MARK: - Principals

extension ByteWriter {
    mutating func write(principal: Principal) {
        switch principal {
        case .patient(let ins):
            write(UInt8(1)); write(string: ins.digits)
        case .professional(let p):
            write(UInt8(2)); write(string: p.rpps.digits); write(string: p.profession.rawValue)
            write(optionalString: p.speciality)
        case .organisation(let o):
            write(UInt8(3)); write(string: o.finess.value); write(string: o.kind.rawValue)
        case .insurer(let s):
            write(UInt8(4)); write(string: s.identifier)
        case .representative(let r):
            write(UInt8(5)); write(string: r.ins.digits); write(string: r.relationship.rawValue)
        case .emergencyRegulator(let p):
            write(UInt8(6)); write(string: p.rpps.digits); write(string: p.profession.rawValue)
            write(optionalString: p.speciality)
        case .employer(let s):
            write(UInt8(7)); write(string: s.identifier)
        case .complementaryInsurer(let s):
            write(UInt8(8)); write(string: s.identifier)
        case .auditReviewer(let s):
            write(UInt8(9)); write(string: s.identifier)
        case .system:
            write(UInt8(10))
        }
    }

    mutating func write(optionalString s: String?) {
        if let s { write(UInt8(1)); write(string: s) } else { write(UInt8(0)) }
    }

    mutating func write(date: Date) {
        write(date.timeIntervalSince1970.bitPattern)
    }

    mutating func write(optionalDate d: Date?) {
        if let d { write(UInt8(1)); write(date: d) } else { write(UInt8(0)) }
    }
}

extension ByteReader {
    mutating func readPrincipal() throws -> Principal {
        switch try read(UInt8.self) {
        case 1: return .patient(try INS(try readString(limit: Limits.identifier)))
        case 2: return .professional(try readHealthProfessional())
        case 3:
            let finess = try FINESSNumber(try readString(limit: Limits.identifier))
            guard let kind = OrganisationKind(rawValue: try readString(limit: Limits.enumName)) else { throw ByteReader.Malformed() }
            return .organisation(Organisation(finess: finess, kind: kind))
        case 4: return .insurer(try readSystemPrincipal())
        case 5:
            let ins = try INS(try readString(limit: Limits.identifier))
            guard let relationship = LegalRepresentative.Relationship(rawValue: try readString(limit: Limits.enumName)) else {
                throw ByteReader.Malformed()
            }
            return .representative(LegalRepresentative(ins: ins, relationship: relationship))
        case 6: return .emergencyRegulator(try readHealthProfessional())
        case 7: return .employer(try readSystemPrincipal())
        case 8: return .complementaryInsurer(try readSystemPrincipal())
        case 9: return .auditReviewer(try readSystemPrincipal())
        case 10: return .system
        default: throw ByteReader.Malformed()
        }
    }

    /// A professional, validated exactly as ``HealthProfessional``'s
    /// initialiser validates it.
    private mutating func readHealthProfessional() throws -> HealthProfessional {
        let rpps = try RPPSNumber(try readString(limit: Limits.identifier))
        guard let profession = Profession(rawValue: try readString(limit: Limits.enumName)) else { throw ByteReader.Malformed() }
        return try HealthProfessional(rpps: rpps, profession: profession, storedSpeciality: try readOptionalString(limit: Limits.speciality))
    }

    private mutating func readSystemPrincipal() throws -> SystemPrincipal {
        try SystemPrincipal(try readString(limit: Limits.systemIdentifier))
    }

    /// An optional string of at most `limit` UTF-8 bytes.
    mutating func readOptionalString(limit: Int) throws -> String? {
        switch try read(UInt8.self) {
        case 0: return nil
        case 1: return try readString(limit: limit)
        default: throw ByteReader.Malformed()
        }
    }

    mutating func readDate() throws -> Date {
        Date(timeIntervalSince1970: Double(bitPattern: try read(UInt64.self)))
    }

    mutating func readOptionalDate() throws -> Date? {
        switch try read(UInt8.self) {
        case 0: return nil
        case 1: return try readDate()
        default: throw ByteReader.Malformed()
        }
    }
}

// MARK: - Vault creation

/// The sealed body of a `vaultCreated` record.
struct VaultCreatedBody {
    var holder: INS
    var createdBy: Principal
    var channel: CreationChannel
    var createdAt: Date
    var region: Region?

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.write(string: holder.digits)
        w.write(principal: createdBy)
        w.write(string: channel.rawValue)
        w.write(date: createdAt)
        w.write(optionalString: region?.code)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> VaultCreatedBody {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let holder = try INS(try r.readString(limit: Limits.identifier))
            let by = try r.readPrincipal()
            guard let channel = CreationChannel(rawValue: try r.readString(limit: Limits.enumName)) else { throw ByteReader.Malformed() }
            let createdAt = try r.readDate()
            let region = try r.readOptionalString(limit: Limits.identifier).map { try Region(code: $0) }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return VaultCreatedBody(holder: holder, createdBy: by, channel: channel, createdAt: createdAt, region: region)
        }
    }
}

// MARK: - Document versions

/// Where a version's content is and how to open it.
struct ContentDescriptor: Sendable {
    /// The secret stream's header.
    var streamHeader: [UInt8]
    /// Number of stream chunks.
    var chunkCount: Int
    /// Chunk records (the engine's references), or empty when the content
    /// is inline in the version record.
    var chunks: [RecordReference]

    var isInline: Bool { chunks.isEmpty }
}

/// The sealed part of a `documentVersion` record: metadata (without the
/// derived status) and the content descriptor.
struct DocumentVersionBody {
    var metadata: DocumentMetadata
    var content: ContentDescriptor

    func encoded() -> [UInt8] {
        let m = metadata
        var w = ByteWriter(capacity: 512)
        w.write(string: m.draft.typeCode.system)
        w.write(string: m.draft.typeCode.code)
        w.write(string: m.draft.category.rawValue)
        w.write(string: m.draft.title)
        w.write(date: m.draft.createdAt)
        w.write(optionalDate: m.draft.serviceStart)
        w.write(optionalDate: m.draft.serviceEnd)
        w.write(string: m.draft.mimeType)
        w.write(m.draft.confidentiality.rawValue)
        w.write(principal: m.author)
        w.write(date: m.depositedAt)
        w.write(UInt64(m.size))
        w.write(lengthPrefixed: m.contentHash)
        w.write(UInt32(exactly: m.replacedVersion ?? 0) ?? 0)
        w.write(UInt8(m.replacementReason == .enteredInError ? 2 : m.replacementReason == .superseded ? 1 : 0))
        w.write(lengthPrefixed: content.streamHeader)
        w.writeVarint(UInt64(content.chunkCount))
        w.writeVarint(UInt64(content.chunks.count))
        for reference in content.chunks { reference.write(to: &w) }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], id: DocumentID, version: Int) throws -> DocumentVersionBody {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let typeCode = DocumentTypeCode(system: try r.readString(limit: Limits.typeCodeSystem), code: try r.readString(limit: Limits.typeCode))
            guard let category = DocumentCategory(rawValue: try r.readString(limit: Limits.enumName)) else { throw ByteReader.Malformed() }
            let title = try r.readString(limit: Limits.title)
            let createdAt = try r.readDate()
            let start = try r.readOptionalDate()
            let end = try r.readOptionalDate()
            let mime = try r.readString(limit: Limits.mimeType)
            let flags = ConfidentialityFlags(rawValue: try r.read())
            guard flags.rawValue & ~0b111 == 0 else { throw ByteReader.Malformed() }
            let author = try r.readPrincipal()
            let depositedAt = try r.readDate()
            let size = Int64(bitPattern: try r.read(UInt64.self))
            guard size >= 0 else { throw ByteReader.Malformed() }
            let hash = try r.readLengthPrefixed(limit: 32)
            let replaced = Int(try r.read(UInt32.self))
            let reasonCode: UInt8 = try r.read()
            guard hash.count == 32, reasonCode <= 2, (replaced == 0) == (reasonCode == 0) else { throw ByteReader.Malformed() }
            let header = try r.readLengthPrefixed(limit: 64)
            guard let chunkCount = Int(exactly: try r.readVarint()),
                  let referenceCount = Int(exactly: try r.readVarint()),
                  referenceCount <= r.remaining / RecordReference.byteCount
            else { throw ByteReader.Malformed() }
            var chunks: [RecordReference] = []
            chunks.reserveCapacity(referenceCount)
            for _ in 0..<referenceCount { chunks.append(try RecordReference(from: &r)) }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            let draft = DocumentDraft(
                typeCode: typeCode, category: category, title: title, createdAt: createdAt, serviceStart: start,
                serviceEnd: end, mimeType: mime, confidentiality: flags)
            var metadata = DocumentMetadata(
                id: id, version: version, draft: draft, author: author, depositedAt: depositedAt, size: size,
                contentHash: hash, status: .current)
            metadata.replacedVersion = replaced == 0 ? nil : replaced
            metadata.replacementReason = reasonCode == 2 ? .enteredInError : reasonCode == 1 ? .superseded : nil
            return DocumentVersionBody(
                metadata: metadata,
                content: ContentDescriptor(streamHeader: header, chunkCount: chunkCount, chunks: chunks))
        }
    }
}
