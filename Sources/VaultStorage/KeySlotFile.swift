#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import VaultCrypto
import VaultSync

/// The key-slot file, `keys.slots`: a header, two slots holding the
/// key-slot journal's key, then 128-byte key slots, each written once (a
/// wrapped key) and overwritten in place by a tombstone when destroyed,
/// unlike the append-only log.
///
/// **The journal.** A group that writes slots carries them in its first
/// frame (the manifest), sealed with XChaCha20-Poly1305 under the journal
/// key, so the commit path syncs the segment alone: the key file is
/// written at once but synced only before a checkpoint (which moves
/// replay past those groups), at close, and after a slot's destruction;
/// recovery writes a complete group's slots back from its manifest. The
/// journal key exists to be destroyed. Slots 1 and 2 hold two keys of
/// consecutive epochs: the current one and the next, written and synced
/// ahead (at open, and by each rotation's settling). A destruction of a
/// slot that a manifest sealed under the current key rotates to the next
/// (``rotate(to:)``): no sync of this file before its acknowledgement
/// (the log's sync alone, as a deposit), and the groups after it are
/// sealed under a key already durable. Then, owed (``settleStep(replacing:)``): a
/// sync of every slot written and of the tombstones, and the older key
/// overwritten by the key after the newer, synced. From then on every
/// copy of the destroyed slot in the log is sealed under a key no file
/// holds. A destruction whose slots' copies are all sealed under keys
/// already replaced writes its tombstones alone
/// (``LogEngineCore/State/currentEpochSlotFloor``). Recovery opens the
/// manifests of the file's two keys' epochs (the older is the current
/// one, or one whose replacement a crash cut short, which may also have
/// lost a slot's page); an older manifest's slots were synced before its
/// key went, and must be on the file (``restore(_:)``); it never writes a
/// slot back over a tombstone. Every open then rotates (``finishOpen(rotating:)``).
///
/// Locks: ``extent`` and ``journal`` are leaves, taken alone
/// or under the engine's state lock.
final class KeySlotFile: Sendable {
    let file: PosixFile
    let salt: [UInt8]
    private let files: any LogFiles
    /// The largest step of growth (``LogEngineConfiguration/keyFileGrowth``).
    private let growth: UInt64
    /// The first never-used slot, and the file's preallocated size.
    private let extent: Locked<(next: UInt64, allocated: UInt64)>
    /// The key-slot journal's keys (``Journal``).
    private let journal: Locked<Journal>
    /// One past the last slot written (``writtenEnd``).
    private let written: Locked<UInt64>
    /// Whether slots were written since the file was last synced. True at
    /// open: after a crash of the process (not of the machine) the file may
    /// hold writes that are in the page cache only, so the open's first
    /// sync (recovery's ``restore(_:)``, before any checkpoint or
    /// replacement of an older journal key) is never skipped.
    private let unsynced = Locked(true)
    /// Held for the length of each sync of the file once open
    /// (``syncIfWritten()``, ``syncAlways(site:)``): the committer's, a
    /// checkpoint's, a growth step's and a backup's syncs come one after
    /// the other. Holds the first failed sync's error. Taken before
    /// ``unsynced``.
    private let syncing = Locked<StorageError?>(nil)
    /// The MAC of tombstones (the store's log key); nil: tombstones are
    /// not authenticated (engine tests only).
    private let authenticator: (any LogAuthenticator)?

    /// A key of the key-slot journal and its epoch (1, 2, ...: one more at
    /// every rotation).
    struct JournalKey: Sendable {
        let epoch: UInt64
        let key: SymmetricKey
    }

