import Foundation
import Testing
import VaultSync
@testable import PatientVault
@testable import VaultStorage

/// The store's files as a power loss leaves them. The engine tells this
/// model every change it makes (through the fault seam's `FileObserver`);
/// for a crash point, the model rebuilds the folder keeping only what was
/// synced, or (`subset`) that plus an arbitrary subset of what was not:
/// any 512-byte piece of an unsynced write, any unsynced length change,
/// and a prefix of the unsynced directory changes (a journal keeps their
/// order). A directory entry is durable once the directory is synced.
final class PowerLossDisk: FileObserver, Sendable {
    enum Op: Sendable {
        case opened(String, created: Bool, truncated: Bool)
        case wrote(String, UInt64, [UInt8])
        case truncated(String, UInt64)
        case synced(String)
        case renamed(String, String)
        case removed(String)
    }

    let directory: String
    private let log = Locked<[Op]>([])

    init(directory: String) { self.directory = directory }

    var ops: [Op] { log.withLock { $0 } }
    var count: Int { log.withLock { $0.count } }

    func opened(_ path: String, created: Bool, truncated: Bool) {
        log.withLock { $0.append(.opened(path, created: created, truncated: truncated)) }
    }
    func wrote(_ path: String, at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        let copy = [UInt8](bytes)
        log.withLock { $0.append(.wrote(path, offset, copy)) }
    }
    func truncated(_ path: String, to length: UInt64) {
        log.withLock { $0.append(.truncated(path, length)) }
    }
    func synced(_ path: String) { log.withLock { $0.append(.synced(path)) } }
    func renamed(_ from: String, _ to: String) { log.withLock { $0.append(.renamed(from, to)) } }
    func removed(_ path: String) { log.withLock { $0.append(.removed(path)) } }

    /// One file's bytes: what is durable, what the page cache holds, and
    /// the changes made since the last sync.
    final class Inode {
        var durable: [UInt8] = []
        var current: [UInt8] = []
        var pending: [Change] = []
    }

    enum Change {
        case write(UInt64, ArraySlice<UInt8>)
        case truncate(UInt64)
    }

    enum DirectoryChange {
        case link(String, Inode)
        case unlink(String)
    }

    static func apply(_ change: Change, to bytes: inout [UInt8]) {
        switch change {
        case .write(let offset, let data):
            let end = Int(offset) + data.count
            if bytes.count < end { bytes += [UInt8](repeating: 0, count: end - bytes.count) }
            bytes.replaceSubrange(Int(offset)..<end, with: data)
        case .truncate(let length):
            if Int(length) > bytes.count {
                bytes += [UInt8](repeating: 0, count: Int(length) - bytes.count)
            } else {
                bytes.removeSubrange(Int(length)...)
            }
        }
    }

