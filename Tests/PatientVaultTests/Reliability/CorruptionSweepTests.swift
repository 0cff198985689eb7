import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Flips bytes of a small closed store's files, one trial per byte, and
/// checks that each trial gives the right answer or a typed error: never a
/// wrong answer, a trap or a hang. Run with and without the checkpoint.
///
/// `PV_SWEEP_STRIDE` sets which bytes are flipped: every `stride`-th of the
/// written part of every file (default 37 in the suite; 1 in `.ci/run`,
/// which flips every byte). `PV_SWEEP_TRACE` prints each refusal: the
/// file, the byte and the error.
@Suite struct CorruptionSweepTests {
    /// What reading the whole store gives when nothing is damaged.
    struct Answer: Equatable {
        var documents: [String: Data]
        var titles: [String: String]
        var trail: Int
        var grantees: Int
    }

    static let alice = Fixtures.alice

    /// `replaying`: the sweep without the checkpoint replays the whole log
    /// (in production a missing checkpoint is itself damage).
    static func configuration(replaying: Bool = false) -> Configuration {
        var c = replaying ? Fixtures.replaying() : Fixtures.configuration()
        c.segmentSize = 1 << 20
        c.contentChunkSize = 4096
        c.inlineContentLimit = 1024
        return c
    }

    /// Reads everything the store holds for Alice.
    static func readEverything(_ folder: URL, key: MasterKey, replaying: Bool) async throws -> Answer {
        let store = try await VaultStore.open(at: folder, key: .key(key), configuration: configuration(replaying: replaying))
        do {
            let patient = Principal.patient(alice)
            var documents: [String: Data] = [:]
            var titles: [String: String] = [:]
            for m in try await store.documents(for: alice, matching: DocumentQuery(status: .all), as: patient) {
                let key = "\(m.id)/\(m.version)"
                titles[key] = m.title
                documents[key] = try await store.content(of: m.id, version: m.version, includingDeprecated: true, for: alice, as: patient)
            }
            let verification = try await store.verifyAuditTrail(for: alice, as: patient)
            let who = try await store.whoCouldRead(
                try DocumentID(documents.keys.sorted()[0].split(separator: "/")[0].description), at: Date(timeIntervalSince1970: 2_000_000_000),
                for: alice, as: patient)
            try await store.close()
            // The trail grows by the reads above: count what came before them.
            return Answer(documents: documents, titles: titles, trail: verification.entries - documents.count * 1 - 2, grantees: who.count)
        } catch {
            try? await store.close()
            throw error
        }
    }