    /// The journal's keys: the file holds two, of consecutive epochs (slots
    /// 1 and 2), the one groups are sealed under and the next, written and
    /// synced ahead, so that a rotation (a destruction) needs no sync of
    /// this file before its acknowledgement.
    struct Journal: Sendable {
        /// What groups queued now are sealed under.
        var current: JournalKey
        /// Every key from the older one the file holds to at least the
        /// one after ``current``: ascending, consecutive epochs. A key is
        /// decided once, by whichever needs it first (a destruction queued,
        /// or the committer writing it ahead).
        var keys: [JournalKey]
        /// What slots 1 and 2 hold, as written (synced, unless a failed
        /// sync has stopped the engine).
        var onFile: [(slot: UInt64, key: JournalKey)]
        /// The epoch the committer has rotated to: the file's newer key
        /// once a rotation is processed, its older one when settled.
        var active: UInt64
        /// The step of the last rotation's settling still owed
        /// (``settleStep(replacing:)``).
        var owed: Owed?

        /// The file's newest key.
        var newest: (slot: UInt64, key: JournalKey) { onFile.max { $0.key.epoch < $1.key.epoch }! }

        /// The key of `epoch`, deciding it with `material` if it is the
        /// next one not yet decided; nil for one already forgotten.
        mutating func key(_ epoch: UInt64, deciding material: SymmetricKey) -> JournalKey? {
            if let known = keys.first(where: { $0.epoch == epoch }) { return known }
            guard epoch == (keys.last?.epoch ?? 0) + 1 else { return nil }
            let key = JournalKey(epoch: epoch, key: material)
            keys.append(key)
            return key
        }
    }

    /// What a rotation leaves to do once acknowledged: a sync of every
    /// slot written (the copies sealed under the older key are their only
    /// other copies), then the older key overwritten by the one after the
    /// newer (decided ahead) and synced.
    enum Owed: Sendable {
        case syncSlots
        case replaceOlderKey
    }

    /// Opens (or creates, for a new store) the key file of `directory`.
    /// - Throws: ``StorageError/Code/corrupted`` for a missing or empty key
    ///   file, or one without a journal key, while the log holds records, or
    ///   a header that fails its checksum.
    init(
        directory: String, logExists: Bool, growth: UInt64, files: any LogFiles, authenticator: (any LogAuthenticator)?
    ) throws {
        (file, salt) = try Self.openFile(directory: directory, logExists: logExists, files: files)
        self.files = files
        self.authenticator = authenticator
        let (key, slot, older) = try Self.loadJournalKey(file, salt: salt, logExists: logExists, files: files, directory: directory)
        journal = Locked(
            Journal(
                current: key, keys: (older.map { [$0.key] } ?? []) + [key], onFile: (older.map { [($0.slot, $0.key)] } ?? []) + [(slot, key)],
                active: key.epoch, owed: nil))
        let (next, allocated) = try Self.scan(file)
        extent = Locked((max(next, LogFormat.firstKeySlot), allocated))
        written = Locked(next)
        self.growth = growth
    }

    /// Whether `slot` was reserved (key slots are numbered from 3).
    func isReserved(_ slot: KeySlot) -> Bool {
        slot.number >= LogFormat.firstKeySlot && slot.number < extent.withLock { $0.next }
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
        return try LogFormat.decodeKeySlotRestoring(bytes, number: slot.number, salt: salt, tombstone: tombstoneValue(slot.number))
    }

    /// The bytes of a live slot holding `value`.
    func live(_ slot: KeySlot, value: [UInt8]) -> [UInt8] {
        LogFormat.encodeKeySlot(slot, value: value, magic: LogFormat.keySlotLive, salt: salt)
    }

    /// The bytes of a destroyed slot: its value is ``tombstoneValue(_:)``.
    func tombstone(_ slot: KeySlot) -> [UInt8] {
        LogFormat.encodeKeySlot(slot, value: tombstoneValue(slot.number), magic: LogFormat.keySlotTombstone, salt: salt)
    }

    /// Whether `bytes` (a slot's) pass their CRC, name slot `number` and
    /// hold the value of a genuine tombstone of it, whatever their magic
    /// says: a tombstone whose magic byte flipped, never to be written over.
    func holdsTombstoneValue(_ bytes: [UInt8], number: UInt64) -> Bool {
        let tombstone = tombstoneValue(number)
        guard !tombstone.isEmpty, bytes.count == LogFormat.keySlotSize else { return false }
        var asTombstone = bytes
        withUnsafeBytes(of: LogFormat.keySlotTombstone.littleEndian) { asTombstone.replaceSubrange(0..<4, with: $0) }
        do {
            _ = try LogFormat.decodeKeySlot(asTombstone, number: number, salt: salt, tombstone: tombstone)
            return false
        } catch let error as StorageError {
            return error.code == .keySlotDestroyed
        } catch {
            return false
        }
    }

