import Foundation
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage

/// Nothing sealed says where the engine keeps a record: a version's chunk
/// list names its chunks by log sequence number alone, which the log
/// engine's chunk table resolves (`SequenceTable`), and the activity mark's
/// cursor is a sequence number too, so a rewrite of the files breaks no
/// sealed reference.
@Suite struct SealedReferenceTests {
    @Test func aVersionsChunkListNamesRecordsNotPlaces() async throws {
        let (t, documents, content) = try await Fixtures.storeWithChunkedDocuments(1, size: 300_000)
        let alice = Fixtures.alice
        let doc = documents[0]

        // As decoded from the sealed version record, after a reopen (the
        // checkpoint's chunk table) and after a replay without checkpoint.
        func chunks(of store: VaultStore) async throws -> [RecordReference] {
            try await store.withVault(alice) { $0.entry(doc.id, version: nil)!.content.chunks }
        }
        var store = try await t.reopen()
        let sealed = try await chunks(of: store)
        #expect(sealed.count >= 4, "64 KiB chunks for 300,000 bytes")
        #expect(sealed.allSatisfy { !$0.hasLocation && $0.w1 == 0 && $0.w2 == 0 })
        #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == content)
        // The activity mark written at close holds a cursor that is an LSN
        // (8 bytes) and zeros: no segment, no offset.
        var mark: StoredRecord?
        try await store.engine.visitNewestFirst(store.keys.activityMarkStream) { mark = $0; return false }
        let cursor = try RecordCodec.openStoreRecord(
            try #require(mark), kind: .activityMark, key: store.keys.activity, stream: store.keys.activityMarkStream,
            broken: PatientVaultError(.corrupted, "mark"))
        #expect(cursor.count == LogCursor.byteCount && cursor[8...].allSatisfy { $0 == 0 })
        try await store.close()
        try FileManager.default.removeItem(atPath: t.folder.path + "/" + LogFormat.checkpointFileName)
        store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.replaying())
        #expect(try await chunks(of: store) == sealed)
        #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == content)
        try await store.close()
    }

    /// A reference the engine never made (an LSN it holds no chunk for, or
    /// a stream's record asked for as a chunk) is refused, never another
    /// record.
    @Test func anUnknownChunkReferenceIsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try LogEngine.open(directory: dir.path)
        let refs = try await engine.append(
            [EngineRecord(stream: nil, payload: [1, 2, 3]), EngineRecord(stream: StreamID(bytes: [UInt8](repeating: 7, count: 32)), payload: [4])],
            keySlotWrites: [], durability: .durable
        ).wait()
        #expect(!refs[0].hasLocation)
        #expect(try await engine.read(refs[0]).payload == [1, 2, 3])
        for forged in [RecordReference(sequence: refs[1].sequence), RecordReference(sequence: 999)] {
            await #expect { _ = try await engine.read(forged) } throws: { ($0 as? StorageError)?.code == .invalidLocation }
        }
        try await engine.close()
    }
}
