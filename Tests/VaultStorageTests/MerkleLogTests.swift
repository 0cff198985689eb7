import Foundation
import Testing
@testable import VaultCrypto
@testable import VaultStorage

/// The log engine's Merkle tree (`merkle.hashes`): one leaf per record in
/// LSN order, the same tree after a reopen and after recovery, damage to
/// the stored hashes found at open.
@Suite struct MerkleLogTests {
    /// The leaf hash of every record, from the records themselves.
    func leaves(_ engine: LogEngine) async throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try await engine.scan(from: nil, only: { _ in true }) { r in
            out.append(r.payload.withUnsafeBytes { MerkleLog.leafHash(stream: r.stream, payload: $0) })
            return true
        }
        return out
    }

    /// The root of `leaves` by the RFC's definition.
    func root(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        if leaves.isEmpty { return MerkleTree.emptyTreeHash }
        if leaves.count == 1 { return leaves.first! }
        let k = Int(MerkleTree.largestPowerOfTwo(below: UInt64(leaves.count)))
        return MerkleTree.nodeHash(root(leaves.prefix(k)), root(leaves.dropFirst(k)))
    }

    @Test func theTreeHasOneLeafPerRecordAndSurvivesAReopen() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<40 {
            let slot = try engine.reserveKeySlot()
            _ = try await engine.append(
                [EngineRecord(stream: stream(UInt8(i % 3)), payload: payload(i, size: 300)), EngineRecord(stream: nil, payload: payload(i + 1000, size: 50))],
                keySlotWrites: i % 4 == 0 ? [(slot, [1, 2, 3])] : [], durability: .durable
            ).wait()
        }
        let tree = engine.merkleTree
        // Manifests are leaves too (they are records of the log), though
        // scans never hand them out: 80 records and 10 manifests.
        #expect(tree.size == 90)
        #expect(engine.durableRecordCount == 90)
        let before = try tree.root(size: 90)
        try await engine.close()
        let reopened = try dir.openEngine()
        #expect(try reopened.merkleTree.root(size: 90) == before)
        // Without manifests: check the records a scan returns are leaves.
        let scanned = try await leaves(reopened)
        #expect(scanned.count == 80)
        var found = 0
        for i in 0..<90 where scanned.contains(try reopened.merkleTree.leaf(UInt64(i))) { found += 1 }
        #expect(found == 80)
        try await reopened.close()
    }

    /// After a torn tail is cut, the tree is the tree of the records kept,
    /// rebuilt from the log whatever `merkle.hashes` held beyond them.
    @Test func afterACutTheTreeIsTheTreeOfWhatWasKept() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        var locations: [RecordLocation] = []
        for i in 0..<20 { locations += try await engine.appendDurably([EngineRecord(stream: stream(1), payload: payload(i, size: 500))]) }
        let kept = try (1...15).map { try engine.merkleTree.leaf(UInt64($0 - 1)) }
        try await engine.close()
        // Replay from the start, and tear the log inside record 16 (zeros
        // from there on, the file's length kept, as a crash leaves it).
        try FileManager.default.removeItem(atPath: dir.path + "/" + LogFormat.checkpointFileName)
        let cut = locations[15]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.segmentPath(1)))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: cut.offset + 40)
        try handle.truncate(atOffset: size)
        try handle.close()
        let reopened = try dir.openEngine()
        #expect(reopened.merkleTree.size == 15)
        #expect(try reopened.merkleTree.root(size: 15) == root(kept[...]))
        // New records extend it.
        try await reopened.appendDurably([EngineRecord(stream: stream(1), payload: payload(99, size: 10))])
        #expect(reopened.merkleTree.size == 16)
        try await reopened.close()
    }

    /// The checkpoint records the tree's root: a stored hash the root reads
    /// altered beyond what ``aDamagedHashOfTheTreesEdgeIsRestored`` restores
    /// (with a child it would be recomputed from), hashes cut before what it covers, or a missing
    /// `merkle.hashes`, are damage. (Other stored hashes are read by
    /// proofs, which the store checks against the root before it hands
    /// one out.)
    @Test(arguments: ["flipped", "cut", "missing"])
    func damageToTheStoredHashesIsCorruption(case what: String) async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<10 { try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i))]) }
        try await engine.close()
        let path = dir.path + "/" + MerkleHashFile.fileName
        switch what {
        case "flipped":
            var bytes = try readBytes(path)
            // The 8-leaf subtree, which the root of 10 leaves reads, and
            // one of its children, from which it would be recomputed.
            bytes[Int(MerkleHashFile.headerSize) + Int(MerkleTree.storedIndex(level: 3, index: 0)) * 32 + 3] ^= 1
            bytes[Int(MerkleHashFile.headerSize) + Int(MerkleTree.storedIndex(level: 2, index: 1)) * 32 + 5] ^= 1
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        case "cut":
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: MerkleHashFile.headerSize + 32 * 7)
            try handle.close()
        default:
            try FileManager.default.removeItem(atPath: path)
        }
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    /// One damaged hash of the tree's right edge, which the open reads to
    /// rebuild the tree, is restored where the checkpoint's root (under its
    /// MAC) proves it: a subtree's from its two children, a lone leaf's by
    /// its one changed byte. Written back; two changed bytes of the leaf
    /// are `corrupted`.
    @Test func aDamagedHashOfTheTreesEdgeIsRestored() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        // 11 leaves: the edge is the subtrees of 8 and 2 leaves, and leaf 10.
        for i in 0..<11 { try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i))]) }
        let root = try engine.merkleTree.root(size: 11)
        try await engine.close()
        let path = dir.path + "/" + MerkleHashFile.fileName
        let original = try readBytes(path)
        for (level, index) in [(3, UInt64(0)), (1, UInt64(4)), (0, UInt64(10))] {
            let stored = MerkleTree.storedIndex(level: level, index: index)
            let at = Int(MerkleHashFile.headerSize) + Int(stored) * 32 + 17
            try overwrite(path, at: UInt64(at), with: [original[at] ^ 0x40])
            let reopened = try dir.openEngine()
            #expect(reopened.recoveryReport.restoredMerkleHash == stored, "level \(level)")
            #expect(try reopened.merkleTree.root(size: 11) == root)
            #expect(try reopened.records(of: stream(2)).count == 11)
            try await reopened.close()
            #expect(try readBytes(path).prefix(original.count) == original[...], "level \(level): written back")
        }
        let leaf = Int(MerkleHashFile.headerSize) + Int(MerkleTree.storedIndex(level: 0, index: 10)) * 32
        try overwrite(path, at: UInt64(leaf), with: [original[leaf] ^ 0x01, original[leaf + 1] ^ 0x01])
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
    }

    /// The header of `merkle.hashes` holds nothing but known bytes: one
    /// flipped byte is restored (and written back) at open; two are
    /// `corrupted`, as any damaged header was before.
    @Test func aHeaderWithOneDamagedByteIsRestored() async throws {
        let (dir, engine) = try TemporaryDirectory.withEngine()
        for i in 0..<5 { try await engine.appendDurably([EngineRecord(stream: stream(2), payload: payload(i))]) }
        try await engine.close()
        let path = dir.path + "/" + MerkleHashFile.fileName
        let original = try readBytes(path)
        for offset in [0, 8, 30, 61] {
            try overwrite(path, at: UInt64(offset), with: [original[offset] ^ 0x10])
            let reopened = try dir.openEngine()
            #expect(try reopened.records(of: stream(2)).count == 5)
            try await reopened.close()
            #expect(Array(try readBytes(path).prefix(64)) == Array(original.prefix(64)), "byte \(offset) written back")
        }
        try overwrite(path, at: 20, with: [original[20] ^ 0x01, original[21] ^ 0x01])
        #expect { _ = try dir.openEngine() } throws: { ($0 as? StorageError)?.code == .corrupted }
    }
}