    /// What a tombstone of slot `number` holds: the log key's MAC of
    /// `"PVKX" || file salt || number`, so that a tombstone written by
    /// someone without the key (who can write the file and its CRC) reads
    /// as `corrupted`, never as a destruction. Empty without an
    /// authenticator.
    func tombstoneValue(_ number: UInt64) -> [UInt8] {
        guard let authenticator else { return [] }
        var message = Array("PVKX".utf8) + salt
        withUnsafeBytes(of: number.littleEndian) { message.append(contentsOf: $0) }
        return message.withUnsafeBytes { authenticator.tag($0) }
    }

    // MARK: Writes (the committer's, and recovery's)

    /// Writes a slot's bytes in place (not synced: see the type).
    func write(_ bytes: [UInt8], to slot: UInt64, site: FaultInjection.Site = .keySlotWrite) throws {
        try files.write(bytes, at: slot * UInt64(LogFormat.keySlotSize), of: file, site: site)
        written.withLock { $0 = max($0, slot + 1) }
        unsynced.withLock { $0 = true }
    }

    /// Reads every key slot written (from the first key slot to
    /// ``writtenEnd``) and checks that each decodes: a live value or a
    /// genuine tombstone (one flipped byte restored, as any read does), or
    /// never written (all zeros). For a restore, whose copy of this file
    /// nothing else checks slot by slot. Returns how many hold a value or a
    /// tombstone.
    /// - Throws: ``StorageError/Code/corrupted`` naming the first slot that
    ///   does not decode.
    func checkEverySlot() throws -> Int {
        let end = writtenEnd
        var number = LogFormat.firstKeySlot
        var held = 0
        while number < end {
            let batch = min(4096, end - number)
            let bytes = try file.read(count: Int(batch) * LogFormat.keySlotSize, at: number * UInt64(LogFormat.keySlotSize))
            for i in 0..<Int(batch) {
                let n = number + UInt64(i)
                let start = i * LogFormat.keySlotSize
                let slot = start < bytes.count ? Array(bytes[start..<min(bytes.count, start + LogFormat.keySlotSize)]) : []
                do {
                    _ = try LogFormat.decodeKeySlotRestoring(slot, number: n, salt: salt, tombstone: tombstoneValue(n))
                    held += 1
                } catch let error as StorageError where error.code == .keySlotDestroyed {
                    held += 1
                } catch let error as StorageError where error.code == .keySlotEmpty {
                    continue
                }
            }
            number += batch
        }
        return held
    }

    /// One past the last slot ever written (found at open by scanning
    /// back over the preallocated zeros): a checkpoint records it, and the
    /// next open refuses a `keys.slots` that ends before it (cut, or
    /// replaced by an older copy), rather than reserve the slots of
    /// acknowledged records again.
    var writtenEnd: UInt64 { written.withLock { $0 } }

    /// The epoch of the newest journal key the file holds (a checkpoint,
    /// written once the file is synced, records it: an older one at the
    /// next open is an older copy of the file).
    var durableEpoch: UInt64 { journal.withLock { $0.newest.key.epoch } }

    /// Syncs the file if a slot was written since its last sync.
    func syncIfWritten() throws { try sync(always: false, site: .keyFileSync) }

    /// Syncs the file whatever was written (after a growth step's zeros).
    func syncAlways(site: FaultInjection.Site) throws { try sync(always: true, site: site) }