    /// The folder after a power loss just before `ops[point]` (all of the
    /// ops when `point == ops.count`), written into `target`.
    func materialize(upTo point: Int, subset: Bool, seed: UInt64, into target: URL) throws {
        var random = RecordRoundTripTests.Draw(state: seed)
        var current: [String: Inode] = [:]
        var durable: [String: Inode] = [:]
        var pendingDirectory: [DirectoryChange] = []
        // A descriptor keeps its file across a rename: changes through it
        // go to the inode it was opened on, whatever its name now.
        var handles: [String: Inode] = [:]
        func name(_ path: String) -> String { String(path.split(separator: "/").last!) }
        func inode(_ path: String) -> Inode? { handles[path] ?? current[name(path)] }
        for op in ops.prefix(point) {
            switch op {
            case .opened(let path, let created, let truncated):
                if created || current[name(path)] == nil {
                    let inode = Inode()
                    current[name(path)] = inode
                    pendingDirectory.append(.link(name(path), inode))
                }
                let opened = current[name(path)]!
                handles[path] = opened
                if truncated {
                    opened.current = []
                    opened.pending.append(.truncate(0))
                }
            case .wrote(let path, let offset, let bytes):
                guard let inode = inode(path) else { continue }
                Self.apply(.write(offset, bytes[...]), to: &inode.current)
                // Pieces of 512 bytes: a disk may keep any of them.
                var start = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + 512)
                    inode.pending.append(.write(offset + UInt64(start), bytes[start..<end]))
                    start = end
                }
            case .truncated(let path, let length):
                guard let inode = inode(path) else { continue }
                Self.apply(.truncate(length), to: &inode.current)
                inode.pending.append(.truncate(length))
            case .synced(let path):
                if path == directory || path == directory + "/" {
                    for change in pendingDirectory {
                        switch change {
                        case .link(let n, let inode): durable[n] = inode
                        case .unlink(let n): durable[n] = nil
                        }
                    }
                    pendingDirectory.removeAll()
                } else if let inode = inode(path) {
                    inode.durable = inode.current
                    inode.pending.removeAll()
                }
            case .renamed(let from, let to):
                guard let inode = current[name(from)] else { continue }
                current[name(to)] = inode
                current[name(from)] = nil
                pendingDirectory.append(.link(name(to), inode))
                pendingDirectory.append(.unlink(name(from)))
            case .removed(let path):
                current[name(path)] = nil
                pendingDirectory.append(.unlink(name(path)))
            }
        }
        if subset {
            let kept = Int(random.next() % UInt64(pendingDirectory.count + 1))
            for change in pendingDirectory.prefix(kept) {
                switch change {
                case .link(let n, let inode): durable[n] = inode
                case .unlink(let n): durable[n] = nil
                }
            }
        }
        for (n, inode) in durable {
            var bytes = inode.durable
            if subset {
                for change in inode.pending where random.next() & 1 == 0 { Self.apply(change, to: &bytes) }
            }
            try Data(bytes).write(to: target.appendingPathComponent(n))
        }
    }
}

/// Power loss at every sync boundary of a workload: deposits, audited
/// reads, grants, erasures and compactions over three vaults, on an engine tuned so that the
/// workload grows its segment (64 KiB doubling), switches segments, grows
/// the key file (4 KiB steps) and writes checkpoints (every 128 KiB). For
/// each crash point (the moment before each `fdatasync`/`fsync` returns),
/// in two modes (only what was synced; that plus a random subset of what
/// was not), the rebuilt folder must open, hold every acknowledged
/// operation with its content and audit entry, hold each unacknowledged
/// deposit whole or not at all, and verify every chain.
@Suite struct PowerLossTests {
    struct Operation {
        enum Kind { case createVault, deposit(title: String, content: Data), read, grant, erase, compact }
        var kind: Kind
        var patient: INS
        var issued: Int
        var acknowledged: Int?
        var document: DocumentID?
    }

    static let patients = [Fixtures.alice, Fixtures.bob, Fixtures.ins("1840599123456")]
    static let reviewer = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    func configuration(_ faults: FaultInjection?) -> Configuration {
        var c = Fixtures.configuration()
        c.segmentSize = 1 << 20
        c.contentChunkSize = 16 << 10
        c.inlineContentLimit = 8 << 10
        c.auditReserve = 64 << 10
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        c.faults = faults
        c.tuneEngineForTesting = { e in
            e.initialSegmentAllocation = 64 << 10
            e.keyFileGrowth = 4 << 10
            e.checkpointInterval = 128 << 10
        }
        return c
    }

