import Foundation
import Testing
@testable import VaultStorage
import VaultSync

/// The key-slot file: reserve, write, read, destroy (`LogEngine` key slots).
@Suite struct KeySlotTests {
    @Test func writeReadDestroyAndReopen() async throws {
        let dir = TemporaryDirectory()
        var slots: [KeySlot] = []
        do {
            let engine = try dir.openEngine()
            for i in 0..<50 {
                let slot = try engine.reserveKeySlot()
                slots.append(slot)
                _ = try await engine.append([], keySlotWrites: [(slot, payload(i, size: 72))], durability: .durable).wait()
            }
            #expect(Set(slots).count == 50)
            #expect(try await engine.readKeySlot(slots[3]) == payload(3, size: 72))
            try await engine.destroyKeySlot(slots[3])
            await #expect { _ = try await engine.readKeySlot(slots[3]) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
            try await engine.close()
        }
        // The destroyed value is nowhere in the key file any more.
        let file = try readBytes(dir.path + "/" + LogFormat.keyFileName)
        #expect(!contains(file, payload(3, size: 72)))
        #expect(contains(file, payload(4, size: 72)))

        let engine = try dir.openEngine()
        #expect(try await engine.readKeySlot(slots[49]) == payload(49, size: 72))
        await #expect { _ = try await engine.readKeySlot(slots[3]) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        // New slots never reuse old numbers.
        let fresh = try engine.reserveKeySlot()
        #expect(fresh.number > slots.map(\.number).max()!)
        await #expect { _ = try await engine.readKeySlot(fresh) } throws: { ($0 as? StorageError)?.code == .keySlotEmpty }
        try await engine.close()
    }

