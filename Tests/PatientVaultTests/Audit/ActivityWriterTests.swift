import Foundation
import Logging
import Testing
@testable import PatientVault
@testable import PatientVaultTesting
@testable import VaultStorage
@testable import VaultSync

/// The activity writer's batches against appends made at the same time.
@Suite struct ActivityWriterTests {
    static func stream(_ tag: UInt8) -> StreamID { StreamID(bytes: [tag] + [UInt8](repeating: tag, count: 31)) }
    static let groups = stream(1), copies = stream(2), marks = stream(3)

    static func number(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// Threads append groups, each with its copy, while another takes
    /// batches without pause. Every batch's mark must cover exactly the
    /// groups whose copies that batch and the ones before it hold: a group
    /// before the mark without its copy would never be copied after a
    /// crash (the rebuild at open starts at the mark), and a copy of a
    /// group after the mark would be copied twice. A batch that took its
    /// snapshot between a group's append and its copy's queueing would
    /// break one of the two (seen failing with the snapshot let in there).
    @Test func everyMarkCoversExactlyTheCopiesWrittenBeforeIt() async throws {
        let memory = MemoryEngine()
        let engine = try memory.open(StorageOptions(reserve: 0, maximumRecordSize: 1 << 20, authenticator: nil, logger: Logger(label: "test")))
        let writer = ActivityWriter()
        let appenders = 2, perAppender = 1_000, pace = 50
        let finished = Locked(0), flushes = Locked(0)
        let failures = Locked<[String]>([])
        let seal: @Sendable ([ActivityWriter.Copy]) throws -> [EngineRecord] = { [EngineRecord(stream: Self.copies, payload: $0.flatMap(\.entry))] }
        let mark: @Sendable (LogCursor) throws -> EngineRecord = { cursor in
            var w = ByteWriter(capacity: LogCursor.byteCount)
            cursor.write(to: &w)
            return EngineRecord(stream: Self.marks, payload: w.bytes)
        }
        // A thread each, so that all run at once whatever else the machine does.
        await withTaskGroup(of: Void.self) { group in
            for worker in 0...appenders {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            defer { done.resume() }
                            do {
                                if worker == appenders {
                                    // The batches, taken until every appender is done.
                                    while finished.withLock({ $0 }) < appenders {
                                        _ = try writer.flush(engine: engine, durability: .buffered, markAlways: true, seal: seal, mark: mark)
                                        flushes.withLock { $0 += 1 }
                                    }
                                    return
                                }
                                defer { finished.withLock { $0 += 1 } }
                                for i in 0..<perAppender {
                                    var n = UInt64(worker * perAppender + i).littleEndian
                                    let bytes = withUnsafeBytes(of: &n) { Array($0) }
                                    _ = try writer.append(
                                        [EngineRecord(stream: Self.groups, payload: bytes)], keySlotWrites: [], durability: .buffered,
                                        mayUseReserve: false, copy: .init(stream: Self.copies, vault: Self.groups, entry: bytes), to: engine)
                                    // Every `pace` appends, wait for a batch: batches
                                    // are taken all along, on a loaded machine too.
                                    if i % pace == pace - 1 {
                                        let seen = flushes.withLock { $0 }
                                        while flushes.withLock({ $0 }) == seen { sched_yield() }
                                    }
                                }
                            } catch {
                                failures.withLock { $0.append("\(error)") }
                            }
                        }.start()
                    }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        // The rest, and a last mark.
        _ = try writer.flush(engine: engine, durability: .buffered, markAlways: true, seal: seal, mark: mark)

        var copied: [UInt64] = []
        var allGroups = Set<UInt64>()
        var markCursors: [(LogCursor, copiedSoFar: Set<UInt64>)] = []
        var records: [StoredRecord] = []
        try await engine.visitEveryRecord { records.append($0); return true }
        for r in records {
            let payload = r.payload[...]
            switch r.stream {
            case Self.groups: allGroups.insert(Self.number(payload))
            case Self.copies:
                for start in stride(from: 0, to: payload.count, by: 8) {
                    copied.append(Self.number(payload[start..<(start + 8)]))
                }
            case Self.marks:
                let cursor = try r.payload.withUnsafeBytes { raw in
                    var reader = ByteReader(raw)
                    return try LogCursor(from: &reader)
                }
                markCursors.append((cursor, Set(copied)))
            default: Issue.record("a record of no stream of the test")
            }
        }
        #expect(allGroups.count == appenders * perAppender)
        // Each copy once, and every group copied.
        #expect(copied.count == allGroups.count && Set(copied).count == allGroups.count && Set(copied).isSubset(of: allGroups))
        #expect(markCursors.count > appenders * perAppender / pace, "too few batches were taken during the appends to test anything")
        for (cursor, copiedSoFar) in markCursors {
            var after = Set<UInt64>()
            try await engine.scan(from: cursor, only: { $0 == Self.groups }) { after.insert(Self.number($0.payload[...])); return true }
            let before = allGroups.subtracting(after)
            // Counted, not listed: a failure names how many, not thousands of numbers.
            let missing = before.subtracting(copiedSoFar).count, beyond = copiedSoFar.subtracting(before).count
            #expect(missing == 0 && beyond == 0, "a mark with \(missing) groups before it uncopied and \(beyond) copies of groups after it")
        }
        try await engine.close()
    }
}
