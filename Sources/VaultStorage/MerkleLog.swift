#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VaultCrypto
import VaultSync

/// Where a ``MerkleLog`` keeps its stored hashes (``MerkleTree``'s
/// append-only layout): a file for ``LogEngine``, memory for an engine in
/// memory.
package protocol MerkleHashStorage: Sendable {
    /// How many hashes are stored.
    var count: UInt64 { get throws }
    /// The stored hash at `index` (below ``count``).
    func read(_ index: UInt64) throws -> [UInt8]
    /// Appends `hashes` (32 bytes each), not synced.
    func append(_ hashes: [UInt8]) throws
    /// Keeps the first `count` hashes.
    func truncate(to count: UInt64) throws
    /// Makes what was appended durable.
    func sync() throws
}

/// The Merkle tree over an engine's records (RFC 9162): one leaf per
/// record, in sequence order (leaf `i` is the record of sequence number
/// `i + 1`), its data ``leafData(stream:payload:)``.
///
/// Appending costs O(1) amortised hashes (the right edge's complete
/// subtrees, the *frontier*, are kept in memory); a root or a proof reads
/// O(log n) stored hashes. The writer (the engine's committer) appends;
/// any thread reads.
package final class MerkleLog: Sendable {
    let storage: any MerkleHashStorage
    /// The leaves appended and the right edge's complete subtrees, and the
    /// committer's buffer of hashes to store (reused: no allocation per
    /// batch once grown).
    private let state: Locked<(tree: MerkleTree.Accumulator, stored: [UInt8], written: MerkleTree.Accumulator)>
    /// The leaves whose hashes were synced (all, at open).
    private let synced: Locked<UInt64>

    /// The tree of the first `leaves` leaves of `storage`, whose later
    /// hashes (from records a recovery did not keep, or never checked) are
    /// dropped.
    /// - Throws: ``StorageError/Code/corrupted`` if `storage` holds fewer.
    /// An empty tree over empty `storage`.
    package init(empty storage: any MerkleHashStorage) {
        self.storage = storage
        state = Locked((MerkleTree.Accumulator(), [], MerkleTree.Accumulator()))
        synced = Locked(0)
    }

    package init(storage: any MerkleHashStorage, leaves: UInt64) throws {
        self.storage = storage
        let needed = MerkleTree.storedCount(leaves: leaves)
        guard try storage.count >= needed else {
            throw StorageError(.corrupted, "the Merkle tree's hashes end before the records the checkpoint covers")
        }
        if try storage.count > needed { try storage.truncate(to: needed) }
        let tree = try MerkleTree.Accumulator(size: leaves, read: storage.read)
        state = Locked((tree, [], tree))
        synced = Locked(leaves)
    }

    /// Syncs the stored hashes if leaves were appended since the last sync.
    /// Counts only the leaves whose hashes are in the file (`written`), not
    /// those an append has taken but not yet written: a sync that ran
    /// between the two would otherwise mark hashes synced that it never
    /// saw, and no later sync would write them.
    package func syncIfAppended() throws {
        let leaves = state.withLock { $0.written.size }
        guard synced.withLock({ $0 < leaves }) else { return }
        try storage.sync()
        synced.withLock { $0 = max($0, leaves) }
    }

    /// The leaf data of a record: `"PVML" version(4) = 1 hasStream(1)
    /// zeros(7) stream(32, zeros without one) BLAKE2b-256(payload)(32)`.
    /// A fixed 80 bytes: the leaf commits, collision-resistantly, to the
    /// record's stream and payload (its sealed bytes) and reveals neither.
    package static func leafData(stream: StreamID?, payload: UnsafeRawBufferPointer) -> [UInt8] {
        leafData(stream: stream, digest: PayloadDigest(of: payload))
    }

    /// ``leafData(stream:payload:)`` from the payload's digest.
    package static func leafData(stream: StreamID?, digest: PayloadDigest) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: leafDataSize)
        data.withUnsafeMutableBytes { writeLeafData(stream: stream, digest: digest, into: $0) }
        return data
    }

    /// Writes ``leafData(stream:payload:)`` into `out` (80 bytes).
    static func writeLeafData(stream: StreamID?, digest: PayloadDigest, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == leafDataSize)
        out.storeBytes(of: UInt32(0x4C4D_5650).littleEndian, toByteOffset: 0, as: UInt32.self)  // "PVML"
        out.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: UInt64(stream == nil ? 0 : 1).littleEndian, toByteOffset: 8, as: UInt64.self)
        let (a, b, c, d): (UInt64, UInt64, UInt64, UInt64) = stream.map { ($0.w0, $0.w1, $0.w2, $0.w3) } ?? (0, 0, 0, 0)
        out.storeBytes(of: a.littleEndian, toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: b.littleEndian, toByteOffset: 24, as: UInt64.self)
        out.storeBytes(of: c.littleEndian, toByteOffset: 32, as: UInt64.self)
        out.storeBytes(of: d.littleEndian, toByteOffset: 40, as: UInt64.self)
        digest.write(into: UnsafeMutableRawBufferPointer(rebasing: out[48..<80]))
    }

    /// Size of ``leafData(stream:payload:)``.
    package static let leafDataSize = 80

    /// The leaf hash of a record: `SHA-256(0x00 ‖ leafData)`.
    package static func leafHash(stream: StreamID?, payload: UnsafeRawBufferPointer) -> [UInt8] {
        leafHash(stream: stream, digest: PayloadDigest(of: payload))
    }

    /// ``leafHash(stream:payload:)`` from the payload's digest.
    package static func leafHash(stream: StreamID?, digest: PayloadDigest) -> [UInt8] {
        var out: [UInt8] = []
        appendLeafHash(stream: stream, digest: digest, to: &out)
        return out
    }

    /// Appends the leaf hash of a record to `out` (32 bytes; no other
    /// allocation than `out`'s growth).
    package static func appendLeafHash(stream: StreamID?, payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendLeafHash(stream: stream, digest: PayloadDigest(of: payload), to: &out)
    }

    /// ``appendLeafHash(stream:payload:to:)`` from the payload's digest.
    package static func appendLeafHash(stream: StreamID?, digest: PayloadDigest, to out: inout [UInt8]) {
        let start = out.count
        out.appendZeros(MerkleTree.hashSize)
        out.withUnsafeMutableBytes { o in
            writeLeafHash(stream: stream, digest: digest, into: UnsafeMutableRawBufferPointer(rebasing: o[start...]))
        }
    }

    /// Writes the leaf hash of a record into `out` (32 bytes; no allocation).
    package static func writeLeafHash(stream: StreamID?, payload: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        writeLeafHash(stream: stream, digest: PayloadDigest(of: payload), into: out)
    }

    /// ``writeLeafHash(stream:payload:into:)`` from the payload's digest.
    package static func writeLeafHash(stream: StreamID?, digest: PayloadDigest, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == MerkleTree.hashSize)
        withUnsafeTemporaryAllocation(byteCount: leafDataSize, alignment: 8) { data in
            writeLeafData(stream: stream, digest: digest, into: data)
            MerkleTree.hash(prefix: 0, UnsafeRawBufferPointer(data), UnsafeRawBufferPointer(start: nil, count: 0), into: out)
        }
    }

    /// How many leaves the tree has.
    package var size: UInt64 { state.withLock { $0.tree.size } }

    /// Appends leaves (their hashes, 32 bytes each, concatenated) and
    /// stores the hashes they complete (not synced).
    package func append(leafHashes: [UInt8]) throws {
        precondition(leafHashes.count % MerkleTree.hashSize == 0)
        guard !leafHashes.isEmpty else { return }
        // The writer's buffer is taken out of the lock for the write, and
        // put back (emptied, its capacity kept) after it. The tree as it
        // stands once its hashes are in the file (`written`) is what
        // roots and proofs are checked against: readers never ask the
        // file for hashes the writer has not written yet.
        var (stored, tree) = state.withLock { s -> ([UInt8], MerkleTree.Accumulator) in
            var buffer = s.stored
            s.stored = []
            buffer.removeAll(keepingCapacity: true)
            leafHashes.withUnsafeBytes { leaves in
                var i = 0
                while i < leaves.count {
                    s.tree.append(UnsafeRawBufferPointer(rebasing: leaves[i..<(i + MerkleTree.hashSize)])) { buffer.append(contentsOf: $0) }
                    i += MerkleTree.hashSize
                }
            }
            return (buffer, s.tree)
        }
        defer { state.withLock { $0.stored = stored } }
        try storage.append(stored)
        stored.removeAll(keepingCapacity: true)
        state.withLock { s in if tree.size > s.written.size { swap(&s.written, &tree) } }
    }

    /// The root of the tree of the first `size` leaves: the tree's own in
    /// memory for its current size; for a smaller one, from the stored
    /// hashes, checked against the tree in memory (the same stored hashes
    /// must prove it a prefix of the current tree), so that a hash altered
    /// in `merkle.hashes` after the open is `corrupted`, never signed.
    /// Cost: O(log n) stored hashes read.
    /// - Throws: ``StorageError/Code/invalidLocation`` beyond the tree,
    ///   ``StorageError/Code/corrupted``.
    package func root(size: UInt64) throws -> [UInt8] {
        try check(size)
        let (full, written) = state.withLock { ($0.tree, $0.written) }
        if size == full.size { return full.root }
        // Leaves appended whose hashes are still on their way to the file
        // (the writer is between the two): as before, from the file.
        guard size <= written.size else { return try MerkleTree.rootHash(size: size, read: storage.read) }
        let current = written.size
        let currentRoot = written.root
        if size == current { return currentRoot }
        let root = try MerkleTree.rootHash(size: size, read: storage.read)
        guard size > 0 else { return root }
        let proof = try MerkleTree.consistencyProof(old: size, new: current, read: storage.read)
        guard MerkleTree.verifyConsistency(oldSize: size, newSize: current, oldRoot: root, newRoot: currentRoot, proof: proof) else {
            throw StorageError(.corrupted, "merkle.hashes does not hold the tree of \(size) leaves")
        }
        return root
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    package func inclusionProof(index: UInt64, size: UInt64) throws -> [[UInt8]] {
        try check(size)
        guard index < size else { throw StorageError(.invalidLocation, "leaf \(index) is not in a tree of \(size)") }
        return try MerkleTree.inclusionProof(index: index, size: size, read: storage.read)
    }

    /// The consistency proof between the trees of `old` and `new` leaves.
    package func consistencyProof(old: UInt64, new: UInt64) throws -> [[UInt8]] {
        try check(new)
        guard old >= 1, old <= new else { throw StorageError(.invalidLocation, "no consistency proof from \(old) to \(new)") }
        return try MerkleTree.consistencyProof(old: old, new: new, read: storage.read)
    }

    /// The hash of leaf `index`, checked against the root of the tree in
    /// memory (an inclusion proof from the stored hashes): a stored hash
    /// altered in `merkle.hashes` after the open is `corrupted`, never
    /// taken. Cost: O(log n) stored hashes read.
    package func verifiedLeaf(_ index: UInt64) throws -> [UInt8] {
        let written = state.withLock { $0.written }
        let (size, root) = (written.size, written.root)
        guard index < size else { throw StorageError(.invalidLocation, "leaf \(index) is beyond the log (\(size))") }
        let leaf = try storage.read(MerkleTree.storedIndex(level: 0, index: index))
        let proof = try MerkleTree.inclusionProof(index: index, size: size, read: storage.read)
        guard MerkleTree.verifyInclusion(leaf: leaf, index: index, size: size, proof: proof, root: root) else {
            throw StorageError(.corrupted, "merkle.hashes does not hold leaf \(index) of the tree")
        }
        return leaf
    }

    /// The hash of leaf `index`.
    package func leaf(_ index: UInt64) throws -> [UInt8] {
        guard index < size else { throw StorageError(.invalidLocation, "leaf \(index) is beyond the log (\(size))") }
        return try storage.read(MerkleTree.storedIndex(level: 0, index: index))
    }

    private func check(_ size: UInt64) throws {
        guard size <= self.size else {
            throw StorageError(.invalidLocation, "a tree of \(size) leaves is beyond the log (\(self.size))")
        }
    }
}

