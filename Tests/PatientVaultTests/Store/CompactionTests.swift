import Foundation
import PatientVaultProof
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Compaction (DOMAIN.md "Erase", "Destroyed"): the sealed bytes of erased
/// documents and destroyed vaults leave the store's files; everything
/// else, every proof and every chain stays as it was.
@Suite struct CompactionTests {
    let alice = Fixtures.alice
    let bob = Fixtures.bob
    let doctor = Fixtures.doctor
    let dpo = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    func configuration(clock: ManualClock = ManualClock(), faults: FaultInjection? = nil) -> Configuration {
        var c = Fixtures.configuration(clock: clock)
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        c.faults = faults
        return c
    }

    /// Every record of the store, by sequence number, as the engine reads it.
    func records(_ store: VaultStore) async throws -> [UInt64: StoredRecord] {
        var out: [UInt64: StoredRecord] = [:]
        try await store.engine.visitEveryRecord { out[$0.sequence] = $0; return true }
        return out
    }

    /// The sequence numbers of a document's records: its versions, by
    /// their headers unmasked with the store's key, and their chunks, by
    /// the versions' key slots (a chunk's stored header names no document).
    func sequences(of document: DocumentID, in records: [UInt64: StoredRecord], _ store: VaultStore) -> Set<UInt64> {
        let headers = records.compactMapValues { try? RecordHeader.decode($0.payload, mask: store.keys.headerMask) }
        let versions = headers.filter { $0.value.kind == .documentVersion && $0.value.document == document }
        let slots = Set(versions.values.compactMap(\.keySlot))
        let chunks = headers.filter { $0.value.kind == .contentChunk && $0.value.keySlot.map(slots.contains) == true }
        return Set(versions.keys).union(chunks.keys)
    }

    /// Pieces of the sealed part of each record (after its clear header):
    /// 32 bytes of its box, and its last 32 bytes.
    func sealedPieces(_ records: [StoredRecord]) -> [Data] {
        records.flatMap { r -> [Data] in
            let p = r.payload
            return [Data(p[(RecordHeader.size + 8)..<(RecordHeader.size + 40)]), Data(p.suffix(32))]
        }
    }

