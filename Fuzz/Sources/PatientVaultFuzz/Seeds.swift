import Foundation
@testable import PatientVault
@testable import PatientVaultProof
@testable import VaultCrypto
@testable import VaultStorage

/// The seed corpus (`Fuzz/Corpus/`), made with the real encoders: for each
/// target, valid inputs (which its decoder accepts) and invalid ones (which
/// it rejects with nil or a typed error). A file is named
/// `<selector>-<target>-<valid|invalid>-<n>` and holds the selector byte
/// then the target's input; `FuzzRegressionTests` reads the names.
enum Seeds {
    struct Mismatch: Error, CustomStringConvertible { var description: String }

    /// Writes every seed to `folder`, checking each against its decoder.
    static func write(to folder: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var count = 0
        for (target, valid, invalid) in try all() {
            for (expected, inputs) in [(true, valid), (false, invalid)] {
                for (n, data) in inputs.enumerated() {
                    let accepted: Bool
                    do { accepted = try FuzzHarness.run(target, data) } catch { accepted = false }
                    guard accepted == expected else {
                        throw Mismatch(description: "\(target) seed \(n) is \(accepted ? "accepted" : "rejected")")
                    }
                    let name = String(format: "%02d", target.rawValue) + "-\(target)-\(expected ? "valid" : "invalid")-\(n + 1)"
                    try Data([UInt8(target.rawValue)] + data).write(to: URL(fileURLWithPath: folder + "/" + name))
                    count += 1
                }
            }
        }
        return count
    }

