import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// What recovery trusts is authenticated (issue 8, item 3): the checkpoint
/// and every frame header carry a MAC under a master-derived key, and each
/// vault's audit record seals the count and head hash of the vault's own
/// stream. An attacker who can rewrite the files and every CRC cannot move
/// a vault back to before a patient's block.
@Suite struct RecoveryTrustTests {
    /// A vault whose newest record is the patient's block of a doctor who
    /// had read it before; the store closed (checkpoint written).
    struct Blocked {
        let t: TestStore
        let vault: StreamID
        let audit: StreamID
        let doc: DocumentID
        static let doctor = Fixtures.otherDoctor

        init() async throws {
            t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
            let alice = Fixtures.alice
            try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            doc = try await t.store.deposit(Fixtures.draft(), content: Data([7]), for: alice, as: Fixtures.doctor).id
            try await t.store.authorise(Self.doctor, for: alice, as: .patient(alice))
            _ = try await t.store.content(of: doc, for: alice, as: Self.doctor)
            try await t.store.block(Self.doctor, for: alice, as: .patient(alice))
            vault = t.store.keys.vaultPseudonym(for: alice)
            audit = t.store.keys.auditStream(of: vault)
            try await t.store.close()
        }

        var checkpointPath: String { t.folder.path + "/" + LogFormat.checkpointFileName }

        /// Opens the store; `replaying` a log whose checkpoint the test
        /// deleted (otherwise the missing checkpoint alone is damage).
        func open(replaying: Bool = false) async throws -> VaultStore {
            let c = replaying ? Fixtures.replaying() : Fixtures.configuration()
            return try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: c)
        }

