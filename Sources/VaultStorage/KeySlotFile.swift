#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Foundation
import VaultSync

/// The key-slot file, `keys.slots`: a header, then 128-byte slots, each
/// written once (a wrapped key) and overwritten in place by a tombstone
/// when destroyed, unlike the append-only log.
///
/// Its own lock (the next slot and the preallocated size, taken alone or
/// under the engine's state lock, never the other way) and its own sync
/// thread (``KeyFileSyncer``), so that the committer syncs it and a
/// segment in parallel. The engine writes slots in its commit loop, with
/// the groups that name them, and latches its failures like any other.
final class KeySlotFile: Sendable {
    let file: PosixFile
    let salt: [UInt8]
    let syncer: KeyFileSyncer
    /// The largest step of growth (``LogEngineConfiguration/keyFileGrowth``).
    private let growth: UInt64
    /// The first never-used slot, and the file's preallocated size.
    private let extent: Locked<(next: UInt64, allocated: UInt64)>

    /// Opens (or creates, for a new store) the key file of `directory`.
    /// - Throws: ``StorageError/Code/corrupted`` for a missing or empty key
    ///   file while the log holds records, or a header that fails its
    ///   checksum.
    init(directory: String, logExists: Bool, growth: UInt64, files: any LogFiles) throws {
        (file, salt) = try Self.openFile(directory: directory, logExists: logExists, files: files)
        let (next, allocated) = try Self.scan(file)
        extent = Locked((next, allocated))
        syncer = KeyFileSyncer(file: file, files: files)
        self.growth = growth
    }

    /// Whether `slot` was reserved (slots are numbered from 1).
    func isReserved(_ slot: KeySlot) -> Bool {
        slot.number >= 1 && slot.number < extent.withLock { $0.next }
    }

    /// Reserves a never-used slot, growing the file first when it is full
    /// (from 64 KiB, doubling, in steps of at most `growth`) with
    /// `allocate` (the engine's preallocation, which latches a failed sync).
    func reserve(allocate: (PosixFile, UInt64) throws -> Void) throws -> KeySlot {
        try extent.withLock { e in
            let end = (e.next + 1) * UInt64(LogFormat.keySlotSize)
            if end > e.allocated {
                let target = max(end, e.allocated + step(after: e.allocated))
                try allocate(file, target)
                e.allocated = target
            }
            defer { e.next += 1 }
            return KeySlot(e.next)
        }
    }

    /// The size to grow to ahead of need (the committer's), when fewer
    /// than 64 slots are left; nil otherwise.
    func growthTarget() -> UInt64? {
        extent.withLock { e in
            (e.next + 64) * UInt64(LogFormat.keySlotSize) > e.allocated ? e.allocated + step(after: e.allocated) : nil
        }
    }

    /// Notes that the file was grown to `length` ahead of need.
    func noteGrown(to length: UInt64) {
        extent.withLock { $0.allocated = max($0.allocated, length) }
    }

    private func step(after allocated: UInt64) -> UInt64 { min(growth, max(64 << 10, allocated)) }

    /// Reads and checks a reserved slot.
    /// - Throws: ``StorageError/Code/invalidLocation`` for a slot never
    ///   reserved, ``StorageError/Code/keySlotEmpty``,
    ///   ``StorageError/Code/keySlotDestroyed``, ``StorageError/Code/corrupted``.
    func read(_ slot: KeySlot) throws -> [UInt8] {
        guard isReserved(slot) else {
            throw StorageError(.invalidLocation, "key slot \(slot.number) does not exist")
        }
        let bytes = try file.read(count: LogFormat.keySlotSize, at: slot.number * UInt64(LogFormat.keySlotSize))
        return try LogFormat.decodeKeySlot(bytes, number: slot.number, salt: salt)
    }

    /// The bytes of a live slot holding `value`.
    func live(_ slot: KeySlot, value: [UInt8]) -> [UInt8] {
        LogFormat.encodeKeySlot(slot, value: value, magic: LogFormat.keySlotLive, salt: salt)
    }

    /// The bytes of a destroyed slot.
    func tombstone(_ slot: KeySlot) -> [UInt8] {
        LogFormat.encodeKeySlot(slot, value: [], magic: LogFormat.keySlotTombstone, salt: salt)
    }