    static func bytes(_ count: Int, from start: UInt8) -> [UInt8] { (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0 &* 37) } }
    static func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }
    static func ins(_ nir: String) -> INS {
        let key = INS.key(forNIR: nir)!
        return try! INS(nir + (key < 10 ? "0" : "") + String(key))
    }
    /// `bytes` with `value` at `offset`.
    static func with(_ bytes: [UInt8], _ offset: Int, _ value: UInt8) -> [UInt8] {
        var b = bytes
        b[offset] = value
        return b
    }
    /// `bytes` with the byte at `offset` inverted.
    static func flip(_ bytes: [UInt8], _ offset: Int) -> [UInt8] { with(bytes, offset, ~bytes[offset]) }

    static func all() throws -> [(FuzzTarget, [[UInt8]], [[UInt8]])] {
        let salt = bytes(16, from: 7)
        let stream = StreamID(bytes: bytes(32, from: 90))
        let location = RecordLocation(segment: 1, offset: 4096, frameLength: 240)
        let reference = RecordReference(sequence: 7, location: location)
        let doc = DocumentID(bytes: bytes(16, from: 200))
        let date = Date(timeIntervalSince1970: 1_700_000_000.25)
        let alice = ins("2840775123456")
        let doctor = HealthProfessional(rpps: try RPPSNumber("10101234567"), profession: .doctor)
        let psychiatrist = try HealthProfessional(rpps: try RPPSNumber("10107654321"), profession: .doctor, speciality: "psychiatrie")
        let hospital = Organisation(finess: try FINESSNumber("750712184"), kind: .hospital)
        let fixed = { (bytes: [UInt8], range: Range<Int>) -> [UInt8] in
            var b = bytes
            FuzzHarness.fixCRC(&b, over: range)
            return b
        }

        let segment1 = LogFormat.encodeSegmentHeader(number: 1, salt: salt, firstLSN: 0, size: 64 << 20)
        let segment2 = LogFormat.encodeSegmentHeader(number: 42, salt: bytes(16, from: 1), firstLSN: 123_456, size: 1 << 20)
        let segmentOtherVersion = fixed(with(segment1, 8, 99), 0..<60)

        let frame1 = salt + LogFormat.encodeFrameHeader(
            salt: salt, offset: FuzzHarness.frameOffset, payloadLength: 100, payloadCRC: 0xDEAD_BEEF, lsn: 7, durableThrough: 6,
            flags: LogFormat.flagHasStream, previous: location, stream: stream, authenticator: FuzzHarness.authenticator)
        let frame2 = salt + LogFormat.encodeFrameHeader(
            salt: salt, offset: FuzzHarness.frameOffset, payloadLength: 24, payloadCRC: 1, lsn: 8, durableThrough: 8,
            flags: LogFormat.flagGroupContinues, previous: nil, stream: nil, authenticator: FuzzHarness.authenticator) + bytes(24, from: 3)

        let keyFile = LogFormat.encodeKeyFileHeader(salt: salt)
        let slotPrefix = { (number: UInt64) -> [UInt8] in salt + withUnsafeBytes(of: number.littleEndian) { Array($0) } }
        let slot3 = LogFormat.encodeKeySlot(KeySlot(3), value: bytes(72, from: 11), magic: LogFormat.keySlotLive, salt: salt)
        let slotFull = LogFormat.encodeKeySlot(KeySlot(9), value: bytes(LogFormat.keySlotCapacity, from: 5), magic: LogFormat.keySlotLive, salt: salt)
        let tombstone = LogFormat.encodeKeySlot(KeySlot(3), value: [], magic: LogFormat.keySlotTombstone, salt: salt)

        var index = StreamIndex()
        for i in 0..<3 {
            index[StreamID(bytes: bytes(32, from: UInt8(i * 50)))] = RecordLocation(segment: 1, offset: 64 + UInt64(i) * 256, frameLength: 256)
        }
        var chunks = SequenceTable()
        chunks.append(1, at: RecordLocation(segment: 1, offset: 64, frameLength: 4096))
        chunks.append(2, at: RecordLocation(segment: 1, offset: 4160, frameLength: 4096))
        var landmarks = SequenceTable()
        landmarks.append(256, at: RecordLocation(segment: 1, offset: 8256, frameLength: 128))
        let checkpoint3 = try checkpointBytes(.init(
            segment: 1, tail: 832, nextLSN: 300, last: RecordLocation(segment: 1, offset: 576, frameLength: 256), index: index,
            chunks: chunks, landmarks: landmarks))
        let checkpoint0 = try checkpointBytes(.init(segment: 1, tail: 64, nextLSN: 0, last: nil, index: StreamIndex()))
        // A count larger than the entries that follow, checksums fixed.
        let checkpointCount = with(checkpoint3, 56, 200)

        let header1 = RecordHeader(kind: .documentVersion, sequence: 3, document: doc, version: 2, keySlot: KeySlot(5))
            .encoded(mask: FuzzHarness.headerMask)
        let header2 = RecordHeader(kind: .vaultCreated, sequence: 0, document: nil, version: 0, keySlot: KeySlot(1)).encoded(mask: nil)

        let created1 = VaultCreatedBody(holder: alice, createdBy: .professional(psychiatrist), channel: .healthProfessional, createdAt: date, region: .ileDeFrance).encoded()
        let created2 = VaultCreatedBody(holder: alice, createdBy: .patient(alice), channel: .patientOnline, createdAt: date, region: nil).encoded()

        let draft = DocumentDraft(
            typeCode: .consultationNote, category: .report, title: "Compte rendu de consultation — été", createdAt: date,
            serviceStart: date, serviceEnd: nil, mimeType: "application/pdf", confidentiality: [.hiddenFromPatient])
        var metadata = DocumentMetadata(
            id: FuzzHarness.document, version: 1, draft: draft, author: .professional(doctor), depositedAt: date, size: 3000,
            contentHash: bytes(32, from: 77))
        let version1 = DocumentVersionBody(metadata: metadata, content: ContentDescriptor(streamHeader: bytes(24, from: 9), chunkCount: 1, chunks: [])).encoded()
        metadata.replaces = (1, .enteredInError)
        metadata.author = .organisation(hospital)
        let version2 = DocumentVersionBody(
            metadata: metadata, content: ContentDescriptor(streamHeader: bytes(24, from: 9), chunkCount: 3, chunks: [reference, reference, reference])).encoded()

        let events: [VaultEvent] = [
            .policy(.authorise(.professional(psychiatrist), until: date)), .policy(.revoke(.organisation(hospital.finess))),
            .policy(.setMedecinTraitant(nil)), .policy(.setMedecinTraitant(doctor)),
            .policy(.nameRepresentative(LegalRepresentative(ins: ins("1750133012345"), relationship: .parent))),
            .policy(.removeRepresentative(ins("1750133012345"))), .policy(.setBreakGlassOpposition(true)),
            .policy(.releaseToPatient(doc)), .firstAccess(.professional(doctor.rpps)), .hiddenNotice(doc), .automaticRelease(doc),
            .erased(Erasure(id: doc, author: .professional(doctor), depositedAt: date, versions: 2, reason: try! ErasureReason("wrong patient"))),
            .erased(Erasure(id: doc, author: .patient(alice), depositedAt: date, versions: 1, reason: nil)),
        ]
        let eventBodies = events.map { VaultEventBody(time: date, by: .patient(alice), event: $0).encoded() }

        let user = StatisticsRecord.UserTag(kind: 2, organisationKind: .pharmacy, tag: bytes(16, from: 4))
        let stats: [StatisticsRecord] = [
            .vaultCreated(time: date, channel: .pharmacy, region: .auvergneRhoneAlpes, creator: user),
            .vaultCreated(time: date, channel: .patientOnline, region: nil, creator: nil),
            .document(vault: bytes(16, from: 8), user: StatisticsRecord.UserTag(kind: 1, organisationKind: nil, tag: bytes(16, from: 6)), byInsurer: false),
            .document(vault: bytes(16, from: 8), user: nil, byInsurer: true), .use(user), .none,
        ]

        let breakGlass = AuditEntry(
            sequence: 12, time: date, actor: .emergencyRegulator(doctor), onBehalfOf: nil, action: .readContent,
            vaultID: hexEncoded(bytes(16, from: 30)), document: doc, version: 2, outcome: .allowed, rule: .breakGlass,
            purpose: .emergency, legalBasis: "CSP L1111-17 I", isBreakGlass: true, isSecretAccess: false, target: nil,
            reasonHash: bytes(32, from: 60), matrixVersion: "2023-10-26", previousHash: bytes(32, from: 12)).encoded()
        let denial = AuditEntry(
            sequence: 0, time: date, actor: .insurer(try SystemPrincipal("cnam")), onBehalfOf: .patient(alice), action: .authorise,
            vaultID: "", document: nil, version: nil, outcome: .denied, rule: .invalidRequest, purpose: .care, legalBasis: nil,
            isBreakGlass: false, isSecretAccess: true, target: "RPPS 10101234567", reasonHash: nil, matrixVersion: "m",
            previousHash: [UInt8](repeating: 0, count: 32)).encoded()

        // Go-made transparency-log texts (Tests/PatientVaultTests/Proof/TransparencyVectorTests.swift).
        let logKey = "example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        let witnessKey = "example.com/patientvault-test-witness+ad6f2b2a+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
        let checkpointNote = "example.com/patientvault-test-log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u{2014} example.com/patientvault-test-log ry+CiWJA5uSv6DeizZCzt56sUUvFIzgG2KMvERU8a/+qSyCyqMG8W2teKqhCDDohNQtN+FQqfEuruBy9P8FSpIEoows=\n"
        let cosignatureLine = "\u{2014} example.com/patientvault-test-witness rW8rKgAAAABlU/EAGWgep1vtKCLz1XALicdXBV8J0p7Xmz5p7aK+iVe5DRmlcZSndz25tv1mfpMTPhgzq87gyYHE5ie6xhe/ThWYDQ==\n"
        let tlogProof = "c2sp.org/tlog-proof@v1\nindex 5\nvBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=\nyoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=\n037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=\n\n" + checkpointNote

        let anchor = VaultAnchor(records: 12, headHash: bytes(16, from: 40)).encoded()
        let intent1 = LogFormat.encodeCompactionIntent([
            .init(segment: 1, offset: 64, frameLength: 4096, bytes: bytes(176, from: 9)),
            .init(segment: 2, offset: 8192, frameLength: 512, bytes: bytes(140, from: 1)),
        ])
        let intent2 = LogFormat.encodeCompactionIntent([])
        let compacted1 = LogFormat.encodeCompactedBody(leaf: bytes(32, from: 5), prefix: bytes(48, from: 2)[...], tag: bytes(16, from: 9)) + [UInt8](repeating: 0, count: 300)
        let compacted2 = LogFormat.encodeCompactedBody(leaf: bytes(32, from: 6), prefix: [], tag: bytes(16, from: 7))
        let manifest1 = LogFormat.encodeSlotManifest(epoch: 1, slots: [(7, bytes(LogFormat.journaledSlotSize - 8, from: 3))])
        let manifest2 = LogFormat.encodeSlotManifest(
            epoch: 1 << 33, slots: [(3, bytes(LogFormat.journaledSlotSize - 8, from: 1)), (1 << 40, bytes(LogFormat.journaledSlotSize - 8, from: 2))])

        let store1 = StoreHeader(
            source: .argon2id, salt: salt, parameters: .init(opsLimit: 3, memLimit: 64 << 20), storeID: bytes(16, from: 2),
            keyID: "", wrapped: bytes(72, from: 19), rootCheck: bytes(32, from: 4)).encoded()
        let store2 = StoreHeader(
            source: .rawKey, salt: [UInt8](repeating: 0, count: 16), parameters: .init(opsLimit: 0, memLimit: 0), storeID: bytes(16, from: 2),
            keyID: "", wrapped: bytes(72, from: 29), rootCheck: bytes(32, from: 6)).encoded()
        let store3 = StoreHeader(
            source: .provider, salt: [UInt8](repeating: 0, count: 16), parameters: .init(opsLimit: 0, memLimit: 0), storeID: bytes(16, from: 2),
            keyID: "arn:aws:kms:eu-west-3:111122223333:key/hsm-1", wrapped: bytes(184, from: 39), rootCheck: bytes(32, from: 8)).encoded()

        let padded = RecordPadding.pad(bytes(300, from: 1), block: 512)
        let batch1 = ActivityBatch(copies: [
            .init(vault: StreamID(bytes: [1] + bytes(31, from: 5)), entry: breakGlass), .init(vault: nil, entry: denial),
        ]).encoded()
        let batch2 = ActivityBatch(copies: [.init(vault: StreamID(bytes: [1] + bytes(31, from: 9)), entry: denial)]).encoded()

        return [
            (.segmentHeader, [segment1, segment2], [with(segment1, 0, 0x51), with(segment1, 20, 1), segmentOtherVersion]),
            (.segmentHeaderFixed, [segment1, segment2 + bytes(40, from: 1)], [fixed(with(segment1, 53, 0xFF), 0..<60), Array(segment1.prefix(63))]),
            (.frameHeader, [frame1, frame2], [with(frame1, 40, 0x99), with(frame2, 16, 0)]),
            (.frameHeaderFixed, [frame1, frame2], [Array(frame1.prefix(100)), with(frame1, 17, 0)]),
            (.keyFileHeader, [keyFile], [with(keyFile, 40, 1), fixed(with(keyFile, 8, 99), 0..<124), Array(keyFile.prefix(127))]),
            (.keyFileHeaderFixed, [keyFile], [with(keyFile, 3, 0x30), fixed(with(keyFile, 8, 9), 0..<124)]),
            (.keySlot, [slotPrefix(3) + slot3, slotPrefix(9) + slotFull],
             [slotPrefix(3) + tombstone, slotPrefix(4) + slot3, slotPrefix(3) + with(slot3, 30, 0), slotPrefix(3) + [UInt8](repeating: 0, count: 128)]),
            (.keySlotFixed, [slotPrefix(3) + slot3], [slotPrefix(3) + with(slot3, 16, 105), slotPrefix(3) + with(slot3, 0, 0x41)]),
            (.checkpoint, [checkpoint3, checkpoint0],
             [with(checkpoint3, 20, 9), fixed(flip(checkpoint3, checkpoint3.count - 10), 0..<(checkpoint3.count - 4)), Array(checkpoint3.prefix(83))]),
            (.checkpointFixed, [checkpoint3, checkpoint0], [checkpointCount, with(checkpoint0, 0, 0x51)]),
            (.recordHeader, [header1 + bytes(40, from: 3), header2], [with(header1, 0, 2), with(header1, 1, 99), with(header1, 2, 1), Array(header1.prefix(47))]),
            (.vaultCreated, [created1, created2], [Array(created1.dropLast()), created2 + [0]]),
            (.documentVersion, [version1, version2], [Array(version2.dropLast(2)), version1 + [1]]),
            (.vaultEvent, eventBodies, [with(eventBodies[9], eventBodies[9].count - 17, 12), eventBodies[0] + [0]]),
            (.statistics, stats.map { $0.encoded() }, [with(stats[0].encoded(), 0, 4), Array(stats[4].encoded().dropLast())]),
            (.auditEntry, [breakGlass, denial], [Array(breakGlass.dropLast()), denial + [0]]),
            (.vaultAnchor, [anchor], [Array(anchor.dropLast()), anchor + [0]]),
            (.storeHeader, [store1, store2, store3], [with(store1, 0, 0x51), with(store1, 30, 1), Array(store1.prefix(100))]),
            (.storeHeaderFixed, [store1, store2, store3], [
                fixed(with(store1, 8, 99), 0..<(store1.count - 4)), fixed(with(store1, 12, 3), 0..<(store1.count - 4)),
                fixed(with(store3, 66, 0xFF), 0..<(store3.count - 4)),
            ]),
            (.recordPadding, [[3] + padded, [0] + [9, 0x80]], [[3] + Array(padded.dropLast()), [2] + with(padded, 300, 0x81)]),
            (.ins, [utf8(alice.digits), utf8("1 85 02 2A 012 345 " + String(ins("185022A012345").digits.suffix(2)))],
             [with(utf8(alice.digits), 14, utf8(alice.digits)[14] == 0x30 ? 0x31 : 0x30), Array(utf8(alice.digits).dropLast()), with(utf8(alice.digits), 0, 0x35)]),
            (.insKey, [utf8("2840775123456"), utf8("185022a012345")], [utf8("28407751234"), utf8("28407751234é5")]),
            (.rpps, [utf8("10101234567"), utf8("101 0123 4567")], [utf8("1010123456"), utf8("1010123456a")]),
            (.finess, [utf8("750712184"), utf8("2A0000012")], [utf8("75071218"), utf8("2C0000012")]),
            (.documentID, [utf8("00112233445566778899AABBCCDDEEFF"), utf8(doc.description)], [utf8("0011223344556677889"), utf8("00112233445566778899aabbccddeefg")]),
            (.breakGlassReason, [utf8("Patient inconscient, urgence vitale"), utf8("AVP 🚑 SAMU")], [utf8("\u{2060}a\u{2060}b\u{2060}"), utf8("ab  "), []]),
            (.systemPrincipal, [utf8("cnam"), utf8("insurer-01.prod_A")], [[], utf8("a b")]),
            (.slotManifest, [manifest1, manifest2], [Array(manifest1.dropLast()), with(manifest2, 4, 1), with(manifest2, 16, 1)]),
            (.activityBatch, [batch1, batch2], [Array(batch1.dropLast()), batch2 + [0], with(batch2, 0, 0)]),
            (.checkpointNote, [utf8(checkpointNote), utf8(checkpointNote + cosignatureLine)],
             [utf8(String(checkpointNote.dropLast())), utf8(checkpointNote.replacingOccurrences(of: "\n8\n", with: "\n08\n"))]),
            (.tlogProof, [utf8(tlogProof)], [utf8(tlogProof.replacingOccurrences(of: "index 5", with: "index 9")), utf8("c2sp.org/tlog-proof@v1\n")]),
            (.verifierKey, [utf8(logKey), utf8(witnessKey)], [utf8(logKey.replacingOccurrences(of: "+af2f8289+", with: "+af2f8288+")), utf8("a+b")]),
            (.compactionIntent, [intent1, intent2], [Array(intent1.dropLast()), with(intent1, 0, 0x51), flip(intent1, 40)]),
            (.exportFile, [try exportFile()], [Array(try exportFile().dropLast()), flip(try exportFile(), 200),
                utf8("patientvault-export/1 a+00000000+AQ== AAAA\n{}"), utf8("patientvault-export/1\n{\"format\":1}"), [0x0A],
            ]),
            (.compactedPayload, [compacted1, compacted2], [with(compacted1, 4, 1), with(compacted1, compacted1.count - 1, 1), Array(compacted2.dropLast())]),
        ]
    }

    /// An export file as a store writes it (``VaultStore/exportVault(for:as:)``),
    /// made by hand: no document, a trail of one entry (the export's own)
    /// whose record is the one leaf of a tree, signed by a key from a
    /// fixed seed.
    static func exportFile() throws -> [UInt8] {
        let seed = [UInt8](repeating: 7, count: 32)
        let key = try Ed25519SigningKey.fromSeed(try seed.withUnsafeBytes { try SymmetricKey.copying($0) })
        let origin = "example.com/patientvault-fuzz"
        let verifier = try NoteVerifierKey(name: origin, algorithm: .ed25519, publicKey: key.publicKey.bytes)
        let stream = StreamID(bytes: bytes(32, from: 1)), audit = StreamID(bytes: bytes(32, from: 2))
        let record = bytes(120, from: 3)
        let leaf = record.withUnsafeBytes { MerkleLog.leafHash(stream: audit, payload: $0) }
        let checkpoint = try SignedCheckpoint.sign(TreeHead(origin: origin, size: 1, rootHash: leaf), name: origin, key: key)
        let proof = try InclusionProof(index: 0, hashes: [], checkpoint: checkpoint)
        let vaultID = hexEncoded(bytes(16, from: 4))
        let entry = AuditEntry(
            sequence: 1, time: Date(timeIntervalSince1970: 1_700_000_000), actor: .patient(ins("2840775123456")), onBehalfOf: nil,
            action: .exportVault, vaultID: vaultID, document: nil, version: nil, outcome: .allowed, rule: .patientIsHolder,
            purpose: .personalAccess, legalBasis: nil, isBreakGlass: false, isSecretAccess: false, target: nil, reasonHash: nil,
            matrixVersion: "m", previousHash: bytes(32, from: 5))
        let payload = ExportPayload(
            format: VaultExport.format, vaultID: vaultID, patient: ins("2840775123456").digits, stream: Data(stream.bytes).base64EncodedString(),
            auditStream: Data(audit.bytes).base64EncodedString(), checkpoint: checkpoint.text, verifierKey: verifier.description,
            documents: [], auditTrail: [.init(entry: entry, record: Data(record).base64EncodedString(), proof: proof.text)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(payload))
        let signature = try key.signature(for: Array((VaultExport.magic + "\n").utf8) + json)
        return Array((VaultExport.magic + " " + verifier.description + " " + Data(signature).base64EncodedString() + "\n").utf8) + json
    }

    /// A checkpoint as the engine writes it (to a file), with the fuzz
    /// authenticator.
    static func checkpointBytes(_ checkpoint: LogEngineCore.Checkpoint) throws -> [UInt8] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-fuzz-seeds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try LogEngineCore.writeCheckpoint(checkpoint, directory: folder.path, authenticator: FuzzHarness.authenticator, files: PosixLogFiles())
        return Array(try Data(contentsOf: folder.appendingPathComponent(LogFormat.checkpointFileName)))
    }
}
