#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VaultCrypto
import VaultSync

// MARK: - Compaction: payloads removed in place

extension LogEngine {
    /// Compaction in place (``StorageEngine/compact(_:keepingPrefix:)``):
    /// each frame keeps its place and length; its header gets the
    /// compacted flag (and a new payload CRC and MAC), its payload becomes
    /// a compacted body (`keep(4) reserved(4) leaf(32) prefix tag(16)`:
    /// the leaf hash read from the tree and checked against its root in
    /// memory, not from the payload, which is never read whole; the tag,
    /// the log key's MAC of leaf and prefix for the frame's place)
    /// followed by zeros, the whole file-system blocks of those
    /// zeros deallocated.
    /// No reference, index, chain link, checkpoint or Merkle hash changes,
    /// so readers and writers go on: a reader that meets a frame while it
    /// is rewritten reads it again (``LogEngineCore/readingStable(_:)``).
    ///
    /// Crash-safe in batches: a batch's frames are first written, with
    /// their new bytes, to `compaction.intent` and synced (the folder too
    /// when the file is new); then rewritten, their segments synced, and
    /// the intent voided. An open that finds a valid intent rewrites its
    /// frames again (the same bytes) before it reads the log. Needs no
    /// free space: it frees it.
    ///
    /// Runs alone among compactions and backups (``maintenance``), so a
    /// backup never copies a frame half rewritten.
    package func compact(_ references: [RecordReference], keepingPrefix keep: Int) async throws -> CompactionResult {
        precondition(keep >= 0 && keep <= 1 << 16, "the prefix a compaction keeps is small")
        return try await maintenance.withGate {
            var result = CompactionResult()
            var seen = Set<UInt64>()
            var batch: [LogFormat.CompactionRewrite] = []
            var batchBytes = 0
            for reference in references where seen.insert(reference.sequence).inserted {
                let location = try reference.hasLocation ? reference.location : core.chunkLocation(of: reference.sequence)
                switch try core.planCompaction(at: location, sequence: reference.sequence, keep: keep) {
                case .alreadyCompacted:
                    result.alreadyCompacted += 1
                case .tooSmall:
                    result.tooSmall += 1
                case .rewrite(let rewrite, let removed):
                    batch.append(rewrite)
                    batchBytes += rewrite.bytes.count
                    result.compacted += 1
                    result.bytesRemoved += removed
                    if batch.count >= LogEngineCore.compactionBatch || batchBytes >= 4 << 20 {
                        // Writes and syncs: blocking work, off the
                        // cooperative pool.
                        let rewrites = batch
                        try await inBackground { [core] in try core.applyCompaction(rewrites) }
                        batch.removeAll()
                        batchBytes = 0
                    }
                }
            }
            if !batch.isEmpty {
                let rewrites = batch
                try await inBackground { [core] in try core.applyCompaction(rewrites) }
            }
            return result
        }
    }
}

extension LogEngineCore {
    /// Frames rewritten per intent, at most.
    static let compactionBatch = 1024

    enum CompactionPlan {
        case alreadyCompacted
        case tooSmall
        case rewrite(LogFormat.CompactionRewrite, removed: UInt64)
    }