    /// Which of `pieces` some file of `folder` holds.
    func piecesFound(_ pieces: [Data], in folder: URL) throws -> Int {
        var found = Set<Int>()
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            for (i, piece) in pieces.enumerated() where data.range(of: piece) != nil { found.insert(i) }
        }
        return found.count
    }

    @Test(arguments: suiteEngines)
    func compactionRemovesAnErasedDocumentAndEveryProofStillHolds(storage: SuiteStorage) async throws {
        let t = try await TestStore(configuration: configuration(), engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 300_000), for: alice, as: doctor)
        let own = try await t.store.deposit(Fixtures.draft("Mine"), content: Data("mine".utf8), for: alice, as: .patient(alice))
        let wrong = try await t.store.deposit(Fixtures.draft("Wrong"), content: Fixtures.content("WRONG", size: 200_000), for: alice, as: doctor)
        _ = try await t.store.replace(wrong.id, with: Fixtures.draft("Wrong v2"), content: Data("still wrong".utf8), for: alice, as: doctor)
        let receipt = try await t.store.receipt(for: kept.id, version: 1, for: alice, as: .patient(alice))
        let before = try await t.store.checkpoint()
        let original = try await records(t.store)
        let erased = sequences(of: wrong.id, in: original, t.store)
        // Two versions (the second inline) and four chunks of 64 KiB.
        #expect(erased.count == 6)
        let pieces = sealedPieces(erased.map { original[$0]! })
        if storage == .folder { #expect(try piecesFound(pieces, in: t.folder) == pieces.count) }

        #expect(try await t.store.compactionBacklog() == (0, 0))
        try await t.store.erase(wrong.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor)
        #expect(try await t.store.compactionBacklog() == (1, 0))
        #expect(await code { try await t.store.compact(as: .patient(alice)) } == .accessDenied)
        let report = try await t.store.compact(as: dpo)
        #expect(report.erasedDocuments == 1 && report.destroyedVaults == 0)
        #expect(report.recordsCompacted == erased.count)
        #expect(report.bytesRemoved >= 200_000)
        #expect(try await t.store.compact(as: dpo) == CompactionReport(), "nothing is left to compact")
        #expect(try await t.store.compactionBacklog() == (0, 0))

        for round in 0..<2 {
            let store = round == 0 ? t.store : try await t.reopen()
            let now = try await records(store)
            #expect(now.count >= original.count)
            for (sequence, record) in original {
                let current = try #require(now[sequence])
                if erased.contains(sequence) {
                    #expect(current.isCompacted && current.payload == Array(record.payload.prefix(RecordHeader.size)))
                    #expect(current.leafHash == record.leafHash)
                } else {
                    #expect(!current.isCompacted && current.payload == record.payload)
                }
            }
            #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 300_000))
            #expect(try await store.content(of: own.id, for: alice, as: .patient(alice)) == Data("mine".utf8))
            #expect(await code { _ = try await store.content(of: wrong.id, for: alice, as: .patient(alice)) } == .erased)
            try await store.verify(against: before)
            _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice), anchoredTo: before)
            let verifier = try CheckpointVerifier(logKey: store.checkpointVerifierKey)
            try verifier.verifyInclusion(receipt.proof, leafData: receipt.leafData)
            let later = try await store.checkpoint()
            try verifier.verifyConsistency(from: before, to: later, proof: try await store.consistencyProof(from: before, to: later))
            try await store.verify(against: later)
        }
        try await t.close()
        if storage == .folder { #expect(try piecesFound(pieces, in: t.folder) == 0, "no byte of the erased ciphertext is left") }
    }

    @Test(arguments: suiteEngines)
    func compactionRemovesADestroyedVaultAndNothingElse(storage: SuiteStorage) async throws {
        let clock = ManualClock()
        let t = try await TestStore(configuration: configuration(clock: clock), engine: storage)
        for patient in [alice, bob] {
            try await t.store.createVault(for: patient, as: .patient(patient), channel: .patientOnline)
        }
        let gone = [
            try await t.store.deposit(Fixtures.draft("Big"), content: Fixtures.content("GONE", size: 150_000), for: alice, as: doctor),
            try await t.store.deposit(Fixtures.draft("Small"), content: Data("small".utf8), for: alice, as: .patient(alice)),
        ]
        let stays = try await t.store.deposit(Fixtures.draft("Bob's"), content: Fixtures.content("BOB", size: 100_000), for: bob, as: doctor)
        _ = try await t.store.auditTrail(for: alice, as: .patient(alice))
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        let before = try await t.store.checkpoint()
        clock.set(clock.now().addingTimeInterval(11 * 366 * 86_400))
        #expect(try await t.store.destroyExpiredVaults(at: clock.now()).count == 1)
        let original = try await records(t.store)
        let vault = t.store.keys.vaultPseudonym(for: alice)
        let streams: Set<StreamID> = [vault, t.store.keys.auditStream(of: vault)]
        let expected = Set(original.filter { $0.value.stream.map(streams.contains) ?? false }.keys)
            .union(gone.flatMap { sequences(of: $0.id, in: original, t.store) })
        let pieces = sealedPieces(expected.map { original[$0]! })

        #expect(try await t.store.compactionBacklog() == (0, 1))
        let report = try await t.store.compact(as: dpo)
        #expect(report.destroyedVaults == 1 && report.erasedDocuments == 0)
        #expect(report.recordsCompacted == expected.count)
        let now = try await records(t.store)
        #expect(Set(now.filter(\.value.isCompacted).keys) == expected)
        try await t.store.verify(against: before)
        let store = try await t.reopen()
        #expect(try await store.content(of: stays.id, for: bob, as: .patient(bob)) == Fixtures.content("BOB", size: 100_000))
        _ = try await store.verifyAuditTrail(for: bob, as: .patient(bob), anchoredTo: before)
        #expect(await code { _ = try await store.vaultInfo(for: alice, as: .patient(alice)) } == .vaultDestroyed)
        #expect(try await store.destroyedVaults(as: dpo).count == 1)
        try await store.verify(against: before)
        try await t.close()
        if storage == .folder { #expect(try piecesFound(pieces, in: t.folder) == 0) }
    }

    /// A store on disk with faults on demand, a document kept and one
    /// erased: the checkpoint before any compaction, and the erased
    /// document's records.
    func storeWithAnErasure() async throws -> (FaultInjection, TestStore, DocumentMetadata, SignedCheckpoint, Set<UInt64>) {
        let faults = FaultInjection()
        let t = try await TestStore(configuration: configuration(faults: faults), engine: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 100_000), for: alice, as: doctor)
        let wrong = try await t.store.deposit(Fixtures.draft("Wrong"), content: Fixtures.content("WRONG", size: 200_000), for: alice, as: doctor)
        try await t.store.erase(wrong.id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor)
        let before = try await t.store.checkpoint()
        return (faults, t, kept, before, sequences(of: wrong.id, in: try await records(t.store), t.store))
    }

    /// A compaction cut by a failed write or sync stops the store; the
    /// next open finishes the batch from its intent (or, cut before its
    /// intent was durable, finds nothing rewritten), and compacting again
    /// ends the work. Every acknowledged document reads, every proof holds.
    @Test(arguments: [FaultInjection.Site.compactionIntent, .compactionWrite, .compactionSync])
    func aCompactionCutShortIsFinishedAfterTheReopen(site: FaultInjection.Site) async throws {
        let (faults, t, kept, before, erased) = try await storeWithAnErasure()
        faults.failingSite = site
        #expect(await code { try await t.store.compact(as: dpo) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        faults.failingSite = nil
        let store = try await t.reopen()
        #expect(!FileManager.default.fileExists(atPath: t.folder.appendingPathComponent(LogFormat.compactionIntentFileName).path))
        let compacted = Set(try await records(store).filter(\.value.isCompacted).keys)
        // Finished from the intent, or (the intent itself failed) untouched.
        #expect(compacted == (site == .compactionIntent ? [] : erased))
        try await store.verify(against: before)
        let report = try await store.compact(as: dpo)
        #expect(report.erasedDocuments == 1 && report.recordsCompacted == erased.count - compacted.count)
        #expect(Set(try await records(store).filter(\.value.isCompacted).keys) == erased)
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 100_000))
        try await store.verify(against: before)
        try await t.close()
    }

    /// A durable intent with one damaged byte (after the crash, before the
    /// open) is restored, its CRC's algebra giving the one change under
    /// which every frame it names is one this store's key wrote for its
    /// place, and its batch finished: before, it was taken for one never
    /// synced whole and dropped, and a batch cut halfway stayed so.
    /// With `leftover`, the file holds more bytes after the intent's
    /// length, as a longer earlier batch leaves them (the file is reused,
    /// never cut).
    /// With `inLength`, the damaged byte is one of the intent's length,
    /// which then names more than any intent holds.
    @Test(arguments: [(false, false), (true, false), (false, true)])
    func aDurableIntentWithADamagedByteIsRestoredAndItsBatchFinished(leftover: Bool, inLength: Bool) async throws {
        let (faults, t, kept, before, erased) = try await storeWithAnErasure()
        faults.failingSite = .compactionWrite
        #expect(await code { try await t.store.compact(as: dpo) } == .durabilityLost)
        #expect(await code { try await t.store.close() } == .durabilityLost)
        faults.failingSite = nil
        let intent = t.folder.appendingPathComponent(LogFormat.compactionIntentFileName)
        var bytes = [UInt8](try Data(contentsOf: intent))
        bytes[inLength ? 19 : bytes.count / 2] ^= 0x10
        if leftover { bytes += [UInt8](repeating: 0x5A, count: 300) }
        try Data(bytes).write(to: intent)
        let store = try await t.reopen()
        #expect(!FileManager.default.fileExists(atPath: intent.path))
        #expect(Set(try await records(store).filter(\.value.isCompacted).keys) == erased)
        #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 100_000))
        try await store.verify(against: before)
        try await t.close()
    }

    /// An intent that fails its checksum was never synced whole (nothing
    /// was rewritten from it): it is dropped. One whose frames this store's
    /// key did not write is damage: the open refuses it.
    @Test func aTornIntentIsDroppedAndAForgedOneRefused() async throws {
        let t = try await TestStore(configuration: configuration(), engine: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Fixtures.content("DOC", size: 5000), for: alice, as: doctor)
        try await t.close()
        let intent = t.folder.appendingPathComponent(LogFormat.compactionIntentFileName)
        var torn = LogFormat.encodeCompactionIntent([
            .init(segment: 1, offset: UInt64(LogFormat.segmentHeaderSize), frameLength: 4096, bytes: [UInt8](repeating: 7, count: 200))
        ])
        torn[torn.count - 1] ^= 1
        try Data(torn).write(to: intent)
        var store = try await t.reopen()
        #expect(!FileManager.default.fileExists(atPath: intent.path))
        #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == Fixtures.content("DOC", size: 5000))
        try await t.close()
        // A whole intent, checksum and all, whose frame header carries no
        // valid MAC for its place (the first frame of segment 1, rewritten
        // as compacted by someone without the log key).
        let segment = try Data(contentsOf: t.folder.appendingPathComponent(LogFormat.segmentFileName(1)))
        var header = [UInt8](segment[LogFormat.segmentHeaderSize..<(LogFormat.segmentHeaderSize + LogFormat.frameHeaderSize)])
        header[32] |= LogFormat.flagCompacted
        let salt = [UInt8](segment[24..<40])
        let crc = header.withUnsafeBytes { h in
            salt.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[8...]), continuing: CRC32C.checksum($0)) }
        }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { header[4 + i] = $0[i] } }
        let length = UInt32(header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) })
        let forged = LogFormat.encodeCompactionIntent([
            .init(
                segment: 1, offset: UInt64(LogFormat.segmentHeaderSize), frameLength: UInt32(LogFormat.frameLength(payloadCount: Int(length))),
                bytes: header + [UInt8](repeating: 0, count: LogFormat.compactedBodyOverhead))
        ])
        try Data(forged).write(to: intent)
        #expect(await code { _ = try await t.reopen() } == .corrupted)
        #expect(FileManager.default.fileExists(atPath: intent.path), "damage is reported, never applied or dropped")
        #expect(try Data(contentsOf: t.folder.appendingPathComponent(LogFormat.segmentFileName(1))) == segment)
        try FileManager.default.removeItem(at: intent)
        store = try await t.reopen()
        #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == Fixtures.content("DOC", size: 5000))
        try await t.close()
    }

    /// Online: writers deposit and read, and a full verification reads
    /// every record (the compacted ones as they are rewritten), while a
    /// compaction runs; none of them fails.
    @Test func readersAndWritersGoOnDuringACompaction() async throws {
        let t = try await TestStore(configuration: configuration(), engine: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        var erased: [DocumentID] = []
        for i in 0..<12 {
            erased.append(try await t.store.deposit(
                Fixtures.draft("Wrong \(i)"), content: Fixtures.content("WRONG\(i)", size: 300_000), for: alice, as: doctor).id)
        }
        let kept = try await t.store.deposit(Fixtures.draft("Kept"), content: Fixtures.content("KEPT", size: 150_000), for: alice, as: doctor)
        for id in erased { try await t.store.erase(id, for: alice, reason: try ErasureReason("wrong patient"), as: doctor) }
        let before = try await t.store.checkpoint()
        let store = t.store
        let (alice, doctor, dpo) = (self.alice, self.doctor, self.dpo)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Twelve documents of five 64 KiB chunks and a version record each.
                let report = try await store.compact(as: dpo)
                #expect(report.erasedDocuments == 12 && report.recordsCompacted == 72)
            }
            group.addTask {
                for _ in 0..<3 { try await store.verify(against: before) }
            }
            group.addTask {
                for i in 0..<20 {
                    let d = try await store.deposit(Fixtures.draft("New \(i)"), content: Data("new \(i)".utf8), for: alice, as: doctor)
                    #expect(try await store.content(of: d.id, for: alice, as: .patient(alice)) == Data("new \(i)".utf8))
                    #expect(try await store.content(of: kept.id, for: alice, as: .patient(alice)) == Fixtures.content("KEPT", size: 150_000))
                }
            }
            try await group.waitForAll()
        }
        try await store.verify(against: before)
        #expect(try await store.documents(for: alice, as: .patient(alice)).count == 21)
        try await t.close()
    }
}
