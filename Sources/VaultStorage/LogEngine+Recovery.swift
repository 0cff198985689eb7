#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

// MARK: - Recovery at open

extension LogEngineCore {
    /// Where the log stops being valid, and the first sequence number lost.
    private struct Cut {
        var segment: UInt32
        var offset: UInt64
        var lsn: UInt64
    }

    /// Opens the segments, loads the checkpoint, replays the log after it and
    /// applies the recovery rules:
    ///
    /// - An invalid frame (or an unfinished atomic group) is a **torn tail**
    ///   if no valid frame after it testifies that it had been made durable
    ///   (each frame carries the sequence number below which everything was
    ///   durable when it was queued). The tail is cut there.
    /// - Otherwise it is **corruption**: a typed error naming segment and
    ///   offset; nothing is skipped or repaired silently.
    static func recover(
        directory: String, configuration: LogEngineConfiguration, into s: inout State
    ) throws -> RecoveryReport {
        let logger = configuration.logger
        var report = RecoveryReport()
        var numbers = try FileSystem.list(directory).compactMap(LogFormat.segmentNumber(fromFileName:)).sorted()
        if numbers.isEmpty {
            let segment = try createSegment(directory: directory, number: 1, firstLSN: 1, size: configuration.segmentSize)
            s.segments[1] = segment
            s.current = 1
            s.tail = UInt64(LogFormat.segmentHeaderSize)
            s.nextLSN = 1
            return report
        }
        for (i, n) in numbers.enumerated() where n != numbers[0] + UInt32(i) {
            throw StorageError(.corrupted, "segment \(numbers[0] + UInt32(i)) is missing", segment: numbers[0] + UInt32(i))
        }

        // Open every segment and check its header. An unreadable header is
        // tolerated only on the newest file: a crash while creating it.
        var headers: [UInt32: LogFormat.SegmentHeader] = [:]
        while let n = numbers.last {
            let file = try PosixFile.open(directory + "/" + LogFormat.segmentFileName(n), flags: O_RDWR, name: "segment \(n)")
            if let h = try LogFormat.decodeSegmentHeader(try file.read(count: LogFormat.segmentHeaderSize, at: 0)), h.number == n {
                break
            }
            if numbers.count == 1 {
                // The only segment never got its header: an empty store.
                try file.write(LogFormat.encodeSegmentHeader(number: n, salt: randomSalt(), firstLSN: 1), at: 0)
                try file.allocate(upTo: configuration.segmentSize)
                try file.syncData()
                break
            }
            try FileSystem.remove(directory + "/" + LogFormat.segmentFileName(n))
            try FileSystem.syncDirectory(directory)
            report.removedSegments.append(n)
            numbers.removeLast()
            logger.debug("storage: removed an unfinished segment", metadata: ["segment": "\(n)"])
        }
        for n in numbers {
            let file = try PosixFile.open(directory + "/" + LogFormat.segmentFileName(n), flags: O_RDWR, name: "segment \(n)")
            guard let h = try LogFormat.decodeSegmentHeader(try file.read(count: LogFormat.segmentHeaderSize, at: 0)),
                  h.number == n
            else {
                throw StorageError(.corrupted, "segment header failed its checksum", segment: n, offset: 0)
            }
            s.segments[n] = Segment(number: n, file: file, salt: h.salt)
            headers[n] = h
        }

        // Start from the checkpoint when it is valid and its last record is
        // where it says: the checkpoint only ever covers durable records, so
        // a missing one is corruption, not a crash.
        var startSegment = numbers[0]
        var startOffset = UInt64(LogFormat.segmentHeaderSize)
        var expected = headers[numbers[0]]!.firstLSN
        if let c = try readCheckpoint(directory: directory, logger: logger), s.segments[c.segment] != nil {
            if let last = c.last {
                let record = try? LogEngineCore.readFrame(last, segments: s.segments, configuration: configuration)
                guard let record, record.sequence < c.nextLSN else {
                    throw StorageError(
                        .corrupted, "a record covered by the checkpoint is missing or damaged",
                        segment: last.segment, offset: last.offset)
                }
            }
            s.index = c.index
            startSegment = c.segment
            startOffset = c.tail
            expected = c.nextLSN
            report.usedCheckpoint = true
        }

        // Replay.
        var cut: Cut?
        var current = startSegment
        var tail = startOffset
        segmentLoop: for n in numbers where n >= startSegment {
            let segment = s.segments[n]!
            if n != startSegment {
                guard headers[n]!.firstLSN == expected else {
                    throw StorageError(.corrupted, "segment does not continue the sequence", segment: n, offset: 0)
                }
            }
            let data = try segment.file.read(count: Int(try segment.file.size()), at: 0)
            var offset = Int(n == startSegment ? startOffset : UInt64(LogFormat.segmentHeaderSize))
            var group: [(StreamID, RecordLocation)] = []
            var groupStart = (offset: offset, lsn: expected)
            current = n
            let stop: Int? = data.withUnsafeBytes { raw -> Int? in
                while true {
                    if offset + LogFormat.frameHeaderSize > raw.count {
                        return raw[offset...].allSatisfy({ $0 == 0 }) ? nil : offset
                    }
                    let headerBytes = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + LogFormat.frameHeaderSize)])
                    if headerBytes.allSatisfy({ $0 == 0 }) { return nil }
                    guard let h = LogFormat.decodeFrameHeader(headerBytes, salt: segment.salt),
                          Int(h.payloadLength) <= configuration.maximumRecordSize,
                          h.lsn == expected
                    else { return offset }
                    let length = LogFormat.frameLength(payloadCount: Int(h.payloadLength))
                    guard offset + length <= raw.count else { return offset }
                    let payload = UnsafeRawBufferPointer(
                        rebasing: raw[(offset + LogFormat.frameHeaderSize)..<(offset + LogFormat.frameHeaderSize + Int(h.payloadLength))])
                    guard CRC32C.checksum(payload) == h.payloadCRC else { return offset }
                    let location = RecordLocation(segment: n, offset: UInt64(offset), frameLength: UInt32(length))
                    if let stream = h.stream { group.append((stream, location)) }
                    expected += 1
                    offset += length
                    report.replayedRecords += 1
                    if !h.groupContinues {
                        for (stream, loc) in group { s.index[stream] = loc }
                        group.removeAll()
                        groupStart = (offset, expected)
                    }
                }
            }
            tail = UInt64(offset)
            if let bad = stop {
                cut = Cut(segment: n, offset: UInt64(groupStart.offset), lsn: groupStart.lsn)
                try checkNothingDurableFollows(
                    lsn: expected, badSegment: n, badOffset: bad, data: data, numbers: numbers, segments: s.segments)
                break segmentLoop
            }
            if !group.isEmpty {
                // The log ends inside an atomic group.
                cut = Cut(segment: n, offset: UInt64(groupStart.offset), lsn: groupStart.lsn)
                try checkNothingDurableFollows(
                    lsn: groupStart.lsn, badSegment: n, badOffset: groupStart.offset, data: data,
                    numbers: numbers, segments: s.segments)
                break segmentLoop
            }
        }

        if let cut {
            // Cut the torn tail: later segments hold nothing durable, so they
            // go; the cut segment is truncated and preallocated again, which
            // leaves zeros (never stale bytes) after the cut.
            for n in numbers where n > cut.segment {
                s.segments[n] = nil
                try FileSystem.remove(directory + "/" + LogFormat.segmentFileName(n))
                report.removedSegments.append(n)
            }
            let file = s.segments[cut.segment]!.file
            try file.truncate(to: cut.offset)
            try file.allocate(upTo: configuration.segmentSize)
            try file.syncData()
            try FileSystem.syncDirectory(directory)
            current = cut.segment
            tail = cut.offset
            expected = cut.lsn
            report.truncatedAt = (cut.segment, cut.offset)
            logger.debug("storage: cut a torn tail", metadata: ["segment": "\(cut.segment)", "offset": "\(cut.offset)"])
        } else {
            // Make sure the newest segment is fully preallocated (a torn
            // truncation may have shortened it).
            try s.segments[current]!.file.allocate(upTo: configuration.segmentSize)
        }
        s.current = current
        s.tail = tail
        s.nextLSN = expected
        return report
    }

    /// Throws corruption if a valid frame after the bad one says that the
    /// bad one (sequence `lsn`) had already been made durable.
    private static func checkNothingDurableFollows(
        lsn: UInt64, badSegment: UInt32, badOffset: Int, data: [UInt8], numbers: [UInt32], segments: [UInt32: Segment]
    ) throws {
        let corruption = StorageError(
            .corrupted, "a damaged record is followed by records written after it was durable",
            segment: badSegment, offset: UInt64(badOffset))
        if testifies(data: data, from: badOffset + 8, salt: segments[badSegment]!.salt, lsn: lsn) { throw corruption }
        for n in numbers where n > badSegment {
            let file = segments[n]!.file
            let later = try file.read(count: Int(try file.size()), at: 0)
            if testifies(data: later, from: LogFormat.segmentHeaderSize, salt: segments[n]!.salt, lsn: lsn) { throw corruption }
        }
    }

    /// Whether any valid frame header at an 8-byte boundary from `from`
    /// records that `lsn` was durable.
    private static func testifies(data: [UInt8], from: Int, salt: [UInt8], lsn: UInt64) -> Bool {
        var position = (from + 7) & ~7
        return data.withUnsafeBytes { raw in
            while position + LogFormat.frameHeaderSize <= raw.count {
                if raw.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian == LogFormat.frameMagic,
                   let h = LogFormat.decodeFrameHeader(
                       UnsafeRawBufferPointer(rebasing: raw[position..<(position + LogFormat.frameHeaderSize)]), salt: salt),
                   h.durableThrough > lsn
                {
                    return true
                }
                position += 8
            }
            return false
        }
    }

    static func readFrame(
        _ location: RecordLocation, segments: [UInt32: Segment], configuration: LogEngineConfiguration
    ) throws -> StoredRecord {
        guard let segment = segments[location.segment] else {
            throw StorageError(.invalidLocation, "no such segment", segment: location.segment)
        }
        let frame = try segment.file.read(count: Int(location.frameLength), at: location.offset)
        let corrupted = StorageError(.corrupted, "record failed its checksum", segment: location.segment, offset: location.offset)
        guard frame.count == Int(location.frameLength) else { throw corrupted }
        return try frame.withUnsafeBytes { raw in
            guard let h = LogFormat.decodeFrameHeader(raw, salt: segment.salt),
                  LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == frame.count
            else { throw corrupted }
            let payload = UnsafeRawBufferPointer(
                rebasing: raw[LogFormat.frameHeaderSize..<(LogFormat.frameHeaderSize + Int(h.payloadLength))])
            guard CRC32C.checksum(payload) == h.payloadCRC else { throw corrupted }
            return StoredRecord(location: location, sequence: h.lsn, stream: h.stream, previous: h.previous, payload: Array(payload))
        }
    }

    private static func randomSalt() -> [UInt8] {
        var salt = [UInt8](repeating: 0, count: LogFormat.saltSize)
        fillRandom(&salt)
        return salt
    }
}