extension MerkleLog {
    /// The name of the file that keeps a log's stored hashes.
    package static var fileName: String { MerkleHashFile.fileName }

    /// An empty tree kept in a new `merkle.hashes` file in `directory`
    /// (which holds no log), exactly as ``LogEngine`` keeps its own: for
    /// measuring proofs over trees larger than any test store.
    package static func inNewFile(directory: String) throws -> MerkleLog {
        MerkleLog(empty: try MerkleHashFile(directory: directory, logExists: false, files: PosixLogFiles()))
    }
}

/// Stored hashes in memory (an engine in memory).
package final class MerkleHashArray: MerkleHashStorage {
    private let hashes = Locked<[UInt8]>([])
    package init() {}
    package var count: UInt64 { hashes.withLock { UInt64($0.count / MerkleTree.hashSize) } }
    package func read(_ index: UInt64) throws -> [UInt8] {
        try hashes.withLock { h in
            let start = Int(index) * MerkleTree.hashSize
            guard index < UInt64(h.count / MerkleTree.hashSize) else { throw StorageError(.invalidLocation, "no stored hash \(index)") }
            return Array(h[start..<(start + MerkleTree.hashSize)])
        }
    }
    package func append(_ new: [UInt8]) throws { hashes.withLock { $0 += new } }
    package func truncate(to count: UInt64) throws {
        hashes.withLock { $0.removeSubrange(min($0.count, Int(count) * MerkleTree.hashSize)...) }
    }
    package func sync() throws {}
}