    /// One sync at a time (``syncing``): the flag is cleared before the
    /// sync starts, so a write after that point sets it again for the next
    /// one, and a caller that finds it clear knows the sync that cleared it
    /// has ended (it held the lock) and covered every write before it. A
    /// committer's sync of its tombstones is never skipped because a
    /// backup's sync, begun before they were written, cleared the flag.
    /// A failed sync fails every later one: the kernel reports a lost
    /// write-back once, and may have marked the lost pages clean, so a
    /// later sync that succeeds proves nothing (PostgreSQL, 2018).
    private func sync(always: Bool, site: FaultInjection.Site) throws {
        try syncing.withLock { failed throws in
            if let failed { throw failed }
            let written = unsynced.withLock { u -> Bool in
                defer { u = false }
                return u
            }
            guard written || always else { return }
            do {
                try files.sync(file, site: site)
            } catch {
                unsynced.withLock { $0 = true }
                let failure = (error as? StorageError) ?? StorageError(.io, "the key file's sync failed")
                failed = failure
                throw failure
            }
        }
    }

    // MARK: The journal

    /// Whether one of slots 1 and 2 holds bytes that are no journal key
    /// (damage beyond a one-byte repair), for an open's error message.
    func holdsADamagedJournalKeySlot() -> Bool {
        let held = journal.withLock { j in Set(j.onFile.map(\.slot)) }
        return LogFormat.journalKeySlots.contains { number in
            guard !held.contains(number),
                  let bytes = try? file.read(count: LogFormat.keySlotSize, at: number * UInt64(LogFormat.keySlotSize))
            else { return false }
            return bytes.contains { $0 != 0 }
        }
    }

    /// The journal's current epoch (what a manifest sealed now carries).
    var epoch: UInt64 { journal.withLock { $0.current.epoch } }

    /// A group's manifest: its slots' bytes sealed under the current journal
    /// key. Returns the epoch it was sealed under, for the caller to check
    /// under the engine's lock that no destruction came in between.
    func manifest(for slots: [(KeySlot, [UInt8])]) throws -> (epoch: UInt64, payload: [UInt8]) {
        let key = journal.withLock { $0.current }
        var sealed: [(number: UInt64, box: [UInt8])] = []
        sealed.reserveCapacity(slots.count)
        for (slot, bytes) in slots {
            let aad = LogFormat.journalAssociatedData(epoch: key.epoch, number: slot.number)
            var box: [UInt8] = []
            box.reserveCapacity(LogFormat.journaledSlotSize - 8)
            do {
                try bytes.withUnsafeBytes { b in
                    try aad.withUnsafeBytes { a in try XChaCha20Poly1305.seal(b, using: key.key, authenticating: a, appendingTo: &box) }
                }
            } catch {
                throw StorageError(.io, "the key-slot journal could not seal a slot")
            }
            sealed.append((slot.number, box))
        }
        return (key.epoch, LogFormat.encodeSlotManifest(epoch: key.epoch, slots: sealed))
    }

    /// The slots a replayed manifest carries, as their 128 bytes; for a
    /// manifest of an epoch whose key is not on file (its slots were
    /// synced before that key was overwritten), its slot numbers with no
    /// bytes, which ``restore(_:)`` checks the file holds: a damaged key
    /// never passes for one a rotation replaced. A manifest of the epoch
    /// before the file's newest opens while the file holds that key (until
    /// ``finishOpen(rotating:)``).
    /// - Throws: ``StorageError/Code/corrupted`` for a manifest the encoder
    ///   cannot write, of a newer epoch than the file's, or whose boxes do not
    ///   open.
    func openManifest(_ payload: UnsafeRawBufferPointer) throws -> [(number: UInt64, bytes: [UInt8])] {
        guard let (epoch, slots) = LogFormat.decodeSlotManifest(payload) else {
            throw StorageError(.corrupted, "a key-slot manifest is malformed")
        }
        let onFile = journal.withLock { $0.onFile }
        guard epoch <= onFile.map(\.key.epoch).max() ?? 0 else {
            throw StorageError(.corrupted, "a key-slot manifest is of a later journal key")
        }
        guard let key = onFile.first(where: { $0.key.epoch == epoch })?.key else { return slots.map { ($0.number, []) } }
        return try slots.map { slot in
            let aad = LogFormat.journalAssociatedData(epoch: epoch, number: slot.number)
            guard let bytes = try? XChaCha20Poly1305.open(slot.box, using: key.key, authenticating: aad),
                  bytes.count == LogFormat.keySlotSize
            else { throw StorageError(.corrupted, "a journaled key slot failed authentication") }
            return (slot.number, bytes)
        }
    }