    /// A backup's copy of the key file that a destruction overlapped is
    /// made again (the first could show a tombstone whose record the copy
    /// of the log lacks), and only then: here a first copy with nothing
    /// beside it is kept, and a second, after which a destruction runs
    /// before the check, is made again and shows the tombstone.
    @Test func aKeyFileCopyThatADestructionOverlappedIsMadeAgain() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let slot = try await durableSlot(engine, payload(2, size: 72))
        let copy = TemporaryDirectory()
        let path = copy.path + "/" + LogFormat.keyFileName
        let core = engine.core
        let quiet = Locked(0)
        _ = try await inBackground { try engine.copyKeyFile(to: path) { quiet.withLock { $0 += 1 } } }
        #expect(quiet.withLock { $0 } == 1, "nothing overlapped the copy: made once")
        let overlapped = Locked(0)
        let records = try await inBackground {
            try engine.copyKeyFile(to: path) {
                guard overlapped.withLock({ c in defer { c += 1 }; return c == 0 }) else { return }
                destroyBlocking(slot, in: core)
            }
        }
        #expect(overlapped.withLock { $0 } == 2, "the copy a destruction overlapped was made again, once")
        #expect(records == engine.durableRecordCount)
        let copied = try readBytes(path)
        let offset = Int(slot.number) * LogFormat.keySlotSize
        let showsTheTombstone = Array(copied[offset..<offset + LogFormat.keySlotSize]) == engine.core.keySlots.tombstone(slot)
        let holdsTheKey = contains(copied, payload(2, size: 72))
        #expect(showsTheTombstone, "the copy is the one made after the destruction")
        #expect(!holdsTheKey)
        try await engine.close()
    }

    /// Three optimistic copies of the key file that destructions overlap
    /// are followed by one that holds destructions off: it shows every
    /// tombstone.
    @Test func aKeyFileCopyOverlappedThreeTimesIsMadeHoldingDestructionsOff() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        var slots: [KeySlot] = []
        for i in 0..<3 { slots.append(try await durableSlot(engine, payload(10 + i, size: 72), record: i)) }
        let copy = TemporaryDirectory()
        let path = copy.path + "/" + LogFormat.keyFileName
        let core = engine.core
        let calls = Locked(0)
        let destroyed = slots
        _ = try await inBackground {
            try engine.copyKeyFile(to: path) {
                let n = calls.withLock { c in defer { c += 1 }; return c }
                guard n < destroyed.count else { return }
                destroyBlocking(destroyed[n], in: core)
            }
        }
        #expect(calls.withLock { $0 } == 3, "three optimistic copies, then the held one (no hook)")
        let copied = try readBytes(path)
        for (i, slot) in slots.enumerated() {
            let offset = Int(slot.number) * LogFormat.keySlotSize
            let showsTheTombstone = Array(copied[offset..<offset + LogFormat.keySlotSize]) == engine.core.keySlots.tombstone(slot)
            #expect(showsTheTombstone, "slot \(i)")
        }
        try await engine.close()
    }

    /// After a failed sync of the key file every later one fails, even
    /// once the device answers again: the kernel reports a lost write-back
    /// once, and may have marked the lost pages clean, so a later success
    /// would prove nothing of them (a destruction's tombstones synced
    /// after a backup's failed sync, for one).
    @Test func aFailedSyncOfTheKeyFileFailsEveryLaterOne() async throws {
        let dir = TemporaryDirectory()
        let faults = FaultInjection()
        var c = smallConfiguration()
        c.faults = faults
        let engine = try dir.openEngine(c)
        _ = try await durableSlot(engine, payload(2, size: 72))
        faults.syncFailsOn = "key file"
        #expect(throws: StorageError.self) { try engine.core.keySlots.syncAlways(site: .keyFileSync) }
        faults.syncFailsOn = nil
        #expect(throws: StorageError.self) { try engine.core.keySlots.syncAlways(site: .keyFileSync) }
        #expect(throws: StorageError.self) { try engine.core.keySlots.syncIfWritten() }
        try? await engine.close()
    }

    /// One `fdatasync` per group: a group that writes a key slot syncs its
    /// segment, never the key file (its manifest carries the slot), and the
    /// key file is synced before the checkpoint that moves replay past it.
    @Test func aGroupWithKeySlotsSyncsItsSegmentAlone() async throws {
        let dir = TemporaryDirectory()
        let syncs = SyncRecorder()
        var c = smallConfiguration()
        c.faults = FaultInjection(observer: syncs)
        // Space preallocated at once, so no growth ahead of need (which
        // syncs its zeros on the committer thread) runs during the append.
        c.initialSegmentAllocation = c.segmentSize
        c.keyFileGrowth = 1 << 20
        let engine = try dir.openEngine(c)
        let slot = try engine.reserveKeySlot()
        syncs.reset()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(slot, payload(2, size: 72))],
            durability: .durable
        ).wait()
        #expect(syncs.paths.count == 1, "\(syncs.paths)")
        #expect(syncs.paths.allSatisfy { $0.contains(LogFormat.segmentFileName(1)) }, "\(syncs.paths)")
        #expect(try await engine.readKeySlot(slot) == payload(2, size: 72))
        try await engine.close()
        // Close checkpoints: the key file was synced before it.
        #expect(syncs.paths.contains { $0.hasSuffix(LogFormat.keyFileName) })
        let reopened = try dir.openEngine(c)
        #expect(reopened.recoveryReport.restoredKeySlots == 0)
        #expect(try await reopened.readKeySlot(slot) == payload(2, size: 72))
        try await reopened.close()
    }

    /// A destruction rotates the journal key before writing its tombstone,
    /// and the old key's slot is overwritten by the next key once the slots
    /// are synced (at the latest at close), so the manifest's copy of the
    /// destroyed slot, still in the log, opens under no key the store holds.
    @Test func aDestructionReplacesTheJournalKeyThatSealedTheSlotsCopy() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(slot, payload(5, size: 72))],
            durability: .durable
        ).wait()
        let before = try readBytes(dir.path + "/" + LogFormat.keyFileName)
        let oldKeySlot = Array(before[LogFormat.keySlotSize..<(2 * LogFormat.keySlotSize)])
        #expect(oldKeySlot.contains { $0 != 0 })
        try await engine.destroyKeySlot(slot)
        // A group after the destruction is sealed under the new key.
        let later = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(2))], keySlotWrites: [(later, payload(6, size: 72))],
            durability: .durable
        ).wait()
        try await engine.close()
        let after = try readBytes(dir.path + "/" + LogFormat.keyFileName)
        #expect(!contains(after, Array(oldKeySlot[24..<64])))
        #expect(!contains(after, payload(5, size: 72)))
        let reopened = try dir.openEngine()
        await #expect { _ = try await reopened.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        #expect(try await reopened.readKeySlot(later) == payload(6, size: 72))
        try await reopened.close()
    }

    /// A destruction replaces the journal key only when a slot it destroys
    /// has a copy sealed under the current key: a slot whose manifest was
    /// sealed under a key an earlier destruction wiped needs none (one
    /// sync of the log, as a deposit), and a slot written since does.
    @Test func aDestructionRotatesOnlyForASlotWithACopyUnderTheCurrentKey() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let path = dir.path + "/" + LogFormat.keyFileName
        // Read once the rotation's settling (after the acknowledgement)
        // is done: an index snapshot settles the key file first.
        func journalKeys() async throws -> [UInt8] {
            _ = try await engine.core.requestIndexSnapshot().wait()
            return Array(try readBytes(path)[LogFormat.keySlotSize..<(3 * LogFormat.keySlotSize)])
        }
        let first = try engine.reserveKeySlot()
        let second = try engine.reserveKeySlot()
        for (i, slot) in [first, second].enumerated() {
            _ = try await engine.append(
                [EngineRecord(stream: stream(1), payload: payload(i + 1))], keySlotWrites: [(slot, payload(5 + i, size: 72))],
                durability: .durable
            ).wait()
        }
        let sealing = try await journalKeys()
        try await engine.destroyKeySlot(first)
        let rotated = try await journalKeys()
        #expect(rotated != sealing)
        // The second slot's copy is sealed under the key just wiped.
        try await engine.destroyKeySlot(second)
        #expect(try await journalKeys() == rotated)
        // A slot written since has its copy under the current key.
        let later = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(3))], keySlotWrites: [(later, payload(7, size: 72))],
            durability: .durable
        ).wait()
        try await engine.destroyKeySlot(later)
        let again = try await journalKeys()
        #expect(again != rotated)
        // A group that destroys a slot its own manifest carries rotates
        // too, though no manifest was queued since the last rotation.
        let own = try engine.reserveKeySlot()
        let (group, destruction) = try engine.append(
            [EngineRecord(stream: stream(1), payload: payload(4))], keySlotWrites: [(own, payload(8, size: 72))],
            durability: .durable, mayUseReserve: false, thenDestroying: [own])
        _ = try await group.wait()
        _ = try await destruction?.wait()
        #expect(try await journalKeys() != again)
        try await engine.close()
        let after = try readBytes(path)
        for value in [payload(5, size: 72), payload(6, size: 72), payload(7, size: 72), payload(8, size: 72)] { #expect(!contains(after, value)) }
        let reopened = try dir.openEngine()
        for slot in [first, second, later, own] {
            await #expect { _ = try await reopened.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        }
        try await reopened.close()
    }

    /// Writes two slots (payloads 7 and 8) in two groups, destroys the
    /// second and closes, then leaves the disk as a crash after the
    /// destruction's acknowledgement, before its settling, would: the old
    /// journal key still in slot 1 (its replacement lost) beside the one
    /// the destruction rotated to, no checkpoint after the groups,
    /// and with `losingKept`, the first slot's page lost too. Returns both
    /// slots and the old key's slot bytes.
    static func twoSlotsOneDestroyed(in dir: TemporaryDirectory, losingKept: Bool) async throws -> (KeySlot, KeySlot, [UInt8]) {
        let slotSize = LogFormat.keySlotSize
        let engine = try dir.openEngine()
        let kept = try engine.reserveKeySlot()
        let destroyed = try engine.reserveKeySlot()
        for (i, slot) in [kept, destroyed].enumerated() {
            _ = try await engine.append(
                [EngineRecord(stream: stream(1), payload: payload(i + 1))], keySlotWrites: [(slot, payload(7 + i, size: 72))],
                durability: .durable
            ).wait()
        }
        let oldKey = Array(try readBytes(dir.path + "/" + LogFormat.keyFileName)[slotSize..<(2 * slotSize)])
        #expect(oldKey.contains { $0 != 0 })
        try await engine.destroyKeySlot(destroyed)
        try await engine.close()
        let keyFile = dir.path + "/" + LogFormat.keyFileName
        var file = try readBytes(keyFile)
        #expect(file[(2 * slotSize)..<(3 * slotSize)].contains { $0 != 0 }, "the new journal key is in slot 2")
        file.replaceSubrange(slotSize..<(2 * slotSize), with: oldKey)
        if losingKept {
            let k = Int(kept.number) * slotSize
            file.replaceSubrange(k..<(k + slotSize), with: [UInt8](repeating: 0, count: slotSize))
        }
        try Data(file).write(to: URL(fileURLWithPath: keyFile))
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        return (kept, destroyed, oldKey)
    }

    /// A power cut after a destruction's acknowledgement, during the key
    /// file's first sync, may make the tombstone's page durable and lose a
    /// slot's page (one `fdatasync` orders nothing within a file), with the
    /// old journal key not yet replaced. That slot's only copy is its
    /// manifest, sealed under the old key: the next open must still open
    /// it, write the slot back, and only then overwrite the old key. A slot destroyed in the same destruction, whose
    /// tombstone reached the disk, stays destroyed. (One power cut would not
    /// leave both that tombstone and the lost slot: the test checks both
    /// rules on one disk.)
    @Test func aSlotLostInADestructionsFirstSyncComesBackFromTheOlderKey() async throws {
        let dir = TemporaryDirectory()
        let keyFile = dir.path + "/" + LogFormat.keyFileName
        let slotSize = LogFormat.keySlotSize
        // The disk as the power cut left it: the new key (slot 2) and the
        // tombstone durable, the old key's wipe not, the kept slot's page
        // lost; no checkpoint after the groups.
        let (kept, destroyed, oldKey) = try await Self.twoSlotsOneDestroyed(in: dir, losingKept: true)

        let reopened = try dir.openEngine()
        #expect(reopened.recoveryReport.restoredKeySlots == 1)
        #expect(try await reopened.readKeySlot(kept) == payload(7, size: 72))
        await #expect { _ = try await reopened.readKeySlot(destroyed) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        try await reopened.close()
        // The old key was overwritten once the slot was back.
        let after = try readBytes(keyFile)
        #expect(after[slotSize..<(2 * slotSize)].contains { $0 != 0 })
        #expect(!contains(after, Array(oldKey[24..<64])))
        #expect(!contains(after, payload(8, size: 72)))
    }

    /// After a crash of the process alone, the key file's last writes may
    /// be in the page cache only: the open syncs the file in a sync of its
    /// own before it overwrites an older journal key (with the key after
    /// the newer), and syncs that. (With one sync for both, a power cut
    /// during it could keep the overwrite and lose a slot whose only other
    /// copy that key seals.)
    @Test func anOpenSyncsTheKeyFileBeforeItReplacesTheOlderJournalKey() async throws {
        let dir = TemporaryDirectory()
        let keyFile = dir.path + "/" + LogFormat.keyFileName
        let slotSize = LogFormat.keySlotSize
        // The process killed between the destruction's two syncs: both keys
        // in the file, no checkpoint after the groups.
        let (kept, _, oldKey) = try await Self.twoSlotsOneDestroyed(in: dir, losingKept: false)

        let events = SyncRecorder()
        let reopened = try dir.openEngine(smallConfiguration { $0.faults = FaultInjection(observer: events) })
        #expect(try await reopened.readKeySlot(kept) == payload(7, size: 72))
        try await reopened.close()
        let k = events.keyFileEvents
        let wipe = try #require(k.firstIndex(of: "slot@\(slotSize)"), "\(k)")
        #expect(k[..<wipe].contains("sync"), "the slots are synced before the older key goes: \(k)")
        #expect(k[(wipe + 1)...].contains("sync"), "its replacement is synced: \(k)")
        #expect(Array(try readBytes(keyFile)[slotSize..<(2 * slotSize)]) != oldKey)
    }

    /// A rotation queued while the previous one's settling is still owed
    /// (here: its first sync of the key file held until the next group and
    /// its destruction are queued) finds its key not yet on the file: the
    /// committer finishes the previous settling first (beside the log's
    /// sync), then rotates. Both destroyed slots stay destroyed, the kept
    /// one reads, and neither journal key of before is left in the file.
    @Test func aRotationBehindAnUnsettledOneSettlesItFirst() async throws {
        let hold = KeyFileSyncHold()
        let dir = TemporaryDirectory()
        // Grown in steps of 64 KiB: no growth of the key file ahead of need
        // (whose sync the hold would take for the settling's) in this test.
        let engine = try dir.openEngine(smallConfiguration {
            $0.faults = FaultInjection(observer: hold)
            $0.keyFileGrowth = 1 << 20
        })
        let keyFile = dir.path + "/" + LogFormat.keyFileName
        let before = Array(try readBytes(keyFile)[LogFormat.keySlotSize..<(3 * LogFormat.keySlotSize)])
        let first = try engine.reserveKeySlot()
        let kept = try engine.reserveKeySlot()
        // Reserved now: a reservation may grow the key file, whose sync
        // would wait behind the held one.
        let second = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(first, payload(5, size: 72)), (kept, payload(6, size: 72))],
            durability: .durable
        ).wait()
        hold.arm()
        try await engine.destroyKeySlot(first)
        // Acknowledged with no sync of the key file; its settling is held.
        try await waitUntil { hold.isHolding }
        let (group, destruction) = try engine.append(
            [EngineRecord(stream: stream(1), payload: payload(2))], keySlotWrites: [(second, payload(7, size: 72))],
            durability: .durable, mayUseReserve: false, thenDestroying: [second])
        hold.release()
        _ = try await group.wait()
        _ = try await destruction?.wait()
        try await engine.close()
        let after = try readBytes(keyFile)
        for key in [Array(before[24..<64]), Array(before[(LogFormat.keySlotSize + 24)..<(LogFormat.keySlotSize + 64)])] {
            #expect(!contains(after, key))
        }
        let reopened = try dir.openEngine()
        for slot in [first, second] {
            await #expect { _ = try await reopened.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .keySlotDestroyed }
        }
        #expect(try await reopened.readKeySlot(kept) == payload(6, size: 72))
        try await reopened.close()
    }

    /// Every open of a store rotates the journal key, but not the one
    /// open of a backup's copy that replays its log
    /// (``LogEngine/finishBackup(in:configuration:records:)``): its
    /// checkpoint would record a newer key than the store's own file, and
    /// an incremental backup cut short, which copies that file over the
    /// copy's and keeps the copy's index, would no longer restore. Before,
    /// the copy's open wrote a new key.
    @Test func aBackupsCopyIsOpenedWithoutARotation() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        _ = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(slot, payload(2, size: 72))], durability: .durable
        ).wait()
        try await engine.close()
        let keyFile = dir.path + "/" + LogFormat.keyFileName
        let journal = { Array(try readBytes(keyFile)[LogFormat.keySlotSize..<(3 * LogFormat.keySlotSize)]) }
        let before = try journal()
        // The copy replays its whole log (no checkpoint), and writes one.
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        _ = try await LogEngine.finishBackup(in: dir.path, configuration: smallConfiguration(), records: 2)
        #expect(try journal() == before)
        // A store's open rotates.
        let reopened = try dir.openEngine()
        #expect(try await reopened.readKeySlot(slot) == payload(2, size: 72))
        try await reopened.close()
        #expect(try journal() != before)
    }

    /// A manifest names only slots whose byte offset a key file can have:
    /// a larger number is malformed, never an offset that overflows.
    @Test func aManifestSlotBeyondAnyKeyFileIsMalformed() {
        let box = [UInt8](repeating: 1, count: LogFormat.journaledSlotSize - 8)
        let last = LogFormat.encodeSlotManifest(epoch: 1, slots: [(LogFormat.maximumKeySlot - 1, box)])
        let beyond = LogFormat.encodeSlotManifest(epoch: 1, slots: [(LogFormat.maximumKeySlot, box)])
        #expect(last.withUnsafeBytes { LogFormat.decodeSlotManifest($0) } != nil)
        #expect(beyond.withUnsafeBytes { LogFormat.decodeSlotManifest($0) } == nil)
    }

    /// One flipped byte in a slot (its value, its number, its CRC) is
    /// restored when read, by the CRC's algebra (the wrapped key's own
    /// authentication, above, proves it); so is one of its magic (outside
    /// the CRC) but its kind byte, the value not being the slot's genuine
    /// tombstone; two are `corrupted`, and so is a magic that is another
    /// slot kind's or whose kind byte is off.
    @Test func tamperedSlotIsCorruptionUnlessOneByteRestoresIt() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        let value = payload(1, size: 72)
        _ = try await engine.append([], keySlotWrites: [(slot, value)], durability: .durable).wait()
        let path = dir.path + "/" + LogFormat.keyFileName
        let base = Int(slot.number) * LogFormat.keySlotSize
        let original = try readBytes(path)
        for offset in [4, 7, 9, 16, 30, 95, 127] {
            try overwrite(path, at: UInt64(base + offset), with: [original[base + offset] ^ 0x55])
            #expect(try await engine.readKeySlot(slot) == value, "byte \(offset)")
            try overwrite(path, at: UInt64(base + offset), with: [original[base + offset]])
        }
        try overwrite(path, at: UInt64(base + 30), with: [original[base + 30] ^ 0x55, original[base + 31] ^ 0x0F])
        await #expect { _ = try await engine.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .corrupted }
        try overwrite(path, at: UInt64(base + 30), with: [original[base + 30], original[base + 31]])
        try overwrite(path, at: UInt64(base + 1), with: [original[base + 1] ^ 0x01])
        #expect(try await engine.readKeySlot(slot) == value, "a magic byte")
        try overwrite(path, at: UInt64(base + 1), with: [original[base + 1]])
        // The journal key's magic ("PVKJ" for "PVK1"): another kind, not
        // damage; a kind byte that is no kind's ("PVKY"): not read as live.
        for kind in ["J", "Y"] {
            try overwrite(path, at: UInt64(base + 3), with: [UInt8(ascii: Unicode.Scalar(kind)!)])
            await #expect { _ = try await engine.readKeySlot(slot) } throws: { ($0 as? StorageError)?.code == .corrupted }
        }
        try await engine.close()
    }

    /// One flipped byte in the key file's header (its magic, version,
    /// salt, zeros or CRC) is restored at open when the salt it gives is
    /// the one the journal key's slot was written under; two are
    /// `corrupted`, as a damaged header was before (the whole store).
    @Test func aKeyFileHeaderWithOneDamagedByteIsRestored() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        let value = payload(2, size: 72)
        _ = try await engine.append([EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(slot, value)], durability: .durable).wait()
        try await engine.close()
        let path = dir.path + "/" + LogFormat.keyFileName
        let original = try readBytes(path)
        for offset in [0, 9, 13, 16, 20, 31, 60, 124, 127] {
            try overwrite(path, at: UInt64(offset), with: [original[offset] ^ 0xA5])
            let reopened = try dir.openEngine()
            #expect(try await reopened.readKeySlot(slot) == value, "byte \(offset)")
            try await reopened.close()
            try Data(original).write(to: URL(fileURLWithPath: path))
        }
        try overwrite(path, at: 18, with: [original[18] ^ 0x01, original[19] ^ 0x01])
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    /// One flipped byte of the journal key's slot (its magic, its kind byte
    /// included, CRC, number, length, zeros or key bytes) is restored at
    /// open, in memory: the key is proven by use,
    /// as the manifest recovery opens under it (XChaCha20-Poly1305) gives
    /// back the slot the key file lost. A byte of its epoch, which nothing
    /// proves, or two flipped bytes leave no journal key: `corrupted`.
    /// Before, one byte was `corrupted` too.
    @Test func aJournalKeySlotWithOneDamagedByteIsRestored() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        let slot = try engine.reserveKeySlot()
        let value = payload(3, size: 72)
        _ = try await engine.append([EngineRecord(stream: stream(1), payload: payload(1))], keySlotWrites: [(slot, value)], durability: .durable).wait()
        try await engine.close()
        let path = dir.path + "/" + LogFormat.keyFileName
        let checkpoint = dir.path + "/" + LogFormat.checkpointFileName
        // The slot lost from the key file (as a power cut may), and no
        // checkpoint: the open replays the manifest under the journal key.
        var original = try readBytes(path)
        let base = Int(slot.number) * LogFormat.keySlotSize
        for i in base..<(base + LogFormat.keySlotSize) { original[i] = 0 }
        let journal = Int(LogFormat.journalKeySlots[0]) * LogFormat.keySlotSize
        for offset in [1, 3, 5, 9, 16, 20, 40, 60, 100] {
            var damaged = original
            damaged[journal + offset] ^= 0x24
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            try? FileManager.default.removeItem(atPath: checkpoint)
            let reopened = try dir.openEngine()
            #expect(reopened.recoveryReport.restoredKeySlots == 1, "byte \(offset)")
            #expect(try await reopened.readKeySlot(slot) == value, "byte \(offset)")
            try await reopened.close()
            // Restored in memory, then overwritten by the open's rotation
            // (the key after the newer, slot 2's).
            #expect(Array(try readBytes(path)[journal..<(journal + LogFormat.keySlotSize)]) != Array(damaged[journal..<(journal + LogFormat.keySlotSize)]), "byte \(offset)")
        }
        // The epoch, which nothing proves: never restored.
        var epoch = original
        epoch[journal + 26] ^= 0x24
        try Data(epoch).write(to: URL(fileURLWithPath: path))
        try? FileManager.default.removeItem(atPath: checkpoint)
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
        var twice = original
        twice[journal + 40] ^= 0x01
        twice[journal + 50] ^= 0x01
        try Data(twice).write(to: URL(fileURLWithPath: path))
        try? FileManager.default.removeItem(atPath: checkpoint)
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    @Test func slotsAreDurableBeforeTheRecordsThatFollowThem() async throws {
        let dir = TemporaryDirectory()
        let engine = try dir.openEngine()
        let slot = try engine.reserveKeySlot()
        let loc = try await engine.append(
            [EngineRecord(stream: stream(1), payload: payload(1))],
            keySlotWrites: [(slot, payload(2, size: 40))], durability: .durable
        ).wait()
        #expect(try await engine.read(loc[0]).payload == payload(1))
        #expect(try await engine.readKeySlot(slot) == payload(2, size: 40))
        #expect { _ = try engine.append([], keySlotWrites: [(slot, payload(1, size: 105))], durability: .durable) } throws: {
            ($0 as? StorageError)?.code == .tooLarge
        }
        try await engine.close()
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}

