#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Foundation
import VaultSync
import VaultCrypto

// MARK: - The read path

extension LogEngineCore {
    /// Reads one record by location: a `pread` of its frame, then the
    /// header's checksum and MAC, the payload's checksum and zero padding;
    /// the payload is returned in the buffer read. Reads run concurrently
    /// with writes (shared descriptors, `pread`).
    func read(_ location: RecordLocation) throws -> LogFrame {
        let segments = try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            return s.segments
        }
        return try readingStable {
            try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator, tree: merkle)
        }
    }

    /// Where a scan for the records from sequence number `lsn` on starts:
    /// the newest landmark at or before it (at most 255 frames before it),
    /// else the start of the log; nil when no record has that number or a
    /// later one yet (nothing to scan).
    func scanStart(forSequence lsn: UInt64) throws -> LogPosition? {
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            guard lsn < s.nextLSN else { return nil }
            guard let landmark = s.landmarks.atOrBefore(lsn) else { return LogPosition(segment: 0, offset: 0) }
            return LogPosition(segment: landmark.location.segment, offset: landmark.location.offset)
        }
    }

    /// Where the chunk of sequence number `lsn` is (``SequenceTable``).
    /// - Throws: ``StorageError/Code/invalidLocation`` for an LSN the
    ///   table does not hold.
    func chunkLocation(of lsn: UInt64) throws -> RecordLocation {
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            guard let location = s.chunks.location(of: lsn) else {
                throw StorageError(.invalidLocation, "no record without a stream has this sequence number")
            }
            return location
        }
    }

    /// The record at `location` among `segments` (also used by recovery).
    /// With `tree`, a frame whose payload has one damaged byte is returned
    /// restored when exactly one change explains its checksum and gives the
    /// record's leaf hash, checked against the tree's root (an inclusion
    /// proof from the stored hashes, ``MerkleLog/verifiedLeaf(_:)``); the
    /// file keeps it.
    static func readFrame(
        _ location: RecordLocation, segments: [UInt32: Segment], authenticator: (any LogAuthenticator)?, tree: MerkleLog? = nil
    ) throws -> LogFrame {
        let segment = try segmentHolding(location, in: segments)
        var frame = try segment.file.read(count: Int(location.frameLength), at: location.offset)
        let checked: (LogFormat.FrameHeader, compacted: (leaf: [UInt8], prefix: [UInt8], tag: [UInt8])?)
        do {
            checked = try frame.withUnsafeBytes { raw in
                try checkFrame(raw, at: location, in: segment, authenticator: authenticator, checkingPayloadCRC: true)
            }
        } catch let error as StorageError where error.code == .corrupted {
            // Off the hot path: only a frame that failed its checks.
            guard let tree,
                  let restored = restoredFrame(
                    frame, at: location, in: segment, authenticator: authenticator,
                    provenLeaf: { lsn in lsn >= 1 ? try? tree.verifiedLeaf(lsn - 1) : nil })
            else { throw error }
            frame = restored
            checked = try frame.withUnsafeBytes { raw in
                try checkFrame(raw, at: location, in: segment, authenticator: authenticator, checkingPayloadCRC: true)
            }
        }
        let (h, compacted) = checked
        if let body = compacted {
            // Its kept prefix and its leaf hash.
            return LogFrame(
                location: location, sequence: h.lsn, stream: h.stream, previous: h.previous, payload: body.prefix,
                compactedLeaf: body.leaf)
        }
        // The payload, in the buffer read: header and padding cut away in
        // place, no second allocation.
        frame.removeSubrange((LogFormat.frameHeaderSize + Int(h.payloadLength))...)
        frame.removeSubrange(..<LogFormat.frameHeaderSize)
        return LogFrame(location: location, sequence: h.lsn, stream: h.stream, previous: h.previous, payload: frame)
    }

    /// The segment of `location`, once the location is checked to lie in it.
    private static func segmentHolding(_ location: RecordLocation, in segments: [UInt32: Segment]) throws -> Segment {
        guard let segment = segments[location.segment] else {
            throw StorageError(.invalidLocation, "no such segment", segment: location.segment, offset: location.offset)
        }
        guard Int(location.frameLength) >= LogFormat.frameHeaderSize,
              location.offset >= UInt64(LogFormat.segmentHeaderSize),
              location.offset + UInt64(location.frameLength) <= segment.size
        else {
            throw StorageError(.invalidLocation, "location out of range", segment: location.segment, offset: location.offset)
        }
        return segment
    }

    /// Checks a frame read whole into `raw`: its length, header checksum
    /// and MAC, zero padding, the payload's checksum (unless the caller
    /// hashes every payload byte itself), and a compacted frame's kept body
    /// and its MAC, which it returns.
    /// - Throws: ``StorageError/Code/corrupted``.
    static func checkFrame(
        _ raw: UnsafeRawBufferPointer, at location: RecordLocation, in segment: Segment, authenticator: (any LogAuthenticator)?,
        checkingPayloadCRC: Bool
    ) throws -> (LogFormat.FrameHeader, compacted: (leaf: [UInt8], prefix: [UInt8], tag: [UInt8])?) {
        let corrupted = StorageError(.corrupted, "record failed its checksum", segment: location.segment, offset: location.offset)
        guard raw.count == Int(location.frameLength), raw.count >= LogFormat.frameHeaderSize else { throw corrupted }
        let header: LogFormat.FrameHeader? =
            if let h = LogFormat.decodeFrameHeader(raw, salt: segment.salt),
               LogFormat.frameIsAuthentic(raw, salt: segment.salt, offset: location.offset, authenticator: authenticator)
            {
                h
            } else {
                // One flipped byte, its value proven by the header's CRC and
                // MAC: read restored (the file keeps it). Off the hot path.
                LogFormat.genuineFrameHeader(
                    Array(raw[0..<LogFormat.frameHeaderSize]), salt: segment.salt, offset: location.offset, authenticator: authenticator
                ).flatMap { found in found.header.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: segment.salt) } }
            }
        guard let h = header, LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == raw.count else { throw corrupted }
        let payload = UnsafeRawBufferPointer(rebasing: raw[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))])
        guard !checkingPayloadCRC || LogFormat.payloadCRC(payload) == h.payloadCRC,
              raw[(LogFormat.frameHeaderSize + Int(h.payloadLength))...].allSatisfy({ $0 == 0 })
        else { throw corrupted }
        guard h.isCompacted else { return (h, nil) }
        guard let body = LogFormat.decodeCompactedPayload(payload),
              LogFormat.compactedBodyIsAuthentic(body, salt: segment.salt, offset: location.offset, lsn: h.lsn, authenticator: authenticator)
        else { throw corrupted }
        return (h, body)
    }

    /// The frame `frame` (read whole at `location`) with its damage
    /// restored where its value is proven: a header by its CRC and MAC
    /// (``LogFormat/genuineFrameHeader(_:salt:offset:authenticator:)``),
    /// padding by being zeros, and one damaged payload byte by the record's
    /// Merkle leaf hash: among the single-byte changes that explain the
    /// payload's checksum (``CRC32C/singleByteErrors(syndrome:count:)``),
    /// the one whose leaf is `provenLeaf(lsn)` (a collision of BLAKE2b-256
    /// and SHA-256 aside, the record as written). nil if none, or for a
    /// compacted frame.
    static func restoredFrame(
        _ frame: [UInt8], at location: RecordLocation, in segment: Segment, authenticator: (any LogAuthenticator)?,
        provenLeaf: (UInt64) -> [UInt8]?
    ) -> [UInt8]? {
        let start = LogFormat.frameHeaderSize
        guard frame.count == Int(location.frameLength),
              let (header, _) = LogFormat.genuineFrameHeader(frame, salt: segment.salt, offset: location.offset, authenticator: authenticator),
              let h = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }),
              !h.isCompacted, LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == frame.count
        else { return nil }
        let end = start + Int(h.payloadLength)
        var work = header + frame[start..<end] + [UInt8](repeating: 0, count: frame.count - end)
        let crc = work.withUnsafeBytes { LogFormat.payloadCRC(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        if crc == h.payloadCRC { return work }
        guard let leaf = provenLeaf(h.lsn) else { return nil }
        var found: [UInt8]?
        // The checksum covers the payload and its padding (zeros).
        for (index, delta) in CRC32C.singleByteErrors(syndrome: crc ^ h.payloadCRC, count: frame.count - start)
        where index < Int(h.payloadLength) {
            work[start + index] ^= delta
            let matches = work.withUnsafeBytes {
                MerkleLog.leafHash(stream: h.stream, payload: UnsafeRawBufferPointer(rebasing: $0[start..<end])) == leaf
            }
            if matches {
                guard found == nil else { return nil }
                found = work
            }
            work[start + index] ^= delta
        }
        return found
    }

    /// Writes the Merkle leaf hash of the frame at `location` into `leaf`
    /// (32 bytes), the frame read into `buffer` (reused, at least the
    /// frame's length): the header's checksum and MAC are checked, and the
    /// payload is hashed where it was read. Its CRC is not computed: the
    /// leaf hashes every payload byte, and the caller compares it with the
    /// tree. A compacted frame gives the leaf it keeps (its MAC checked).
    /// - Returns: the frame's log sequence number.
    static func writeLeafHash(
        of location: RecordLocation, segments: [UInt32: Segment], authenticator: (any LogAuthenticator)?,
        buffer: UnsafeMutableRawBufferPointer, into leaf: UnsafeMutableRawBufferPointer
    ) throws -> UInt64 {
        let segment = try segmentHolding(location, in: segments)
        let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(location.frameLength)])
        let read = try segment.file.read(into: frame, at: location.offset)
        let raw = UnsafeRawBufferPointer(rebasing: frame[..<read])
        let (h, compacted) = try checkFrame(raw, at: location, in: segment, authenticator: authenticator, checkingPayloadCRC: false)
        if let body = compacted {
            leaf.copyBytes(from: body.leaf)
        } else {
            MerkleLog.writeLeafHash(
                stream: h.stream,
                payload: UnsafeRawBufferPointer(rebasing: raw[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))]),
                into: leaf)
        }
        return h.lsn
    }

    /// Reads the written log from `start`, frame by frame, in order. The
    /// end is the first all-zero header, the end of a segment, or, in the
    /// segment being written, the position of the first queued record.
    /// Frames before `fromSequence` are passed over by their header alone;
    /// key-slot manifests too, unless `includingManifests`. With
    /// `passingOverDamaged`, a wanted frame whose header is genuine but
    /// whose payload fails its checks (a record recovery kept damaged) is
    /// passed over and logged, instead of ending the scan with `corrupted`.
    func scan(
        from start: LogPosition, fromSequence: UInt64 = 0, includingManifests: Bool = false, passingOverDamaged: Bool = false,
        only wanted: (StreamID?) -> Bool, _ visit: (LogFrame) throws -> Bool
    ) throws {
        try walkFrames(from: start) { location, h, segments in
            guard includingManifests || !h.isSlotManifest, h.lsn >= fromSequence, wanted(h.stream) else { return true }
            // Read again if a compaction rewrote it meanwhile (its place,
            // length and header fields stay).
            let frame: LogFrame
            do {
                frame = try readingStable {
                    try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator, tree: merkle)
                }
            } catch let error as StorageError where error.code == .corrupted && passingOverDamaged {
                logger.error(
                    "storage: a scan passed over a damaged record",
                    metadata: ["segment": "\(location.segment)", "offset": "\(location.offset)"])
                return true
            }
            return try visit(frame)
        }
    }

    /// Walks the written log from `start` by the frames' headers alone
    /// (each checked: checksum, MAC, a length within the segment), in
    /// order, until `visit` returns false: the end is the first all-zero
    /// header, the end of a segment, or, in the segment being written, the
    /// position of the first queued record. `visit` gets each frame's
    /// place, its header, and the segments the walk reads.
    /// With `limit`, the walk ends there at the latest (a durable end the
    /// committer reported: frames after it may be being written).
    func walkFrames(
        from start: LogPosition, to limit: LogPosition? = nil,
        _ visit: (RecordLocation, LogFormat.FrameHeader, [UInt32: Segment]) throws -> Bool
    ) throws {
        let (segments, current, tail, written) = try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            // Queued jobs are not written yet: stop at the first one.
            let firstQueued = s.queue.first.map { LogPosition(segment: $0.segment, offset: $0.offset) }
            return (s.segments, s.current, s.tail, firstQueued)
        }
        let queued = written ?? LogPosition(segment: current, offset: tail)
        let end = limit.map { min($0, queued) } ?? queued
        var position = LogPosition(segment: max(start.segment, segments.keys.min() ?? start.segment), offset: start.offset)
        if position.segment != start.segment || position.offset < UInt64(LogFormat.segmentHeaderSize) {
            position.offset = UInt64(LogFormat.segmentHeaderSize)
        }
        while position < end {
            guard let segment = segments[position.segment] else {
                throw StorageError(.corrupted, "segment is missing", segment: position.segment, offset: position.offset)
            }
            let segmentEnd = position.segment == end.segment ? end.offset : segment.size
            guard position.offset >= UInt64(LogFormat.segmentHeaderSize),
                  position.offset + UInt64(LogFormat.frameHeaderSize) <= segmentEnd
            else {
                position = LogPosition(segment: position.segment + 1, offset: UInt64(LogFormat.segmentHeaderSize))
                continue
            }
            // The frame's header, read again if a compaction rewrote it
            // meanwhile.
            let here = position
            let found = try readingStable { () -> LogFormat.FrameHeader? in
                let header = try segment.file.read(count: LogFormat.frameHeaderSize, at: here.offset)
                // Zeros, or the end of a file preallocated short of its size.
                if header.count < LogFormat.frameHeaderSize || header.allSatisfy({ $0 == 0 }) { return nil }
                let damaged = StorageError(.corrupted, "record failed its checksum", segment: here.segment, offset: here.offset)
                let authenticator = configuration.authenticator
                let asRead = header.withUnsafeBytes { raw in
                    LogFormat.frameIsAuthentic(raw, salt: segment.salt, offset: here.offset, authenticator: authenticator)
                        ? LogFormat.decodeFrameHeader(raw, salt: segment.salt) : nil
                }
                // One flipped byte, proven by the header's CRC and MAC: the
                // walk goes on with the header restored.
                guard let h = asRead ?? LogFormat.genuineFrameHeader(header, salt: segment.salt, offset: here.offset, authenticator: authenticator)
                    .flatMap({ found in found.header.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: segment.salt) } })
                else { throw damaged }
                // Bounded by the segment before any conversion: a length no
                // frame of this segment can have (or a location can name)
                // is damage, not a trap.
                let length = UInt64(LogFormat.frameLength(payloadCount: Int(h.payloadLength)))
                guard length <= segmentEnd - here.offset, length <= UInt64(UInt32.max) else { throw damaged }
                return h
            }
            guard let h = found else {
                position = LogPosition(segment: position.segment + 1, offset: UInt64(LogFormat.segmentHeaderSize))
                continue
            }
            let length = UInt32(LogFormat.frameLength(payloadCount: Int(h.payloadLength)))
            guard try visit(RecordLocation(segment: here.segment, offset: here.offset, frameLength: length), h, segments) else { return }
            position.offset += UInt64(length)
        }
    }

    /// ``writeLeafHash(of:segments:authenticator:buffer:into:)`` under the
    /// compaction's sequence lock, strictly: the payload's CRC is not
    /// checked there, so a frame read while a compaction rewrote it (its
    /// old header, a payload half zeroed) could pass its checks, and its
    /// leaf is kept only if no rewrite began or ended meanwhile. After a
    /// few tries with compaction rewriting all along, the frame is read
    /// with its CRC checked (``read(_:)``), which retries only what fails.
    private func leafReadingStable(
        of location: RecordLocation, segments: [UInt32: Segment], buffer: UnsafeMutableRawBufferPointer,
        into leaf: UnsafeMutableRawBufferPointer
    ) throws -> UInt64 {
        for _ in 0..<8 {
            let before = compactionEpoch.load(ordering: .sequentiallyConsistent)
            if before & 1 == 0 {
                do {
                    let lsn = try LogEngineCore.writeLeafHash(
                        of: location, segments: segments, authenticator: configuration.authenticator, buffer: buffer, into: leaf)
                    if compactionEpoch.load(ordering: .sequentiallyConsistent) == before { return lsn }
                } catch let error as StorageError where error.code == .corrupted {
                    guard compactionEpoch.load(ordering: .sequentiallyConsistent) != before else { throw error }
                }
            }
            sched_yield()
        }
        let frame = try readingStable {
            try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator)
        }
        if let kept = frame.compactedLeaf {
            leaf.copyBytes(from: kept)
        } else {
            frame.payload.withUnsafeBytes { MerkleLog.writeLeafHash(stream: frame.stream, payload: $0, into: leaf) }
        }
        return frame.sequence
    }

    /// The Merkle leaf hashes of the frames at `locations` (32 bytes each,
    /// in their order), computed on every core the process may use: each
    /// worker reads its frames into a buffer of its own and hashes them
    /// there (``writeLeafHash(of:segments:authenticator:buffer:into:)``).
    /// The calling task is suspended meanwhile, never blocked.
    /// - Returns: the leaves and the frames' sequence numbers.
    func recomputeLeaves(of locations: [RecordLocation], in segments: [UInt32: Segment]) async throws -> (leaves: [UInt8], sequences: [UInt64]) {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, locations.count))
        let largest = Int(locations.map(\.frameLength).max() ?? 0)
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                var leaves = [UInt8](repeating: 0, count: locations.count * MerkleTree.hashSize)
                var sequences = [UInt64](repeating: 0, count: locations.count)
                let failure = Locked<(any Error)?>(nil)
                leaves.withUnsafeMutableBytes { out in
                    sequences.withUnsafeMutableBufferPointer { lsns in
                        nonisolated(unsafe) let (out, lsns) = (out, lsns)
                        DispatchQueue.concurrentPerform(iterations: workers) { worker in
                            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest, 1), alignment: 16)
                            defer { buffer.deallocate() }
                            var i = worker
                            while i < locations.count {
                                do {
                                    let leaf = UnsafeMutableRawBufferPointer(rebasing: out[(i * MerkleTree.hashSize)..<((i + 1) * MerkleTree.hashSize)])
                                    lsns[i] = try self.leafReadingStable(
                                        of: locations[i], segments: segments, buffer: buffer, into: leaf)
                                } catch {
                                    failure.withLock { if $0 == nil { $0 = error } }
                                    return
                                }
                                i += workers
                            }
                        }
                    }
                }
                if let error = failure.withLock({ $0 }) {
                    continuation.resume(throwing: error)
                } else {
                    continuation.resume(returning: (leaves, sequences))
                }
            }
        }
    }
}