    @Test(arguments: [true, false])
    func everyFlippedByteGivesTheRightAnswerOrATypedError(withCheckpoint: Bool) async throws {
        let stride = Int(ProcessInfo.processInfo.environment["PV_SWEEP_STRIDE"] ?? "") ?? 37
        // In memory where the machine has it: each trial rewrites the files.
        let base = FileManager.default.fileExists(atPath: "/dev/shm")
            ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let folder = base.appendingPathComponent("pv-sweep-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = try MasterKey.generate()
        do {
            let clock = ManualClock()
            var c = Self.configuration()
            c.clock = clock
            let store = try await VaultStore.open(at: folder, key: .key(key), configuration: c)
            try await store.createVault(for: Self.alice, as: .patient(Self.alice), channel: .patientOnline)
            let a = try await store.deposit(Fixtures.draft("Inline"), content: Fixtures.content("A", size: 600), for: Self.alice, as: Fixtures.doctor)
            _ = try await store.deposit(Fixtures.draft("Chunked"), content: Fixtures.content("B", size: 9000), for: Self.alice, as: Fixtures.doctor)
            _ = try await store.replace(a.id, with: Fixtures.draft("Inline v2"), content: Fixtures.content("C", size: 700), for: Self.alice, as: Fixtures.doctor)
            try await store.authorise(Fixtures.pharmacist, for: Self.alice, as: .patient(Self.alice))
            _ = try await store.content(of: a.id, for: Self.alice, as: Fixtures.doctor)
            try await store.close()
        }
        if !withCheckpoint { try FileManager.default.removeItem(at: folder.appendingPathComponent(LogFormat.checkpointFileName)) }
        // The original files, and how much of each is written.
        var originals: [(name: String, bytes: [UInt8], written: Int)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where name != "LOCK" {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            var written = bytes.count
            while written > 0 && bytes[written - 1] == 0 { written -= 1 }
            originals.append((name, bytes, written))
        }
        func restore() throws {
            for (name, bytes, _) in originals { try Data(bytes).write(to: folder.appendingPathComponent(name)) }
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path)
            where name != "LOCK" && !originals.contains(where: { $0.name == name }) {
                try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
        let expected = try await Self.readEverything(folder, key: key, replaying: !withCheckpoint)
        try restore()
        #expect(expected.documents.count == 3)
        var trials = 0, right = 0, refused: [String: Int] = [:]
        for (name, bytes, written) in originals {
            for position in Swift.stride(from: 0, to: written, by: stride) {
                var damaged = bytes
                damaged[position] ^= 0x5A
                try Data(damaged).write(to: folder.appendingPathComponent(name))
                do {
                    let answer = try await Self.readEverything(folder, key: key, replaying: !withCheckpoint)
                    #expect(answer == expected, "\(name) byte \(position): a different answer")
                    right += 1
                } catch let e as PatientVaultError {
                    refused[e.code.description, default: 0] += 1
                    if ProcessInfo.processInfo.environment["PV_SWEEP_TRACE"] != nil { print("REFUSED \(withCheckpoint) \(name) \(position) \(e)") }
                }
                trials += 1
                try restore()
            }
        }
        print("corruption sweep (\(withCheckpoint ? "with" : "without") checkpoint): \(trials) bytes flipped, \(right) right answers, refusals \(refused.sorted { $0.key < $1.key })")
        #expect(trials > 0)
    }
}

/// A flipped byte in one patient's record, in the part of the log an open
/// replays (everything after the last checkpoint: after a crash, up to
/// `checkpointInterval` bytes), affects that patient only.
@Suite struct ReplayedDamageTests {
    /// The frames of a segment file's bytes, in order, with their offsets.
    static func frames(of bytes: [UInt8]) throws -> [(offset: Int, header: LogFormat.FrameHeader)] {
        let salt = try #require(try LogFormat.decodeSegmentHeader(Array(bytes[0..<LogFormat.segmentHeaderSize]))).salt
        var frames: [(offset: Int, header: LogFormat.FrameHeader)] = []
        var offset = LogFormat.segmentHeaderSize
        while offset + LogFormat.frameHeaderSize <= bytes.count {
            guard let f = bytes.withUnsafeBytes({
                LogFormat.decodeFrameHeader(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + LogFormat.frameHeaderSize)]), salt: salt)
            }) else { break }
            frames.append((offset, f))
            offset += LogFormat.frameLength(payloadCount: Int(f.payloadLength))
        }
        return frames
    }