/// Records the paths the engine syncs (a ``FileObserver``).
final class SyncRecorder: FileObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var synced: [String] = []
    /// The key file's writes of one slot, of zeros ("zeros@offset") or
    /// not ("slot@offset"), and syncs ("sync"), in order.
    private var keyFile: [String] = []
    var paths: [String] { lock.withLock { synced } }
    var keyFileEvents: [String] { lock.withLock { keyFile } }
    func reset() { lock.withLock { synced = [] } }
    func opened(_ path: String, created: Bool, truncated: Bool) {}
    func wrote(_ path: String, at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard path.hasSuffix(LogFormat.keyFileName), bytes.count == LogFormat.keySlotSize else { return }
        let event = bytes.allSatisfy({ $0 == 0 }) ? "zeros@\(offset)" : "slot@\(offset)"
        lock.withLock { keyFile.append(event) }
    }
    func truncated(_ path: String, to length: UInt64) {}
    func synced(_ path: String) {
        lock.withLock {
            synced.append(path)
            if path.hasSuffix(LogFormat.keyFileName) { keyFile.append("sync") }
        }
    }
    func renamed(_ from: String, _ to: String) {}
    func removed(_ path: String) {}
}

/// Writes `value` into a new key slot, with one record, durably.
private func durableSlot(_ engine: LogEngine, _ value: [UInt8], record: Int = 1) async throws -> KeySlot {
    let slot = try engine.reserveKeySlot()
    _ = try await engine.append(
        [EngineRecord(stream: stream(1), payload: payload(record))], keySlotWrites: [(slot, value)], durability: .durable
    ).wait()
    return slot
}