    /// Opens the key file, creating it for a new store. The key file is
    /// created (and synced) before the first segment: once the log exists,
    /// a missing or empty key file is damage (every vault would fail to
    /// read), never a crash, and is reported instead of recreated.
    private static func openFile(directory: String, logExists: Bool, files: any LogFiles) throws -> (PosixFile, [UInt8]) {
        let observer = files.observer
        let path = directory + "/" + LogFormat.keyFileName
        if logExists && !FileSystem.exists(path) {
            throw StorageError(.corrupted, "keys.slots is missing while the log holds records")
        }
        let file = try PosixFile.open(path, flags: O_RDWR | O_CREAT, name: "key file", observer: observer)
        let header = try file.read(count: LogFormat.keySlotSize, at: 0)
        let unfinished = header.count < LogFormat.keySlotSize || header.allSatisfy({ $0 == 0 })
            || (!logExists && (try? LogFormat.decodeKeyFileHeader(header)) == nil)
        if unfinished {
            guard !logExists else { throw StorageError(.corrupted, "keys.slots is empty while the log holds records") }
            // New, or its creation never completed (a torn header before any
            // segment existed): nothing can reference it.
            var salt = [UInt8](repeating: 0, count: LogFormat.saltSize)
            fillRandom(&salt)
            try files.write(LogFormat.encodeKeyFileHeader(salt: salt), at: 0, of: file, site: .keyFileCreation)
            try files.sync(file, site: nil)
            try FileSystem.syncDirectory(directory, observer: observer)
            return (file, salt)
        }
        guard let salt = try LogFormat.decodeKeyFileHeader(header) else {
            throw StorageError(.corrupted, "the key file header failed its checksum")
        }
        return (file, salt)
    }

    /// Finds the first never-used slot by scanning back from the end over the
    /// preallocated zeros. Returns it and the file's allocated size.
    private static func scan(_ file: PosixFile) throws -> (UInt64, UInt64) {
        let size = try file.size()
        let slotSize = UInt64(LogFormat.keySlotSize)
        var slots = size / slotSize
        let chunkSlots: UInt64 = 4096
        while slots > 1 {
            let first = max(1, slots >= chunkSlots ? slots - chunkSlots : 1)
            let bytes = try file.read(count: Int((slots - first) * slotSize), at: first * slotSize)
            // Word at a time: this runs over the whole preallocated file.
            let used: Int? = bytes.withUnsafeBytes { raw in
                var i = raw.count / Int(slotSize)
                while i > 0 {
                    let start = (i - 1) * Int(slotSize)
                    var word = start
                    while word < start + Int(slotSize) {
                        if raw.loadUnaligned(fromByteOffset: word, as: UInt64.self) != 0 { return i }
                        word += 8
                    }
                    i -= 1
                }
                return nil
            }
            if let used { return (first + UInt64(used), size) }
            slots = first
        }
        return (1, size)
    }
}

/// The thread that syncs the key file while the committer syncs segments:
/// one thread for the engine's life, so a parallel sync allocates nothing.
final class KeyFileSyncer: Sendable {
    private let file: PosixFile
    private let files: any LogFiles
    private let request = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// Whether to stop, and the last sync's error.
    private let state = Locked<(quit: Bool, error: StorageError?)>((false, nil))

    init(file: PosixFile, files: any LogFiles) {
        self.file = file
        self.files = files
    }

    func start() {
        let thread = Thread { [self] in
            while true {
                request.wait()
                if state.withLock({ $0.quit }) { return }
                var failure: StorageError?
                do {
                    try files.sync(file, site: nil)
                } catch {
                    failure = (error as? StorageError) ?? StorageError(.io, "sync failed")
                }
                state.withLock { $0.error = failure }
                done.signal()
            }
        }
        thread.name = "patientvault.keysync"
        thread.start()
    }

    /// Starts one sync of the key file.
    func begin() { request.signal() }

    /// Waits for the sync `begin` started; returns its error, if any.
    func finish() -> StorageError? {
        done.wait()
        return state.withLock { s in
            defer { s.error = nil }
            return s.error
        }
    }

    /// Ends the thread (after the last `finish`).
    func stop() {
        state.withLock { $0.quit = true }
        request.signal()
    }
}
