#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import VaultCrypto

// MARK: - Recovery at open

extension LogEngineCore {
    /// Opens the segments, loads the checkpoint, replays the log after it and
    /// applies the recovery rules:
    ///
    /// - An invalid frame (or an unfinished atomic group) is a **torn tail**
    ///   if no valid frame after it testifies that it had been made durable
    ///   (each frame carries the sequence number below which everything was
    ///   durable when it was queued). The tail is cut there.
    /// - Otherwise it is **corruption**: a typed error naming segment and
    ///   offset. Two exceptions, a flipped byte: a header that one byte
    ///   value restores (proven by its CRC and MAC) or padding after an
    ///   intact payload is restored and written back
    ///   (``RecoveryReport/restoredRecords``); a damaged payload under a
    ///   genuine header has its one damaged byte restored and written back
    ///   where its Merkle leaf proves the value; beyond that, when a later
    ///   frame genuine under its MAC testifies it durable, it is kept
    ///   (``RecoveryReport/damagedRecords``) and answers `corrupted` when
    ///   read. Both are logged at error level.
    static func recover(
        directory: String, configuration: LogEngineConfiguration, keySlots: KeySlotFile, merkleFile: MerkleHashFile,
        into s: inout State
    ) throws -> (RecoveryReport, MerkleLog) {
        var report = RecoveryReport()
        let numbers = try segmentNumbers(in: directory, observer: configuration.files.observer)
        // What recovery may trust comes first: the checkpoint vouches for the
        // segments it names and everything before its tail.
        // A backup's copy being written here, or cut short (see replay).
        let copyInProgress = FileSystem.exists(directory + "/" + LogFormat.copyInProgressFileName)
        let lenient = configuration.replaysWithoutCheckpoint
            || (configuration.checksARestore && copyInProgress
                && !FileSystem.exists(directory + "/" + LogFormat.checkpointFileName))
        let checkpoint = try readCheckpoint(
            directory: directory, authenticator: configuration.authenticator, lenient: lenient, logger: configuration.logger,
            files: configuration.files)
        if let c = checkpoint, numbers.last.map({ c.segment > $0 }) ?? true {
            throw StorageError(
                .corrupted, "index.checkpoint names segment \(c.segment), which is missing", segment: c.segment, offset: c.tail)
        }
        let headers = try openSegments(numbers, in: directory, configuration: configuration, into: &s)
        // A compaction batch a crash cut is finished before anything reads
        // the log (its frames may be half rewritten).
        try finishCompaction(directory: directory, configuration: configuration, segments: s.segments)
        let valid = numbers
        if checkpoint == nil, !valid.isEmpty, !lenient {
            try checkFirstCheckpointWasNeverWritten(valid, configuration: configuration, segments: s.segments)
        }
        if valid.isEmpty {
            // No segment: a new store, or one whose creation a crash cut
            // before its first segment. What only records leave (a hash in
            // `merkle.hashes`, a key slot written past the journal keys)
            // says the log was deleted: damage, never a fresh start with
            // every acknowledged record gone.
            if merkleFile.count > 0 || keySlots.writtenEnd > LogFormat.firstKeySlot {
                throw StorageError(
                    .corrupted, "the log's segment files are missing, while merkle.hashes and keys.slots hold what only records leave")
            }
            let n: UInt32 = 1
            let segment = try createSegment(
                directory: directory, number: n, firstLSN: 1, size: configuration.segmentSize,
                allocation: configuration.initialSegmentAllocation, files: configuration.files)
            s.segments[n] = segment
            s.current = n
            s.tail = UInt64(LogFormat.segmentHeaderSize)
            s.nextLSN = 1
            if copyInProgress { try removeCopyMark(in: directory, observer: configuration.files.observer) }
            return (report, try MerkleLog(storage: merkleFile, leaves: 0))
        }
        let start = try startingPoint(
            checkpoint: checkpoint, headers: headers, valid: valid, configuration: configuration, into: &s, report: &report)
        // A flipped byte, not a torn write, does not refuse the store.
        // Bytes whose value is proven are restored and written back: a
        // header one byte off, which exactly one value makes pass its CRC
        // and MAC, and padding (zeros by definition) under an intact
        // payload, and one payload byte whose value the leaf hash
        // `merkle.hashes` holds for the record proves. A damaged payload
        // under a genuine header beyond that is kept as it is when a later
        // frame, genuine under its MAC, testifies that it was durable, with
        // the leaf hash `merkle.hashes` holds for it:
        // reading it answers `corrupted`, so only its stream (one vault,
        // one principal's activity) is affected. Found one per replay, each
        // replay starting again from the state before the first.
        var tolerated: [UInt64: [UInt8]] = [:]
        var restorations: [RecordLocation: [UInt8]] = [:]
        var damaged: [(segment: UInt32, offset: UInt64)] = []
        var restored: [(segment: UInt32, offset: UInt64)] = []
        let (stateBefore, reportBefore) = (s, report)
        var replayed: (end: LogEnd, data: [UInt8], journaled: [(number: UInt64, bytes: [UInt8])], leaves: [UInt8])
        while true {
            let (end, endData, journaled, leaves, damage) = try replay(
                from: start, headers: headers, valid: valid, keySlots: keySlots, configuration: configuration,
                tolerating: tolerated, restorations: restorations, copyInProgress: copyInProgress, into: &s, report: &report)
            // A header, padding or payload byte whose value is proven (by
            // the header's MAC, zeros by definition, the record's leaf) is
            // restored whatever follows: the frame is then whole, exactly as
            // the committer wrote it (its group kept only if complete: an
            // unacknowledged group may survive whole, as any crash allows),
            // and the newest acknowledged group has no later frame to
            // testify for it.
            if let damage, damaged.count + restored.count < damagedRecordLimit {
                let location = RecordLocation(segment: damage.segment, offset: damage.offset, frameLength: UInt32(LogFormat.frameHeaderSize))
                switch damage.kind {
                case .padding(let at, let count):
                    restorations[RecordLocation(segment: damage.segment, offset: at, frameLength: UInt32(count))] =
                        [UInt8](repeating: 0, count: count)
                    restored.append((damage.segment, damage.offset))
                    (s, report) = (stateBefore, reportBefore)
                    continue
                case .header:
                    if restorations[location] == nil, let segment = s.segments[damage.segment],
                       let header = try restoredHeader(at: damage.offset, in: segment, authenticator: configuration.authenticator)
                    {
                        restorations[location] = header
                        restored.append((damage.segment, damage.offset))
                        (s, report) = (stateBefore, reportBefore)
                        continue
                    }
                case .payload:
                    // One damaged byte, the one change that explains the
                    // payload's CRC and gives the leaf `merkle.hashes` holds
                    // for the record (frame MACs required, as for keeping
                    // any damaged record): the frame as the committer wrote
                    // it, restored whatever follows like a header, so that
                    // the newest acknowledged record, with no later frame to
                    // testify for it, is not cut. A key-slot manifest's too:
                    // its boxes then open under the journal key, or the open
                    // fails.
                    if configuration.authenticator != nil, let lsn = damage.lsn, let leaf = try storedLeaf(lsn, in: merkleFile),
                       let segment = s.segments[damage.segment],
                       let fix = try restoredPayloadByte(
                        at: damage.offset, in: segment, restorations: restorations, leaf: leaf, authenticator: configuration.authenticator),
                       restorations[RecordLocation(segment: damage.segment, offset: fix.offset, frameLength: 1)] == nil
                    {
                        restorations[RecordLocation(segment: damage.segment, offset: fix.offset, frameLength: 1)] = [fix.value]
                        restored.append((damage.segment, damage.offset))
                        (s, report) = (stateBefore, reportBefore)
                        continue
                    }
                }
            }
            do {
                try cutAfter(end, data: endData, valid: valid, directory: directory, configuration: configuration, into: &s, report: &report)
                replayed = (end, endData, journaled, leaves)
                break
            } catch let error as StorageError where error.code == .corrupted {
                // A damaged payload under a genuine header that no one byte
                // restores, kept only if a later frame, genuine under its
                // MAC, testifies it durable. A key-slot manifest is never
                // passed over: the slots it carries may exist nowhere else.
                guard let damage, case .payload(let slotManifest) = damage.kind, !slotManifest, let lsn = damage.lsn,
                      damaged.count + restored.count < damagedRecordLimit,
                      try authenticallyTestified(
                        lsn, after: damage, data: endData, numbers: valid, segments: s.segments, authenticator: configuration.authenticator),
                      let leaf = try storedLeaf(lsn, in: merkleFile)
                else { throw error }
                tolerated[lsn] = leaf
                damaged.append((damage.segment, damage.offset))
                (s, report) = (stateBefore, reportBefore)
            }
        }
        // Written back before anything else writes; synced with the
        // replayed segments below. Only what the log keeps: a restored
        // frame of a group the replay then cut is not written past the end.
        let kept = { (segment: UInt32, offset: UInt64) in (segment, offset) < (replayed.end.segment, replayed.end.offset) }
        for (location, bytes) in restorations.sorted(by: { $0.key < $1.key }) where kept(location.segment, location.offset) {
            guard let segment = s.segments[location.segment] else { continue }
            try configuration.files.write(bytes, at: location.offset, of: segment.file, site: .restorationWrite)
        }
        restored.removeAll { !kept($0.segment, $0.offset) }
        // Damaged unused space passed over: zeroed where a next frame
        // header would be, so that reads, scrubs, verifications and
        // backups end the segment there as replay did.
        for (n, offset) in report.damagedUnusedSpace {
            guard let segment = s.segments[n] else { continue }
            let count = min(UInt64(LogFormat.frameHeaderSize), min(try segment.file.size(), segment.size) - min(offset, segment.size))
            try configuration.files.write([UInt8](repeating: 0, count: Int(count)), at: offset, of: segment.file, site: .restorationWrite)
        }
        report.damagedRecords += damaged
        report.restoredRecords += restored
        for d in damaged {
            configuration.logger.error(
                "storage: a durable record's payload failed its checksum; kept, its stream answers corrupted",
                metadata: ["segment": "\(d.segment)", "offset": "\(d.offset)"])
        }
        for r in restored {
            configuration.logger.error(
                "storage: a durable record had a damaged byte in its header, payload or padding; restored and written back",
                metadata: ["segment": "\(r.segment)", "offset": "\(r.offset)"])
        }
        let (end, journaled, leaves) = (replayed.end, replayed.journaled, replayed.leaves)
        // `keys.slots` as the checkpoint left it, or newer: one cut short
        // would have the slots of acknowledged records reserved again (and
        // an erasure of one vault destroy another's key), one replaced by
        // an older copy would bring an erased document's key back. Checked
        // on the file as found, before anything is written to it: the
        // slots replayed after the checkpoint, written back below, would
        // extend a file cut short past the checkpoint's end (zeros below),
        // and a refused open must leave it as it was, or the next open
        // would pass.
        if let c = checkpoint, report.usedCheckpoint {
            guard keySlots.writtenEnd >= c.keySlotEnd else {
                throw StorageError(.corrupted, "keys.slots ends before slot \(c.keySlotEnd), which the checkpoint covers: it was cut or replaced")
            }
            guard keySlots.durableEpoch >= c.journalEpoch else {
                if keySlots.holdsADamagedJournalKeySlot() {
                    throw StorageError(.corrupted, "a journal key's slot of keys.slots is damaged: its newest key is missing")
                }
                throw StorageError(.corrupted, "keys.slots holds an older journal key than the checkpoint's: it was replaced by an older copy")
            }
        }
        // The key slots of the groups kept, from their manifests, where a
        // power cut lost them (the key file is synced only before a
        // checkpoint): written back and synced before anything else.
        report.restoredKeySlots = try keySlots.restore(journaled)
        // The Merkle tree: the hashes of what the checkpoint covers, checked
        // against its root, then the replayed records' (recomputed: their
        // hashes may not have been synced).
        guard start.lsn >= 1 else { throw StorageError(.corrupted, "index.checkpoint names no next record") }
        var merkle = try MerkleLog(storage: merkleFile, leaves: start.lsn - 1)
        if let root = checkpoint?.treeRoot, report.usedCheckpoint, try merkle.root(size: start.lsn - 1) != root {
            // One damaged hash of the tree's right edge, which the open
            // reads, is restored where the checkpoint's root (under its
            // MAC) proves the value: recomputed from the subtree's
            // children, or, for a lone leaf, one changed byte.
            guard let (index, hash) = try MerkleTree.restoredFrontierHash(size: start.lsn - 1, root: root, read: merkleFile.read) else {
                throw StorageError(.corrupted, "merkle.hashes does not hold the tree the checkpoint recorded")
            }
            try configuration.files.write(
                hash, at: MerkleHashFile.headerSize + index * UInt64(MerkleTree.hashSize), of: merkleFile.file, site: .restorationWrite)
            try merkleFile.sync()
            merkle = try MerkleLog(storage: merkleFile, leaves: start.lsn - 1)
            report.restoredMerkleHash = index
            configuration.logger.error(
                "storage: a hash of merkle.hashes was damaged; restored from the checkpoint's root and written back",
                metadata: ["index": "\(index)"])
        }
        try merkle.append(leafHashes: leaves)
        try merkle.syncIfAppended()
        try restore(end, replayedFrom: start.segment, valid: valid, directory: directory, configuration: configuration, into: &s)
        guard merkle.size == s.nextLSN - 1 else {
            throw StorageError(.corrupted, "the Merkle tree has \(merkle.size) leaves for \(s.nextLSN - 1) records")
        }
        // A backup's copy cut short, now cut at its torn tail and synced
        // (above): a store like any other from here on, once its last
        // segment is at a length the engine leaves (`restore` extends it;
        // on a full disk it may not have: the mark stays, and the next
        // open extends it).
        if copyInProgress {
            if try s.segments[end.segment]!.file.size() % LogFormat.segmentLengthGranularity == 0 {
                try removeCopyMark(in: directory, observer: configuration.files.observer)
            } else {
                configuration.logger.warning("storage: a backup's copy stays marked until its last segment can be extended (disk full)")
            }
        }
        return (report, merkle)
    }

