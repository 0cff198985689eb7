import Foundation
import VaultSync

/// What a scrub (``StorageEngine/scrub(progress:)``) checked and repaired.
package struct ScrubResult: Sendable, Equatable {
    /// Records read whole and checked.
    package var recordsChecked = 0
    /// Records that had one damaged byte (header, payload or padding),
    /// restored where their value is proven and written back.
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
    /// Runs beside readers and writers; the caller keeps compactions out
    /// (they rewrite frames in place too). O(log size) reads and hashes.
    /// - Throws: ``StorageError/Code/corrupted`` for a frame header no
    ///   byte restores (the walk cannot go past it),
    ///   ``StorageError/Code/durabilityLost`` (a failed write or sync: the
    ///   engine stops).
    package func scrub(progress: (@Sendable (Double) -> Void)?) async throws -> ScrubResult {
        try await inBackground { [core] in try core.scrub(progress: progress) }
    }
}

extension LogEngineCore {
    func scrub(progress: ((Double) -> Void)?) throws -> ScrubResult {
        var result = ScrubResult()
        var touched: [UInt32: Segment] = [:]
        let total = max(1, state.withLock { $0.nextLSN } - 1)
        let authenticator = configuration.authenticator
        try walkFrames(from: LogPosition(segment: 0, offset: 0)) { location, h, segments in
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
                try latching { try configuration.files.write(run, at: at, of: segment.file, site: .restorationWrite) }
                i = end
            }
            touched[segment.number] = segment
            result.recordsRestored += 1
            logger.error(
                "storage: a scrub restored a damaged byte of a record and wrote it back",
                metadata: ["segment": "\(location.segment)", "offset": "\(location.offset)"])
            return true
        }
        for n in touched.keys.sorted() {
            try latching { try configuration.files.sync(touched[n]!.file, site: nil) }
        }
        progress?(1)
        return result
    }
}
