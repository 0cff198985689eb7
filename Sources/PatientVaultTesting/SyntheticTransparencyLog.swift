import Foundation
import PatientVault
import VaultCrypto
import VaultStorage

/// A Merkle tree over synthetic records, kept in a `merkle.hashes` file
/// exactly as a store keeps the tree of its log (the same stored layout,
/// file and proof code): for measuring the cost of proofs at sizes no test
/// store reaches (the benchmarks' tree of 10 million leaves).
///
/// Leaf `i` is the leaf a store would make for a record without a stream
/// whose payload is `i` as 8 little-endian bytes.
///
/// ```swift
/// let log = try SyntheticTransparencyLog(folder: folder, records: 1_000_000)
/// let proof = try log.inclusionProof(index: 123_456)     // O(log n) reads
/// #expect(log.verifies(proof, index: 123_456))
/// ```
public final class SyntheticTransparencyLog: Sendable {
    private let tree: MerkleLog
    /// The folder that holds `merkle.hashes`.
    public let folder: URL
    /// How many records (leaves) the tree has.
    public let size: UInt64
    /// The tree's root hash (32 bytes).
    public let rootHash: [UInt8]

    /// Builds the tree of `records` synthetic records in `folder` (created
    /// if needed), replacing a tree an earlier run left there. Cost: 2n
    /// SHA-256 and 64n bytes written (640 MB for 10 million records).
    /// - Throws: an I/O error, or `invalidArgument` for 0 records or a
    ///   folder that holds a store (its tree is not this one's to replace).
    public init(folder: URL, records: UInt64) throws {
        guard records > 0 else { throw PatientVaultError(.invalidArgument, "a tree has at least one record") }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let holdsLog = (try? StoreFolder.holdsLog(folder.path)) ?? true
        guard !holdsLog, !FileManager.default.fileExists(atPath: folder.appendingPathComponent("store.header").path) else {
            throw PatientVaultError(.invalidArgument, "the folder holds a store: a synthetic tree goes in a folder of its own")
        }
        // A tree an earlier run built: its hashes would stay ahead of the
        // new ones in the file, and proofs, read from the start, would not
        // verify.
        let previous = folder.appendingPathComponent(MerkleLog.fileName)
        if FileManager.default.fileExists(atPath: previous.path) { try FileManager.default.removeItem(at: previous) }
        self.folder = folder
        tree = try MerkleLog.inNewFile(directory: folder.path)
        var batch: [UInt8] = []
        let batchSize: UInt64 = 1 << 16
        batch.reserveCapacity(Int(batchSize) * MerkleTree.hashSize)
        var next: UInt64 = 0
        while next < records {
            batch.removeAll(keepingCapacity: true)
            for i in next..<min(records, next + batchSize) {
                withUnsafeBytes(of: i.littleEndian) { MerkleLog.appendLeafHash(stream: nil, payload: $0, to: &batch) }
            }
            try tree.append(leafHashes: batch)
            next = min(records, next + batchSize)
        }
        try tree.syncIfAppended()
        size = records
        rootHash = try tree.root(size: records)
    }

    /// The inclusion proof of record `index` in the whole tree, read from
    /// the file (O(log n) reads of 32 bytes).
    public func inclusionProof(index: UInt64) throws -> [[UInt8]] {
        try tree.inclusionProof(index: index, size: size)
    }

    /// Whether `proof` leads from record `index`'s leaf to ``rootHash``.
    public func verifies(_ proof: [[UInt8]], index: UInt64) -> Bool {
        let leaf = withUnsafeBytes(of: index.littleEndian) { MerkleLog.leafHash(stream: nil, payload: $0) }
        return MerkleTree.verifyInclusion(leaf: leaf, index: index, size: size, proof: proof, root: rootHash)
    }
}
