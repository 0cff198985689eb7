#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import VaultCrypto

// MARK: - Checkpoint of the index

extension LogEngineCore {
    struct Checkpoint {
        var segment: UInt32
        var tail: UInt64
        var nextLSN: UInt64
        var last: RecordLocation?
        var index: StreamIndex
        var chunks = SequenceTable()
        var landmarks = SequenceTable()
        /// The root of the Merkle tree of the `nextLSN - 1` records it covers.
        var treeRoot: [UInt8] = MerkleTree.emptyTreeHash
        /// The end of the key slots written when it was taken (synced
        /// before it): `keys.slots` must reach at least this far at the
        /// next open, or it was cut or replaced (``KeySlotFile/writtenEnd``).
        var keySlotEnd: UInt64 = 0
        /// The epoch of the newest journal key `keys.slots` held when it
        /// was taken (synced: every owed settling is done first): an
        /// older one at the next open is an older copy of the file.
        var journalEpoch: UInt64 = 0
    }

    /// Writes a checkpoint of every record the committer has written
    /// (``snapshot(_:)``), on its thread, once they are synced: it covers
    /// exactly what is durable on disk.
    func checkpointWritten(_ written: Written) throws {
        guard let (checkpoint, bytes) = snapshot(written) else { return }
        try latching {
            // The checkpoint moves replay past groups whose key slots the
            // journal would write back, and whose Merkle hashes recovery
            // would recompute: those are synced first.
            try keySlots.syncIfWritten()
            try merkle.syncIfAppended()
            try LogEngineCore.writeCheckpoint(
                checkpoint, directory: directory, authenticator: configuration.authenticator, files: configuration.files)
        }
        state.withLock { $0.bytesSinceCheckpoint -= min($0.bytesSinceCheckpoint, bytes) }
        logger.debug("storage: checkpoint written", metadata: ["streams": "\(checkpoint.index.count)"])
    }

    /// The index of every record the committer has written, taken on its
    /// thread between two groups, and the bytes it covers of those
    /// appended since the last checkpoint. With nothing queued, the log's
    /// end is where the next group goes; otherwise groups are queued
    /// (placed, not yet written) behind the committer's last write, which
    /// is then its end: the index and tables hold written records only,
    /// and the queued groups' bytes count towards the next checkpoint.
    func snapshot(_ written: Written) -> (Checkpoint, UInt64)? {
        state.withLock { s -> (Checkpoint, UInt64)? in
            let idle = s.queue.isEmpty && s.queuedHeads.isEmpty
            let end = idle ? (segment: s.current, tail: s.tail, nextLSN: s.nextLSN)
                : (segment: written.end.segment, tail: written.end.offset, nextLSN: written.lsn + 1)
            let queued = s.queue.reduce(UInt64(0)) { $0 + $1.byteCount }
            guard let root = try? merkle.root(size: end.nextLSN - 1) else { return nil }
            let last = s.index.isEmpty ? nil : lastLocation(s)
            return (
                Checkpoint(
                    segment: end.segment, tail: end.tail, nextLSN: end.nextLSN, last: last, index: s.index, chunks: s.chunks,
                    landmarks: s.landmarks, treeRoot: root, keySlotEnd: keySlots.writtenEnd, journalEpoch: keySlots.durableEpoch),
                s.bytesSinceCheckpoint - min(queued, s.bytesSinceCheckpoint))
        }
    }

    /// The newest location in the index (a stream head is the newest record
    /// of its stream; the newest head is the newest indexed record).
    private func lastLocation(_ s: State) -> RecordLocation? {
        s.index.newest
    }

