import Foundation
import VaultSync

/// What a scrub (``StorageEngine/scrub(progress:)``) checked and repaired.
package struct ScrubResult: Sendable, Equatable {
    /// Records read whole and checked.
    package var recordsChecked = 0
    /// Records with damage restored where its value is proven (a header
    /// byte, a payload byte, padding) and written back.
    package var recordsRestored = 0
    /// Where records are damaged beyond a proven repair (each still reads
    /// as `corrupted`).
    package var damaged: [RecordReference] = []

    package init() {}
}

extension StorageEngine {
    /// An engine without files of its own to damage (in memory, or a
    /// database that checks its own pages) has nothing to restore.
    package func scrub(progress: (@Sendable (Double) -> Void)?) async throws -> ScrubResult { ScrubResult() }
}

extension LogEngine {
    /// Reads every written record whole and writes back, synced, the one
    /// damaged byte of each that a read restores in memory: a header byte
    /// its CRC and MAC prove, padding (zeros), a payload byte its Merkle
    /// leaf proves (checked against the tree's root). Afterwards a backup's
    /// restore and `verify(against:)`, which hash the bytes as stored, find
    /// nothing a read would not. Records damaged beyond that are listed.
    /// Runs beside readers and writers, alone among compactions, backups
    /// and `close()` (the maintenance gate: a compaction rewrites frames in
    /// place too, a backup copies them); `close()` stops it at its next
    /// frame (`closed`). Only durable records are walked (the committer
    /// may be writing the others). O(log size) reads and hashes.
    /// - Throws: ``StorageError/Code/corrupted`` for a frame header no
    ///   byte restores (the walk cannot go past it),
    ///   ``StorageError/Code/durabilityLost`` (a failed write or sync: the
    ///   engine stops).
    package func scrub(progress: (@Sendable (Double) -> Void)?) async throws -> ScrubResult {
        try await maintenance.withGate {
            // The durable end, from the committer (after a sync): frames
            // after it may be being written, and would read torn.
            guard let snapshot = try await core.requestIndexSnapshot().wait() else {
                throw StorageError(.corrupted, "the Merkle tree's root could not be computed")
            }
            let end = LogPosition(segment: snapshot.segment, offset: snapshot.tail)
            return try await inBackground { [core] in try core.scrub(to: end, records: snapshot.nextLSN - 1, progress: progress) }
        }
    }
}

extension LogEngineCore {
    /// The scrub of the log up to `end`, which holds `records` records.
    func scrub(to end: LogPosition, records: UInt64, progress: ((Double) -> Void)?) throws -> ScrubResult {
        var result = ScrubResult()
        var touched: [UInt32: Segment] = [:]
        let total = max(1, records)
        let authenticator = configuration.authenticator
        // What was written back is synced even if the walk stops early.
        defer {
            for n in touched.keys.sorted() {
                _ = try? latching { try configuration.files.sync(touched[n]!.file, site: nil) }
            }
        }
        try walkFrames(from: LogPosition(segment: 0, offset: 0), to: end) { location, h, segments in
            if closeRequested.load(ordering: .relaxed) { throw StorageError(.closed, "the store is closing") }
            guard let segment = segments[location.segment] else { return true }
            let frame = try segment.file.read(count: Int(location.frameLength), at: location.offset)
            result.recordsChecked += 1
            if result.recordsChecked % 4096 == 0 { progress?(min(1, Double(h.lsn) / Double(total))) }
            let whole = frame.count == Int(location.frameLength) && frame.withUnsafeBytes { raw in
                LogFormat.decodeFrameHeader(raw, salt: segment.salt) != nil
                    && LogFormat.frameIsAuthentic(raw, salt: segment.salt, offset: location.offset, authenticator: authenticator)
                    && (try? LogEngineCore.checkFrame(raw, at: location, in: segment, authenticator: authenticator, checkingPayloadCRC: true))
                        != nil
            }
            if whole { return true }
            // A compacted frame: its header alone can be restored (its
            // body has a MAC of its own, checked below).
            let candidate: [UInt8]? = h.isCompacted
                ? LogFormat.genuineFrameHeader(frame, salt: segment.salt, offset: location.offset, authenticator: authenticator)
                    .map { $0.header + frame[LogFormat.frameHeaderSize...] }
                : LogEngineCore.restoredFrame(
                    frame, at: location, in: segment, authenticator: authenticator,
                    provenLeaf: { [merkle] lsn in lsn >= 1 ? try? merkle.verifiedLeaf(lsn - 1) : nil })
            guard let restored = candidate, restored.count == frame.count,
                  (try? restored.withUnsafeBytes { raw in
                      try LogEngineCore.checkFrame(raw, at: location, in: segment, authenticator: authenticator, checkingPayloadCRC: true)
                  }) != nil
            else {
                result.damaged.append(h.stream == nil ? RecordReference(sequence: h.lsn) : RecordReference(sequence: h.lsn, location: location))
                logger.error(
                    "storage: a scrub found a record damaged beyond a proven repair",
                    metadata: ["segment": "\(location.segment)", "offset": "\(location.offset)"])
                return true
            }
            // The bytes that differ, each run written where it is.
            var i = 0
            while i < frame.count {
                guard restored[i] != frame[i] else { i += 1; continue }
                var end = i
                while end < frame.count && restored[end] != frame[end] { end += 1 }
                let run = Array(restored[i..<end])
                let at = location.offset + UInt64(i)
                // An overwrite in place: any failure, a full disk's too,
                // stops the store.
                touched[segment.number] = segment
                do {
                    try configuration.files.write(run, at: at, of: segment.file, site: .restorationWrite)
                } catch let error as StorageError {
                    latch(error)
                    throw StorageError(.durabilityLost, error.message, segment: error.segment, offset: error.offset, errno: error.errno)
                }
                i = end
            }
            result.recordsRestored += 1
            logger.error(
                "storage: a scrub restored a damaged byte of a record and wrote it back",
                metadata: ["segment": "\(location.segment)", "offset": "\(location.offset)"])
            return true
        }
        for n in touched.keys.sorted() {
            try latching { try configuration.files.sync(touched[n]!.file, site: nil) }
        }
        touched.removeAll()
        progress?(1)
        return result
    }
}