    /// Writes back the slots of the complete groups recovery replayed, where
    /// the file does not hold them (lost with a power cut), never over a
    /// tombstone; then syncs. Returns how many it wrote.
    func restore(_ slots: [(number: UInt64, bytes: [UInt8])]) throws -> Int {
        var written = 0
        for slot in slots {
            let current = try file.read(count: LogFormat.keySlotSize, at: slot.number * UInt64(LogFormat.keySlotSize))
            // A slot whose journal key is gone was synced before the key
            // was overwritten: missing now, it was lost to damage (or to
            // a damaged journal key), never to a crash.
            if slot.bytes.isEmpty {
                guard current.count == LogFormat.keySlotSize, current.contains(where: { $0 != 0 }) else {
                    throw StorageError(.corrupted, "key slot \(slot.number) is missing and the journal key that sealed its copy is not on file")
                }
                continue
            }
            if current == slot.bytes { continue }
            // A genuine tombstone stays (one flipped byte in it too, even in
            // its magic, outside the CRC: its value is a MAC only the log
            // key makes); a forged one is written over.
            if case .failure(let error) = Result(catching: {
                try LogFormat.decodeKeySlotRestoring(current, number: slot.number, salt: salt, tombstone: tombstoneValue(slot.number))
            }),
               (error as? StorageError)?.code == .keySlotDestroyed
            {
                continue
            }
            if holdsTombstoneValue(current, number: slot.number) { continue }
            try write(slot.bytes, to: slot.number)
            written += 1
        }
        if let last = slots.map(\.number).max() {
            let size = try file.size()
            extent.withLock { e in
                e.next = max(e.next, last + 1)
                e.allocated = max(e.allocated, size)
            }
        }
        try syncIfWritten()
        return written
    }

    /// Makes the next journal key current, for the groups queued from now
    /// on (the destruction that asked for it rotates to it,
    /// ``rotate(to:)``). Draws the random bytes, in case the key is not
    /// decided yet. Under the engine's lock.
    func nextJournalKey() throws -> JournalKey {
        let material = try Self.freshJournalKeyMaterial()
        try checkEpochCanGrow()
        return advanceJournalKey(to: material)
    }

    /// The random bytes of a new journal key.
    static func freshJournalKeyMaterial() throws -> SymmetricKey {
        do {
            return try SymmetricKey.generate()
        } catch {
            throw StorageError(.io, "no random journal key")
        }
    }

    /// Throws if the journal's epoch cannot grow by two (the key after the
    /// next is written ahead; a file written by hand may hold any epoch:
    /// never a trap). Under the engine's lock, before
    /// ``advanceJournalKey(to:)`` in the same hold.
    func checkEpochCanGrow() throws {
        guard journal.withLock({ $0.current.epoch }) < UInt64.max - 1 else {
            throw StorageError(.corrupted, "the journal key's epoch cannot grow")
        }
    }

    /// Makes the key of the next epoch current (decided ahead, or now with
    /// `material`), which groups queued from now on are sealed under. Under
    /// the engine's lock, after ``checkEpochCanGrow()`` in the same hold
    /// (only that lock's holders change the epoch).
    func advanceJournalKey(to material: SymmetricKey) -> JournalKey {
        journal.withLock { j in
            // Never nil: the keys run to at least one past the current.
            if let next = j.key(j.current.epoch + 1, deciding: material) { j.current = next }
            return j.current
        }
    }

    /// Whether the file holds `key` (written ahead and synced): a
    /// rotation to it then needs no sync of this file first.
    func holds(_ key: JournalKey) -> Bool {
        journal.withLock { j in j.onFile.contains { $0.key.epoch == key.epoch } }
    }

