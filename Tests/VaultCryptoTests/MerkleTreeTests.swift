import Testing
@testable import VaultCrypto

/// RFC 9162 Merkle trees (`MerkleTree`): roots and proofs from the stored
/// layout against the RFC's recursive definitions computed naively, and
/// every proof accepted by the verifier, every altered one refused.
@Suite struct MerkleTreeTests {
    /// Stored hashes of a tree built leaf by leaf, as an engine stores them.
    struct Stored {
        var hashes: [[UInt8]] = []
        var leaves: [[UInt8]] = []
        mutating func append(_ data: [UInt8]) {
            let leaf = MerkleTree.leafHash(data)
            let m = UInt64(leaves.count)
            #expect(UInt64(hashes.count) == MerkleTree.storedCount(leaves: m))
            let snapshot = hashes
            hashes += MerkleTree.hashesToStore(appending: leaf, at: m) { snapshot[Int($0)] }
            leaves.append(leaf)
        }
        func read(_ i: UInt64) -> [UInt8] { hashes[Int(i)] }
    }

    /// RFC 9162's MTH, by its definition.
    static func naiveRoot(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        if leaves.isEmpty { return MerkleTree.emptyTreeHash }
        if leaves.count == 1 { return leaves.first! }
        let k = MerkleTree.largestPowerOfTwo(below: UInt64(leaves.count))
        let mid = leaves.startIndex + Int(k)
        return MerkleTree.nodeHash(naiveRoot(leaves[..<mid]), naiveRoot(leaves[mid...]))
    }

    /// RFC 9162's PATH(m, D[n]).
    static func naivePath(_ m: Int, _ leaves: ArraySlice<[UInt8]>) -> [[UInt8]] {
        guard leaves.count > 1 else { return [] }
        let k = Int(MerkleTree.largestPowerOfTwo(below: UInt64(leaves.count)))
        let mid = leaves.startIndex + k
        if m < k { return naivePath(m, leaves[..<mid]) + [naiveRoot(leaves[mid...])] }
        return naivePath(m - k, leaves[mid...]) + [naiveRoot(leaves[..<mid])]
    }

    /// RFC 9162's SUBPROOF(m, D[n], b).
    static func naiveSubproof(_ m: Int, _ leaves: ArraySlice<[UInt8]>, _ b: Bool) -> [[UInt8]] {
        if m == leaves.count { return b ? [] : [naiveRoot(leaves)] }
        let k = Int(MerkleTree.largestPowerOfTwo(below: UInt64(leaves.count)))
        let mid = leaves.startIndex + k
        if m <= k { return naiveSubproof(m, leaves[..<mid], b) + [naiveRoot(leaves[mid...])] }
        return naiveSubproof(m - k, leaves[mid...], false) + [naiveRoot(leaves[..<mid])]
    }

    static func data(_ i: Int) -> [UInt8] {
        var g = HashDraw(seed: UInt64(i))
        return (0..<(i % 7 + 1) * 5).map { _ in UInt8(truncatingIfNeeded: g.next()) }
    }