    @Test func everySyncBoundaryOfAWorkloadSurvivesAPowerLoss() async throws {
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let disk = PowerLossDisk(directory: folder.url.path)
        var operations: [Operation] = []
        var erased: Set<DocumentID> = []
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration(FaultInjection(observer: disk)))
        let steps = Int(ProcessInfo.processInfo.environment["PV_POWERLOSS_STEPS"] ?? "") ?? 150
        for step in 0..<steps {
            let patient = Self.patients[step % Self.patients.count]
            var op = Operation(kind: .read, patient: patient, issued: disk.count)
            if step < Self.patients.count {
                op.kind = .createVault
                try await store.createVault(for: patient, as: .patient(patient), channel: .patientOnline)
            } else if step % 7 == 0 {
                op.kind = .grant
                try await store.authorise(Fixtures.otherDoctor, for: patient, as: .patient(patient))
            } else if step % 23 == 17 {
                // A compaction of what was erased so far: its intent's
                // sync, the rewrites' and the segments' are crash points.
                op.kind = .compact
                _ = try await store.compact(as: Self.reviewer)
            } else if step % 11 == 5, let oldest = operations.first(where: {
                if case .deposit = $0.kind { $0.patient == patient && !erased.contains($0.document!) } else { false }
            }) {
                // An erasure: a destruction's two syncs of the key file
                // (the new journal key with every slot written so far, then
                // the old key's wipe with the tombstone) become crash points.
                op.kind = .erase
                op.document = oldest.document
                erased.insert(oldest.document!)
                try await store.erase(oldest.document!, for: patient, reason: try ErasureReason("power loss \(step)"), as: Fixtures.doctor)
            } else if step % 3 == 0, let earlier = operations.last(where: {
                $0.patient == patient && $0.document != nil && !erased.contains($0.document!)
            }) {
                op.document = earlier.document
                _ = try await store.content(of: earlier.document!, for: patient, as: Fixtures.doctor)
            } else {
                let content = Fixtures.content("PL\(step)", size: 3_000 + (step * 7_919) % 30_000)
                let title = "Power loss \(step)"
                op.kind = .deposit(title: title, content: content)
                op.document = try await store.deposit(Fixtures.draft(title), content: content, for: patient, as: Fixtures.doctor).id
            }
            op.acknowledged = disk.count
            operations.append(op)
        }
        // The last operations are acknowledged but the store is not closed:
        // the power goes before any orderly close.
        let ops = disk.ops
        // The workload reaches every step worth crashing in: segment growth
        // and switch, key-file growth, checkpoints (temporary file, sync,
        // rename, directory sync).
        func count(_ match: (PowerLossDisk.Op) -> Bool) -> Int { ops.filter(match).count }
        #expect(count { if case .renamed(_, let to) = $0 { to.hasSuffix("segment-0000000002.log") } else { false } } == 1)
        #expect(count { if case .renamed(_, let to) = $0 { to.hasSuffix("index.checkpoint") } else { false } } >= 3)
        // Growth steps: zeros written ahead of the data (then synced).
        func growth(_ file: String) -> Int {
            count { if case .wrote(let p, _, let b) = $0 { p.contains(file) && b.count >= 4096 && !b.contains { $0 != 0 } } else { false } }
        }
        #expect(growth("keys.slots") >= 3)
        #expect(growth("segment-0000000001") >= 4)
        var points: [Int] = ops.indices.filter { if case .synced = ops[$0] { true } else { false } }
        points.append(ops.count)
        let stride = max(1, Int(ProcessInfo.processInfo.environment["PV_POWERLOSS_STRIDE"] ?? "") ?? 16)
        points = points.enumerated().filter { $0.offset % stride == 0 || $0.element == ops.count }.map(\.element)
        var checked = (points: 0, acknowledged: 0, inFlightPresent: 0)
        for point in points {
            for subset in [false, true] {
                let target = FileManager.default.temporaryDirectory.appendingPathComponent("pv-powerloss-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
                defer { try? FileManager.default.removeItem(at: target) }
                try FileManager.default.copyItem(
                    at: folder.url.appendingPathComponent(StoreFolder.headerFileName), to: target.appendingPathComponent(StoreFolder.headerFileName))
                try disk.materialize(upTo: point, subset: subset, seed: UInt64(point) * 2 + (subset ? 1 : 0), into: target)
                let found = try await check(target, key: key, operations: operations, point: point, subset: subset)
                checked.points += 1
                checked.acknowledged += found.acknowledged
                checked.inFlightPresent += found.inFlightPresent
            }
        }
        try await store.close()
        print("power loss: \(points.count) crash points × 2 modes = \(checked.points) folders rebuilt from \(ops.count) file operations; \(checked.acknowledged) acknowledged operations checked, \(checked.inFlightPresent) in-flight deposits present whole")
        // One `fdatasync` per durable batch since the key-slot journal (the
        // key file is synced at checkpoints and growth steps only).
        #expect(points.count * stride > 200 || steps < 150, "the workload reaches a few hundred sync boundaries")
    }