    /// Removes a backup copy's mark (`backup.copying`), durably: the open
    /// has cut the copy's torn tail, the folder is a store like any other.
    private static func removeCopyMark(in directory: String, observer: (any FileObserver)?) throws {
        try FileSystem.remove(directory + "/" + LogFormat.copyInProgressFileName, observer: observer)
        try FileSystem.syncDirectory(directory, observer: observer)
    }

    /// How many damaged durable records one open passes over before it
    /// refuses the store (``recover(directory:configuration:keySlots:merkleFile:into:)``):
    /// each costs a replay of the log after the checkpoint, and more than a
    /// few is a failing disk, not a flipped bit.
    static let damagedRecordLimit = 16

    /// The leaf hash `merkle.hashes` holds for the record of sequence
    /// number `lsn`, if it holds one (the committer writes it after the
    /// record's frame; a power cut may have lost it).
    private static func storedLeaf(_ lsn: UInt64, in file: MerkleHashFile) throws -> [UInt8]? {
        guard lsn >= 1 else { return nil }
        let index = MerkleTree.storedIndex(level: 0, index: lsn - 1)
        guard index < file.count else { return nil }
        let leaf = try file.read(index)
        // Zeros: never written (a file grown by a power cut), not a hash.
        return leaf.allSatisfy { $0 == 0 } ? nil : leaf
    }