    /// What compacting the durable record `sequence` at `location` writes:
    /// its header and its first `keep` bytes are read (the whole payload
    /// only for a record of a stream, whose kept prefix is read again: it
    /// must give the record's leaf first), its leaf hash comes from the tree.
    func planCompaction(at location: RecordLocation, sequence: UInt64, keep: Int) throws -> CompactionPlan {
        let (segments, durable) = try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            return (s.segments, s.durableLSN)
        }
        try ensureNoFailure()
        guard sequence >= 1, sequence < durable else {
            throw StorageError(.invalidLocation, "record \(sequence) is not durable yet: it cannot be compacted")
        }
        let notReferenced = StorageError(
            .corrupted, "the record found is not the one referenced", segment: location.segment, offset: location.offset)
        guard let segment = segments[location.segment], Int(location.frameLength) >= LogFormat.frameHeaderSize,
              location.offset >= UInt64(LogFormat.segmentHeaderSize), location.offset + UInt64(location.frameLength) <= segment.size
        else {
            throw StorageError(.invalidLocation, "location out of range", segment: location.segment, offset: location.offset)
        }
        var head = try segment.file.read(count: min(Int(location.frameLength), LogFormat.frameHeaderSize + keep), at: location.offset)
        // One flipped byte of the header, proven by its CRC and MAC, is
        // restored first (the rewrite then writes it whole).
        if head.count >= LogFormat.frameHeaderSize, head.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }) == nil,
           let restored = LogFormat.restoredFrameHeader(
               head, salt: segment.salt, offset: location.offset, authenticator: configuration.authenticator)
        {
            head.replaceSubrange(0..<LogFormat.frameHeaderSize, with: restored)
        }
        let h = try head.withUnsafeBytes { raw -> LogFormat.FrameHeader in
            guard let h = LogFormat.decodeFrameHeader(raw, salt: segment.salt), h.lsn == sequence,
                  LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == Int(location.frameLength),
                  LogFormat.frameIsAuthentic(raw, salt: segment.salt, offset: location.offset, authenticator: configuration.authenticator)
            else { throw notReferenced }
            return h
        }
        // A manifest is the engine's own: no reference the layers above
        // hold names one.
        guard !h.isSlotManifest else {
            throw StorageError(.invalidLocation, "a key-slot manifest is not compacted", segment: location.segment, offset: location.offset)
        }
        if h.isCompacted { return .alreadyCompacted }
        guard Int(h.payloadLength) >= LogFormat.compactedBodyOverhead + keep, head.count == LogFormat.frameHeaderSize + keep else {
            return .tooSmall
        }
        // The leaf from the tree, checked against its root in memory: the
        // payload it hashed is about to go.
        let leaf = try merkle.verifiedLeaf(sequence - 1)
        var prefix = head[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + keep)]
        // The prefix is about to be sealed under the compacted body's MAC:
        // a record of a stream (read again, as its prefix, once compacted)
        // is read whole and its payload checked first against its leaf (a
        // CRC anyone can match; the leaf commits to every byte), one
        // damaged byte restored where the leaf proves it, never sealed
        // damaged or altered. (A chunk's prefix is never read again: its
        // payload is not read.)
        if h.stream != nil {
            let frame = try segment.file.read(count: Int(location.frameLength), at: location.offset)
            let payload = frame.count == Int(location.frameLength)
                ? frame[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))] : []
            if payload.count == Int(h.payloadLength),
               payload.withUnsafeBytes({ MerkleLog.leafHash(stream: h.stream, payload: $0) }) == leaf
            {
                prefix = frame[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + keep)]
            } else {
                // Checked against the leaf once more: a restored frame whose
                // payload already passed its CRC comes back unchanged.
                guard let restored = LogEngineCore.restoredFrame(
                    frame, at: location, in: segment, authenticator: configuration.authenticator,
                    provenLeaf: { $0 == sequence ? leaf : nil }),
                    restored[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))]
                        .withUnsafeBytes({ MerkleLog.leafHash(stream: h.stream, payload: $0) }) == leaf
                else {
                    throw StorageError(
                        .corrupted, "record does not match its Merkle leaf", segment: location.segment, offset: location.offset)
                }
                prefix = restored[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + keep)]
            }
        }
        let body = LogFormat.encodeCompactedBody(
            leaf: leaf, prefix: prefix,
            tag: LogFormat.compactedBodyTag(
                leaf: leaf, prefix: prefix, salt: segment.salt, offset: location.offset, lsn: sequence, authenticator: configuration.authenticator))
        let header = LogFormat.encodeFrameHeader(
            salt: segment.salt, offset: location.offset, payloadLength: Int(h.payloadLength),
            payloadCRC: LogFormat.compactedPayloadCRC(body: body, payloadLength: Int(h.payloadLength)), lsn: h.lsn,
            durableThrough: h.durableThrough, flags: h.flags | LogFormat.flagCompacted, previous: h.previous, stream: h.stream,
            authenticator: configuration.authenticator)
        let rewrite = LogFormat.CompactionRewrite(
            segment: location.segment, offset: location.offset, frameLength: location.frameLength, bytes: header + body)
        return .rewrite(rewrite, removed: UInt64(Int(h.payloadLength) - keep))
    }

    /// Writes and syncs the intent, rewrites the frames, syncs their
    /// segments, voids the intent. Any failed write or sync latches the
    /// engine (the next open finishes the batch from the intent); once the
    /// intent is durable, so does a full disk: a frame whose header says
    /// compacted over its old payload reads as `corrupted` until the batch
    /// is finished, and a later compaction would pass it over as done.
    func applyCompaction(_ rewrites: [LogFormat.CompactionRewrite]) throws {
        let segments = try state.withLock { s in
            if s.closing || s.closed { throw StorageError(.closed, "the store is closed") }
            return s.segments
        }
        let files = configuration.files
        let intent = try latching {
            let intent = try compactionIntentFile()
            try files.write(LogFormat.encodeCompactionIntent(rewrites), at: 0, of: intent, site: .compactionIntent)
            try files.sync(intent, site: .compactionIntent)
            return intent
        }
        try latching(evenDiskFull: true) {
            // The epoch is odd while a frame is being rewritten (readingStable).
            try LogEngineCore.rewrite(rewrites, segments: segments, files: files) { _ in
                compactionEpoch.wrappingAdd(1, ordering: .sequentiallyConsistent)
            }
            // Voided, not synced: an intent a power cut brings back is
            // applied once more, to the same effect.
            try files.write([UInt8](repeating: 0, count: LogFormat.compactionIntentMagic.count), at: 0, of: intent, site: .compactionIntent)
        }
        logger.debug("storage: compacted records", metadata: ["records": "\(rewrites.count)"])
    }

    /// The intent file, created (and the folder synced) the first time.
    private func compactionIntentFile() throws -> PosixFile {
        try compactionIntent.withLock { file in
            if let file { return file }
            let created = try PosixFile.open(
                directory + "/" + LogFormat.compactionIntentFileName, flags: O_RDWR | O_CREAT, name: "compaction intent",
                observer: configuration.files.observer)
            try FileSystem.syncDirectory(directory, observer: configuration.files.observer)
            file = created
            return created
        }
    }

    /// Rewrites each frame (header and body, then zeros to its end), then
    /// syncs every segment touched. `around` is called before (true) and
    /// after (false) each frame's writes.
    static func rewrite(
        _ rewrites: [LogFormat.CompactionRewrite], segments: [UInt32: Segment], files: any LogFiles, around: (Bool) -> Void
    ) throws {
        var touched: Set<UInt32> = []
        for r in rewrites {
            guard let segment = segments[r.segment] else {
                throw StorageError(.corrupted, "a compaction names a missing segment", segment: r.segment, offset: r.offset)
            }
            around(true)
            defer { around(false) }
            try files.write(r.bytes, at: r.offset, of: segment.file, site: .compactionWrite)
            try files.discard(segment.file, offset: r.offset + UInt64(r.bytes.count), length: UInt64(r.frameLength) - UInt64(r.bytes.count))
            touched.insert(r.segment)
        }
        for n in touched.sorted() {
            guard let segment = segments[n] else { continue }
            try files.sync(segment.file, site: .compactionSync)
        }
    }

    /// Runs `body`, a read of frames, again while a compaction rewrites
    /// frames under it: a `corrupted` error is believed only if no frame
    /// was being rewritten while it read (a sequence lock on
    /// ``compactionEpoch``: odd during a frame's rewrite). The happy path
    /// costs two atomic loads.
    func readingStable<T>(_ body: () throws -> T) throws -> T {
        while true {
            let before = compactionEpoch.load(ordering: .sequentiallyConsistent)
            do {
                return try body()
            } catch let error as StorageError where error.code == .corrupted {
                guard before & 1 == 1 || compactionEpoch.load(ordering: .sequentiallyConsistent) != before else { throw error }
                sched_yield()
            }
        }
    }

    // MARK: Recovery

    /// Finishes the compaction batch a crash cut (its intent is still
    /// there), before the log is read: every frame it names is written
    /// again. An intent that fails its checksum was never synced whole,
    /// so no frame was rewritten from it: it is removed, unless one
    /// changed byte (its CRC's algebra) gives an intent whose every frame
    /// this store's key wrote for its place: that is a synced intent
    /// damaged since, whose batch may be half done, and it is applied
    /// (logged at error level). An intent that passes its checksum but
    /// names frames that are not ones this store's key wrote for their
    /// places is damage (`corrupted`), never applied.
    static func finishCompaction(directory: String, configuration: LogEngineConfiguration, segments: [UInt32: Segment]) throws {
        let path = directory + "/" + LogFormat.compactionIntentFileName
        guard FileSystem.exists(path) else { return }
        let files = configuration.files
        let file = try PosixFile.open(path, flags: O_RDONLY, name: "compaction intent")
        let damaged = StorageError(.corrupted, "compaction.intent names frames this store did not write")
        // A batch is at most 1,024 frames of at most 64 KiB kept each.
        let largest = compactionBatch * (24 + LogFormat.frameHeaderSize + LogFormat.compactedBodyOverhead + (1 << 16))
            + LogFormat.compactionIntentHeaderSize + 4
        let bytes = try file.read(count: Int(min(try file.size(), UInt64(largest))), at: 0)
        var rewrites = LogFormat.compactionIntentLength(bytes).flatMap { length -> [LogFormat.CompactionRewrite]? in
            // Longer than any intent: a damaged length (the repair below
            // may find it), never one to read.
            guard length <= largest else { return nil }
            return length <= bytes.count ? LogFormat.decodeCompactionIntent(Array(bytes[0..<length])) : nil
        }
        if let found = rewrites {
            guard found.allSatisfy({ isGenuine($0, segments: segments, configuration: configuration) }) else { throw damaged }
        } else {
            // The intent ends where its length says (the file is reused by
            // each batch, never cut: a longer earlier one's bytes may
            // follow), or, if that byte is the damaged one, where the file
            // ends.
            var spans: [Int] = [bytes.count]
            if let length = LogFormat.compactionIntentLength(bytes), length < bytes.count { spans.insert(length, at: 0) }
            for span in spans where span >= LogFormat.compactionIntentHeaderSize + 4 {
                let candidate = Array(bytes[0..<span])
                if let repaired = CRC32C.uniqueSingleByteRepair(
                    of: candidate, covered: 0..<(span - 4), storedAt: span - 4,
                    accepts: { candidate -> [LogFormat.CompactionRewrite]? in
                        guard let decoded = LogFormat.decodeCompactionIntent(candidate), !decoded.isEmpty,
                              decoded.allSatisfy({ isGenuine($0, segments: segments, configuration: configuration) })
                        else { return nil }
                        return decoded
                    })
                {
                    rewrites = repaired.result
                    configuration.logger.error("storage: compaction.intent had a damaged byte; restored, its batch finished")
                    break
                }
            }
        }
        guard let rewrites else {
            // Voided after its batch, or never synced whole (no frame was
            // rewritten from it).
            try FileSystem.remove(path, observer: files.observer)
            return
        }
        try rewrite(rewrites, segments: segments, files: files) { _ in }
        try FileSystem.remove(path, observer: files.observer)
        try FileSystem.syncDirectory(directory, observer: files.observer)
        configuration.logger.info("storage: finished a compaction cut short", metadata: ["records": "\(rewrites.count)"])
    }

    /// Whether an intent's rewrite is a compacted frame this store's key
    /// wrote for its place (its header's MAC and its body's), within its
    /// segment.
    private static func isGenuine(
        _ r: LogFormat.CompactionRewrite, segments: [UInt32: Segment], configuration: LogEngineConfiguration
    ) -> Bool {
        guard let segment = segments[r.segment], r.offset >= UInt64(LogFormat.segmentHeaderSize), r.offset <= segment.size,
              UInt64(r.frameLength) <= segment.size - r.offset,
              r.bytes.count >= LogFormat.frameHeaderSize + LogFormat.compactedBodyOverhead, r.bytes.count <= Int(r.frameLength)
        else { return false }
        return r.bytes.withUnsafeBytes { raw -> Bool in
            let header = UnsafeRawBufferPointer(rebasing: raw[0..<LogFormat.frameHeaderSize])
            guard let h = LogFormat.decodeFrameHeader(header, salt: segment.salt), h.isCompacted, !h.isSlotManifest,
                  LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == Int(r.frameLength),
                  LogFormat.frameIsAuthentic(header, salt: segment.salt, offset: r.offset, authenticator: configuration.authenticator)
            else { return false }
            let body = Array(raw[LogFormat.frameHeaderSize...])
            let keep = Int(body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian })
            guard keep == body.count - LogFormat.compactedBodyOverhead,
                  let decoded = body.withUnsafeBytes({ LogFormat.decodeCompactedPayload($0) }),
                  LogFormat.compactedBodyIsAuthentic(
                      decoded, salt: segment.salt, offset: r.offset, lsn: h.lsn, authenticator: configuration.authenticator)
            else { return false }
            return LogFormat.compactedPayloadCRC(body: body, payloadLength: Int(h.payloadLength)) == h.payloadCRC
        }
    }
}
