import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage
@testable import VaultSync

/// Activity records: the copies of one actor in a batch share a record;
/// the decoder accepts exactly what the encoder writes.
@Suite struct ActivityBatchTests {
    static let vault = StreamID(bytes: [1] + [UInt8](repeating: 7, count: 31))

    @Test func aBatchRoundTripsAndRefusesWhatItCannotWrite() throws {
        let batch = ActivityBatch(copies: [
            .init(vault: Self.vault, entry: [1, 2, 3]), .init(vault: nil, entry: []), .init(vault: Self.vault, entry: [9]),
        ])
        let bytes = batch.encoded()
        #expect(bytes.count == ActivityBatch.encodedCount(entrySizes: [3, 0, 1]))
        #expect(try ActivityBatch.decode(bytes) == batch)
        #expect(throws: ByteReader.Malformed.self) { try ActivityBatch.decode(bytes + [0]) }
        #expect(throws: ByteReader.Malformed.self) { try ActivityBatch.decode(Array(bytes.dropLast())) }
        #expect(throws: ByteReader.Malformed.self) { try ActivityBatch.decode([0, 0]) }
        var tooMany = bytes
        tooMany[0] = UInt8(ActivityBatch.maximumCopies + 1)
        #expect(throws: ByteReader.Malformed.self) { try ActivityBatch.decode(tooMany) }
    }

    /// One doctor's reads across a batch: their copies take one record
    /// (one frame) per batch, and the reviewer reads them back, newest first.
    @Test func oneActorsCopiesShareARecordAndReadBackInOrder() async throws {
        var c = Fixtures.configuration()
        let dpo = try SystemPrincipal("dpo")
        c.auditReviewers = [dpo]
        let t = try await TestStore(configuration: c, engine: testStorage)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor)
        for _ in 0..<10 { _ = try await t.store.metadata(of: doc.id, for: alice, as: Fixtures.doctor) }
        let trail = try await t.store.activity(
            of: GrantHolder(Fixtures.doctor)!, matching: AuditQuery(limit: 100), as: .auditReviewer(dpo))
        // The deposit and the ten reads, newest first.
        #expect(trail.count == 11)
        #expect(trail.first?.action == .readMetadata && trail.last?.action == .deposit)
        #expect(zip(trail, trail.dropFirst()).allSatisfy { $0.sequence > $1.sequence })
        // All eleven copies went out in one batch: one record in the stream.
        var records = 0
        let stream = t.store.keys.activityStream(of: GrantHolder(Fixtures.doctor)!)
        try await t.store.loader.walkBack(stream, broken: PatientVaultError(.corrupted, "")) { _ in records += 1; return true }
        #expect(records == 1)
        try await t.store.close()
    }
}
