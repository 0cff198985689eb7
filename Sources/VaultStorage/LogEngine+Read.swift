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
        return try LogEngineCore.readFrame(location, segments: segments, authenticator: configuration.authenticator)
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
        // The payload, in the buffer read: header and padding cut away in
        // place, no second allocation.
        frame.removeSubrange((LogFormat.frameHeaderSize + Int(h.payloadLength))...)
        frame.removeSubrange(..<LogFormat.frameHeaderSize)
        return LogFrame(location: location, sequence: h.lsn, stream: h.stream, previous: h.previous, payload: frame)
    }

}