    /// The committer's rotation to `key`, which the file holds
    /// (``holds(_:)``): from now on the older key is owed its replacement
    /// (``settleStep(replacing:)``). Writes nothing: the destruction's tombstones
    /// follow, and its acknowledgement needs the log's sync alone.
    func rotate(to key: JournalKey) throws {
        try journal.withLock { j in
            guard j.onFile.contains(where: { $0.key.epoch == key.epoch }), key.epoch == j.active + 1 else {
                throw StorageError(.io, "a rotation to a journal key the file does not hold")
            }
            j.active = key.epoch
            j.owed = .syncSlots
        }
    }

    /// Whether a rotation's settling is owed (``settleStep(replacing:)``).
    var rotationOwed: Bool { journal.withLock { $0.owed != nil } }

    /// One step of the key file's owed work, one sync; returns whether
    /// nothing more is owed. With no rotation owed: a sync of whatever was
    /// written (tombstones). After a rotation: first a sync of every slot
    /// written (the log's copies of those slots are sealed under the older
    /// key, and one sync orders nothing within a file), then the older
    /// key overwritten by the key after the newer and synced: no file
    /// holds the older key any more, every copy it sealed is dead, and the
    /// next rotation again finds its key on the file.
    /// A crash before the end leaves both keys, which the next open uses
    /// and settles (``finishOpen(rotating:)``), and the erasure's durable record,
    /// from which the layer above finishes the destruction.
    ///
    /// The replacement is made only when `replacing` (its caller holds the
    /// engine's ``LogEngineCore/keyFileCopy``, as a backup's copy of this
    /// file must not see it half done); otherwise that step does nothing
    /// and returns false. A sync step may run on two threads at once (the
    /// committer's, and a backup's that holds the lock): each moves the
    /// step on only from where it found it.
    @discardableResult
    func settleStep(replacing: Bool = true) throws -> Bool {
        switch owedStep {
        case nil:
            try syncIfWritten()
            return true
        case .syncSlots:
            try syncIfWritten()
            journal.withLock { j in if j.owed == .syncSlots { j.owed = .replaceOlderKey } }
            return false
        case .replaceOlderKey:
            guard replacing else { return false }
            try replaceOlderKey()
            return true
        }
    }

    /// The step of a rotation's settling owed now, if any.
    var owedStep: Owed? { journal.withLock { $0.owed } }

    /// Settles owed steps until the file holds `key` (a rotation queued
    /// right behind another whose settling the committer has not done).
    func settle(until key: JournalKey) throws {
        while !holds(key) {
            guard rotationOwed else { throw StorageError(.io, "a rotation to a journal key the file does not hold") }
            try settleStep()
        }
    }

    /// Overwrites the file's older key with the one after its newer
    /// (decided now if no destruction has), and syncs. Callers are
    /// serialized (``settleStep(replacing:)``); one that finds the step
    /// done by another does nothing.
    private func replaceOlderKey() throws {
        let material = try Self.freshJournalKeyMaterial()
        let plan = try journal.withLock { j -> (UInt64, JournalKey)? in
            guard j.owed == .replaceOlderKey else { return nil }
            let newest = j.newest
            guard let older = j.onFile.first(where: { $0.slot != newest.slot }) else {
                throw StorageError(.io, "a rotation's settling found one journal key on file")
            }
            guard newest.key.epoch < UInt64.max, let next = j.key(newest.key.epoch + 1, deciding: material) else {
                throw StorageError(.corrupted, "the journal key's epoch cannot grow")
            }
            return (older.slot, next)
        }
        guard let (slot, next) = plan else { return }
        var bytes = Self.journalSlot(next, number: slot, salt: salt)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        try write(bytes, to: slot, site: .journalKeyWrite)
        try sync(always: true, site: .journalKeyWrite)
        journal.withLock { j in
            j.onFile = j.onFile.map { $0.slot == slot ? (slot, next) : $0 }.sorted { $0.key.epoch < $1.key.epoch }
            j.keys.removeAll { $0.epoch < j.active }
            j.owed = nil
        }
    }