/// `merkle.hashes`: a 64-byte header (`"PVMERKLE" version(4) zeros(48)
/// crc32c(4)`), then the stored hashes, 32 bytes each, appended by the
/// committer after the frames they hash and synced before a checkpoint
/// (which records the root) and at close. Recovery keeps the hashes of
/// the records the checkpoint covers, checks their root against it, and
/// recomputes the rest from the records it replays (but for a record kept
/// with a damaged payload, whose leaf it takes from here, unauthenticated).
/// A header with one flipped byte (all its bytes are known) is restored
/// and written back.
final class MerkleHashFile: MerkleHashStorage {
    static let fileName = "merkle.hashes"
    static let headerSize: UInt64 = 64
    static let magic: [UInt8] = Array("PVMERKLE".utf8)
    let file: PosixFile
    private let files: any LogFiles
    /// The file's length in whole hashes (appends are serialised by the
    /// committer; truncation happens at open).
    private let stored: Locked<UInt64>

    /// Opens the file, creating it for a new store.
    /// - Throws: ``StorageError/Code/corrupted`` if it is missing, or its
    ///   header fails its checksum, while the log holds records;
    ///   ``StorageError/Code/unsupportedFormat`` for another version.
    init(directory: String, logExists: Bool, files: any LogFiles, reserveAhead: UInt64 = 64 << 10) throws {
        self.reserveAhead = reserveAhead
        let path = directory + "/" + Self.fileName
        if logExists && !FileSystem.exists(path) {
            throw StorageError(.corrupted, "merkle.hashes is missing while the log holds records")
        }
        self.files = files
        file = try PosixFile.open(path, flags: O_RDWR | O_CREAT, name: "Merkle hashes", observer: files.observer)
        let header = try file.read(count: Int(Self.headerSize), at: 0)
        if header.count < Int(Self.headerSize) || header.allSatisfy({ $0 == 0 }) {
            guard !logExists else { throw StorageError(.corrupted, "merkle.hashes has no header while the log holds records") }
            try files.truncate(file, to: 0)
            try files.write(Self.header(), at: 0, of: file, site: .merkleWrite)
            try files.sync(file, site: .merkleSync)
            try FileSystem.syncDirectory(directory, observer: files.observer)
        } else {
            let crc = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 60, as: UInt32.self).littleEndian }
            guard Array(header[0..<8]) == Self.magic, CRC32C.checksum(Array(header[0..<60])) == crc else {
                // Its bytes are all known (magic, version, zeros): one
                // flipped byte of the header this build writes is no doubt
                // (another version fails the CRC in more than one byte:
                // its version and its CRC), and it is written back.
                let expected = Self.header()
                guard header.count == expected.count, zip(header, expected).filter({ $0 != $1 }).count == 1 else {
                    throw StorageError(.corrupted, "the header of merkle.hashes failed its checksum")
                }
                try files.write(expected, at: 0, of: file, site: .merkleWrite)
                try files.sync(file, site: .merkleSync)
                stored = Locked((try file.size() - Self.headerSize) / UInt64(MerkleTree.hashSize))
                return
            }
            let version = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian }
            guard version == LogFormat.version else {
                throw StorageError(.unsupportedFormat, "merkle.hashes format version \(version) is not supported: this build reads version \(LogFormat.version) only")
            }
        }
        stored = Locked((try file.size() - Self.headerSize) / UInt64(MerkleTree.hashSize))
    }

    /// The header: `"PVMERKLE" version(4) zeros(48) crc32c(4)`.
    static func header() -> [UInt8] {
        var w = ByteWriter(capacity: Int(headerSize))
        w.write(bytes: magic)
        w.write(LogFormat.version)
        w.writeZeros(48)
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    var count: UInt64 { stored.withLock { $0 } }

    func read(_ index: UInt64) throws -> [UInt8] {
        let bytes = try file.read(count: MerkleTree.hashSize, at: Self.headerSize + index * UInt64(MerkleTree.hashSize))
        guard bytes.count == MerkleTree.hashSize else { throw StorageError(.corrupted, "merkle.hashes ends before hash \(index)") }
        return bytes
    }

    func append(_ hashes: [UInt8]) throws {
        let at = stored.withLock { $0 }
        let offset = Self.headerSize + at * UInt64(MerkleTree.hashSize)
        try reserveAhead(from: offset + UInt64(hashes.count))
        try files.write(hashes, at: offset, of: file, site: .merkleWrite)
        stored.withLock { $0 = at + UInt64(hashes.count / MerkleTree.hashSize) }
    }

    /// How far ahead of the hashes written blocks are allocated, at least:
    /// enough for the hashes of what the engine's audit reserve holds (a
    /// quarter of it: a record takes about 64 bytes here and 600 or more
    /// in its segment), so
    /// that on a full disk the reads the reserve still audits never need a
    /// new block of this file. Called by the committer only.
    let reserveAhead: UInt64
    /// Where the allocated blocks end (in memory: an open allocates
    /// again), and false once the file system says it cannot allocate
    /// ahead.
    private let allocation = Locked<(end: UInt64, possible: Bool)>((0, true))

    /// Allocates ahead (`FALLOC_FL_KEEP_SIZE`: the file's length, which
    /// gives the number of hashes, does not change) once less than
    /// ``reserveAhead`` is left past `end`. Best effort on a full disk:
    /// the write goes on as it would without, and fails for lack of space
    /// only if its block is new. Any other failure is thrown (the
    /// committer latches it).
    private func reserveAhead(from end: UInt64) throws {
        try allocation.withLock { (a: inout (end: UInt64, possible: Bool)) throws in
            guard a.possible, a.end < end + reserveAhead else { return }
            let target = end + 2 * reserveAhead
            do {
                a.possible = try file.allocateBeyondEnd(offset: end, length: target - end)
                if a.possible { a.end = target }
            } catch let error as StorageError where error.code == .diskFull {
                // What was allocated before is still there; the next
                // append tries again.
            }
        }
    }

    func truncate(to count: UInt64) throws {
        try files.truncate(file, to: Self.headerSize + count * UInt64(MerkleTree.hashSize))
        stored.withLock { $0 = count }
    }

    func sync() throws { try files.sync(file, site: .merkleSync) }
}
