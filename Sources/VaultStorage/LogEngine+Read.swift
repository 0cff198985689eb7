#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
            try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator)
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
    static func readFrame(
        _ location: RecordLocation, segments: [UInt32: Segment], authenticator: (any LogAuthenticator)?
    ) throws -> LogFrame {
        guard let segment = segments[location.segment] else {
            throw StorageError(.invalidLocation, "no such segment", segment: location.segment, offset: location.offset)
        }
        guard Int(location.frameLength) >= LogFormat.frameHeaderSize,
              location.offset >= UInt64(LogFormat.segmentHeaderSize),
              location.offset + UInt64(location.frameLength) <= segment.size
        else {
            throw StorageError(.invalidLocation, "location out of range", segment: location.segment, offset: location.offset)
        }
        var frame = try segment.file.read(count: Int(location.frameLength), at: location.offset)
        let corrupted = StorageError(.corrupted, "record failed its checksum", segment: location.segment, offset: location.offset)
        guard frame.count == Int(location.frameLength) else { throw corrupted }
        let h = try frame.withUnsafeBytes { raw in
            guard let h = LogFormat.decodeFrameHeader(raw, salt: segment.salt),
                  LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == frame.count,
                  LogFormat.frameIsAuthentic(raw, salt: segment.salt, offset: location.offset, authenticator: authenticator)
            else { throw corrupted }
            let payload = UnsafeRawBufferPointer(
                rebasing: raw[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))])
            guard LogFormat.payloadCRC(payload) == h.payloadCRC,
                  raw[(LogFormat.frameHeaderSize + Int(h.payloadLength))...].allSatisfy({ $0 == 0 })
            else { throw corrupted }
            return h
        }
        if h.isCompacted {
            // Its kept prefix and its leaf hash.
            guard let body = frame.withUnsafeBytes({ raw in
                LogFormat.decodeCompactedPayload(
                    UnsafeRawBufferPointer(rebasing: raw[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))]))
            }), LogFormat.compactedBodyIsAuthentic(body, salt: segment.salt, offset: location.offset, lsn: h.lsn, authenticator: authenticator)
            else { throw corrupted }
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

    /// Reads the written log from `start`, frame by frame, in order. The
    /// end is the first all-zero header, the end of a segment, or, in the
    /// segment being written, the position of the first queued record.
    /// Frames before `fromSequence` are passed over by their header alone;
    /// key-slot manifests too, unless `includingManifests`.
    func scan(
        from start: LogPosition, fromSequence: UInt64 = 0, includingManifests: Bool = false, only wanted: (StreamID?) -> Bool,
        _ visit: (LogFrame) throws -> Bool
    ) throws {
        let (segments, current, tail, written) = try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            // Queued jobs are not written yet: stop at the first one.
            let firstQueued = s.queue.first.map { LogPosition(segment: $0.segment, offset: $0.offset) }
            return (s.segments, s.current, s.tail, firstQueued)
        }
        let end = written ?? LogPosition(segment: current, offset: tail)
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
            // The frame's header, and the frame itself if it is wanted, read
            // again if a compaction rewrote it meanwhile.
            let here = position
            let found = try readingStable { () -> (length: UInt64, record: LogFrame?)? in
                let header = try segment.file.read(count: LogFormat.frameHeaderSize, at: here.offset)
                // Zeros, or the end of a file preallocated short of its size.
                if header.count < LogFormat.frameHeaderSize || header.allSatisfy({ $0 == 0 }) { return nil }
                let damaged = StorageError(.corrupted, "record failed its checksum", segment: here.segment, offset: here.offset)
                guard let h = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }),
                      header.withUnsafeBytes({
                          LogFormat.frameIsAuthentic($0, salt: segment.salt, offset: here.offset, authenticator: configuration.authenticator)
                      })
                else { throw damaged }
                // Bounded by the segment before any conversion: a length no
                // frame of this segment can have is damage, not a trap.
                let length = UInt64(LogFormat.frameLength(payloadCount: Int(h.payloadLength)))
                guard length <= segmentEnd - here.offset else { throw damaged }
                guard includingManifests || !h.isSlotManifest, h.lsn >= fromSequence, wanted(h.stream) else { return (length, nil) }
                let location = RecordLocation(segment: here.segment, offset: here.offset, frameLength: UInt32(length))
                return (length, try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator))
            }
            guard let found else {
                position = LogPosition(segment: position.segment + 1, offset: UInt64(LogFormat.segmentHeaderSize))
                continue
            }
            if let record = found.record {
                guard try visit(record) else { return }
            }
            position.offset += found.length
        }
    }
}
