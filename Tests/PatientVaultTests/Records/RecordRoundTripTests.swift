import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// A property of every record kind: any value the public API accepts
/// encodes to bytes that decode back equal. Values are drawn at random
/// (seeded, so a failure replays) up to every limit, multi-byte text
/// included; the decoders' limits must equal the encoders'.
@Suite struct RecordRoundTripTests {
    /// SplitMix64: small, seeded, good enough to spread values.
    struct Draw {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func bool() -> Bool { next() & 1 == 1 }
        mutating func pick<T>(_ values: [T]) -> T { values[int(0...(values.count - 1))] }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

        /// Printable text of at most `maximum` UTF-8 bytes, often at the limit,
        /// mixing 1-, 2-, 3- and 4-byte characters.
        mutating func text(maximum: Int) -> String {
            let alphabet: [Character] = ["a", "Z", "0", " ", "-", "é", "ß", "€", "中", "😷", "𝄞", "'", "/"]
            let target = bool() ? maximum : int(1...maximum)
            var s = ""
            while true {
                let c = pick(alphabet)
                if s.utf8.count + String(c).utf8.count > target { break }
                s.append(c)
            }
            return s.isEmpty || s.first == " " ? "x" + s.dropFirst() : s
        }

        mutating func date() -> Date { Date(timeIntervalSince1970: Double(int(-2_000_000_000...4_000_000_000)) + Double(int(0...999)) / 1000) }

        mutating func rpps() -> RPPSNumber { try! RPPSNumber("10" + String(format: "%09d", int(0...999_999_999))) }
        mutating func ins() -> INS {
            let nir = String(int(1...2)) + String(format: "%02d", int(0...99)) + String(format: "%02d", int(1...12))
                + String(format: "%02d", int(1...95)) + String(format: "%03d", int(1...999)) + String(format: "%03d", int(1...999))
            let key = INS.key(forNIR: nir)!
            return try! INS(nir + (key < 10 ? "0" : "") + String(key))
        }
        mutating func finess() -> FINESSNumber { try! FINESSNumber(String(format: "%02d", int(1...95)) + String(format: "%07d", int(0...9_999_999))) }
        mutating func system() -> SystemPrincipal {
            let chars = Array("abcXYZ019._-")
            return try! SystemPrincipal(String((0..<int(1...64)).map { _ in pick(chars) }))
        }
        mutating func professional() -> HealthProfessional {
            try! HealthProfessional(
                rpps: rpps(), profession: pick(Profession.allCases), speciality: bool() ? text(maximum: Limits.speciality) : nil)
        }
        mutating func representative() -> LegalRepresentative {
            LegalRepresentative(ins: ins(), relationship: pick(LegalRepresentative.Relationship.allCases))
        }
        mutating func principal() -> Principal {
            switch int(0...9) {
            case 0: return .patient(ins())
            case 1: return .representative(representative())
            case 2: return .professional(professional())
            case 3: return .emergencyRegulator(professional())
            case 4: return .organisation(Organisation(finess: finess(), kind: pick(OrganisationKind.allCases)))
            case 5: return .insurer(system())
            case 6: return .employer(system())
            case 7: return .complementaryInsurer(system())
            case 8: return .auditReviewer(system())
            default: return .system
            }
        }
        mutating func holder() -> GrantHolder { bool() ? .professional(rpps()) : .organisation(finess()) }
        mutating func change() -> PolicyChange {
            switch int(0...10) {
            case 0: return .authorise(bool() ? .professional(professional()) : .organisation(Organisation(finess: finess(), kind: .hospital)), until: bool() ? date() : nil)
            case 1: return .revoke(holder())
            case 2: return .block(rpps())
            case 3: return .unblock(rpps())
            case 4: return .setMedecinTraitant(bool() ? professional() : nil)
            case 5: return .addToCareTeam(professional())
            case 6: return .removeFromCareTeam(rpps())
            case 7: return .nameRepresentative(representative())
            case 8: return .removeRepresentative(ins())
            case 9: return .setBreakGlassOpposition(bool())
            default: return .releaseToPatient(DocumentID(bytes: bytes(16)))
            }
        }
    }

    static let seeds: [UInt64] = Array(1...8)

    @Test(arguments: seeds) func vaultEventsRoundTrip(seed: UInt64) throws {
        var d = Draw(state: seed)
        for _ in 0..<300 {
            let event: VaultEvent = switch d.int(0...3) {
            case 0: .policy(d.change())
            case 1: .firstAccess(d.holder())
            case 2: .hiddenNotice(DocumentID(bytes: d.bytes(16)))
            default: .automaticRelease(DocumentID(bytes: d.bytes(16)))
            }
            let body = VaultEventBody(time: d.date(), by: d.principal(), event: event)
            #expect(try VaultEventBody.decode(body.encoded()) == body)
        }
    }

    @Test(arguments: seeds) func vaultCreationsRoundTrip(seed: UInt64) throws {
        var d = Draw(state: seed)
        for _ in 0..<300 {
            let body = VaultCreatedBody(
                holder: d.ins(), createdBy: d.principal(), channel: d.pick(CreationChannel.allCases), createdAt: d.date(),
                region: d.bool() ? d.pick(Region.all) : nil)
            let back = try VaultCreatedBody.decode(body.encoded())
            #expect(back.holder == body.holder && back.createdBy == body.createdBy && back.channel == body.channel)
            #expect(back.createdAt == body.createdAt && back.region == body.region)
        }
    }