    /// Opens the rebuilt folder and checks the workload's operations.
    func check(
        _ target: URL, key: MasterKey, operations: [Operation], point: Int, subset: Bool
    ) async throws -> (acknowledged: Int, inFlightPresent: Int) {
        let label = "crash before file operation \(point)\(subset ? " (with unsynced writes)" : "")"
        var c = configuration(nil)
        c.durability = .relaxed
        let store: VaultStore
        do {
            store = try await VaultStore.open(at: target, key: .key(key), configuration: c)
        } catch {
            Issue.record("\(label): the store does not open: \(error)")
            return (0, 0)
        }
        var acknowledged = 0
        var inFlightPresent = 0
        for patient in Self.patients {
            // A compaction is the store's, in no vault's trail.
            let mine = operations.filter { if case .compact = $0.kind { false } else { $0.patient == patient } }
            let done = mine.filter { ($0.acknowledged ?? Int.max) <= point }
            let vaultCreated = done.contains { if case .createVault = $0.kind { true } else { false } }
            // First the trail, before this check's own calls add entries:
            // every acknowledged operation left its entry, no more entries
            // than operations issued, and the chain verifies.
            let issued = mine.filter { $0.issued < point }.count
            do {
                let verification = try await store.verifyAuditTrail(for: patient, as: .patient(patient))
                #expect(verification.entries >= done.count, "\(label): \(verification.entries) entries for \(done.count) operations")
                #expect(verification.entries <= issued + 1, "\(label): \(verification.entries) entries for \(issued) operations issued")
                acknowledged += done.count - done.filter { if case .deposit = $0.kind { true } else { false } }.count
            } catch let e where e.code == .unknownVault && !vaultCreated {
                continue
            } catch {
                Issue.record("\(label): the trail does not verify: \(error)")
                continue
            }
            let documents: [DocumentMetadata]
            do {
                documents = try await store.documents(for: patient, as: .patient(patient))
            } catch {
                Issue.record("\(label): listing fails: \(error)")
                continue
            }
            let present = Dictionary(documents.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            // Every acknowledged deposit is listed (its metadata decrypts);
            // the content of the newest ones and of any in-flight deposit
            // present is read whole (older content is never rewritten, and
            // the corruption sweep covers damage to it).
            let recent = Set(done.compactMap { if case .deposit = $0.kind { $0.document } else { nil } }.suffix(4))
            // An acknowledged erasure's document is gone, and reads as
            // erased; one whose erasure was under way is there or not.
            let erasures = mine.filter { if case .erase = $0.kind { $0.issued < point } else { false } }
            for op in erasures where (op.acknowledged ?? Int.max) <= point {
                let id = op.document!
                #expect(present[id] == nil, "\(label): an erased document is listed")
                do {
                    _ = try await store.content(of: id, for: patient, as: .patient(patient))
                    Issue.record("\(label): an erased document reads")
                } catch {
                    #expect(error.code == .erased, "\(label): \(error)")
                }
            }
            let erasing = Set(erasures.compactMap(\.document))
            for op in mine {
                guard case .deposit(let title, let content) = op.kind, let id = op.document else { continue }
                let isAcknowledged = (op.acknowledged ?? Int.max) <= point
                guard let metadata = present[id] else {
                    if isAcknowledged && !erasing.contains(id) { Issue.record("\(label): acknowledged deposit \(title) is missing") }
                    continue
                }
                #expect(metadata.title == title, "\(label)")
                if !isAcknowledged || recent.contains(id) {
                    let read = try? await store.content(of: id, for: patient, as: .patient(patient))
                    #expect(read == content, "\(label): \(title) is not whole")
                }
                if isAcknowledged { acknowledged += 1 } else { inFlightPresent += 1 }
            }
            // Every present document is one the workload deposited.
            let deposited = Set(mine.compactMap(\.document))
            #expect(present.keys.allSatisfy { deposited.contains($0) }, "\(label)")
        }
        try await store.close()
        return (acknowledged, inFlightPresent)
    }
}
