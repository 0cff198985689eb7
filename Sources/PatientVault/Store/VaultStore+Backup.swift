import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage
import VaultSync

extension VaultStore {
    // MARK: - Online backup and restore

    /// The file in a backup folder that holds the backup's signed checkpoint.
    public static let backupCheckpointFileName = "backup.checkpoint"

    /// The file a restore writes first into its target and removes last,
    /// once the copy is checked: an open of a folder that holds it throws
    /// ``PatientVaultError/Code/corrupted`` (a restore killed midway left
    /// part of a backup there). A restore into a folder that holds it
    /// clears the folder first.
    public static let restoreMarkerFileName = "restore.incomplete"

    /// Copies a consistent state of this store, while it runs, into
    /// `folder`: every record durable when the copy starts, nothing after,
    /// with a signed checkpoint of exactly those records (also written to
    /// the folder as ``backupCheckpointFileName``). Writers go on
    /// meanwhile; a copy of the key file that an erasure overlapped is
    /// made again, and after three such copies once more holding erasures
    /// off: an erasure during that last copy waits for it (and the writes
    /// queued behind it too).
    ///
    /// **Incremental**: a `folder` that holds an earlier backup of this
    /// store (its ``backupCheckpointFileName`` signed by this store, and
    /// its tree a prefix of this store's) is brought up to date: only the
    /// records since that backup are copied (and the key file again, whose
    /// slots erasures destroy in place). A new or empty `folder` gets a
    /// full copy. The new checkpoint replaces the old one last, by a
    /// rename: a backup cut short leaves the previous checkpoint, and
    /// running it again finishes it.
    ///
    /// The copy is paced by the device, and while writers sync it takes
    /// small steps and rests between them (it has the device a third of
    /// the time; alone, it goes at full speed). Its log is then opened once
    /// before this returns: replayed from the index the store's committer
    /// handed over when the copy began (the few records since, each
    /// hashed again and checked as recovery checks them), and its Merkle
    /// tree (the copied `merkle.hashes`) must be the one the checkpoint
    /// signs. That check does not read the records the index covers: with
    /// `verifyingEveryRecord`, the copy's log is opened once more (its
    /// engine alone: nothing is appended to the copy) and every record
    /// read and hashed again against the checkpoint (as
    /// ``verify(against:)`` does), which
    /// ``restore(from:to:key:configuration:)`` always does on the restored
    /// store. The folder is a store: restore it (opening it in place as a
    /// store appends an activity mark after the checkpoint's records).
    /// Cost: a read and a write of the log since the previous backup (all
    /// of it the first time) and of the key file, and a replay of the
    /// records written during the copy; with
    /// `verifyingEveryRecord`, a read and BLAKE2b of the whole copy.
    ///
    /// `progress`, for a progress bar, is called with the fraction done
    /// (0 to 1): after each step of the log copied (1 MiB, or 128 KiB
    /// beside busy writers), then, with
    /// `verifyingEveryRecord`, after each batch verified (the copy counts
    /// for half), and with 1 at the end. It is called on the copying
    /// thread: it must return quickly.
    ///
    /// The host's operation, as ``checkpoint()`` and ``verify(against:)``
    /// are: no principal, no access decision and no audit entry (the copy
    /// holds every vault's trail as it was).
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a store in
    ///   memory or on PostgreSQL, a `folder` that is the store's own folder
    ///   by any path (a symbolic link, `..`), inside it or holding it, or a
    ///   folder whose backup is of another store or not a prefix of this
    ///   one; ``PatientVaultError/Code/io``
    ///   (a folder that holds files and no backup),
    ///   ``PatientVaultError/Code/storeLocked`` (an earlier backup's folder
    ///   open as a store),
    ///   ``PatientVaultError/Code/diskFull``.
    @discardableResult
    public func backup(
        to folder: URL, verifyingEveryRecord: Bool = false, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(PatientVaultError) -> SignedCheckpoint {
        // Under the key gate: a master-key rotation never runs between the
        // copy and its header, and `close()` wipes no key this backup
        // still uses (it waits for it).
        do {
            return try await keyGate.withGate {
                try await backupUnderKeyGate(to: folder, verifyingEveryRecord: verifyingEveryRecord, progress: progress)
            }
        } catch let error as PatientVaultError {
            throw error
        } catch {
            throw PatientVaultError.wrapping(error)
        }
    }

    private func backupUnderKeyGate(
        to folder: URL, verifyingEveryRecord: Bool, progress: (@Sendable (Double) -> Void)?
    ) async throws(PatientVaultError) -> SignedCheckpoint {
        try ensureOpen()
        guard let engine = engine as? LogEngine, rootKey != nil, location.isFileURL else {
            throw PatientVaultError(.invalidArgument, "a store in memory or on PostgreSQL has no files to back up (back the database up with its own tools)")
        }
        let directory = folder.path
        // Compared as folders, not as strings: `store/.`, a trailing slash,
        // `..` or a symbolic link name the store's own folder too, and an
        // incremental backup there would delete and truncate the live
        // store's files. A folder inside the store, or one holding it, is
        // refused as well.
        guard !FileSystem.overlap(directory, location.path) else {
            throw PatientVaultError(.invalidArgument, "a store is not backed up into its own folder, a folder inside it or one that holds it")
        }
        // The key that signs is one whose record the copy holds (a rotation
        // during the copy comes after it).
        let signer = signingKeys.current
        let previous = try previousBackup(in: folder)
        // The copy is the whole of the progress, or its first half when
        // every record is verified after it.
        let copyShare: Double = verifyingEveryRecord ? 0.5 : 1.0
        var copying: (@Sendable (UInt64, UInt64) -> Void)?
        if let progress {
            copying = { (copied: UInt64, total: UInt64) in
                progress(total == 0 ? copyShare : copyShare * Double(copied) / Double(total))
            }
        }
        // The folder held as a store's open holds it, from before the
        // copy until its header is written: no open of it runs beside a
        // half-written backup, and no backup is written into a folder open
        // as a store. (Its checkpoint comes last, once the copy passed its
        // checks.)
        let hold = try await translatingErrorsAsync { try await inBackground { try LogEngine.holdBackupFolder(directory, fresh: previous == nil) } }
        let checkpoint: SignedCheckpoint
        do throws(PatientVaultError) {
            defer { hold.release() }
            let records = try await translatingErrorsAsync { [copying] in
                try await engine.backup(to: directory, after: previous, holding: hold, progress: copying)
            }
            // The header as it is now (the same root key, the same master key).
            guard let header = try StoreHeader.read(directory: location.path) else {
                throw PatientVaultError(.corrupted, "the store's header is missing")
            }
            try header.write(directory: directory)
            let root = try translatingErrors { try engine.merkleTree.root(size: records) }
            checkpoint = try translatingErrors {
                try SignedCheckpoint.sign(
                    TreeHead(origin: checkpointOrigin, size: records, rootHash: root), name: checkpointOrigin, key: signer)
            }
            // The copy replayed once (its index written): its tree, which the
            // replay checked against the records it replayed and the index it
            // was given, must be the tree the checkpoint signs.
            // The engine's settings as the store's own (a store of small
            // segments has a small record limit too).
            var c = LogEngineConfiguration()
            c.segmentSize = configuration.segmentSize
            c.maximumRecordSize = configuration.contentChunkSize + Limits.recordOverhead
            c.reserve = configuration.effectiveAuditReserve
            c.authenticator = LogMAC(key: keys.log)
            // The copy's opens never make its journal key newer than the
            // store's file, which the next incremental backup copies over it.
            c.rotatesJournalKeyAtOpen = false
            hold.release()
            let copiedRoot = try await translatingErrorsAsync {
                try await LogEngine.finishBackup(in: directory, configuration: c, records: records)
            }
            guard copiedRoot == checkpoint.treeHead.rootHash else {
                throw PatientVaultError(.corrupted, "the copy does not hold the tree of the backup's checkpoint")
            }
            // With `verifyingEveryRecord`, the copy's log is opened again (as
            // an engine: nothing is appended to it, as a store's open and close
            // would) and every record read and hashed again.
            if verifyingEveryRecord {
                let head = checkpoint.treeHead
                let copy = try await translatingErrorsAsync { [c] in
                    try await inBackground { try LogEngine.open(directory: directory, configuration: c) }
                }
                var verifying: (@Sendable (Double) -> Void)?
                if let progress { verifying = { (done: Double) in progress(0.5 + done / 2) } }
                do throws(PatientVaultError) {
                    try await Self.verifyLog(of: copy, extending: head, progress: verifying)
                } catch {
                    try? await copy.close()
                    throw error
                }
                try await translatingErrorsAsync { try await copy.close() }
            }
            // Only a copy that passed its checks gets its checkpoint: written
            // aside, then renamed over the previous one (never torn), the
            // folder held again meanwhile. A copy that failed them leaves the
            // previous checkpoint, from which the next backup starts again, not
            // one for bytes it refused (its records past that checkpoint are
            // an unchecked extension, as an incremental backup cut short
            // leaves).
            let final = try await translatingErrorsAsync { try await inBackground { try LogEngine.holdBackupFolder(directory, fresh: false) } }
            defer { final.release() }
            try translatingErrors {
                try StoreFolder.writeDurably(Array(checkpoint.text.utf8), named: Self.backupCheckpointFileName + ".new", in: directory)
                try FileSystem.rename(
                    directory + "/" + Self.backupCheckpointFileName + ".new", directory + "/" + Self.backupCheckpointFileName)
                try FileSystem.syncDirectory(directory)
            }
        } catch {
            // A first backup that failed, its copy or its checks: the
            // folder was empty, and is again (else every retry would find
            // it not empty, without a checkpoint to extend).
            // Held meanwhile: never under a store someone opened there. The
            // backup's own files only, whatever else appeared meanwhile.
            if previous == nil {
                let checkpointName = Self.backupCheckpointFileName, markName = Self.restoreMarkerFileName
                _ = try? await inBackground {
                    let emptying = try LogEngine.holdBackupFolder(directory, fresh: false)
                    defer { emptying.release() }
                    for name in try FileSystem.list(directory)
                    where LogEngine.isCopyFile(name, checkpointName: checkpointName, markName: markName) {
                        try? FileSystem.remove(directory + "/" + name)
                    }
                }
            }
            throw error
        }
        progress?(1)
        logger.info("patientvault: backup made", metadata: ["records": "\(checkpoint.treeHead.size)"])
        return checkpoint
    }

    /// The text of a backup checkpoint file: nil when there is none; a nil
    /// text for a file no checkpoint can be (larger than
    /// `SignedCheckpoint.maximumSize`, not UTF-8), read no further than
    /// that bound, whatever the folder holds.
    static func checkpointText(at file: URL) -> String?? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        guard let handle = try? FileHandle(forReadingFrom: file) else { return .some(nil) }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: SignedCheckpoint.maximumSize + 1), data.count <= SignedCheckpoint.maximumSize
        else { return .some(nil) }
        return .some(String(validating: data, as: UTF8.self))
    }

    /// The number of records of the backup in `folder`, if it holds one of
    /// this store: its checkpoint signed by one of this store's keys, and
    /// its root the root of this store's tree at that size (the copy is a
    /// prefix of this log). Nil for a folder without a backup checkpoint.
    func previousBackup(in folder: URL) throws(PatientVaultError) -> UInt64? {
        let file = folder.appendingPathComponent(Self.backupCheckpointFileName)
        guard let read = Self.checkpointText(at: file) else { return nil }
        let checkpoint: SignedCheckpoint
        do {
            guard let text = read else { throw ProofError(.malformed, "not a checkpoint") }
            checkpoint = try SignedCheckpoint(text)
        } catch {
            throw PatientVaultError(.invalidArgument, "the folder's backup checkpoint does not parse: not extended")
        }
        let head = try trustedHead(checkpoint)
        guard head.size <= engine.durableRecordCount,
            try translatingErrors({ try engine.merkleTree.root(size: head.size) }) == head.rootHash
        else {
            throw PatientVaultError(.invalidArgument, "the folder's backup is not a prefix of this store: not extended")
        }
        return head.size
    }

    /// Restores a backup made by ``backup(to:verifyingEveryRecord:progress:)`` into `target` (new,
    /// empty, or holding what a restore killed midway left, which is
    /// cleared: ``restoreMarkerFileName``): the backup's files are copied,
    /// after that mark, then the copy is opened with
    /// `key` and checked against the backup's signed checkpoint (every
    /// record read and hashed again; every key slot decoded) before this
    /// returns it, and against the configuration's `trustedCheckpoint` if
    /// it has one. The restored
    /// store holds every record that checkpoint covers (it says how many);
    /// from a folder whose incremental backup was cut short, whole records
    /// the copy reached past it are kept too, as an extension of it (this
    /// store's own records, in its log's order). The copy is synced before it
    /// is opened, and the mark removed once it is checked.
    ///
    /// The configuration is checked before anything is copied, and a
    /// restore that fails after its copy began removes what it created:
    /// a `target` it made is removed, an empty one the caller gave is left
    /// empty.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` (no backup
    ///   checkpoint in `backup`, a `target` that holds files or overlaps
    ///   `backup`, a bad configuration),
    ///   ``PatientVaultError/Code/checkpointNotExtended`` or
    ///   ``PatientVaultError/Code/corrupted`` for a backup that does not
    ///   match its checkpoint or holds a damaged key slot,
    ///   ``PatientVaultError/Code/wrongMasterKey``.
    @discardableResult
    public static func restore(
        from backup: URL, to target: URL, key: MasterKeySource, configuration: Configuration = Configuration()
    ) async throws(PatientVaultError) -> SignedCheckpoint {
        let checkpointFile = backup.appendingPathComponent(backupCheckpointFileName)
        guard let read = checkpointText(at: checkpointFile) else {
            throw PatientVaultError(.invalidArgument, "the folder holds no backup checkpoint (\(backupCheckpointFileName))")
        }
        let checkpoint: SignedCheckpoint
        do {
            guard let text = read else { throw ProofError(.malformed, "not a checkpoint") }
            checkpoint = try SignedCheckpoint(text)
        } catch {
            throw PatientVaultError(.corrupted, "the backup checkpoint does not parse")
        }
        // Everything that can be checked before a byte is copied is: a
        // failure below leaves `target` as it was.
        try configuration.validate()
        guard !FileSystem.overlap(backup.path, target.path) else {
            throw PatientVaultError(.invalidArgument, "a backup is not restored into its own folder, a folder inside it or one that holds it")
        }
        let fm = FileManager.default
        // Whatever is at `target` counts, a dangling symbolic link too (it
        // is then refused below, never removed by the cleanup).
        let existed = (try? fm.attributesOfItem(atPath: target.path)) != nil
        if existed {
            let names = (try? fm.contentsOfDirectory(atPath: target.path)) ?? ["?"]
            if names.contains(restoreMarkerFileName) {
                // What a restore killed midway left (its mark says so):
                // cleared, and restored again. Held meanwhile: a restore
                // still copying into it holds it (`storeLocked` then).
                let hold = try await translatingErrorsAsync { try await inBackground { try LogEngine.holdBackupFolder(target.path, fresh: false) } }
                defer { hold.release() }
                for name in names where name != "LOCK" { try? fm.removeItem(at: target.appendingPathComponent(name)) }
                // The lock file stays: the hold is on it.
                guard (try? fm.contentsOfDirectory(atPath: target.path)).map({ $0.allSatisfy { $0 == "LOCK" } }) == true else {
                    throw PatientVaultError(.io, "what an unfinished restore left in the folder could not be removed")
                }
            } else if !names.isEmpty {
                throw PatientVaultError(.invalidArgument, "the restore folder is not empty")
            }
        }
        do {
            return try await restoreCopying(from: backup, to: target, checkpoint: checkpoint, key: key, configuration: configuration)
        } catch {
            // The key or the backup refused after the copy began: what the
            // restore created goes (the folder too if it made it; an empty
            // folder the caller gave is left empty, as it was).
            if existed {
                for name in (try? fm.contentsOfDirectory(atPath: target.path)) ?? [] {
                    try? fm.removeItem(at: target.appendingPathComponent(name))
                }
            } else {
                try? fm.removeItem(at: target)
            }
            throw error
        }
    }

    /// The copy, its check and its open of a restore into `target`, new or
    /// empty: each file of the backup is copied into it (an existing
    /// folder is kept, its mode made 0700 as a store's folder is).
    private static func restoreCopying(
        from backup: URL, to target: URL, checkpoint: SignedCheckpoint, key: MasterKeySource, configuration: Configuration
    ) async throws(PatientVaultError) -> SignedCheckpoint {
        let fm = FileManager.default
        // The target held while it is written, as a backup holds its
        // folder: no open, and no other restore, runs beside the copy.
        let hold = try await translatingErrorsAsync { try await inBackground { try LogEngine.holdBackupFolder(target.path, fresh: false) } }
        defer { hold.release() }
        try translatingErrors {
            // First, durably: until it goes, no open takes the folder for
            // a store (a restore killed mid-copy leaves part of a backup).
            try StoreFolder.writeDurably([], named: restoreMarkerFileName, in: target.path)
            try FileSystem.syncParent(of: target.path)
        }
        do {
            for name in try fm.contentsOfDirectory(atPath: backup.path) where name != restoreMarkerFileName && name != "LOCK" {
                try fm.copyItem(at: backup.appendingPathComponent(name), to: target.appendingPathComponent(name))
            }
        } catch {
            throw PatientVaultError(.io, "the backup could not be copied")
        }
        try translatingErrors {
            // A key file a backup cut short left aside is not the store's.
            let stray = target.path + "/" + LogEngine.keyFileAside
            if FileSystem.exists(stray) { try FileSystem.remove(stray) }
            try StoreFolder.syncEverything(in: target.path)
            // The folder's own name, in its parent.
            try FileSystem.syncParent(of: target.path)
        }
        // The check's open takes the folder as a store's open does.
        hold.release()
        var check = configuration
        check.trustedCheckpoint = checkpoint
        check.checksARestore = true
        let store = try await open(at: target, key: key, configuration: check)
        let size = store.engine.durableRecordCount
        do {
            // Every key slot of the copy decodes: the records were hashed
            // again against the checkpoint, the key file is checked here.
            if let engine = store.engine as? LogEngine { _ = try translatingErrors { try engine.checkEveryKeySlot() } }
            // A checkpoint the caller trusts besides the backup's, checked too.
            if let trusted = configuration.trustedCheckpoint { try await store.verify(against: trusted) }
        } catch {
            try? await store.close(refusedAtOpen: true)
            throw error
        }
        try await store.close()
        guard size >= checkpoint.treeHead.size else {
            throw PatientVaultError(.checkpointNotExtended, "the restored log holds fewer records than the backup's checkpoint")
        }
        // Checked: the folder is a store from now on.
        try translatingErrors {
            try FileSystem.remove(target.path + "/" + restoreMarkerFileName)
            try FileSystem.syncDirectory(target.path)
        }
        return checkpoint
    }
}
