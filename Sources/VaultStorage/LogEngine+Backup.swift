#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VaultCrypto
import Synchronization
import VaultSync

extension LogEngine {
    /// The suffix of the files a backup writes aside before renaming them
    /// over the folder's (`keys.slots.new`, `index.checkpoint.new`): a
    /// backup cut short may leave them; a restore removes the key file's.
    package static let asideSuffix = ".new"
    /// The name of the key file a backup writes aside.
    package static var keyFileAside: String { LogFormat.keyFileName + asideSuffix }

    /// Copies a consistent state of the running log into `directory`: its
    /// first `n` records, `n` being the records durable when the copy
    /// starts, which it returns. Writers go on meanwhile.
    ///
    /// - `keys.slots` is synced and copied whole while no key slot is being
    ///   destroyed (``copyKeyFile(to:afterCopy:)``): every destruction the copy shows
    ///   follows a record among the first `n` (an erasure's record is
    ///   durable before its slots' tombstones are written), and slots
    ///   written for later records are in it unused.
    /// - The segments are copied through the end of record `n` (a group's
    ///   end: the log ends there in the copy), `merkle.hashes` through the
    ///   hashes of the tree of `n` leaves.
    /// - An `index.checkpoint` of the records durable before the end was
    ///   chosen, taken by the committer (``LogEngineCore/requestIndexSnapshot()``),
    ///   when the segment it names was copied: the copy is opened once with
    ///   ``LogEngineConfiguration/replaysWithoutCheckpoint``, which replays
    ///   what follows it (all of the log without it) and writes its own
    ///   (``finishBackup(in:configuration:records:)``).
    ///
    /// **Incremental**: with `previous`, `directory` holds a copy this
    /// method made of the first `previous` records (the layer above has
    /// checked its signed checkpoint against this log). Only what follows
    /// is copied: the segments before the one where record `previous`
    /// ends are kept as they are, that one is extended from that record's
    /// end, later ones are copied, and so is `merkle.hashes` from the
    /// previous tree's hashes; `keys.slots` is copied again whole (slots
    /// are destroyed in place), aside, then renamed over the old one. A
    /// segment the previous copy's opening made ahead is removed first, and
    /// so is its `index.checkpoint` unless it ends within the previous
    /// copy's records (it then stays until the new one is renamed over it):
    /// a copy cut short still restores to the previous checkpoint, with
    /// the key slots destroyed since already tombstones.
    ///
    /// `progress`, if given, is called on the copying thread after each
    /// step of segments copied (1 MiB, or 128 KiB beside writers), with
    /// the bytes copied and their total.
    ///
    /// Cost: one read and one write of every byte of the log through
    /// record `n` (after `previous` when incremental), and of the key file.
    /// - Throws: ``StorageError/Code/io`` (also for a `directory` that holds
    ///   files and no `previous`), ``StorageError/Code/diskFull``.
    /// - Parameter hold: the folder's hold (``holdBackupFolder(_:fresh:)``),
    ///   when the caller keeps it beyond the copy (to write its own files
    ///   into the folder before it lets an open in); nil: the copy takes
    ///   one and releases it when it ends.
    package func backup(
        to directory: String, after previous: UInt64? = nil, holding hold: BackupFolderHold? = nil,
        progress: (@Sendable (_ copied: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        // Never while a compaction rewrites frames: the copy is of whole
        // frames. Not begun once the store is closing.
        try await maintenance.withGate {
            if core.closeRequested.load(ordering: .relaxed) { throw StorageError(.closed, "the store is closing") }
            return try await copyForBackup(to: directory, after: previous, hold: hold, progress: progress)
        }
    }

    /// Creates a backup's folder if needed (refusing one that holds files
    /// when `fresh`: no previous backup there) and takes its hold
    /// (``BackupFolderHold``). Blocking.
    /// - Throws: ``StorageError/Code/locked`` for a folder open as a store,
    ///   ``StorageError/Code/io``.
    package static func holdBackupFolder(_ directory: String, fresh: Bool) throws -> BackupFolderHold {
        try FileSystem.createDirectory(directory)
        if fresh {
            guard try FileSystem.list(directory).isEmpty else { throw StorageError(.io, "the backup folder is not empty") }
            // A folder made by an earlier attempt killed before its
            // parent's sync: its name made durable before a copy goes in.
            try FileSystem.syncParent(of: directory)
        }
        return try BackupFolderHold(directory)
    }

    /// Whether `name` is a file a backup or a restore writes into its
    /// folder: a store's files, the copy's marks and checkpoint, their
    /// temporary names, the lock. A refused first backup removes these,
    /// and nothing else its folder may hold.
    package static func isCopyFile(_ name: String, checkpointName: String, markName: String) -> Bool {
        let base = name.components(separatedBy: ".new").first ?? name
        return LogFormat.segmentNumber(fromFileName: name) != nil
            || [
                "LOCK", StoreFolder.headerFileName, LogFormat.keyFileName, keyFileAside, MerkleHashFile.fileName,
                LogFormat.checkpointFileName, LogFormat.copyInProgressFileName, checkpointName, markName,
            ].contains(base)
    }

    /// The copy, its blocking parts (every file copied, synced) run off
    /// the cooperative pool (``inBackground(_:)``): writers'
    /// tasks keep their threads while it runs.
    private func copyForBackup(
        to directory: String, after previous: UInt64?, hold given: BackupFolderHold?, progress: (@Sendable (UInt64, UInt64) -> Void)?
    ) async throws -> UInt64 {
        let core = core
        // The index of every durable record, from the committer (after
        // its current group): written into the copy, whose first open
        // then replays only the groups written after it, not the log
        // since the store's last checkpoint (up to `checkpointInterval`
        // bytes, hashed on one thread while the writers want the cores).
        // It covers durable records only, so none beyond the copy's end,
        // chosen after it.
        let snapshot = try await core.requestIndexSnapshot().wait()
        let own = given == nil ? try await inBackground { try LogEngine.holdBackupFolder(directory, fresh: previous == nil) } : nil
        defer { own?.release() }
        let records = try await inBackground { [self] in try copyKeyFile(to: directory + "/" + LogFormat.keyFileName) }
        try await inBackground { [self] in
            try copyLog(through: records, to: directory, after: previous, index: snapshot, progress: progress)
        }
        return records
    }

    /// Copies `keys.slots` to `path` and returns the records durable
    /// before the copy began: no destruction wrote the key file during
    /// the copy, so every tombstone it shows follows a record among them
    /// (the committer writes a destruction's tombstones only once every
    /// record before it is durable), and no rotation's settling was owed,
    /// so the copy never holds a journal key an acknowledged rotation
    /// still owes its replacement (the key that sealed an erased slot's
    /// copies in the log). Optimistic first, up to three copies
    /// (the committer is not held: ``LogEngineCore/destructionEpoch`` tells
    /// whether a destruction ran meanwhile; one running, or a settling
    /// owed, when a copy would start is waited for, up to a second, without
    /// counting); then once more holding ``LogEngineCore/keyFileCopy``, so
    /// that a destruction, or a replacement of the older journal key, waits
    /// for that copy's reads and writes (the whole file, preallocated space
    /// included) and for the settling still owed, which it finishes first;
    /// the committer's other syncs never wait for it. The store's key file is synced
    /// first (a failed sync stops the store, as every failed sync does);
    /// the copy reads what the page cache holds. Blocking. `afterCopy`
    /// runs after each optimistic copy, before its check (tests).
    func copyKeyFile(to path: String, afterCopy: () -> Void = {}) throws -> UInt64 {
        let core = core
        // Copied aside, synced, then renamed over the previous copy's: an
        // incremental backup cut short leaves the folder its previous key
        // file, whole.
        let temporary = path + LogEngine.asideSuffix
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        func copy(syncing: Bool) throws -> UInt64 {
            let records = durableRecordCount
            if FileSystem.exists(temporary) { try FileSystem.remove(temporary) }
            try LogEngine.copy(core.keySlots.file, bytes: nil, to: temporary, syncing: syncing)
            return records
        }
        func install(_ records: UInt64) throws -> UInt64 {
            try FileSystem.rename(temporary, path)
            try FileSystem.syncDirectory(folder)
            return records
        }
        try core.latching { try core.keySlots.syncIfWritten() }
        var copies = 0
        var waited = 0
        while copies < 3 {
            let before = core.destructionEpoch.load(ordering: .sequentiallyConsistent)
            let busy = before % 2 == 1 || core.keySlots.rotationOwed
            if busy && waited < 10_000 {
                waited += 1
                usleep(100)
                continue
            }
            copies += 1
            guard !busy else { continue }
            let records = try copy(syncing: true)
            afterCopy()
            if core.destructionEpoch.load(ordering: .sequentiallyConsistent) == before { return try install(records) }
        }
        let records = try core.keyFileCopy.withLock { _ throws in
            // A rotation's settling the committer has not finished, finished
            // here (the committer's steps hold this lock too).
            try core.latching { while core.keySlots.rotationOwed { try core.keySlots.settleStep() } }
            return try copy(syncing: false)
        }
        try PosixFile.open(temporary, flags: O_WRONLY, name: "backup copy").sync()
        return try install(records)
    }

    /// The log's part of ``copyForBackup(to:after:)``, blocking: the
    /// tree's hashes, the segments through record `records` (from the end
    /// of record `previous` when incremental), and the log's index.
    private func copyLog(
        through records: UInt64, to directory: String, after previous: UInt64?, index: LogEngineCore.Checkpoint?,
        progress: (@Sendable (UInt64, UInt64) -> Void)?
    ) throws {
        let previous = previous.map { min($0, records) }
        // Until the copy's index is in place, the folder says that its log
        // is being written: a copy cut short ends its segments anywhere,
        // inside a record too, which recovery otherwise refuses as a file
        // cut short from outside.
        let copying = directory + "/" + LogFormat.copyInProgressFileName
        try StoreFolder.writeDurably([], named: LogFormat.copyInProgressFileName, in: directory)
        // A failed sync stops the store, as every failed sync does.
        try core.latching { try core.merkle.syncIfAppended() }
        guard let merkle = core.merkle.storage as? MerkleHashFile else {
            throw StorageError(.io, "the Merkle tree is not in a file")
        }
        let hashBytes = MerkleHashFile.headerSize + MerkleTree.storedCount(leaves: records) * UInt64(MerkleTree.hashSize)
        let hashesFrom = previous.map { MerkleHashFile.headerSize + MerkleTree.storedCount(leaves: $0) * UInt64(MerkleTree.hashSize) } ?? 0
        try LogEngine.copy(merkle.file, bytes: hashBytes, to: directory + "/" + MerkleHashFile.fileName, from: hashesFrom)
        let end = try recordEnd(records)
        // Where the previous copy ended: segments before its own are kept.
        let kept: (segment: UInt32, offset: UInt64)? = try previous.flatMap { p in
            try recordEnd(p).map { ($0.segment, $0.offset + UInt64($0.frameLength)) }
        }
        // The previous copy's index (what opening it made) stays until the
        // log's own replaces it, once the segments are copied: until then
        // the folder restores to its previous checkpoint (its segments
        // are only extended). It goes first unless it covers no more than
        // the previous copy's records and ends at or before their end (an
        // open of the copy as a store, a verified backup's, appends an
        // activity mark after them, which this copy overwrites), or if it
        // does not decode.
        let copiedIndex = directory + "/" + LogFormat.checkpointFileName
        if FileSystem.exists(copiedIndex) {
            let old = previous == nil ? nil : try? LogEngineCore.readCheckpoint(
                directory: directory, authenticator: core.configuration.authenticator, lenient: true, logger: core.logger)
            let keeps = old.map { index -> Bool in
                guard let previous, index.nextLSN - 1 <= previous else { return false }
                guard let kept else { return index.segment <= 1 && index.tail <= UInt64(LogFormat.segmentHeaderSize) }
                return index.segment < kept.segment || (index.segment == kept.segment && index.tail <= kept.offset)
            } ?? false
            if !keeps { try FileSystem.remove(copiedIndex) }
        }
        if previous != nil {
            // What opening the previous copy made: any segment after the
            // one that ended it.
            for name in try FileSystem.list(directory) {
                guard let number = LogFormat.segmentNumber(fromFileName: name) else { continue }
                if number > (kept?.segment ?? 0) { try FileSystem.remove(directory + "/" + name) }
            }
        }
        // What to copy of each segment (its first `bytes`, from `from`),
        // planned first so that progress knows the total.
        let segments = core.state.withLock { s in s.segments.map { ($0.key, $0.value.file, $0.value.size) } }.sorted { $0.0 < $1.0 }
        var plan: [(number: UInt32, file: PosixFile, bytes: UInt64, from: UInt64, length: UInt64)] = []
        for (number, file, size) in segments {
            let bytes: UInt64
            if let end {
                guard number <= end.segment else { break }
                bytes = number == end.segment ? end.offset + UInt64(end.frameLength) : try file.size()
            } else {
                // No record: the first segment's header alone.
                guard number == segments[0].0 else { break }
                bytes = UInt64(LogFormat.segmentHeaderSize)
            }
            if let kept, number < kept.segment { continue }
            // Zeros after the bytes copied, to a length the engine leaves
            // (`LogFormat.segmentLengthGranularity`): an open of the copy
            // takes any other length for a file cut short.
            plan.append((
                number, file, bytes, kept.flatMap { number == $0.segment ? $0.offset : nil } ?? 0,
                LogEngineCore.roundUp(bytes, within: max(size, bytes))))
        }
        let total = plan.reduce(UInt64(0)) { $0 + ($1.bytes - min($1.from, $1.bytes)) }
        var done: UInt64 = 0
        for segment in plan {
            // A segment new to the copy is written under a temporary name
            // and renamed once synced, as the engine makes its own: a copy
            // cut short (a power cut included) never leaves a segment
            // without its header, which no open could read past. (Recovery
            // removes a `segment-*.tmp` left behind.) The segment the
            // previous copy ended in is extended in place.
            let path = directory + "/" + LogFormat.segmentFileName(segment.number)
            let target = segment.from == 0 ? path + ".tmp" : path
            if segment.from == 0, FileSystem.exists(target) { try FileSystem.remove(target) }
            try LogEngine.copy(
                segment.file, bytes: segment.bytes, to: target, from: segment.from, length: segment.length,
                activity: { [core] in core.durableSyncs.load(ordering: .relaxed) }
            ) { copied in
                done += copied
                progress?(done, total)
            }
            if segment.from == 0 {
                try FileSystem.rename(target, path)
                try FileSystem.syncDirectory(directory)
            }
        }
        // The index, if it names only records and segments the copy holds
        // (one taken just after a segment switch names a segment with no
        // record yet): else the copy's open replays the whole log.
        if let index, index.nextLSN - 1 <= records, FileSystem.exists(directory + "/" + LogFormat.segmentFileName(index.segment)) {
            // Aside, synced, renamed over the previous copy's: never torn.
            let bytes = LogEngineCore.encodeCheckpoint(index, authenticator: core.configuration.authenticator)
            try StoreFolder.writeDurably(bytes, named: LogFormat.checkpointFileName + Self.asideSuffix, in: directory)
            try FileSystem.rename(copiedIndex + Self.asideSuffix, copiedIndex)
        }
        try FileSystem.syncDirectory(directory)
        try FileSystem.remove(copying)
        try FileSystem.syncDirectory(directory)
    }

    /// Where record `sequence` is (nil for 0: no record).
    private func recordEnd(_ sequence: UInt64) throws -> RecordLocation? {
        guard sequence > 0 else { return nil }
        var end: RecordLocation?
        // By the frames' headers alone: the payloads are the copy's to read.
        if let start = try core.scanStart(forSequence: sequence) {
            try core.walkFrames(from: start) { location, header, _ in
                if header.lsn == sequence { end = location }
                return header.lsn < sequence
            }
        }
        guard let end else { throw StorageError(.corrupted, "the log has no record \(sequence)") }
        return end
    }

    /// Opens a copy made by ``backup(to:)`` once, replaying its log (which
    /// writes its `index.checkpoint`), and returns the root of its Merkle
    /// tree of `records` leaves, for the caller to compare with the
    /// backup's checkpoint. Nothing is appended to the copy.
    /// - Throws: ``StorageError/Code/corrupted`` for a copy whose log does
    ///   not replay or holds fewer than `records` records.
    package static func finishBackup(
        in directory: String, configuration: LogEngineConfiguration, records: UInt64
    ) async throws -> [UInt8] {
        var c = configuration
        c.replaysWithoutCheckpoint = true
        // Its checkpoint records no newer journal key than the store's file,
        // which the next incremental backup copies over this one's.
        c.rotatesJournalKeyAtOpen = false
        // A replay is blocking work: off the cooperative pool.
        let engine = try await inBackground { [c] in try LogEngine.open(directory: directory, configuration: c) }
        do {
            guard engine.durableRecordCount >= records else {
                throw StorageError(.corrupted, "the copy holds \(engine.durableRecordCount) of its \(records) records")
            }
            let root = try engine.merkleTree.root(size: records)
            try await engine.close()
            return root
        } catch {
            try? await engine.close()
            throw error
        }
    }

    /// The copy's step on its own: large reads and writes, the device's
    /// bandwidth.
    static let copyChunk = 1 << 20
    /// The copy's step while the store's writers sync: a small one, so
    /// that a deposit's `fdatasync` waits behind at most two of them.
    static let copyChunkBesideWriters = 128 << 10
    /// How long the copy rests after a step during which writers synced,
    /// in multiples of the step's time: beside writers it has the device
    /// a third of the time.
    static let copyRest = 2.0

    /// Copies `file` (its first `bytes`, or all of it) into a new file at
    /// `path`, or, from `start` on, into the file already there (which is
    /// then cut at `bytes`); with `length`, zeros follow the bytes copied
    /// up to it; then syncs it.
    ///
    /// Paced by the device: each step's writeback starts once it is
    /// written, and the one before is waited for, so that the copy never
    /// queues more than two steps of writes ahead of the store's own syncs
    /// (one large flush at the end would make every deposit's `fdatasync`
    /// wait behind it). With `activity` (the engine's count of durable
    /// syncs), a step during which writers synced is followed by small
    /// steps and a rest twice as long as the step took (``copyRest``):
    /// beside writers, the copy has the device a third of the time (as PostgreSQL's
    /// `vacuum_cost_delay` or RocksDB's rate limiter hold back background
    /// work), and alone it goes at full speed.
    fileprivate static func copy(
        _ file: PosixFile, bytes: UInt64?, to path: String, from start: UInt64 = 0, length: UInt64? = nil,
        activity: (() -> UInt64)? = nil, syncing: Bool = true, copied: (UInt64) -> Void = { _ in }
    ) throws {
        let total = try bytes ?? file.size()
        let flags = start == 0 ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY
        let out = try PosixFile.open(path, flags: flags, name: "backup copy")
        var offset = start
        var previous: (offset: UInt64, length: UInt64)?
        var besideWriters = false
        while offset < total {
            let began = ContinuousClock.now
            let syncs = activity?()
            let step = besideWriters ? copyChunkBesideWriters : copyChunk
            let chunk = try file.read(count: Int(min(UInt64(step), total - offset)), at: offset)
            guard !chunk.isEmpty else { throw StorageError(.io, "a file ended while it was copied") }
            try out.write(chunk, at: offset)
            try out.writeBack(offset: offset, length: UInt64(chunk.count), wait: false)
            if let previous { try out.writeBack(offset: previous.offset, length: previous.length, wait: true) }
            previous = (offset, UInt64(chunk.count))
            offset += UInt64(chunk.count)
            copied(UInt64(chunk.count))
            besideWriters = syncs != nil && activity?() != syncs
            if besideWriters {
                let spent = ContinuousClock.now - began
                Thread.sleep(forTimeInterval: copyRest * (Double(spent.components.seconds) + Double(spent.components.attoseconds) / 1e18))
            }
        }
        // Written zeros, not a hole: frames later written there need no
        // new block (a full disk would refuse it).
        let final = max(length ?? total, total)
        if final > total { try out.write([UInt8](repeating: 0, count: Int(final - total)), at: total) }
        if start > 0 { try out.truncate(to: final) }
        if syncing { try out.sync() }
    }
}

/// A backup's hold on its folder while it writes the copy's files: the
/// exclusive `flock`s a store's open takes (on `LOCK`, and on the folder
/// itself), so that the folder is not opened as a store beside the copy
/// (its recovery would cut what the copy is still writing, and the copy
/// would then overwrite what that store acknowledged), and no copy is
/// written into a folder open as a store. Released before the copy's own
/// open (``LogEngine/finishBackup(in:configuration:records:)``).
package final class BackupFolderHold: Sendable {
    private let lockFile: PosixFile
    private let folder: PosixFile

    init(_ directory: String) throws {
        lockFile = try PosixFile.open(directory + "/LOCK", flags: O_RDWR | O_CREAT, name: "LOCK")
        folder = try PosixFile.open(directory, flags: O_RDONLY | O_DIRECTORY, name: "the backup's folder")
        guard try lockFile.tryLockExclusive(), try folder.tryLockExclusive() else {
            throw StorageError(.locked, "the backup's folder is open as a store")
        }
    }

    /// Lets a store's open take the folder (the descriptors close with
    /// this value). Releasing twice does nothing more.
    package func release() {
        lockFile.unlock()
        folder.unlock()
    }
}