        /// The newest record of `stream` and the one before it.
        func heads(of stream: StreamID) async throws -> (newest: RecordLocation, previous: RecordLocation) {
            let engine = try t.rawEngine()
            let newest = engine.head(of: stream)!
            let previous = try engine.frame(at: newest).previous!
            try await engine.close()
            return (newest, previous)
        }
    }

    /// Rewrites the checkpoint's entry for `stream` to point at `location`
    /// and fixes its CRC, leaving the MAC as it was (the attacker has no key).
    func moveCheckpointHead(_ path: String, stream: StreamID, to location: RecordLocation) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let count = bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: 56, as: UInt64.self).littleEndian) }
        var found = false
        for i in 0..<count {
            let at = 64 + i * LogFormat.checkpointEntrySize
            let id = bytes.withUnsafeBytes { StreamID(bytes: UnsafeRawBufferPointer(rebasing: $0[at..<(at + 32)])) }
            guard id == stream else { continue }
            withUnsafeBytes(of: location.raw.littleEndian) { for j in 0..<8 { bytes[at + 32 + j] = $0[j] } }
            withUnsafeBytes(of: location.frameLength.littleEndian) { for j in 0..<4 { bytes[at + 40 + j] = $0[j] } }
            found = true
        }
        #expect(found)
        let crc = CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)]))
        withUnsafeBytes(of: crc.littleEndian) { for j in 0..<4 { bytes[bytes.count - 4 + j] = $0[j] } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Gives the frame at `location` another stream id, recomputing its CRC.
    /// With `mac`, the attacker also holds the log key and recomputes the
    /// header's MAC; without, the old MAC stays.
    func reattribute(_ folder: URL, _ location: RecordLocation, mac: LogMAC?) throws {
        let path = folder.appendingPathComponent(LogFormat.segmentFileName(location.segment))
        let handle = try FileHandle(forUpdating: path)
        defer { try? handle.close() }
        let salt = try LogFormat.decodeSegmentHeader([UInt8](try handle.read(upToCount: LogFormat.segmentHeaderSize)!))!.salt
        try handle.seek(toOffset: location.offset)
        let old = [UInt8](try handle.read(upToCount: LogFormat.frameHeaderSize)!)
        let h = old.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: salt)! }
        var forged = LogFormat.encodeFrameHeader(
            salt: salt, offset: location.offset, payloadLength: Int(h.payloadLength), payloadCRC: h.payloadCRC, lsn: h.lsn,
            durableThrough: h.durableThrough, flags: h.flags, previous: h.previous,
            stream: StreamID(bytes: [1] + [UInt8](repeating: 0xAB, count: 31)), authenticator: mac)
        if mac == nil {
            for i in LogFormat.frameMACOffset..<LogFormat.frameHeaderSize { forged[i] = old[i] }
            let crc = forged.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...]), continuing: CRC32C.checksum(salt))
            }
            withUnsafeBytes(of: crc.littleEndian) { for j in 0..<4 { forged[4 + j] = $0[j] } }
        }
        try handle.seek(toOffset: location.offset)
        try handle.write(contentsOf: Data(forged))
    }

    @Test func anEditedCheckpointCannotUndoABlock() async throws {
        let b = try await Blocked()
        let (_, previous) = try await b.heads(of: b.vault)
        try moveCheckpointHead(b.checkpointPath, stream: b.vault, to: previous)
        // Before: the store opened, the block was gone and the doctor read again.
        #expect(await code { _ = try await b.open() } == .corrupted)
    }

    @Test func aMissingCheckpointAndAReattributedVaultRecordAreCaught() async throws {
        let b = try await Blocked()
        let (newest, _) = try await b.heads(of: b.vault)
        try FileManager.default.removeItem(atPath: b.checkpointPath)
        try reattribute(b.t.folder, newest, mac: nil)
        let e = await error { _ = try await b.open(replaying: true) }
        #expect(e?.code == .corrupted && e?.segment == newest.segment && e?.offset == newest.offset)
    }

    @Test func aMissingCheckpointAndAReattributedAuditRecordAreCaught() async throws {
        let b = try await Blocked()
        let (newest, _) = try await b.heads(of: b.audit)
        try FileManager.default.removeItem(atPath: b.checkpointPath)
        try reattribute(b.t.folder, newest, mac: nil)
        #expect(await code { _ = try await b.open(replaying: true) } == .corrupted)
    }

    @Test(arguments: [false, true])
    func evenWithTheLogKeyAShortenedStreamIsNeverServed(auditStream: Bool) async throws {
        // Defence in depth: an attacker who also holds the log key (but no
        // vault key) re-attributes the newest record of the vault's stream,
        // or of its audit stream, with a valid MAC. The audit record's
        // sealed anchor no longer matches the vault's history.
        let b = try await Blocked()
        let (newest, _) = try await b.heads(of: auditStream ? b.audit : b.vault)
        try FileManager.default.removeItem(atPath: b.checkpointPath)
        try reattribute(b.t.folder, newest, mac: try b.t.logMAC())
        let store = try await b.open(replaying: true)
        let alice = Fixtures.alice
        #expect(await code { _ = try await store.content(of: b.doc, for: alice, as: Blocked.doctor) } == .corrupted)
        #expect(await code { _ = try await store.documents(for: alice, as: .patient(alice)) } == .corrupted)
        try await store.close()
    }

    /// Every segment file deleted with the checkpoint: the store used to
    /// open empty, as a new one (every vault gone, a fresh signing key).
    /// `merkle.hashes` and `keys.slots` still hold what only records leave.
    @Test func aStoreWhoseSegmentsAndCheckpointAreDeletedIsCorruptedNotNew() async throws {
        let b = try await Blocked()
        let folder = b.t.folder.path
        try FileManager.default.removeItem(atPath: b.checkpointPath)
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where LogFormat.segmentNumber(fromFileName: name) != nil {
            try FileManager.default.removeItem(atPath: folder + "/" + name)
        }
        #expect(await code { _ = try await b.open() } == .corrupted)
        #expect(await code { _ = try await b.open(replaying: true) } == .corrupted)
    }

    @Test func untouchedTheBlockHoldsAcrossReopens() async throws {
        let b = try await Blocked()
        let store = try await b.open()
        let e = await error { _ = try await store.content(of: b.doc, for: Fixtures.alice, as: Blocked.doctor) }
        #expect(e?.code == .accessDenied && e?.rule == .blockedByPatient)
        _ = try await store.verifyAuditTrail(for: Fixtures.alice, as: .patient(Fixtures.alice))
        try await store.close()
        // And with the checkpoint gone: the whole log replays to the same state.
        try FileManager.default.removeItem(atPath: b.checkpointPath)
        #expect(await code { _ = try await b.open() } == .corrupted, "a missing checkpoint is damage")
        let replayed = try await b.open(replaying: true)
        #expect(await code { _ = try await replayed.content(of: b.doc, for: Fixtures.alice, as: Blocked.doctor) } == .accessDenied)
        try await replayed.close()
    }
}