    /// The newest activity mark (the log's last record after a clean close,
    /// read at every open to find the copies a crash lost) damaged beyond a
    /// one-byte repair: the
    /// store opens (without that rebuild, which a clean close leaves
    /// nothing for) and serves its patients. Before, it refused to open.
    @Test func aDamagedActivityMarkDoesNotStopTheStore() async throws {
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let c = Fixtures.configuration()
        let alice = Fixtures.alice
        let content = Fixtures.content("A", size: 500)
        let id: DocumentID
        do {
            let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            id = try await store.deposit(Fixtures.draft(), content: content, for: alice, as: Fixtures.doctor).id
            try await store.close()
        }
        let path = folder.url.appendingPathComponent(LogFormat.segmentFileName(1))
        var bytes = [UInt8](try Data(contentsOf: path))
        let mark = try #require(try Self.frames(of: bytes).last {
            $0.header.stream.map { StoreKeys.StreamClass(of: $0) == .activityMark } ?? false
        })
        // Two bytes: one alone a read restores (the mark's Merkle leaf
        // proves its value).
        bytes[mark.offset + LogFormat.frameHeaderSize + 20] ^= 0x5A
        bytes[mark.offset + LogFormat.frameHeaderSize + 23] ^= 0x11
        try Data(bytes).write(to: path)
        // An open and a close without writes: a new mark is written all the
        // same, so that the damaged one is no longer the newest.
        let first = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        try await first.close()
        let newest = try #require(try Self.frames(of: [UInt8](try Data(contentsOf: path))).last {
            $0.header.stream.map { StoreKeys.StreamClass(of: $0) == .activityMark } ?? false
        })
        #expect(newest.offset > mark.offset)
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        _ = try await store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// After a crash, the activity copies are rebuilt from the audit
    /// records after the newest mark: one of them kept damaged (another
    /// patient's) is passed over, and the others' copies are rebuilt. Before,
    /// the rebuild stopped at it and the copies after it were lost.
    @Test func theActivityRebuildPassesOverADamagedAuditRecord() async throws {
        let live = TestFolder()
        let folder = TestFolder()
        let key = try MasterKey.generate()
        var c = Fixtures.configuration()
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let (alice, bob) = (Fixtures.alice, Fixtures.bob)
        do {
            let running = try await VaultStore.open(at: live.url, key: .key(key), configuration: c)
            try await running.createVault(for: bob, as: .patient(bob), channel: .patientOnline)
            try await running.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            for i in 0..<3 { _ = try await running.deposit(Fixtures.draft(), content: Data([UInt8(i)]), for: alice, as: Fixtures.doctor) }
            // A crash: the copies still pending in memory.
            try FileManager.default.copyItem(at: live.url, to: folder.url)
            try await running.close()
        }
        try? FileManager.default.removeItem(at: folder.url.appendingPathComponent("LOCK"))
        // The payload of the log's first audit record (Bob's vault's creation).
        let path = folder.url.appendingPathComponent(LogFormat.segmentFileName(1))
        var bytes = [UInt8](try Data(contentsOf: path))
        let audit = try #require(try Self.frames(of: bytes).first {
            $0.header.stream.map { StoreKeys.StreamClass(of: $0) == .audit } ?? false
        })
        // Two bytes: one alone a read restores (its Merkle leaf proves it).
        bytes[audit.offset + LogFormat.frameHeaderSize + 40] ^= 0x5A
        bytes[audit.offset + LogFormat.frameHeaderSize + 45] ^= 0x5A
        try Data(bytes).write(to: path)
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        let dpo = Principal.auditReviewer(try SystemPrincipal("dpo"))
        let seen = try await store.activity(of: GrantHolder(Fixtures.doctor)!, as: dpo)
        #expect(seen.map(\.action) == [.deposit, .deposit, .deposit])
        try await store.close()
    }

    /// `damage`: "header", a byte of the record's frame header (which its
    /// MAC then proves restored: written back, the record reads whole);
    /// "payload", a byte of its payload (restored at open and written back,
    /// its Merkle leaf proving the value); "payload twice", two bytes of its
    /// payload (kept at open, the record answers `corrupted`).
    @Test(arguments: ["header", "payload", "payload twice"])
    func aDamagedRecordInTheReplayedLogAffectsOnlyItsVault(damage: String) async throws {
        let inHeader = damage == "header"
        let live = TestFolder()
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let c = Fixtures.configuration()
        let (alice, bob) = (Fixtures.alice, Fixtures.bob)
        // The files as a crash leaves them (every deposit acknowledged, no
        // checkpoint since the store's first): a copy taken while it runs.
        var aliceDocuments: [(DocumentID, Data)] = []
        do {
            let running = try await VaultStore.open(at: live.url, key: .key(key), configuration: c)
            try await running.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            try await running.createVault(for: bob, as: .patient(bob), channel: .patientOnline)
            for i in 0..<3 {
                let content = Fixtures.content("A\(i)", size: 500)
                aliceDocuments.append((try await running.deposit(Fixtures.draft(), content: content, for: alice, as: Fixtures.doctor).id, content))
                // Bob's documents are the log's largest records: found below by size.
                _ = try await running.deposit(Fixtures.draft(), content: Fixtures.content("B\(i)", size: 9000), for: bob, as: Fixtures.doctor)
            }
            try FileManager.default.copyItem(at: live.url, to: folder.url)
            try await running.close()
        }
        try? FileManager.default.removeItem(at: folder.url.appendingPathComponent("LOCK"))
        // A byte of the header, or of the middle of the payload, of Bob's
        // first large record.
        let path = folder.url.appendingPathComponent(LogFormat.segmentFileName(1))
        var bytes = [UInt8](try Data(contentsOf: path))
        let damaged = try Self.frames(of: bytes).first { $0.header.payloadLength > 8000 }.map {
            $0.offset + (inHeader ? 30 : LogFormat.frameHeaderSize + Int($0.header.payloadLength) / 2)
        }
        let position = try #require(damaged)
        bytes[position] ^= 0x5A
        if damage == "payload twice" { bytes[position + 3] ^= 0x5A }
        try Data(bytes).write(to: path)

        // Before, the open refused the whole store (`corrupted`).
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        for (id, content) in aliceDocuments {
            #expect(try await store.content(of: id, for: alice, as: .patient(alice)) == content)
        }
        #expect(try await store.verifyAuditTrail(for: alice, as: .patient(alice)).entries > 0)
        let e = await error {
            for m in try await store.documents(for: bob, as: .patient(bob)) {
                _ = try await store.content(of: m.id, for: bob, as: .patient(bob))
            }
        }
        // A header's flipped byte is restored (its MAC proves the value),
        // a payload's on read (its leaf does): Bob reads whole. Two are
        // not: Bob's vault is `corrupted`.
        #expect(damage == "payload twice" ? e?.code == .corrupted : e == nil)
        // New writes go on, for the patients the damage does not touch.
        _ = try await store.deposit(Fixtures.draft(), content: Data([1, 2, 3]), for: alice, as: Fixtures.doctor)
        try await store.close()
    }

    /// The daily destruction job meets a closed vault it cannot destroy
    /// (a record of it damaged beyond repair, so it does not load): that
    /// vault is passed over and logged, the vault closed after it is still
    /// destroyed, and the job then throws that vault's error, counted.
    /// Before, the first failure stopped the job, and no vault closed later
    /// was ever destroyed.
    @Test func theDailyDestructionPassesOverAVaultItCannotDestroy() async throws {
        let live = TestFolder()
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let clock = ManualClock()
        let c = Fixtures.configuration(clock: clock)
        let (alice, bob) = (Fixtures.alice, Fixtures.bob)
        do {
            let running = try await VaultStore.open(at: live.url, key: .key(key), configuration: c)
            try await running.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            try await running.createVault(for: bob, as: .patient(bob), channel: .patientOnline)
            _ = try await running.deposit(Fixtures.draft(), content: Fixtures.content("A", size: 500), for: alice, as: Fixtures.doctor)
            // Bob's document is the log's largest record: found below by size.
            _ = try await running.deposit(Fixtures.draft(), content: Fixtures.content("B", size: 9000), for: bob, as: Fixtures.doctor)
            // Bob's vault closed first: the job meets it first.
            try await running.closeVault(for: bob, reason: .patientRequest, as: .patient(bob))
            clock.set(clock.now().addingTimeInterval(60))
            try await running.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
            try FileManager.default.copyItem(at: live.url, to: folder.url)
            try await running.close()
        }
        try? FileManager.default.removeItem(at: folder.url.appendingPathComponent("LOCK"))
        let path = folder.url.appendingPathComponent(LogFormat.segmentFileName(1))
        var bytes = [UInt8](try Data(contentsOf: path))
        let frame = try #require(try Self.frames(of: bytes).first { $0.header.payloadLength > 8000 })
        let position = frame.offset + LogFormat.frameHeaderSize + Int(frame.header.payloadLength) / 2
        bytes[position] ^= 0x5A
        bytes[position + 3] ^= 0x5A
        try Data(bytes).write(to: path)

        clock.set(clock.now().addingTimeInterval(11 * 366 * 86_400))
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
        #expect(await code { _ = try await store.documents(for: bob, as: .patient(bob)) } == .corrupted)
        let e = await error { _ = try await store.destroyExpiredVaults(at: clock.now()) }
        #expect(e?.code == .corrupted)
        #expect(e?.message.hasPrefix("1 closed vault(s) due for destruction could not be destroyed (1 were)") == true, "\(String(describing: e))")
        #expect(await code { _ = try await store.documents(for: alice, as: .patient(alice)) } == .vaultDestroyed)
        try await store.close()
    }
}
