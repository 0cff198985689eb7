/// RFC 9162 (Certificate Transparency v2) Merkle trees, section 2.1: the
/// hashing, the stored layout of complete subtrees, inclusion and
/// consistency proofs, and their verification.
///
/// Hashing: a leaf is `SHA-256(0x00 ‖ leaf data)`, a node
/// `SHA-256(0x01 ‖ left ‖ right)`, the empty tree `SHA-256()`. The tree of
/// `n` leaves splits at `k`, the largest power of two below `n`.
///
/// **Stored hashes.** Only hashes of complete subtrees are kept: the node
/// at `level` and position `i` covers leaves `i·2^level ..< (i+1)·2^level`.
/// They are stored in one append-only sequence: appending leaf `m` (from
/// 0) appends its leaf hash, then the hash of every subtree that leaf
/// completes (as many as `m + 1` has trailing zero bits), lowest first.
/// So the first `m` leaves take `2m − popcount(m)` entries, and a tree of
/// any size, or any proof, reads O(log n) of them.
package enum MerkleTree {
    /// Size of every hash.
    package static let hashSize = 32

    /// `SHA-256(0x00 ‖ data)`.
    package static func leafHash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        withUnsafeBytes(of: UInt8(0)) { SHA256.hash($0, data) }
    }

    /// `SHA-256(0x00 ‖ data)`.
    package static func leafHash(_ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { leafHash($0) }
    }

    /// `SHA-256(prefix ‖ a ‖ b)` into `output` (32 bytes): no allocation.
    package static func hash(
        prefix: UInt8, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) {
        var state = SHA256.State()
        withUnsafeBytes(of: prefix) { state.update($0) }
        state.update(a)
        state.update(b)
        state.finish(into: output)
    }

    /// `SHA-256(0x01 ‖ left ‖ right)`.
    package static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt8(1)) { p in
            left.withUnsafeBytes { l in right.withUnsafeBytes { r in SHA256.hash(p, l, r) } }
        }
    }

    /// The hash of the empty tree, `SHA-256()`.
    package static var emptyTreeHash: [UInt8] { SHA256.hash(parts: []) }

    // MARK: Stored layout

    /// How many stored hashes the first `leaves` leaves take.
    package static func storedCount(leaves: UInt64) -> UInt64 {
        2 &* leaves &- UInt64(leaves.nonzeroBitCount)
    }

    /// Where the hash of the complete subtree at (`level`, `index`) is
    /// stored.
    package static func storedIndex(level: Int, index: UInt64) -> UInt64 {
        // Completed by the append of its last leaf, m = (index+1)·2^level − 1,
        // whose entries start at storedCount(m): its leaf, then one per level.
        let m = ((index &+ 1) << UInt64(level)) &- 1
        return storedCount(leaves: m) &+ UInt64(level)
    }

    /// The hashes to store after the first `m` leaves when leaf `m` (hash
    /// `leaf`) is appended: the leaf, then each subtree it completes.
    /// `read` gives a stored hash by its index (the left siblings, already
    /// stored).
    package static func hashesToStore(
        appending leaf: [UInt8], at m: UInt64, read: (UInt64) throws -> [UInt8]
    ) rethrows -> [[UInt8]] {
        var out = [leaf]
        var hash = leaf
        var level = 0
        var i = m
        while i & 1 == 1 {
            let left = try read(storedIndex(level: level, index: i - 1))
            hash = nodeHash(left, hash)
            out.append(hash)
            level += 1
            i >>= 1
        }
        return out
    }

    /// A tree built leaf by leaf in O(log n) memory: the right edge's
    /// complete subtrees (the *frontier*), from which the root and the
    /// hashes to store come.
    package struct Accumulator: Sendable {
        /// How many leaves were appended.
        package private(set) var size: UInt64
        /// The hash of the complete subtree at each level whose bit is set
        /// in `size`, 32 bytes per level, in one buffer (appends allocate
        /// nothing).
        private var frontier: [UInt8]

        /// An empty tree.
        package init() {
            size = 0
            frontier = [UInt8](repeating: 0, count: 64 * hashSize)
        }

        /// The tree of the first `size` leaves of a stored layout.
        package init(size: UInt64, read: (UInt64) throws -> [UInt8]) rethrows {
            self.init()
            self.size = size
            for level in 0..<64 where size >> UInt64(level) & 1 == 1 {
                let hash = try read(storedIndex(level: level, index: (size >> UInt64(level)) - 1))
                frontier.replaceSubrange((level * hashSize)..<((level + 1) * hashSize), with: hash)
            }
        }

        /// Appends a leaf hash (32 bytes); `store` is given the leaf hash,
        /// then the hash of each subtree it completes, lowest first.
        package mutating func append(_ leaf: UnsafeRawBufferPointer, store: (UnsafeRawBufferPointer) -> Void = { _ in }) {
            precondition(leaf.count == hashSize)
            store(leaf)
            let size = self.size
            frontier.withUnsafeMutableBytes { edge in
                withUnsafeTemporaryAllocation(byteCount: 2 * hashSize, alignment: 8) { scratch in
                    let hash = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<hashSize])
                    let next = UnsafeMutableRawBufferPointer(rebasing: scratch[hashSize...])
                    hash.copyMemory(from: leaf)
                    var level = 0
                    while size >> UInt64(level) & 1 == 1 {
                        let left = UnsafeRawBufferPointer(rebasing: edge[(level * hashSize)..<((level + 1) * hashSize)])
                        MerkleTree.hash(prefix: 1, left, UnsafeRawBufferPointer(hash), into: next)
                        hash.copyMemory(from: UnsafeRawBufferPointer(next))
                        store(UnsafeRawBufferPointer(hash))
                        level += 1
                    }
                    UnsafeMutableRawBufferPointer(rebasing: edge[(level * hashSize)..<((level + 1) * hashSize)])
                        .copyMemory(from: UnsafeRawBufferPointer(hash))
                }
            }
            self.size += 1
        }

        /// Appends a leaf hash.
        package mutating func append(_ leaf: [UInt8]) {
            leaf.withUnsafeBytes { append($0) }
        }

        /// The root of the tree so far.
        package var root: [UInt8] {
            var root: [UInt8]?
            for level in 0..<64 where size >> UInt64(level) & 1 == 1 {
                let hash = Array(frontier[(level * hashSize)..<((level + 1) * hashSize)])
                root = root.map { nodeHash(hash, $0) } ?? hash
            }
            return root ?? emptyTreeHash
        }
    }

    // MARK: Restoring the frontier

    /// The one stored hash of the right edge of the tree of `size` leaves
    /// (the complete subtrees ``Accumulator/init(size:read:)`` reads) whose
    /// restored value makes the tree's root `root`, and that value; nil if
    /// no single stored hash restores it. A subtree's hash is recomputed
    /// from its two children (stored, and read by nothing at open); a lone
    /// leaf, which has none, by each change of one of its bytes. `root`
    /// must come from an authenticated source (a checkpoint under its MAC):
    /// only then does the match prove the value.
    /// Cost: O(log n) hashes per subtree, 8,160 roots for a leaf.
    package static func restoredFrontierHash(
        size: UInt64, root: [UInt8], read: (UInt64) throws -> [UInt8]
    ) rethrows -> (storedIndex: UInt64, hash: [UInt8])? {
        let levels = (0..<64).filter { size >> UInt64($0) & 1 == 1 }
        let frontier = try levels.map { try read(storedIndex(level: $0, index: (size >> UInt64($0)) - 1)) }
        func rootWith(_ k: Int, _ hash: [UInt8]) -> [UInt8] {
            var folded: [UInt8]?
            for (j, stored) in frontier.enumerated() {
                let h = j == k ? hash : stored
                folded = folded.map { nodeHash(h, $0) } ?? h
            }
            return folded ?? emptyTreeHash
        }
        for (k, level) in levels.enumerated() {
            let index = (size >> UInt64(level)) - 1
            let at = storedIndex(level: level, index: index)
            if level > 0 {
                let left = try read(storedIndex(level: level - 1, index: 2 * index))
                let right = try read(storedIndex(level: level - 1, index: 2 * index + 1))
                let recomputed = nodeHash(left, right)
                if recomputed != frontier[k], rootWith(k, recomputed) == root { return (at, recomputed) }
            } else {
                var candidate = frontier[k]
                for byte in 0..<hashSize {
                    let original = candidate[byte]
                    for value in 0...UInt8.max where value != original {
                        candidate[byte] = value
                        if rootWith(k, candidate) == root { return (at, candidate) }
                    }
                    candidate[byte] = original
                }
            }
        }
        return nil
    }

    // MARK: Tree hashes and proofs

    /// The root of the tree of the first `size` leaves.
    package static func rootHash(size: UInt64, read: (UInt64) throws -> [UInt8]) rethrows -> [UInt8] {
        size == 0 ? emptyTreeHash : try subtreeHash(0, size, read: read)
    }

    /// The hash of leaves `lo ..< hi` (`hi > lo`, `lo` a multiple of the
    /// power of two at or above `hi − lo`: every range the RFC's recursion
    /// forms), from complete subtrees.
    static func subtreeHash(_ lo: UInt64, _ hi: UInt64, read: (UInt64) throws -> [UInt8]) rethrows -> [UInt8] {
        let n = hi - lo
        if n & (n - 1) == 0 {
            let level = n.trailingZeroBitCount
            return try read(storedIndex(level: level, index: lo >> UInt64(level)))
        }
        let k = largestPowerOfTwo(below: n)
        return nodeHash(try subtreeHash(lo, lo + k, read: read), try subtreeHash(lo + k, hi, read: read))
    }

    /// The largest power of two strictly below `n` (`n > 1`).
    static func largestPowerOfTwo(below n: UInt64) -> UInt64 {
        UInt64(1) << UInt64(63 - (n - 1).leadingZeroBitCount)
    }

    /// RFC 9162 `PATH(index, D[size])`: the inclusion proof of leaf `index`
    /// in the tree of `size` leaves, from the leaf's sibling up.
    package static func inclusionProof(index: UInt64, size: UInt64, read: (UInt64) throws -> [UInt8]) rethrows -> [[UInt8]] {
        precondition(index < size)
        var proof: [[UInt8]] = []
        try path(index, 0, size, into: &proof, read: read)
        return proof
    }

    private static func path(
        _ m: UInt64, _ lo: UInt64, _ hi: UInt64, into proof: inout [[UInt8]], read: (UInt64) throws -> [UInt8]
    ) rethrows {
        let n = hi - lo
        guard n > 1 else { return }
        let k = largestPowerOfTwo(below: n)
        if m < k {
            try path(m, lo, lo + k, into: &proof, read: read)
            proof.append(try subtreeHash(lo + k, hi, read: read))
        } else {
            try path(m - k, lo + k, hi, into: &proof, read: read)
            proof.append(try subtreeHash(lo, lo + k, read: read))
        }
    }

    /// RFC 9162 `PROOF(old, D[new])`: the consistency proof between the
    /// trees of `old` and `new` leaves (`0 < old ≤ new`; empty when equal).
    package static func consistencyProof(old: UInt64, new: UInt64, read: (UInt64) throws -> [UInt8]) rethrows -> [[UInt8]] {
        precondition(old > 0 && old <= new)
        var proof: [[UInt8]] = []
        try subproof(old, 0, new, complete: true, into: &proof, read: read)
        return proof
    }

    private static func subproof(
        _ m: UInt64, _ lo: UInt64, _ hi: UInt64, complete: Bool, into proof: inout [[UInt8]],
        read: (UInt64) throws -> [UInt8]
    ) rethrows {
        let n = hi - lo
        if m == n {
            if !complete { proof.append(try subtreeHash(lo, hi, read: read)) }
            return
        }
        let k = largestPowerOfTwo(below: n)
        if m <= k {
            try subproof(m, lo, lo + k, complete: complete, into: &proof, read: read)
            proof.append(try subtreeHash(lo + k, hi, read: read))
        } else {
            try subproof(m - k, lo + k, hi, complete: false, into: &proof, read: read)
            proof.append(try subtreeHash(lo, lo + k, read: read))
        }
    }

    // MARK: Verification (RFC 9162 2.1.3.2 and 2.1.4.2)

    /// Whether `proof` shows leaf hash `leaf` at `index` in the tree of
    /// `size` leaves whose root is `root`.
    package static func verifyInclusion(
        leaf: [UInt8], index: UInt64, size: UInt64, proof: [[UInt8]], root: [UInt8]
    ) -> Bool {
        guard index < size, proof.allSatisfy({ $0.count == hashSize }) else { return false }
        var r = leaf
        let complete = climb(index, size - 1, proof, left: { r = nodeHash($0, r) }, right: { r = nodeHash(r, $0) })
        return complete && constantTimeEqual(r, root)
    }

    /// Whether `proof` shows the tree of `oldSize` leaves (root `oldRoot`)
    /// to be a prefix of the tree of `newSize` leaves (root `newRoot`).
    package static func verifyConsistency(
        oldSize: UInt64, newSize: UInt64, oldRoot: [UInt8], newRoot: [UInt8], proof: [[UInt8]]
    ) -> Bool {
        guard oldSize <= newSize, proof.allSatisfy({ $0.count == hashSize }) else { return false }
        if oldSize == newSize { return proof.isEmpty && constantTimeEqual(oldRoot, newRoot) }
        // The empty tree is a prefix of any tree, but only under its own root.
        if oldSize == 0 { return proof.isEmpty && constantTimeEqual(oldRoot, emptyTreeHash) }
        guard !proof.isEmpty else { return false }
        var path = proof
        // A power of two: the old root is the first node of the path.
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        let complete = climb(fn, sn, path.dropFirst(), left: { c in
            fr = nodeHash(c, fr)
            sr = nodeHash(c, sr)
        }, right: { sr = nodeHash(sr, $0) })
        return complete && constantTimeEqual(fr, oldRoot) && constantTimeEqual(sr, newRoot)
    }

    /// RFC 9162's walk up a proof from node `fn` of a tree whose last node
    /// is `sn`: each hash joins on the `left` (a left sibling) or on the
    /// `right`. Whether the path ends exactly at the root.
    private static func climb(
        _ fn: UInt64, _ sn: UInt64, _ path: some Sequence<[UInt8]>, left: ([UInt8]) -> Void, right: ([UInt8]) -> Void
    ) -> Bool {
        var (fn, sn) = (fn, sn)
        for p in path {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                left(p)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                right(p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0
    }

    /// Whether `a` and `b` are equal, in time that depends on their length
    /// only (for MACs and hashes an attacker compares against).
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var d: UInt8 = 0
        for i in a.indices { d |= a[i] ^ b[i] }
        return d == 0
    }
}
