import Foundation
import Testing
@testable import VaultStorage

/// Records sealed by the committer as it writes them (`DeferredRecord`):
/// the audit entries of reads that do not wait for them.
@Suite struct DeferredRecordTests {
    /// Appends the same records to two engines, one with some of them
    /// deferred; returns each engine's records of `streams` and its Merkle
    /// root, before and after a reopen (recovery checks every frame's
    /// checksum, MAC and link, and recomputes the leaves it replays).
    private func appendBoth(_ records: [(stream: StreamID, payload: [UInt8], durable: Bool)], deferring: (Int) -> Bool) async throws
        -> [(payloads: [[UInt8]], root: [UInt8], reopenedPayloads: [[UInt8]], reopenedRoot: [UInt8])]
    {
        var results: [(payloads: [[UInt8]], root: [UInt8], reopenedPayloads: [[UInt8]], reopenedRoot: [UInt8])] = []
        let streams = Array(Set(records.map(\.stream))).sorted()
        for defers in [false, true] {
            let (dir, engine) = try TemporaryDirectory.withEngine()
            var last: AppendTicket?
            for (i, r) in records.enumerated() {
                let durability: Durability = r.durable ? .durable : .buffered
                if defers && deferring(i) {
                    let bytes = r.payload
                    last = try engine.append(DeferredRecord(stream: r.stream, payloadCount: bytes.count) { bytes }, durability: durability, mayUseReserve: true)
                } else {
                    last = try engine.append([EngineRecord(stream: r.stream, payload: r.payload)], keySlotWrites: [], durability: durability)
                }
            }
            _ = try await last?.wait()
            #expect(engine.deferredRecordCount == (defers ? records.indices.filter(deferring).count : 0))
            try await engine.appendDurably([])
            let payloads = try streams.flatMap { try engine.records(of: $0).map(\.payload) }
            let root = try engine.merkleTree.root(size: UInt64(records.count))
            let reopened = try await engine.reopen(dir)
            let reopenedPayloads = try streams.flatMap { try reopened.records(of: $0).map(\.payload) }
            let reopenedRoot = try reopened.merkleTree.root(size: UInt64(records.count))
            try await reopened.close()
            results.append((payloads, root, reopenedPayloads, reopenedRoot))
        }
        return results
    }

    /// A deferred record is, in the log, the record its payload would be
    /// given whole: the same frames in the same order (each stream's
    /// records, linked newest to oldest), the same Merkle leaves, and the
    /// same after recovery, whether it is buffered or durable and whatever
    /// is queued around it.
    @Test func aDeferredRecordIsTheRecordItsPayloadWouldBe() async throws {
        let records = (0..<60).map { i in
            (stream: stream(UInt8(i % 3)), payload: payload(i, size: 50 + i * 37), durable: i % 7 == 0)
        }
        let results = try await appendBoth(records) { $0 % 2 == 1 || $0 % 5 == 0 }
        let (given, deferred) = (results[0], results[1])
        #expect(given.payloads.count == records.count)
        // (Compared as booleans: a failure would print megabytes.)
        let sameRecords = deferred.payloads == given.payloads, sameAfterRecovery = deferred.reopenedPayloads == given.payloads
        #expect(sameRecords, "the deferred records read back differ")
        #expect(deferred.root == given.root)
        #expect(sameAfterRecovery, "the deferred records read back after recovery differ")
        #expect(deferred.reopenedRoot == given.root)
    }

    /// A payload that cannot be made, or is not the size announced, is a
    /// failed write: never acknowledged, and the engine stops, as on a
    /// failed `write`; what was acknowledged before is there at the next
    /// open, and the record is not.
    @Test(arguments: [false, true])
    func aDeferredRecordThatCannotBeSealedStopsTheEngine(wrongSize: Bool) async throws {
        struct SealFailed: Error {}
        let (dir, engine) = try TemporaryDirectory.withEngine()
        try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(1))])
        let record = DeferredRecord(stream: stream(1), payloadCount: 100) {
            if wrongSize { return payload(2, size: 99) }
            throw SealFailed()
        }
        let ticket = try engine.append(record, durability: .buffered, mayUseReserve: true)
        await #expect { _ = try await ticket.wait() } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        #expect {
            _ = try engine.append([EngineRecord(stream: stream(1), payload: payload(3))], keySlotWrites: [], durability: .durable)
        } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        await #expect { try await engine.close() } throws: { ($0 as? StorageError)?.code == .durabilityLost }
        let reopened = try dir.openEngine()
        #expect(try reopened.records(of: stream(1)).map(\.payload) == [payload(1)])
        try await reopened.close()
    }

    /// A deferred record larger than the engine accepts is refused when it
    /// is queued, and nothing is placed.
    @Test func anOversizedDeferredRecordIsRefusedAndNothingPlaced() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        defer { withExtendedLifetime(dir) {} }
        let before = engine.nextSequence
        for count in [9 << 10, -1] {
            #expect {
                _ = try engine.append(
                    DeferredRecord(stream: stream(1), payloadCount: count) { [] }, durability: .buffered, mayUseReserve: true)
            } throws: { ($0 as? StorageError)?.code == .tooLarge }
        }
        #expect(engine.nextSequence == before)
        #expect(engine.head(of: stream(1)) == nil)
        try await engine.close()
    }
}