    /// The 128 bytes of journal-key slot `number`.
    private static func journalSlot(_ key: JournalKey, number: UInt64, salt: [UInt8]) -> [UInt8] {
        var value = [UInt8]()
        value.reserveCapacity(8 + SymmetricKey.byteCount)
        withUnsafeBytes(of: key.epoch.littleEndian) { value.append(contentsOf: $0) }
        key.key.withUnsafeBytes { value.append(contentsOf: $0) }
        defer { for i in value.indices { value[i] = 0 } }
        return LogFormat.encodeKeySlot(KeySlot(number), value: value, magic: LogFormat.keySlotJournalKey, salt: salt)
    }

    /// Reads the journal keys from slots 1-2: the newer, and the older if
    /// it is the epoch just before (the current key beside the next one
    /// written ahead, or one whose replacement a crash cut short; wiped
    /// now if further behind); or writes the first one for a new store
    /// (``finishOpen(rotating:)`` writes the next).
    private static func loadJournalKey(
        _ file: PosixFile, salt: [UInt8], logExists: Bool, files: any LogFiles, directory: String
    ) throws -> (JournalKey, UInt64, (key: JournalKey, slot: UInt64)?) {
        var found: [(key: JournalKey, slot: UInt64)] = []
        for number in LogFormat.journalKeySlots {
            var bytes = try file.read(count: LogFormat.keySlotSize, at: number * UInt64(LogFormat.keySlotSize))
            defer { for i in bytes.indices { bytes[i] = 0 } }
            // One flipped byte is restored, in memory, when the CRC's
            // algebra, or the magic's, gives exactly one candidate that
            // decodes, and the byte is one whose value is known (the
            // number, the length, the zeros, the magic: its kind byte too,
            // slots 1 and 2 holding journal keys only) or proven by use:
            // the key bytes, since every manifest recovery must open is
            // sealed under the key (XChaCha20-Poly1305), so a wrong key
            // fails the open as `corrupted`, never yields a wrong slot (an
            // open that replays no manifest needs the key for nothing yet;
            // manifests sealed later are sealed under the same bytes).
            // Never the epoch, which nothing proves: a wrong one would
            // have older manifests passed over, or the older key wiped.
            var value: [UInt8]
            if let genuine = try? LogFormat.decodeKeySlot(bytes, number: number, salt: salt, magic: LogFormat.keySlotJournalKey) {
                value = genuine
            } else if let repaired = LogFormat.restoredJournalKeySlot(bytes, number: number, salt: salt) {
                value = repaired
            } else {
                continue
            }
            defer { for i in value.indices { value[i] = 0 } }
            guard value.count == 8 + SymmetricKey.byteCount else { continue }
            let epoch = value.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
            guard epoch >= 1, let key = try? value.withUnsafeBytes({ try SymmetricKey.copying(UnsafeRawBufferPointer(rebasing: $0[8...])) })
            else { continue }
            found.append((JournalKey(epoch: epoch, key: key), number))
        }
        if let newest = found.max(by: { $0.key.epoch < $1.key.epoch }) {
            var kept: (key: JournalKey, slot: UInt64)?
            for older in found where older.slot != newest.slot {
                if newest.key.epoch - older.key.epoch == 1 {
                    kept = older
                    continue
                }
                try wipeJournalSlot(older.slot, of: file, files: files)
            }
            return (newest.key, newest.slot, kept)
        }
        guard !logExists else { throw StorageError(.corrupted, "keys.slots holds no journal key while the log holds records") }
        let first: JournalKey
        do {
            first = JournalKey(epoch: 1, key: try SymmetricKey.generate())
        } catch {
            throw StorageError(.io, "no random journal key")
        }
        let number = LogFormat.journalKeySlots[0]
        try files.write(journalSlot(first, number: number, salt: salt), at: number * UInt64(LogFormat.keySlotSize), of: file, site: .keyFileCreation)
        try files.sync(file, site: .keyFileCreation)
        try FileSystem.syncDirectory(directory, observer: files.observer)
        return (first, number, nil)
    }