    /// The RFC 6962 / 9162 constants: the empty tree and a one-leaf tree.
    @Test func emptyTreeAndSingleLeaf() {
        #expect(hexString(MerkleTree.emptyTreeHash) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // SHA-256(0x00): the leaf hash of empty leaf data.
        #expect(hexString(MerkleTree.leafHash([])) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    }

    /// Every size 1...2048: the root from O(log n) stored hashes equals the
    /// naive MTH (computed incrementally for speed: the naive root of each
    /// prefix, checked against a full recursion every 97 sizes).
    @Test func rootsOfEverySizeMatchTheDefinition() {
        var tree = Stored()
        for i in 0..<2048 {
            tree.append(Self.data(i))
            let size = UInt64(tree.leaves.count)
            let root = MerkleTree.rootHash(size: size, read: tree.read)
            if size <= 64 || size % 97 == 0 || size == 2048 {
                #expect(root == Self.naiveRoot(tree.leaves[...]), "size \(size)")
            }
            // Roots of earlier sizes still read from the same stored hashes.
            if size % 256 == 0 {
                let old = size / 3 + 1
                #expect(MerkleTree.rootHash(size: old, read: tree.read) == Self.naiveRoot(tree.leaves[..<Int(old)]))
            }
        }
    }

    /// Every inclusion and consistency proof for every size up to 64, and
    /// three random ones of each size up to 2048, is accepted and refused
    /// with any hash flipped, a wrong index, another root or a hash
    /// missing; each equals the RFC's definition (recomputed naively: for
    /// every size up to 64, every 31st size above).
    @Test func everyProofMatchesTheDefinitionAndVerifies() {
        var tree = Stored()
        for i in 0..<2048 { tree.append(Self.data(i)) }
        var g = HashDraw(seed: 7)
        for size in 1...2048 {
            let n = UInt64(size)
            let root = MerkleTree.rootHash(size: n, read: tree.read)
            let indexes = size <= 64 ? Array(0..<size) : (0..<3).map { _ in Int(g.next() % UInt64(size)) }
            for m in indexes {
                let proof = MerkleTree.inclusionProof(index: UInt64(m), size: n, read: tree.read)
                if size <= 64 || size % 31 == 0 { #expect(proof == Self.naivePath(m, tree.leaves[..<size])) }
                #expect(MerkleTree.verifyInclusion(leaf: tree.leaves[m], index: UInt64(m), size: n, proof: proof, root: root))
                if !proof.isEmpty {
                    var bad = proof
                    bad[Int(g.next() % UInt64(bad.count))][0] ^= 1
                    #expect(!MerkleTree.verifyInclusion(leaf: tree.leaves[m], index: UInt64(m), size: n, proof: bad, root: root))
                    #expect(!MerkleTree.verifyInclusion(leaf: tree.leaves[m], index: UInt64(m), size: n, proof: Array(proof.dropLast()), root: root))
                }
                if size > 1 {
                    #expect(!MerkleTree.verifyInclusion(leaf: tree.leaves[m], index: UInt64((m + 1) % size), size: n, proof: proof, root: root))
                }
                if size < 2048 {
                    // Against the next tree's root (the leaf is in it, but not by this proof).
                    let next = MerkleTree.rootHash(size: n + 1, read: tree.read)
                    #expect(!MerkleTree.verifyInclusion(leaf: tree.leaves[m], index: UInt64(m), size: n + 1, proof: proof, root: next))
                }
            }
            let olds = size <= 64 ? Array(1...size) : (0..<3).map { _ in Int(g.next() % UInt64(size)) + 1 }
            for old in olds {
                let proof = MerkleTree.consistencyProof(old: UInt64(old), new: n, read: tree.read)
                if size <= 64 || size % 31 == 0 { #expect(proof == Self.naiveSubproof(old, tree.leaves[..<size], true)) }
                let oldRoot = MerkleTree.rootHash(size: UInt64(old), read: tree.read)
                #expect(MerkleTree.verifyConsistency(oldSize: UInt64(old), newSize: n, oldRoot: oldRoot, newRoot: root, proof: proof))
                if !proof.isEmpty {
                    var bad = proof
                    bad[Int(g.next() % UInt64(bad.count))][31] ^= 0x80
                    #expect(!MerkleTree.verifyConsistency(oldSize: UInt64(old), newSize: n, oldRoot: oldRoot, newRoot: root, proof: bad))
                }
                if old < size {
                    // Another old root (a rewritten history) is refused.
                    var other = oldRoot
                    other[0] ^= 1
                    #expect(!MerkleTree.verifyConsistency(oldSize: UInt64(old), newSize: n, oldRoot: other, newRoot: root, proof: proof))
                }
            }
        }
    }
}

/// Reproducible draws: SHA-256 of a seed and a counter.
struct HashDraw {
    let seed: UInt64
    var counter: UInt64 = 0
    init(seed: UInt64) { self.seed = seed }
    mutating func next() -> UInt64 {
        counter += 1
        let digest = SHA256.hash(withUnsafeBytes(of: (seed, counter)) { Array($0) })
        return digest.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}
