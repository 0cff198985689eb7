#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto
import VaultSync

extension LogEngine {
    /// Copies a consistent state of the running log into `directory` (new
    /// or empty): its first `n` records, `n` being the records durable when
    /// the copy starts, which it returns. Writers go on meanwhile.
    ///
    /// - `keys.slots` is synced and copied whole while no key slot is being
    ///   destroyed (``destructions``): every destruction the copy shows
    ///   follows a record among the first `n` (an erasure's tombstone is
    ///   durable before its slots are destroyed), and slots written for
    ///   later records are in it unused.
    /// - The segments are copied through the end of record `n` (a group's
    ///   end: the log ends there in the copy), `merkle.hashes` through the
    ///   hashes of the tree of `n` leaves.
    /// - No `index.checkpoint`: the copy is opened once with
    ///   ``LogEngineConfiguration/replaysWithoutCheckpoint``, which replays
    ///   it and writes one (``finishBackup(in:configuration:)``).
    ///
    /// Cost: one read and one write of every byte of the log through
    /// record `n`, and of the key file.
    /// - Throws: ``StorageError/Code/io`` (also for a `directory` that holds
    ///   files), ``StorageError/Code/diskFull``.
    package func backup(to directory: String) async throws -> UInt64 {
        try FileSystem.createDirectory(directory)
        guard try FileSystem.list(directory).isEmpty else {
            throw StorageError(.io, "the backup folder is not empty")
        }
        let records: UInt64 = try await destructions.withGate {
            let records = durableRecordCount
            try core.keySlots.syncIfWritten()
            try Self.copy(core.keySlots.file, bytes: nil, to: directory + "/" + LogFormat.keyFileName)
            return records
        }
        try core.merkle.syncIfAppended()
        guard let merkle = core.merkle.storage as? MerkleHashFile else {
            throw StorageError(.io, "the Merkle tree is not in a file")
        }
        let hashBytes = MerkleHashFile.headerSize + MerkleTree.storedCount(leaves: records) * UInt64(MerkleTree.hashSize)
        try Self.copy(merkle.file, bytes: hashBytes, to: directory + "/" + MerkleHashFile.fileName)
        // Where record `records` ends; segments after its own are not copied.
        var end: RecordLocation?
        if records > 0, let start = try core.scanStart(forSequence: records) {
            try core.scan(from: start, only: { _ in true }) { frame in
                if frame.sequence == records { end = frame.location }
                return frame.sequence < records
            }
            guard end != nil else { throw StorageError(.corrupted, "the log has no record \(records)") }
        }
        let segments = core.state.withLock { s in s.segments.map { ($0.key, $0.value.file) } }.sorted { $0.0 < $1.0 }
        for (number, file) in segments {
            let bytes: UInt64?
            if let end {
                guard number <= end.segment else { break }
                bytes = number == end.segment ? end.offset + UInt64(end.frameLength) : nil
            } else {
                // No record: the first segment's header alone.
                guard number == segments[0].0 else { break }
                bytes = UInt64(LogFormat.segmentHeaderSize)
            }
            try Self.copy(file, bytes: bytes, to: directory + "/" + LogFormat.segmentFileName(number))
        }
        try FileSystem.syncDirectory(directory)
        return records
    }

    /// Opens a copy made by ``backup(to:)`` once, replaying its log, which
    /// writes its `index.checkpoint`; a copy whose log does not replay is
    /// `corrupted`.
    package static func finishBackup(in directory: String, configuration: LogEngineConfiguration) async throws {
        var c = configuration
        c.replaysWithoutCheckpoint = true
        let engine = try LogEngine.open(directory: directory, configuration: c)
        try await engine.close()
    }

    /// Copies `file` (its first `bytes`, or all of it) into a new file at
    /// `path`, then syncs it.
    private static func copy(_ file: PosixFile, bytes: UInt64?, to path: String) throws {
        let total = try bytes ?? file.size()
        let out = try PosixFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL, name: "backup copy")
        var offset: UInt64 = 0
        while offset < total {
            let chunk = try file.read(count: Int(min(1 << 20, total - offset)), at: offset)
            guard !chunk.isEmpty else { throw StorageError(.io, "a file ended while it was copied") }
            try out.write(chunk, at: offset)
            offset += UInt64(chunk.count)
        }
        try out.sync()
    }
}