    /// Zeros journal-key slot `number` and syncs.
    private static func wipeJournalSlot(_ number: UInt64, of file: PosixFile, files: any LogFiles) throws {
        try files.write(
            [UInt8](repeating: 0, count: LogFormat.keySlotSize), at: number * UInt64(LogFormat.keySlotSize), of: file,
            site: .journalKeyWrite)
        try files.sync(file, site: .journalKeyWrite)
    }

    /// The open's last step with the journal, once recovery has written
    /// back, and synced, the slots of the manifests it replayed
    /// (``restore(_:)``). With `rotating` (every open of a store): the
    /// file's older key, if it holds two, is overwritten by the one after
    /// the newer (after a sync of its own: one sync does not order the
    /// overwrite after the slots it protects), or that next key is written
    /// beside a lone one; then synced. The newer key becomes current: an
    /// open rotates, so no copy sealed under a key older than the current
    /// one opens any more, whatever a crash cut short. Without (a backup's
    /// copy, opened once to replay its log: its checkpoint must not record
    /// a newer key than the store's own file, which the next incremental
    /// backup copies over it), the older of two keys stays current, which
    /// a copy made with no rotation's settling owed
    /// (``LogEngine/copyKeyFile(to:afterCopy:)``) makes right, and
    /// nothing is written. A lone key gets its next one written when
    /// rotating. A key whose epoch cannot grow (a file written by hand)
    /// rotates nothing: destructions are then refused
    /// (``checkEpochCanGrow()``).
    func finishOpen(rotating: Bool) throws {
        let (newest, older) = journal.withLock { j in (j.newest, j.onFile.first { $0.slot != j.newest.slot }) }
        if let older, !rotating || newest.key.epoch == UInt64.max {
            journal.withLock { j in
                j = Journal(current: older.key, keys: [older.key, newest.key], onFile: [older, newest], active: older.key.epoch, owed: nil)
            }
            return
        }
        // A lone key stays alone in a copy (it never appends, so it needs
        // no next key), or when its epoch cannot grow.
        guard rotating, newest.key.epoch < UInt64.max else {
            journal.withLock { j in j = Journal(current: newest.key, keys: [newest.key], onFile: [newest], active: newest.key.epoch, owed: nil) }
            return
        }
        let next = JournalKey(epoch: newest.key.epoch + 1, key: try Self.freshJournalKeyMaterial())
        let slot = older?.slot ?? LogFormat.journalKeySlots.first { $0 != newest.slot }!
        if older != nil { try syncIfWritten() }
        var bytes = Self.journalSlot(next, number: slot, salt: salt)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        try write(bytes, to: slot, site: .journalKeyWrite)
        try sync(always: true, site: .journalKeyWrite)
        journal.withLock { j in
            j = Journal(current: newest.key, keys: [newest.key, next], onFile: [newest, (slot, next)], active: newest.key.epoch, owed: nil)
        }
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
        if let salt = try LogFormat.decodeKeyFileHeader(header) { return (file, salt) }
        // One flipped byte: restored if the salt it gives is the one the
        // journal key's slots were written under.
        let journalSlots = try LogFormat.journalKeySlots.map {
            try file.read(count: LogFormat.keySlotSize, at: $0 * UInt64(LogFormat.keySlotSize))
        }
        let restored = LogFormat.restoredKeyFileHeader(header) { salt in
            zip(LogFormat.journalKeySlots, journalSlots).contains { number, bytes in
                (try? LogFormat.decodeKeySlot(bytes, number: number, salt: salt, magic: LogFormat.keySlotJournalKey)) != nil
            }
        }
        guard let salt = restored else { throw StorageError(.corrupted, "the key file header failed its checksum") }
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
            // One `memcmp` a slot: this runs over the whole preallocated file.
            let used: Int? = bytes.withUnsafeBytes { raw in
                var i = raw.count / Int(slotSize)
                while i > 0 {
                    let start = (i - 1) * Int(slotSize)
                    if !Zeros.allZero(UnsafeRawBufferPointer(rebasing: raw[start..<(start + Int(slotSize))])) { return i }
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
