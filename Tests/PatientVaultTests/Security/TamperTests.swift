import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Tampering by someone who can write the files and recompute every
/// checksum: authentication, not checksums, must catch it.
@Suite struct TamperTests {
    /// Rewrites the frame at `location` with `payload`, recomputing the
    /// frame's checksums and its header MAC, as an attacker who holds the
    /// log key (but no vault key) would: what is left to catch the change
    /// is the records' own authentication. Touches only the frame's bytes.
    func rewrite(_ t: TestStore, _ location: RecordLocation, payload: [UInt8]) throws {
        let folder = t.folder
        let path = folder.appendingPathComponent(LogFormat.segmentFileName(location.segment))
        let handle = try FileHandle(forUpdating: path)
        defer { try? handle.close() }
        let segmentHeader = [UInt8](try handle.read(upToCount: LogFormat.segmentHeaderSize)!)
        let salt = try LogFormat.decodeSegmentHeader(segmentHeader)!.salt
        try handle.seek(toOffset: location.offset)
        let frameHeader = [UInt8](try handle.read(upToCount: LogFormat.frameHeaderSize)!)
        let h = frameHeader.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: salt)! }
        precondition(payload.count == Int(h.payloadLength))
        let header = LogFormat.encodeFrameHeader(
            salt: salt, offset: location.offset, payloadLength: payload.count, payloadCRC: LogFormat.payloadCRC(payload), lsn: h.lsn,
            durableThrough: h.durableThrough, flags: h.flags, previous: h.previous, stream: h.stream,
            authenticator: try t.logMAC())
        try handle.seek(toOffset: location.offset)
        try handle.write(contentsOf: Data(header + payload))
    }

    @Test func everyAlteredByteOfARecordIsAnErrorNeverGarbage() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft("Titre"), content: Fixtures.content("INLINE", size: 64), for: alice, as: Fixtures.doctor)
        let pseudonym = t.store.keys.vaultPseudonym(for: alice)
        try await t.store.close()

        let engine = try t.rawEngine()
        let location = engine.head(of: pseudonym)!
        let original = try engine.frame(at: location).payload
        try await engine.close()

        var checked = 0
        // Every 7th byte: header, sealed metadata (padded) and inline content all get hit.
        for position in stride(from: 0, to: original.count, by: 7) {
            var tampered = original
            tampered[position] ^= 0x20
            try rewrite(t, location, payload: tampered)
            let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
            let result = await code {
                _ = try await store.metadata(of: m.id, for: alice, as: .patient(alice))
                _ = try await store.content(of: m.id, for: alice, as: .patient(alice))
            }
            #expect(result == .corrupted || (position == 0 && result == .unsupportedFormat), "byte \(position): \(String(describing: result))")
            try await store.close()
            try rewrite(t, location, payload: original)
            checked += 1
        }
        #expect(checked > 50)
        // Untouched, it reads back.
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("INLINE", size: 64))
        try await store.close()
    }

    @Test func aRecordCopiedIntoAnotherVaultFailsAuthentication() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let (alice, bob) = (Fixtures.alice, Fixtures.bob)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await t.store.createVault(for: bob, as: .patient(bob), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("ALICE"), for: alice, as: Fixtures.doctor)
        let a = t.store.keys.vaultPseudonym(for: alice)
        let b = t.store.keys.vaultPseudonym(for: bob)
        try await t.store.close()

        // The copy sits at the right position of Bob's stream (sequence 1),
        // with valid checksums: only the cryptographic binding can refuse it.
        let engine = try t.rawEngine()
        let payload = try engine.frame(at: engine.head(of: a)!).payload
        _ = try await engine.append([EngineRecord(stream: b, payload: payload)], keySlotWrites: [], durability: .durable).wait()
        try await engine.close()

        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(await code { _ = try await store.documents(for: bob, as: .patient(bob)) } == .corrupted)
        // Before any decision (the vault does not load), the error carries
        // no vault id: an insurer, refused whatever the vault holds, learns
        // nothing that names it.
        let refused = await error { _ = try await store.documents(for: bob, as: Fixtures.insurer) }
        #expect(refused?.code == .corrupted && refused?.vaultID == nil)
        #expect(try await store.documents(for: alice, as: .patient(alice)).count == 1)
        try await store.close()
    }

    @Test func chunksSwappedBetweenDocumentsFailAuthentication() async throws {
        let (t, documents, _) = try await Fixtures.storeWithChunkedDocuments(2)
        let alice = Fixtures.alice
        let (d1, d2) = (documents[0], documents[1])
        let entries = try await t.store.withVault(alice) { v in (v.entry(d1.id, version: nil)!, v.entry(d2.id, version: nil)!) }
        try await t.store.close()
        // Same plaintext, same chunk sizes: swap chunk 1 of each document.
        let engine = try t.rawEngine()
        let l1 = try engine.core.chunkLocation(of: entries.0.content.chunks[1].sequence)
        let l2 = try engine.core.chunkLocation(of: entries.1.content.chunks[1].sequence)
        let p1 = try engine.frame(at: l1).payload, p2 = try engine.frame(at: l2).payload
        try await engine.close()
        try rewrite(t, l1, payload: p2)
        try rewrite(t, l2, payload: p1)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(await code { _ = try await store.content(of: d1.id, for: alice, as: .patient(alice)) } == .corrupted)
        #expect(await code { _ = try await store.content(of: d2.id, for: alice, as: .patient(alice)) } == .corrupted)
        try await store.close()
    }

    /// A holder of the master key can rewrite a record with a valid CRC
    /// and MAC, and the store opens; a checkpoint the host kept catches it,
    /// naming the record: the records are hashed again, leaf by leaf.
    @Test func aRecordRewrittenWithTheMasterKeyIsCaughtByAKeptCheckpoint() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for i in 0..<3 { _ = try await t.store.deposit(Fixtures.draft("D\(i)"), content: Fixtures.content("D\(i)"), for: alice, as: Fixtures.doctor) }
        let kept = try await t.store.checkpoint()
        _ = try await t.store.deposit(Fixtures.draft("After"), content: Data([1]), for: alice, as: Fixtures.doctor)
        try await t.store.close()
        let engine = try t.rawEngine()
        var target: LogFrame?
        try engine.scanFrames(from: LogPosition(segment: 0, offset: 0), only: { $0 != nil }) { frame in
            if frame.sequence > 2 && frame.sequence < kept.treeHead.size { target = frame }
            return target == nil
        }
        try await engine.close()
        let frame = try #require(target)
        var payload = frame.payload
        payload[payload.count / 2] ^= 1
        try rewrite(t, frame.location, payload: payload)
        // Every checksum and MAC is right: the store opens.
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        await #expect { try await store.verify(against: kept) } throws: {
            ($0 as? PatientVaultError)?.code == .checkpointNotExtended
                && ($0 as? PatientVaultError)?.message.contains("record \(frame.sequence) ") == true
        }
        try await store.close()
    }

    /// A flipped byte in the middle of a large store (its checksum left
    /// wrong, so only a reader of that record would see it) is named by
    /// `verify(against:)`, which hashes every payload again (on every
    /// core, in batches of about 8 MiB: here 12 MiB in chunks of 64 KiB)
    /// instead of checking the payloads' CRCs.
    @Test func aFlippedByteInALargeStoreIsNamedByAKeptCheckpoint() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for i in 0..<3 {
            _ = try await t.store.deposit(
                Fixtures.draft("Scan \(i)"), content: Fixtures.content("SCAN\(i)", size: 4 << 20), for: alice, as: Fixtures.doctor)
        }
        let kept = try await t.store.checkpoint()
        try await t.store.verify(against: kept)
        try await t.store.close()
        let engine = try t.rawEngine()
        var frames: [LogFrame] = []
        try engine.scanFrames(from: LogPosition(segment: 0, offset: 0), only: { _ in true }) { frame in
            if frame.payload.count > 1 << 15 { frames.append(frame) }
            return true
        }
        try await engine.close()
        // A chunk of the last document: in the second batch.
        let target = try #require(frames.last)
        #expect(frames.count >= 3 * (4 << 20) / (64 << 10))
        try t.flipMiddleByte(of: target, bit: 0x20)
        let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        await #expect { try await store.verify(against: kept) } throws: {
            ($0 as? PatientVaultError)?.code == .checkpointNotExtended
                && ($0 as? PatientVaultError)?.message.contains("record \(target.sequence) ") == true
        }
        try await store.close()
    }

    @Test func destroyedDocumentKeyMakesTheDocumentUnreadable() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let m = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("ERASE-ME"), for: alice, as: Fixtures.doctor)
        let keep = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("KEEP-ME"), for: alice, as: Fixtures.doctor)
        // Read once first, so its key is in the cache when the slot goes.
        #expect(try await t.store.content(of: m.id, for: alice, as: .patient(alice)) == Fixtures.content("ERASE-ME"))
        let (slot, vault) = try await t.store.withVault(alice) { ($0.entry(m.id, version: nil)!.keySlot, $0.pseudonym) }
        try await t.store.destroyDocumentKeys([slot], of: vault)
        #expect(await code { _ = try await t.store.content(of: m.id, for: alice, as: .patient(alice)) } == .erased)
        #expect(try await t.store.content(of: keep.id, for: alice, as: .patient(alice)) == Fixtures.content("KEEP-ME"))
        try await t.store.close()
    }
    /// `keys.slots` cut short, or replaced alone by an older copy of
    /// itself, is refused at open (`corrupted`): the checkpoint records how
    /// far it reached and its journal epoch. Before, a cut file had the
    /// slots of acknowledged documents reserved again (so an erasure in one
    /// vault could destroy another's key), and an older copy brought an
    /// erased document's key back.
    @Test func keysSlotsCutOrRolledBackAloneIsRefusedAtOpen() async throws {
        let alice = Fixtures.alice
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Data("kept".utf8), for: alice, as: Fixtures.doctor)
        let erased = try await t.store.deposit(Fixtures.draft("Wrong"), content: Data("wrong".utf8), for: alice, as: .patient(alice))
        let keyFile = t.folder.appendingPathComponent(LogFormat.keyFileName)
        try await t.store.close()
        let beforeErasure = try Data(contentsOf: keyFile)
        var store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        try await store.erase(erased.id, for: alice, as: .patient(alice))
        try await store.close()
        let current = try Data(contentsOf: keyFile)
        // Cut after the vault's key slot: the documents' slots are gone.
        let slot = LogFormat.keySlotSize
        try current.prefix(4 * slot).write(to: keyFile)
        await #expect { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) } throws: {
            ($0 as? PatientVaultError)?.code == .corrupted
        }
        // The copy from before the erasure: the same length, an older journal key.
        try beforeErasure.write(to: keyFile)
        await #expect { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) } throws: {
            ($0 as? PatientVaultError)?.code == .corrupted
        }
        // The file as it was: everything reads as before.
        try current.write(to: keyFile)
        store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Data("kept".utf8))
        #expect(await code { _ = try await store.content(of: erased.id, for: alice, as: .patient(alice)) } == .erased)
        try await store.close()
    }

    /// The same after a crash: a file cut short is refused at open though
    /// the crash left groups to replay, whose slots the open writes back
    /// from their manifests (they lie past the cut, so writing them back
    /// made the file as long as the checkpoint says, zeros below: before,
    /// the open went through and an acknowledged document's key was gone).
    @Test func keysSlotsCutShortIsRefusedAtTheOpenAfterACrash() async throws {
        let alice = Fixtures.alice
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft("Covered"), content: Data("covered".utf8), for: alice, as: Fixtures.doctor)
        let store = try await t.reopen()
        _ = try await store.deposit(Fixtures.draft("Replayed"), content: Data("replayed".utf8), for: alice, as: Fixtures.doctor)
        // A crash of the process: the files as they are, the store open.
        let crashed = try Self.copy(t.folder)
        defer { try? FileManager.default.removeItem(at: crashed) }
        try await t.close()
        let keyFile = crashed.appendingPathComponent(LogFormat.keyFileName)
        try Data(contentsOf: keyFile).prefix(4 * LogFormat.keySlotSize).write(to: keyFile)
        // Refused, and again at the next try: the refused open wrote
        // nothing into the file.
        for _ in 0..<2 {
            await #expect { _ = try await VaultStore.open(at: crashed, key: .key(t.key), configuration: Fixtures.configuration()) } throws: {
                ($0 as? PatientVaultError)?.code == .corrupted
            }
        }
    }

    /// The checkpoint an open writes after replaying a crash's groups
    /// records how far `keys.slots` reaches and its journal epoch, as every
    /// other checkpoint does: a second crash, then the file cut short, is
    /// refused (before, that checkpoint recorded neither, and the open
    /// went through with acknowledged documents' slots free again).
    @Test func theCheckpointOfAnOpenAfterACrashCoversTheKeyFile() async throws {
        let alice = Fixtures.alice
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        _ = try await t.store.deposit(Fixtures.draft("A"), content: Data("a".utf8), for: alice, as: Fixtures.doctor)
        _ = try await t.store.deposit(Fixtures.draft("B"), content: Data("b".utf8), for: alice, as: Fixtures.doctor)
        let first = try Self.copy(t.folder)
        defer { try? FileManager.default.removeItem(at: first) }
        try await t.close()
        // The open after the first crash replays both deposits and writes
        // its checkpoint; then a second crash.
        let recovered = try await VaultStore.open(at: first, key: .key(t.key), configuration: Fixtures.configuration())
        let second = try Self.copy(first)
        defer { try? FileManager.default.removeItem(at: second) }
        try await recovered.close()
        let keyFile = second.appendingPathComponent(LogFormat.keyFileName)
        try Data(contentsOf: keyFile).prefix(4 * LogFormat.keySlotSize).write(to: keyFile)
        await #expect { _ = try await VaultStore.open(at: second, key: .key(t.key), configuration: Fixtures.configuration()) } throws: {
            ($0 as? PatientVaultError)?.code == .corrupted
        }
    }

    /// A copy of a store's folder, taken while it is open (what a crash
    /// of its process leaves).
    static func copy(_ folder: URL) throws -> URL {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-crashed-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: folder, to: target)
        return target
    }
}