    @Test(arguments: seeds) func documentVersionsRoundTrip(seed: UInt64) throws {
        var d = Draw(state: seed)
        var checked = 0
        for _ in 0..<300 {
            let start = d.bool() ? d.date() : nil
            let draft = DocumentDraft(
                typeCode: DocumentTypeCode(system: d.text(maximum: Limits.typeCodeSystem), code: d.text(maximum: Limits.typeCode)),
                category: d.pick(DocumentCategory.allCases), title: d.text(maximum: Limits.title), createdAt: d.date(),
                serviceStart: start, serviceEnd: start.map { $0.addingTimeInterval(Double(d.int(0...86_400))) },
                mimeType: "application/" + String(repeating: "x", count: d.int(1...(Limits.mimeType - 12))),
                confidentiality: ConfidentialityFlags(rawValue: UInt8(d.int(0...7))))
            let author = d.principal()
            // Only what the store accepts: the draft validation decides.
            guard (try? VaultStore.validate(draft, author: author)) != nil else { continue }
            var m = DocumentMetadata(
                id: DocumentID(bytes: d.bytes(16)), version: d.int(1...Int(UInt32.max)), draft: draft, author: author,
                depositedAt: d.date(), size: Int64(d.int(0...Int(Int32.max))), contentHash: d.bytes(32), status: .current)
            if m.version > 1, d.bool() { m.replaces = (m.version - 1, d.bool() ? .superseded : .enteredInError) }
            let chunks = d.int(0...4)
            let content = ContentDescriptor(
                streamHeader: d.bytes(24), chunkCount: max(1, chunks),
                chunks: (0..<chunks).map { _ in RecordReference(w0: d.next(), w1: d.next(), w2: UInt32(d.int(0...Int(UInt32.max)))) })
            let back = try DocumentVersionBody.decode(DocumentVersionBody(metadata: m, content: content).encoded(), id: m.id, version: m.version)
            #expect(back.metadata == m)
            #expect(back.content.streamHeader == content.streamHeader && back.content.chunkCount == content.chunkCount)
            #expect(back.content.chunks == content.chunks)
            checked += 1
        }
        #expect(checked > 100)
    }

    @Test(arguments: seeds) func auditEntriesRoundTrip(seed: UInt64) throws {
        var d = Draw(state: seed)
        for _ in 0..<300 {
            let rule = d.pick(AccessRule.allCases)
            let holder = d.holder()
            let entry = AuditEntry(
                sequence: d.next(), time: d.date(), actor: d.principal(), onBehalfOf: d.bool() ? .patient(d.ins()) : nil,
                action: d.pick(VaultAction.allCases), vaultID: d.bool() ? hexEncoded(d.bytes(16)) : "",
                document: d.bool() ? DocumentID(bytes: d.bytes(16)) : nil, version: d.bool() ? d.int(1...Int(UInt32.max)) : nil,
                outcome: d.pick([AuditOutcome.allowed, .denied, .abandoned]), rule: rule, purpose: d.pick(AuditPurpose.allCases),
                legalBasis: rule.legalBasis, isBreakGlass: d.bool(), isSecretAccess: d.bool(),
                target: d.pick([nil, holder.description, "representative", "opposed", "allowed", "none"]),
                reasonHash: d.bool() ? d.bytes(32) : nil,
                matrixVersion: d.text(maximum: Limits.matrixVersion), previousHash: d.bytes(32))
            #expect(try AuditEntry.decode(entry.encoded()) == entry)
        }
    }

    @Test(arguments: seeds) func statisticsRecordsRoundTrip(seed: UInt64) throws {
        var d = Draw(state: seed)
        for _ in 0..<300 {
            let user = StatisticsRecord.UserTag(
                kind: d.bool() ? 1 : 2, organisationKind: d.bool() ? d.pick(OrganisationKind.allCases) : nil, tag: d.bytes(16))
            let record: StatisticsRecord = switch d.int(0...2) {
            case 0: .vaultCreated(time: d.date(), channel: d.pick(CreationChannel.allCases), region: d.bool() ? d.pick(Region.all) : nil, creator: d.bool() ? user : nil)
            case 1: .document(vault: d.bytes(16), user: d.bool() ? user : nil, byInsurer: d.bool())
            default: .use(user)
            }
            #expect(try StatisticsRecord.decode(record.encoded()) == record)
        }
    }

    @Test func decodersRefuseTrailingBytes() throws {
        var d = Draw(state: 99)
        let body = VaultEventBody(time: d.date(), by: d.principal(), event: .policy(d.change()))
        #expect(throws: (any Error).self) { try VaultEventBody.decode(body.encoded() + [0]) }
        let created = VaultCreatedBody(holder: d.ins(), createdBy: d.principal(), channel: .pharmacy, createdAt: d.date(), region: nil)
        #expect(throws: (any Error).self) { try VaultCreatedBody.decode(created.encoded() + [0]) }
        #expect(throws: (any Error).self) { try StatisticsRecord.decode(StatisticsRecord.use(.init(kind: 1, organisationKind: nil, tag: d.bytes(16))).encoded() + [0]) }
    }
}