    /// The frame header at `offset` of `segment`, genuine or restored
    /// (``LogFormat/genuineFrameHeader(_:salt:offset:authenticator:)``).
    private static func genuineHeader(
        at offset: UInt64, in segment: Segment, authenticator: (any LogAuthenticator)?
    ) throws -> (header: [UInt8], restored: Bool)? {
        LogFormat.genuineFrameHeader(
            try segment.file.read(count: LogFormat.frameHeaderSize, at: offset), salt: segment.salt, offset: offset,
            authenticator: authenticator)
    }

    /// The one byte of the payload of the frame at `offset` of `segment`
    /// (its header genuine, as read with `restorations`) whose restored
    /// value explains the payload's CRC and gives `leaf`: where it is in
    /// the segment, and that value; nil if no single byte does.
    private static func restoredPayloadByte(
        at offset: UInt64, in segment: Segment, restorations: [RecordLocation: [UInt8]], leaf: [UInt8],
        authenticator: (any LogAuthenticator)?
    ) throws -> (offset: UInt64, value: UInt8)? {
        var header = try segment.file.read(count: LogFormat.frameHeaderSize, at: offset)
        if let restored = restorations[RecordLocation(segment: segment.number, offset: offset, frameLength: UInt32(LogFormat.frameHeaderSize))] {
            header = restored
        }
        guard let f = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }), !f.isCompacted else { return nil }
        let length = LogFormat.frameLength(payloadCount: Int(f.payloadLength))
        guard length <= Int(UInt32.max) else { return nil }
        var frame = try segment.file.read(count: length, at: offset)
        guard frame.count == length else { return nil }
        frame.replaceSubrange(0..<LogFormat.frameHeaderSize, with: header)
        let start = LogFormat.frameHeaderSize
        guard let restored = LogEngineCore.restoredFrame(
            frame, at: RecordLocation(segment: segment.number, offset: offset, frameLength: UInt32(length)), in: segment,
            authenticator: authenticator, provenLeaf: { $0 == f.lsn ? leaf : nil })
        else { return nil }
        guard let i = (start..<(start + Int(f.payloadLength))).first(where: { frame[$0] != restored[$0] }) else { return nil }
        return (offset + UInt64(i), restored[i])
    }

    /// The frame header at `offset` of `segment` with its one damaged byte
    /// restored (``LogFormat/restoredFrameHeader(_:salt:offset:authenticator:)``).
    private static func restoredHeader(
        at offset: UInt64, in segment: Segment, authenticator: (any LogAuthenticator)?
    ) throws -> [UInt8]? {
        let header = try segment.file.read(count: LogFormat.frameHeaderSize, at: offset)
        return LogFormat.restoredFrameHeader(header, salt: segment.salt, offset: offset, authenticator: authenticator)
    }

    /// Where the valid log stops: its segment, offset and next LSN, and the
    /// offset of the first invalid frame after it, if any.
    typealias LogEnd = (segment: UInt32, offset: UInt64, lsn: UInt64, badOffset: Int?)

    /// The numbers of the segment files, oldest first, after removing the
    /// leftovers of a crash during a segment's creation.
    /// - Throws: ``StorageError/Code/corrupted`` if the log does not start
    ///   at segment 1 or has a gap.
    private static func segmentNumbers(in directory: String, observer: (any FileObserver)?) throws -> [UInt32] {
        let names = try FileSystem.list(directory)
        // A segment is created under a temporary name and renamed once its
        // header and preallocation are durable: a leftover is a crash during
        // creation, never data.
        for name in names where name.hasPrefix("segment-") && name.hasSuffix(".tmp") {
            try FileSystem.remove(directory + "/" + name, observer: observer)
        }
        let numbers = names.compactMap(LogFormat.segmentNumber(fromFileName:)).sorted()
        // The log starts at segment 1 (nothing compacts it yet): a log that
        // starts later lost its oldest segments.
        if let first = numbers.first, first != 1 {
            throw StorageError(.corrupted, "segment 1 is missing", segment: 1)
        }
        for (i, n) in numbers.enumerated() where n != numbers[0] + UInt32(i) {
            throw StorageError(.corrupted, "segment \(numbers[0] + UInt32(i)) is missing", segment: numbers[0] + UInt32(i))
        }
        return numbers
    }

    /// Opens every segment and checks its header. Segment files appear
    /// whole (renamed into place), so a bad header is damage, wherever it
    /// is; one flipped byte whose value is proven is restored and written
    /// back (``restoredSegmentHeader(_:number:file:configuration:)``).
    private static func openSegments(
        _ numbers: [UInt32], in directory: String, configuration: LogEngineConfiguration, into s: inout State
    ) throws -> [UInt32: LogFormat.SegmentHeader] {
        var headers: [UInt32: LogFormat.SegmentHeader] = [:]
        for n in numbers {
            let path = directory + "/" + LogFormat.segmentFileName(n)
            let file = try PosixFile.open(path, flags: O_RDWR, name: "segment \(n)", observer: configuration.files.observer)
            var bytes = try file.read(count: LogFormat.segmentHeaderSize, at: 0)
            if try LogFormat.decodeSegmentHeader(bytes).map({ $0.number != n }) ?? true {
                guard let restored = try restoredSegmentHeader(bytes, number: n, file: file, configuration: configuration) else {
                    throw StorageError(.corrupted, "segment header failed its checksum", segment: n, offset: 0)
                }
                try configuration.files.write(restored, at: 0, of: file, site: .restorationWrite)
                try configuration.files.sync(file, site: nil)
                configuration.logger.error(
                    "storage: a segment's header had a damaged byte; restored and written back", metadata: ["segment": "\(n)"])
                bytes = restored
            }
            guard let h = try LogFormat.decodeSegmentHeader(bytes), h.number == n else {
                throw StorageError(.corrupted, "segment header failed its checksum", segment: n, offset: 0)
            }
            // A file grows by preallocation up to its header's size: its
            // length says nothing of its records. What vouches for an older
            // segment being whole is a later segment holding data (checked
            // after replay) and the checkpoint.
            let length = try file.size()
            s.segments[n] = Segment(number: n, file: file, salt: h.salt, size: h.size, allocated: min(length, h.size))
            headers[n] = h
        }
        return headers
    }

    /// The header of segment `n` (`bytes` as read, failing its CRC) with one
    /// damaged byte restored, if exactly one single-byte change explains
    /// the CRC and its value is proven: bytes of known value (the magic,
    /// the version, the header's size, the segment's number, which its file
    /// name gives, the zeros), or, by the segment's first frame, whose
    /// header must pass its CRC and MAC under the restored salt and carry
    /// the restored first LSN (or the header says 0, a segment made ahead),
    /// the salt and the first LSN; the size, only if it is the
    /// configuration's segment size or the file's length. nil otherwise
    /// (without frame MACs, only known bytes).
    static func restoredSegmentHeader(
        _ bytes: [UInt8], number n: UInt32, file: PosixFile, configuration: LogEngineConfiguration
    ) throws -> [UInt8]? {
        let size = LogFormat.segmentHeaderSize
        guard bytes.count == size else { return nil }
        let frame = try file.read(count: LogFormat.frameHeaderSize, at: UInt64(size))
        let length = try file.size()
        let known = [0..<24, 56..<60]
        let (saltField, firstField, sizeField) = (24..<40, 40..<48, 48..<56)
        return CRC32C.uniqueSingleByteRepair(of: bytes, covered: 0..<(size - 4), storedAt: size - 4) { candidate -> Bool? in
            guard let h = try? LogFormat.decodeSegmentHeader(candidate), h.number == n,
                  candidate[12..<16].elementsEqual([UInt8(size), 0, 0, 0]), candidate[56..<60].allSatisfy({ $0 == 0 })
            else { return nil }
            // The byte changed: none when the CRC itself was the damage.
            guard let changed = (0..<(size - 4)).first(where: { candidate[$0] != bytes[$0] }) else { return true }
            if known.contains(where: { $0.contains(changed) }) { return true }
            if sizeField.contains(changed) {
                return h.size == configuration.segmentSize || h.size == length ? true : nil
            }
            guard saltField.contains(changed) || firstField.contains(changed), configuration.authenticator != nil,
                  frame.count == LogFormat.frameHeaderSize,
                  let f = frame.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: h.salt) }),
                  frame.withUnsafeBytes({
                      LogFormat.frameIsAuthentic($0, salt: h.salt, offset: UInt64(size), authenticator: configuration.authenticator)
                  }),
                  h.firstLSN == f.lsn || h.firstLSN == 0
            else { return nil }
            return true
        }?.bytes
    }

    /// A store writes its first checkpoint when it is created, before it
    /// takes any record, and replaces it only by renaming a newer one over
    /// it: a log without one lost it (a deleted file hides a cut or deleted
    /// newest segment). The one exception is a crash between segment 1 and
    /// that first checkpoint: segment 1 alone, as created (its first
    /// preallocation, zeros after the header).
    private static func checkFirstCheckpointWasNeverWritten(
        _ valid: [UInt32], configuration: LogEngineConfiguration, segments: [UInt32: Segment]
    ) throws {
        guard valid == [1], let first = segments[1],
              try first.file.size() == min(configuration.initialSegmentAllocation, first.size), try isEmpty(first)
        else {
            throw StorageError(.corrupted, "index.checkpoint is missing while the log holds records")
        }
    }

    /// Where replay starts: after the checkpoint when it is consistent with
    /// the segments (its index loaded into `s`), else at the log's start.
    /// The record it names as last must be there: a checkpoint only ever
    /// covers durable records, so a missing one is corruption, not a crash.
    /// An authenticated checkpoint that does not fit is corruption too; an
    /// unauthenticated one (the engine's own tests) is ignored.
    private static func startingPoint(
        checkpoint: Checkpoint?, headers: [UInt32: LogFormat.SegmentHeader], valid: [UInt32],
        configuration: LogEngineConfiguration, into s: inout State, report: inout RecoveryReport
    ) throws -> (segment: UInt32, offset: UInt64, lsn: UInt64) {
        var startSegment = valid[0]
        var startOffset = UInt64(LogFormat.segmentHeaderSize)
        var expected = headers[valid[0]]!.firstLSN
        // Only a segment after another is created ahead (first LSN 0).
        guard expected != 0 else {
            throw StorageError(.corrupted, "the first segment does not say where the log starts", segment: valid[0], offset: 0)
        }
        if let c = checkpoint {
            if let h = headers[c.segment], c.tail >= UInt64(LogFormat.segmentHeaderSize), c.tail <= h.size,
               c.tail % 8 == 0, c.nextLSN >= h.firstLSN
            {
                let size = try s.segments[c.segment]!.file.size()
                guard size >= c.tail else {
                    throw StorageError(.corrupted, "segment is shorter than the checkpoint says", segment: c.segment, offset: size)
                }
                if let last = c.last {
                    // Its header is what proves it there: genuine, or with
                    // one flipped byte its MAC proves restored. A damaged
                    // payload is that record's problem (`corrupted` when
                    // read), not the store's. An I/O error is thrown as it
                    // is, never taken for damage.
                    guard last.segment <= c.segment, let segment = s.segments[last.segment],
                          Int(last.frameLength) >= LogFormat.frameHeaderSize,
                          last.offset >= UInt64(LogFormat.segmentHeaderSize),
                          last.offset + UInt64(last.frameLength) <= min(try segment.file.size(), segment.size),
                          let (header, restored) = try genuineHeader(at: last.offset, in: segment, authenticator: configuration.authenticator),
                          let h = header.withUnsafeBytes({ LogFormat.decodeFrameHeader($0, salt: segment.salt) }),
                          h.lsn < c.nextLSN, LogFormat.frameLength(payloadCount: Int(h.payloadLength)) == Int(last.frameLength)
                    else {
                        throw StorageError(
                            .corrupted, "a record covered by the checkpoint is missing or damaged",
                            segment: last.segment, offset: last.offset)
                    }
                    if restored {
                        // Proven by its MAC: written back, synced.
                        try configuration.files.write(header, at: last.offset, of: segment.file, site: .restorationWrite)
                        try configuration.files.sync(segment.file, site: nil)
                        report.restoredRecords.append((last.segment, last.offset))
                        configuration.logger.error(
                            "storage: a durable record had a damaged byte in its header, payload or padding; restored and written back",
                            metadata: ["segment": "\(last.segment)", "offset": "\(last.offset)"])
                    }
                }
                s.index = c.index
                s.chunks = c.chunks
                s.landmarks = c.landmarks
                startSegment = c.segment
                startOffset = c.tail
                expected = c.nextLSN
                report.usedCheckpoint = true
            } else if configuration.authenticator != nil {
                throw StorageError(.corrupted, "index.checkpoint does not fit the segments", segment: c.segment, offset: c.tail)
            } else {
                configuration.logger.warning("storage: checkpoint does not fit the segments; replaying the whole log")
            }
        }

        return (startSegment, startOffset, expected)
    }

    /// Replays the segments from `start`, segment by segment, until the end
    /// of the valid log: the index of `s` follows every complete atomic
    /// group. Returns where the valid log ends, the bytes of the segment
    /// it ends in, and the key slots the complete groups' manifests carry
    /// (of the journal's current epoch), and, when the log stops at a frame
    /// whose header fails its checksum or whose genuine header is followed
    /// by a damaged payload, that frame. Records of `tolerating` (sequence
    /// number: the leaf hash to use) are kept although their payload is
    /// damaged; the bytes of `restorations` are read as given there.
    private static func replay(
        from start: (segment: UInt32, offset: UInt64, lsn: UInt64), headers: [UInt32: LogFormat.SegmentHeader],
        valid: [UInt32], keySlots: KeySlotFile, configuration: LogEngineConfiguration, tolerating tolerated: [UInt64: [UInt8]],
        restorations: [RecordLocation: [UInt8]], copyInProgress: Bool, into s: inout State, report: inout RecoveryReport
    ) throws -> (LogEnd, [UInt8], [(number: UInt64, bytes: [UInt8])], [UInt8], Damage?) {
        var damage: Damage?
        var journaled: [(number: UInt64, bytes: [UInt8])] = []
        var leaves: [UInt8] = []
        let (startSegment, startOffset) = (start.segment, start.offset)
        var expected = start.lsn
        var end: LogEnd = (startSegment, startOffset, expected, nil)
        var endData: [UInt8] = []
        replay: for n in valid where n >= startSegment {
            let segment = s.segments[n]!
            let h = headers[n]!
            // A segment created ahead of need (first LSN 0) continues the
            // previous one: its first frame, if it has one, says which LSN
            // it expected, as a header's first LSN does.
            var first = h.firstLSN
            if n != startSegment && first == 0 {
                first = try firstFrameLSN(of: segment) ?? expected
            }
            if n != startSegment && first != expected {
                guard first > expected else {
                    throw StorageError(.corrupted, "segment does not continue the sequence", segment: n, offset: 0)
                }
                // The previous segment ended before records that this one
                // expected: the rest of a crash while switching segments, or
                // lost records (then something testifies below).
                break replay
            }
            let fileSize = try segment.file.size()
            var data = try segment.file.read(count: Int(min(fileSize, segment.size)), at: 0)
            for (location, bytes) in restorations where location.segment == n && Int(location.offset) + bytes.count <= data.count {
                data.replaceSubrange(Int(location.offset)..<(Int(location.offset) + bytes.count), with: bytes)
            }
            var offset = Int(n == startSegment ? startOffset : UInt64(LogFormat.segmentHeaderSize))
            var group: [(StreamID, RecordLocation)] = []
            var groupChunks: [(UInt64, RecordLocation)] = []
            var groupLandmarks: [(UInt64, RecordLocation)] = []
            var groupSlots: [(number: UInt64, bytes: [UInt8])] = []
            var groupLeaves: [UInt8] = []
            var groupStart = (offset: offset, lsn: expected)
            var forged: Int?
            var cutShort: Int?
            var badManifest: (offset: Int, error: StorageError)?
            var bad: Int? = data.withUnsafeBytes { raw -> Int? in
                while true {
                    if offset + LogFormat.frameHeaderSize > raw.count {
                        return raw[offset...].allSatisfy({ $0 == 0 }) ? nil : offset
                    }
                    let headerBytes = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + LogFormat.frameHeaderSize)])
                    if headerBytes.allSatisfy({ $0 == 0 }) { return nil }
                    guard let f = LogFormat.decodeFrameHeader(headerBytes, salt: segment.salt) else {
                        damage = Damage(kind: .header, lsn: nil, segment: n, offset: UInt64(offset))
                        return offset
                    }
                    // A header whose CRC matches was written whole: a wrong
                    // MAC (an edit by someone without the key, or a frame
                    // copied from another place) is not a torn write, and
                    // is never cut as one.
                    guard LogFormat.frameIsAuthentic(
                        headerBytes, salt: segment.salt, offset: UInt64(offset), authenticator: configuration.authenticator)
                    else {
                        forged = offset
                        return offset
                    }
                    guard f.lsn == expected else { return offset }
                    let length = LogFormat.frameLength(payloadCount: Int(f.payloadLength))
                    // No frame the engine writes is this long (a record's
                    // size is bounded far below): one that says so under an
                    // authentic header is damage, never a torn write.
                    guard length <= Int(UInt32.max) else {
                        forged = offset
                        return offset
                    }
                    guard length <= raw.count - offset else {
                        // Every frame is written into space already
                        // extended and synced (`allocate`), so no crash
                        // leaves a file that ends inside one: a genuine
                        // frame cut by the end of a file shorter than its
                        // segment is a file cut short from outside, records
                        // lost with it. Unless a backup's copy is being
                        // written into this folder (or was cut short): its
                        // writes end anywhere, a torn tail.
                        if !copyInProgress, UInt64(raw.count) < segment.size { cutShort = offset }
                        return offset
                    }
                    let payload = UnsafeRawBufferPointer(
                        rebasing: raw[(offset + LogFormat.frameHeaderSize)..<(offset + LogFormat.frameHeaderSize + Int(f.payloadLength))])
                    var keptLeaf: [UInt8]?
                    let paddingStart = offset + LogFormat.frameHeaderSize + Int(f.payloadLength)
                    if LogFormat.payloadCRC(payload) != f.payloadCRC {
                        guard let leaf = tolerated[f.lsn], !f.isSlotManifest else {
                            damage = Damage(kind: .payload(slotManifest: f.isSlotManifest), lsn: f.lsn, segment: n, offset: UInt64(offset))
                            return offset
                        }
                        keptLeaf = leaf
                    } else if !raw[paddingStart..<(offset + length)].allSatisfy({ $0 == 0 }) {
                        damage = Damage(
                            kind: .padding(at: UInt64(paddingStart), count: offset + length - paddingStart), lsn: f.lsn, segment: n,
                            offset: UInt64(offset))
                        return offset
                    }
                    // A group's key slots, as its manifest carries them: written
                    // back (where missing) if the whole group is kept.
                    if f.isSlotManifest {
                        do {
                            groupSlots.append(contentsOf: try keySlots.openManifest(payload))
                        } catch {
                            badManifest = (offset, (error as? StorageError) ?? StorageError(.corrupted, "a key-slot manifest is damaged"))
                            return offset
                        }
                    }
                    // A compacted frame's leaf is the one its body
                    // keeps; a compacted body the engine cannot have written
                    // under a genuine header is damage, never a torn write.
                    guard let leaf = keptLeaf ?? LogFormat.leafHash(
                        of: f, payload: payload, salt: segment.salt, offset: UInt64(offset), authenticator: configuration.authenticator)
                    else {
                        forged = offset
                        return offset
                    }
                    groupLeaves += leaf
                    let location = RecordLocation(segment: n, offset: UInt64(offset), frameLength: UInt32(length))
                    if f.lsn % landmarkInterval == 0 { groupLandmarks.append((f.lsn, location)) }
                    if let stream = f.stream {
                        group.append((stream, location))
                    } else if !f.isSlotManifest {
                        groupChunks.append((f.lsn, location))
                    }
                    expected += 1
                    offset += length
                    report.replayedRecords += 1
                    if !f.groupContinues {
                        for (stream, loc) in group { s.index[stream] = loc }
                        for (lsn, loc) in groupChunks { s.chunks.append(lsn, at: loc) }
                        for (lsn, loc) in groupLandmarks { s.landmarks.append(lsn, at: loc) }
                        journaled.append(contentsOf: groupSlots)
                        leaves += groupLeaves
                        groupLeaves.removeAll()
                        group.removeAll()
                        groupChunks.removeAll()
                        groupLandmarks.removeAll()
                        groupSlots.removeAll()
                        groupStart = (offset, expected)
                    }
                }
            }
            if let badManifest {
                throw StorageError(badManifest.error.code, badManifest.error.message, segment: n, offset: UInt64(badManifest.offset))
            }
            if let forged {
                throw StorageError(
                    .corrupted, "a frame failed authentication, or its authenticated header gives a length no frame has", segment: n,
                    offset: UInt64(forged))
            }
            if let cutShort {
                throw StorageError(
                    .corrupted, "the segment file ends inside a record: it was cut short, and the records from there on are lost",
                    segment: n, offset: UInt64(cutShort))
            }
            // A length the engine never leaves (not a multiple of
            // `segmentLengthGranularity`): the file was cut from outside,
            // at a record's end or inside a header as well, and what
            // followed is lost. A backup's copy being written ends
            // anywhere: its torn tail.
            if !copyInProgress, fileSize % LogFormat.segmentLengthGranularity != 0 {
                throw StorageError(
                    .corrupted, "the segment file was cut short (the store never leaves it at this length): records from there on may be lost",
                    segment: n, offset: fileSize)
            }
            // Bytes after a segment's last whole group that decode as no
            // frame header, where the next segment's first frame (genuine:
            // its CRC and MAC) is the very record expected here: unused
            // space damaged (a flipped byte after the last frame), never a
            // lost record, since no record is missing from the sequence.
            // Passed over, reported, and zeroed once replay is done (so
            // that every later walk of the log ends the segment there).
            if let b = bad, b == groupStart.offset, forged == nil, badManifest == nil, case .header? = damage?.kind,
               let next = valid.first(where: { $0 > n }), let nextSegment = s.segments[next]
            {
                let first = try genuineHeader(
                    at: UInt64(LogFormat.segmentHeaderSize), in: nextSegment, authenticator: configuration.authenticator)
                let nextFirst = first?.header.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: nextSegment.salt)?.lsn }
                if nextFirst == groupStart.lsn {
                    bad = nil
                    damage = nil
                    report.damagedUnusedSpace.append((n, UInt64(b)))
                    configuration.logger.warning(
                        "storage: damaged bytes after a segment's last record, passed over", metadata: ["segment": "\(n)", "offset": "\(b)"])
                }
            }
            // Records of an unfinished atomic group do not count.
            expected = groupStart.lsn
            end = (n, UInt64(groupStart.offset), groupStart.lsn, bad ?? (group.isEmpty ? nil : groupStart.offset))
            endData = data
            if end.badOffset != nil { break replay }
        }

        return (end, endData, journaled, leaves, damage.flatMap { end.badOffset.map(UInt64.init) == $0.offset && end.segment == $0.segment ? $0 : nil })
    }

    /// The frame where replay stopped: its header failed its checksum, or
    /// its genuine header is followed by a payload (or padding) that fails
    /// its checksum.
    struct Damage {
        enum Kind {
            /// The header fails its CRC.
            case header
            /// The payload fails its CRC under a genuine header.
            case payload(slotManifest: Bool)
            /// The payload is whole, the padding after it (`count` bytes
            /// at `at`) is not zeros.
            case padding(at: UInt64, count: Int)
        }
        var kind: Kind
        /// The frame's LSN, where its header is genuine.
        var lsn: UInt64?
        var segment: UInt32
        var offset: UInt64
    }

    /// `end` is where the valid log stops. Anything after it is a torn
    /// tail, unless a later valid frame testifies that the record expected
    /// there had been durable: then it is corruption. A torn tail is cut:
    /// later segments go, the end segment is truncated.
    private static func cutAfter(
        _ end: LogEnd, data endData: [UInt8], valid: [UInt32], directory: String, configuration: LogEngineConfiguration,
        into s: inout State, report: inout RecoveryReport
    ) throws {
        let observer = configuration.files.observer
        let junkAfterEnd = end.badOffset != nil || firstNonZero(endData, from: Int(end.offset)) != nil
        try checkNothingDurableFollows(
            lsn: end.lsn, badSegment: end.segment, badOffset: end.badOffset ?? Int(end.offset),
            data: junkAfterEnd ? endData : [], numbers: valid, segments: s.segments)
        let laterSegments = valid.filter { $0 > end.segment }
        let endFile = s.segments[end.segment]!
        if junkAfterEnd || !laterSegments.isEmpty {
            // Cut: later segments hold nothing durable, so they go; the end
            // segment is truncated and preallocated again, which leaves zeros
            // (never stale frames) after the end.
            // Newest first, each removal made durable before the next: a
            // crash in the middle leaves a log without a gap in its numbers.
            for n in laterSegments.reversed() {
                s.segments[n] = nil
                try FileSystem.remove(directory + "/" + LogFormat.segmentFileName(n), observer: observer)
                try FileSystem.syncDirectory(directory, observer: observer)
                report.removedSegments.append(n)
            }
            // Cut at the next multiple of `segmentLengthGranularity`,
            // zeros written from the log's end to it (first: a crash
            // between the two leaves zeros or the torn bytes, never a
            // length the engine does not leave). Outside a backup's copy
            // the file is at such a length already, so the cut never
            // extends it; a copy shorter than that is extended by
            // `restore`.
            let fileSize = try endFile.file.size()
            let granularity = LogFormat.segmentLengthGranularity
            let cut = (end.offset + granularity - 1) / granularity * granularity
            if fileSize > end.offset {
                try endFile.file.write([UInt8](repeating: 0, count: Int(min(fileSize, cut) - end.offset)), at: end.offset)
            }
            if fileSize > cut { try endFile.file.truncate(to: cut) }
            report.truncatedAt = (end.segment, end.offset)
            configuration.logger.notice("storage: cut a torn tail (writes never acknowledged)", metadata: ["segment": "\(end.segment)", "offset": "\(end.offset)"])
        }
    }

    /// Restores the preallocation (a cut shortened the file) with the
    /// reserve after the end; best effort: on a full disk the store opens
    /// with what it has (reads use what is preallocated). Then makes
    /// everything replayed durable: after a process crash it may still be
    /// only in the page cache, and new frames will say it is durable.
    private static func restore(
        _ end: LogEnd, replayedFrom startSegment: UInt32, valid: [UInt32], directory: String,
        configuration: LogEngineConfiguration, into s: inout State
    ) throws {
        let endFile = s.segments[end.segment]!
        let wanted = roundUp(max(endFile.allocated, end.offset + configuration.reserve), within: endFile.size)
        do {
            try configuration.files.extend(endFile.file, upTo: wanted)
            s.segments[end.segment]?.allocated = wanted
        } catch let error as StorageError where error.code == .diskFull {
            s.segments[end.segment]?.allocated = min(try endFile.file.size(), endFile.size)
            configuration.logger.warning("storage: opened without the audit reserve (disk full)")
        }
        for n in valid where n >= startSegment && n <= end.segment {
            if let file = s.segments[n]?.file { try configuration.files.sync(file, site: nil) }
        }
        try FileSystem.syncDirectory(directory, observer: configuration.files.observer)
        s.current = end.segment
        s.tail = end.offset
        s.nextLSN = end.lsn
    }

    /// Whether a segment holds nothing but zeros after its header.
    private static func isEmpty(_ segment: Segment) throws -> Bool {
        let length = min(try segment.file.size(), segment.size)
        let bytes = try segment.file.read(count: Int(length), at: 0)
        return firstNonZero(bytes, from: LogFormat.segmentHeaderSize) == nil
    }

    /// The LSN of a segment's first frame, if its first frame header is
    /// whole (checksum); nil for an empty segment or a torn first frame
    /// (which replay then judges like any other).
    private static func firstFrameLSN(of segment: Segment) throws -> UInt64? {
        let start = UInt64(LogFormat.segmentHeaderSize)
        guard try segment.file.size() >= start + UInt64(LogFormat.frameHeaderSize) else { return nil }
        let bytes = try segment.file.read(count: LogFormat.frameHeaderSize, at: start)
        return bytes.withUnsafeBytes { LogFormat.decodeFrameHeader($0, salt: segment.salt)?.lsn }
    }

    /// The offset of the first non-zero byte at or after `from`, if any.
    /// `memcmp` against blocks of zeros: it runs over most of a segment at
    /// every open.
    static func firstNonZero(_ data: [UInt8], from: Int) -> Int? {
        data.firstNonZero(from: from)
    }

    /// Throws corruption if a valid frame after the bad one says that the
    /// bad one (sequence `lsn`) had already been made durable.
    private static func checkNothingDurableFollows(
        lsn: UInt64, badSegment: UInt32, badOffset: Int, data: [UInt8], numbers: [UInt32], segments: [UInt32: Segment]
    ) throws {
        let corruption = StorageError(
            .corrupted, "a damaged record is followed by records written after it was durable",
            segment: badSegment, offset: UInt64(badOffset))
        if !data.isEmpty, testifies(data: data, from: badOffset + 8, salt: segments[badSegment]!.salt, lsn: lsn) {
            throw corruption
        }
        for n in numbers where n > badSegment {
            let segment = segments[n]!
            let later = try segment.file.read(count: Int(min(try segment.file.size(), segment.size)), at: 0)
            // Frames go to a newer segment only once every frame of the
            // older ones is written and synced: a later segment holding
            // anything but zeros after its header vouches that the log was
            // whole up to its start.
            if firstNonZero(later, from: LogFormat.segmentHeaderSize) != nil {
                throw StorageError(
                    .corrupted, "the log ends before segment \(n), which holds records written after it was whole",
                    segment: badSegment, offset: UInt64(badOffset))
            }
            if testifies(data: later, from: LogFormat.segmentHeaderSize, salt: segments[n]!.salt, lsn: lsn) { throw corruption }
        }
    }

    /// Whether a frame after `damage`, whose header passes its CRC and its
    /// MAC, records that `lsn` (the damaged frame's) was durable: what
    /// makes a damaged payload kept rather than cut as a torn write. A
    /// header that passes its CRC alone (anyone can write one) never
    /// counts here.
    private static func authenticallyTestified(
        _ lsn: UInt64, after damage: Damage, data: [UInt8], numbers: [UInt32], segments: [UInt32: Segment],
        authenticator: (any LogAuthenticator)?
    ) throws -> Bool {
        guard let segment = segments[damage.segment] else { return false }
        if testifies(data: data, from: Int(damage.offset) + 8, salt: segment.salt, lsn: lsn, authenticator: authenticator, required: true) {
            return true
        }
        for n in numbers where n > damage.segment {
            let later = segments[n]!
            let bytes = try later.file.read(count: Int(min(try later.file.size(), later.size)), at: 0)
            if testifies(data: bytes, from: LogFormat.segmentHeaderSize, salt: later.salt, lsn: lsn, authenticator: authenticator, required: true) {
                return true
            }
        }
        return false
    }

    /// Whether any valid frame header at an 8-byte boundary from `from`
    /// records that `lsn` was durable.
    /// With `required`, the header's MAC must pass too (with an
    /// authenticator; without one, nothing is ever authentic enough).
    private static func testifies(
        data: [UInt8], from: Int, salt: [UInt8], lsn: UInt64, authenticator: (any LogAuthenticator)? = nil, required: Bool = false
    ) -> Bool {
        var position = (from + 7) & ~7
        return data.withUnsafeBytes { raw in
            while position + LogFormat.frameHeaderSize <= raw.count {
                let header = UnsafeRawBufferPointer(rebasing: raw[position..<(position + LogFormat.frameHeaderSize)])
                if raw.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian == LogFormat.frameMagic,
                   let h = LogFormat.decodeFrameHeader(header, salt: salt),
                   h.durableThrough > lsn,
                   !required || (authenticator != nil
                       && LogFormat.frameIsAuthentic(header, salt: salt, offset: UInt64(position), authenticator: authenticator))
                {
                    return true
                }
                position += 8
            }
            return false
        }
    }
}