/// Destroys `slot` through the committer and waits for it, blocking (off
/// the cooperative pool: a hook of ``LogEngine/copyKeyFile(to:afterCopy:)``).
private func destroyBlocking(_ slot: KeySlot, in core: LogEngineCore) {
    let done = DispatchSemaphore(value: 0)
    let ticket = try? core.destroy([slot])
    Task {
        _ = try? await ticket?.wait()
        done.signal()
    }
    done.wait()
}

/// Holds the first sync of the key file after ``arm()`` (on the thread that
/// syncs, once the sync returned) until ``release()``.
final class KeyFileSyncHold: FileObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var armed = false
    private var holding = false
    private let released = DispatchSemaphore(value: 0)
    var isHolding: Bool { lock.withLock { holding } }
    func arm() { lock.withLock { armed = true } }
    func release() { released.signal() }
    func opened(_ path: String, created: Bool, truncated: Bool) {}
    func wrote(_ path: String, at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {}
    func truncated(_ path: String, to length: UInt64) {}
    func synced(_ path: String) {
        guard path.hasSuffix(LogFormat.keyFileName) else { return }
        let holds = lock.withLock { () -> Bool in
            guard armed else { return false }
            armed = false
            holding = true
            return true
        }
        guard holds else { return }
        released.wait()
        lock.withLock { holding = false }
    }
    func renamed(_ from: String, _ to: String) {}
    func removed(_ path: String) {}
}

/// Waits (polling, without blocking a thread) until `condition` holds; fails
/// after 60 seconds rather than hang.
func waitUntil(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw CancellationError() }
        try await Task.sleep(for: .milliseconds(1))
    }
}
