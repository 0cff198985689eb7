import Foundation
@testable import VaultStorage

/// A fresh temporary directory per test, removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "pv-storage-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func segmentPath(_ n: UInt32) -> String { path + "/" + LogFormat.segmentFileName(n) }

    /// A fresh directory and an engine on it, with the small configuration
    /// unless told otherwise.
    static func withEngine(
        _ configuration: LogEngineConfiguration = smallConfiguration()
    ) throws -> (TemporaryDirectory, LogEngine) {
        let dir = TemporaryDirectory()
        return (dir, try dir.openEngine(configuration))
    }

    /// An engine on this directory (recovering what is there), with the
    /// small configuration unless told otherwise.
    func openEngine(_ configuration: LogEngineConfiguration = smallConfiguration()) throws -> LogEngine {
        try LogEngine.open(directory: path, configuration: configuration)
    }
}

func stream(_ n: UInt8) -> StreamID { StreamID(bytes: [UInt8](repeating: n, count: 32)) }

func payload(_ n: Int, size: Int = 100) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
}

/// A small engine so that tests reach segment boundaries quickly, with
/// what a test changes in it (`adjust`).
func smallConfiguration(_ adjust: (inout LogEngineConfiguration) -> Void = { _ in }) -> LogEngineConfiguration {
    var c = LogEngineConfiguration()
    c.segmentSize = 64 << 10
    c.maximumRecordSize = 8 << 10
    c.keyFileGrowth = 4 << 10
    c.reserve = 4 << 10
    c.initialSegmentAllocation = 16 << 10
    // These tests delete or damage the checkpoint to exercise replay;
    // `MissingCheckpointTests` checks the production rule.
    c.replaysWithoutCheckpoint = true
    adjust(&c)
    return c
}

extension LogEngine {
    /// Closes this engine, then opens `dir` (its directory) again: the
    /// reopen after which a test checks what recovery kept.
    func reopen(_ dir: TemporaryDirectory, _ configuration: LogEngineConfiguration = smallConfiguration()) async throws -> LogEngine {
        try await close()
        return try dir.openEngine(configuration)
    }

    @discardableResult
    func appendDurably(_ records: [EngineRecord]) async throws -> [RecordLocation] {
        try await append(records, keySlotWrites: [], durability: .durable).wait().map(location(of:))
    }

    /// Where the record `reference` names is: its own hint, or for a chunk
    /// (its LSN alone) the chunk table's.
    func location(of reference: RecordReference) throws -> RecordLocation {
        reference.hasLocation ? reference.location : try core.chunkLocation(of: reference.sequence)
    }

    /// The frame at `location` (these tests look at the log's own places).
    func read(_ location: RecordLocation) throws -> LogFrame { try frame(at: location) }

    /// Frames from `position` (``LogEngine/scanFrames(from:only:_:)``).
    func scan(from position: LogPosition, only wanted: (StreamID?) -> Bool, _ visit: (LogFrame) throws -> Bool) throws {
        try scanFrames(from: position, only: wanted, visit)
    }

    /// Every record of `stream`, oldest first, by following back-pointers.
    func records(of stream: StreamID) throws -> [LogFrame] {
        var out: [LogFrame] = []
        var next = head(of: stream)
        while let location = next {
            let r = try read(location)
            out.append(r)
            next = r.previous
        }
        return out.reversed()
    }
}

func overwrite(_ path: String, at offset: UInt64, with bytes: [UInt8]) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
}

func truncate(_ path: String, to length: UInt64) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try handle.truncate(atOffset: length)
    try handle.close()
}

func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}