    /// `magic(8) version(4) reserved(4) segment(4) reserved(4) tail(8)
    /// nextLSN(8) lastRaw(8) lastLength(4) reserved(4) count(8)`, then
    /// `count` entries `stream(32) raw(8) length(4) reserved(4)`, then
    /// `chunkCount(8)` and as many chunks `lsn(8) raw(8) length(4)
    /// reserved(4)` in LSN order, then `landmarkCount(8)` and as many
    /// landmarks of the same form, then `treeRoot(32) keySlotEnd(8)
    /// journalEpoch(8)`, then a 16-byte MAC of everything before
    /// it (zeros without an authenticator), then a CRC-32C of everything
    /// before that.
    static func writeCheckpoint(
        _ c: Checkpoint, directory: String, authenticator: (any LogAuthenticator)?, files: any LogFiles
    ) throws {
        let bytes = encodeCheckpoint(c, authenticator: authenticator)
        let path = directory + "/" + LogFormat.checkpointFileName
        let temporary = path + ".tmp"
        let observer = files.observer
        let file = try PosixFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, name: "checkpoint", observer: observer)
        do {
            try files.write(bytes, at: 0, of: file, site: .checkpointWrite)
            try files.sync(file, site: .checkpointSync)
            try FileSystem.rename(temporary, path, observer: observer)
        } catch {
            // A partial temporary file (a full disk) is never read; remove it.
            try? FileSystem.remove(temporary, observer: observer)
            throw error
        }
        try FileSystem.syncDirectory(directory, observer: observer)
    }

    /// The bytes of `index.checkpoint` for `c` (``writeCheckpoint``'s
    /// format).
    static func encodeCheckpoint(_ c: Checkpoint, authenticator: (any LogAuthenticator)?) -> [UInt8] {
        var w = ByteWriter(capacity: 96 + c.index.count * LogFormat.checkpointEntrySize + (c.chunks.count + c.landmarks.count) * LogFormat.checkpointChunkSize)
        w.write(bytes: LogFormat.checkpointMagic)
        w.write(LogFormat.version)
        w.write(UInt32(0))
        w.write(c.segment)
        w.write(UInt32(0))
        w.write(c.tail)
        w.write(c.nextLSN)
        w.write(c.last?.raw ?? 0)
        w.write(c.last?.frameLength ?? 0)
        w.write(UInt32(0))
        w.write(UInt64(c.index.count))
        for (stream, location) in c.index {
            w.write(stream.w0); w.write(stream.w1); w.write(stream.w2); w.write(stream.w3)
            w.write(location.raw)
            w.write(location.frameLength)
            w.write(UInt32(0))
        }
        for table in [c.chunks, c.landmarks] {
            w.write(UInt64(table.count))
            for (lsn, location) in table.entries {
                w.write(lsn)
                w.write(location.raw)
                w.write(location.frameLength)
                w.write(UInt32(0))
            }
        }
        w.write(bytes: c.treeRoot)
        w.write(c.keySlotEnd)
        w.write(c.journalEpoch)
        if let authenticator {
            w.write(bytes: w.bytes.withUnsafeBytes { authenticator.tag($0) })
        } else {
            w.writeZeros(LogFormat.macSize)
        }
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// The bytes of the segment files in `directory`, preallocated space
    /// included.
    private static func segmentBytes(in directory: String) throws -> UInt64 {
        var total: UInt64 = 0
        for name in try FileSystem.list(directory) where LogFormat.segmentNumber(fromFileName: name) != nil {
            var info = stat()
            guard stat(directory + "/" + name, &info) == 0 else {
                throw StorageError(.io, "a segment's size could not be read", errno: errno)
            }
            total &+= UInt64(max(0, info.st_size))
        }
        return total
    }

    /// Reads the checkpoint; nil if absent. A checkpoint is written to a
    /// temporary file, synced and renamed into place, so it is never torn:
    /// one that fails its checksum is damage.
    /// - Parameter lenient: the engine's own tests and a deliberate replay
    ///   (``LogEngineConfiguration/replaysWithoutCheckpoint``): a checkpoint
    ///   that fails its checksum is then ignored and the whole log replayed.
    /// - Throws: ``StorageError/Code/corrupted`` if its checksum fails (not
    ///   lenient), or if its checksum matches but its MAC does not: it was
    ///   rewritten by someone without the key (moving a stream's head back
    ///   would silently undo its newest records).
    static func readCheckpoint(
        directory: String, authenticator: (any LogAuthenticator)?, lenient: Bool, logger: Logger, files: (any LogFiles)? = nil
    ) throws -> Checkpoint? {
        let path = directory + "/" + LogFormat.checkpointFileName
        guard FileSystem.exists(path) else { return nil }
        let file = try PosixFile.open(path, flags: O_RDONLY, name: "checkpoint")
        let size = try file.size()
        // Never larger than the log it indexes: an entry per stream, chunk
        // or landmark, each smaller than the record it names. A file past
        // that (garbage appended) is refused before it is read into memory.
        guard size <= 2 * (try segmentBytes(in: directory)) + (1 << 20) else {
            if lenient { return nil }
            throw StorageError(.corrupted, "index.checkpoint is larger than the log it indexes")
        }
        let bytes = try file.read(count: Int(size), at: 0)
        guard let checkpoint = try decodeCheckpoint(bytes, authenticator: authenticator, logger: logger) else {
            guard lenient else {
                // A flipped byte (a crash never leaves it torn): restored
                // only when the MAC proves the one value that fits.
                if let restored = restoredCheckpoint(bytes, authenticator: authenticator) {
                    // Written back whole (the same bytes it had). On a
                    // full disk the restored one serves from memory; any
                    // other failed write or sync fails the open.
                    if let files {
                        do {
                            try writeCheckpoint(restored, directory: directory, authenticator: authenticator, files: files)
                        } catch let error as StorageError where error.code == .diskFull {
                            logger.warning("storage: the restored index.checkpoint could not be written back (disk full)")
                        }
                    }
                    logger.error("storage: index.checkpoint had a damaged byte; restored and written back, its CRC and MAC proving the value")
                    return restored
                }
                throw StorageError(.corrupted, "index.checkpoint failed its checksum")
            }
            return nil
        }
        return checkpoint
    }

    /// The checkpoint `bytes` held before one of its bytes was flipped:
    /// the one candidate among the single-byte errors that explain its
    /// checksum's mismatch (``CRC32C/singleByteErrors(syndrome:count:)``,
    /// or the stored checksum itself off by one byte) whose MAC verifies.
    /// Nil without an authenticator (a CRC alone proves no repair), for
    /// more than one such candidate, or for a file above 1 GiB (the search
    /// costs a CRC and one table step per byte).
    static func restoredCheckpoint(_ bytes: [UInt8], authenticator: (any LogAuthenticator)?) -> Checkpoint? {
        guard authenticator != nil, bytes.count >= 68 + LogFormat.macSize, bytes.count <= 1 << 30 else { return nil }
        return CRC32C.uniqueSingleByteRepair(of: bytes, covered: 0..<(bytes.count - 4), storedAt: bytes.count - 4) {
            try? decodeCheckpoint($0, authenticator: authenticator)
        }?.result
    }

    /// Decodes the bytes of a checkpoint file; nil if they are too short,
    /// fail their checksum or are malformed (see ``readCheckpoint``).
    /// - Throws: ``StorageError/Code/corrupted`` if the checksum matches but
    ///   the MAC does not.
    static func decodeCheckpoint(_ bytes: [UInt8], authenticator: (any LogAuthenticator)?, logger: Logger? = nil) throws -> Checkpoint? {
        guard bytes.count >= 68 + LogFormat.macSize else { return nil }
        let crcOffset = bytes.count - 4
        let body = crcOffset - LogFormat.macSize
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: crcOffset, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<crcOffset])) == stored else {
            logger?.debug("storage: checkpoint checksum failed; replaying the whole log")
            return nil
        }
        if let authenticator {
            let authentic = bytes.withUnsafeBytes { raw in
                authenticator.verify(
                    UnsafeRawBufferPointer(rebasing: raw[0..<body]), stored: UnsafeRawBufferPointer(rebasing: raw[body..<crcOffset]))
            }
            guard authentic else {
                throw StorageError(.corrupted, "index.checkpoint failed authentication")
            }
        }
        do {
            return try bytes.withUnsafeBytes { raw in
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<body]))
                guard try r.read(count: 8) == LogFormat.checkpointMagic else { throw ByteReader.Malformed() }
                guard try r.read(UInt32.self) == LogFormat.version else { throw ByteReader.Malformed() }
                _ = try r.read(UInt32.self)
                let segment: UInt32 = try r.read()
                _ = try r.read(UInt32.self)
                let tail: UInt64 = try r.read()
                let nextLSN: UInt64 = try r.read()
                let lastRaw: UInt64 = try r.read()
                let lastLength: UInt32 = try r.read()
                _ = try r.read(UInt32.self)
                let count: UInt64 = try r.read()
                guard count <= UInt64(r.remaining / LogFormat.checkpointEntrySize) else { throw ByteReader.Malformed() }
                var index = StreamIndex(minimumCapacity: Int(count))
                for _ in 0..<count {
                    let stream = StreamID(w0: try r.read(), w1: try r.read(), w2: try r.read(), w3: try r.read())
                    let locRaw: UInt64 = try r.read()
                    let length: UInt32 = try r.read()
                    _ = try r.read(UInt32.self)
                    // The index traps on a zero length (its empty-slot mark).
                    guard length > 0 else { throw ByteReader.Malformed() }
                    index[stream] = RecordLocation(raw: locRaw, frameLength: length)
                }
                // The chunk table, then the landmarks (every 256th LSN): in
                // LSN order, below the next LSN, each somewhere (segments
                // count from 1).
                func table(every interval: UInt64) throws -> SequenceTable {
                    let count: UInt64 = try r.read()
                    guard count <= UInt64(r.remaining / LogFormat.checkpointChunkSize) else { throw ByteReader.Malformed() }
                    var table = SequenceTable()
                    for _ in 0..<count {
                        let lsn: UInt64 = try r.read()
                        let raw: UInt64 = try r.read()
                        let length: UInt32 = try r.read()
                        _ = try r.read(UInt32.self)
                        guard length > 0, raw != 0, lsn < nextLSN, lsn % interval == 0,
                              table.append(lsn, at: RecordLocation(raw: raw, frameLength: length))
                        else { throw ByteReader.Malformed() }
                    }
                    return table
                }
                let chunks = try table(every: 1)
                let landmarks = try table(every: LogEngineCore.landmarkInterval)
                let treeRoot = try r.read(count: MerkleTree.hashSize)
                let keySlotEnd: UInt64 = try r.read()
                let journalEpoch: UInt64 = try r.read()
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return Checkpoint(
                    segment: segment, tail: tail, nextLSN: nextLSN,
                    last: lastLength == 0 ? nil : RecordLocation(raw: lastRaw, frameLength: lastLength), index: index,
                    chunks: chunks, landmarks: landmarks, treeRoot: treeRoot, keySlotEnd: keySlotEnd, journalEpoch: journalEpoch)
            }
        } catch {
            logger?.debug("storage: checkpoint malformed; replaying the whole log")
            return nil
        }
    }
}
