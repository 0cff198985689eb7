import Foundation
@testable import PatientVaultProof
import Testing
import VaultCrypto

/// Byte-exact vectors of the transparency-log formats: the RFC 6962 /
/// 9162 reference tree of 8 leaves (roots, inclusion and consistency
/// proofs, as Trillian and Go's `tlog` publish them), and a checkpoint, a
/// cosignature and a `tlog-proof@v1` made by Go's `note` from fixed seeds
/// (Ed25519 is deterministic: the same seed signs the same bytes).
@Suite struct TransparencyVectorTests {
    static let leaves: [[UInt8]] = [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
        [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57], Array(0x60...0x6f),
    ]
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    static let origin = "example.com/patientvault-test-log"
    static let checkpoint = """
        example.com/patientvault-test-log
        8
        XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=

        — example.com/patientvault-test-log ry+CiWJA5uSv6DeizZCzt56sUUvFIzgG2KMvERU8a/+qSyCyqMG8W2teKqhCDDohNQtN+FQqfEuruBy9P8FSpIEoows=

        """
    static let cosignature = "— example.com/patientvault-test-witness rW8rKgAAAABlU/EAGWgep1vtKCLz1XALicdXBV8J0p7Xmz5p7aK+iVe5DRmlcZSndz25tv1mfpMTPhgzq87gyYHE5ie6xhe/ThWYDQ==\n"

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// The stored hashes of the 8 leaves, as an engine appends them.
    static func stored() -> [[UInt8]] {
        var hashes: [[UInt8]] = []
        for (m, data) in leaves.enumerated() {
            let snapshot = hashes
            hashes += MerkleTree.hashesToStore(appending: MerkleTree.leafHash(data), at: UInt64(m)) { snapshot[Int($0)] }
        }
        return hashes
    }

    @Test func theReferenceTreesRootsAndProofs() {
        let hashes = Self.stored()
        let read = { (i: UInt64) in hashes[Int(i)] }
        for size in 1...8 {
            #expect(MerkleTree.rootHash(size: UInt64(size), read: read) == Self.hex(Self.roots[size - 1]), "size \(size)")
        }
        #expect(MerkleTree.inclusionProof(index: 5, size: 8, read: read).map(hexString) == [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ])
        #expect(MerkleTree.inclusionProof(index: 2, size: 3, read: read).map(hexString) == [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        ])
        #expect(MerkleTree.consistencyProof(old: 6, new: 8, read: read).map(hexString) == [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ])
        #expect(MerkleTree.consistencyProof(old: 2, new: 5, read: read).map(hexString) == [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ])
        #expect(MerkleTree.consistencyProof(old: 1, new: 1, read: read).isEmpty)
    }

    /// Go's `note` signs the same checkpoint with the same seed: the text
    /// is equal byte for byte, and the verifier key string too.
    @Test func aCheckpointSignedLikeGosNote() throws {
        let seed = try (0..<32).map { UInt8($0) }.withUnsafeBytes { try SymmetricKey.copying($0) }
        let key = try Ed25519SigningKey.fromSeed(seed)
        let head = try TreeHead(origin: Self.origin, size: 8, rootHash: Self.hex(Self.roots[7]))
        let signed = try SignedCheckpoint.sign(head, name: Self.origin, key: key)
        #expect(signed.text == Self.checkpoint)
        let vkey = try NoteVerifierKey(name: Self.origin, algorithm: .ed25519, publicKey: key.publicKey.bytes)
        #expect(vkey.description == "example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
        #expect(try CheckpointVerifier(logKey: vkey, origin: Self.origin).verify(signed) == head)
    }

    /// A signature line whose key name starts with a combining mark (the
    /// signed-note format allows any name without spaces or "+"; Go reads
    /// it byte by byte): parsed by Unicode scalars, the line is read, and
    /// the signature is the one of that name (not the log's: it does not
    /// count). Read by characters, the mark joined the space before it and
    /// the line was `malformed`.
    @Test func aSignatureLineIsReadByScalarsNotCharacters() throws {
        let other = "\u{2014} \u{301}witness AAAAAAA=\n"
        let note = try SignedCheckpoint(Self.checkpoint + other)
        let log = try NoteVerifierKey("example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
        #expect(try CheckpointVerifier(logKey: log, origin: Self.origin).verify(note).size == 8)
        #expect(note.signatures.contains { $0.name == "\u{301}witness" })
    }

    /// A witness's `cosignature/v1` (Go-made) counts towards the quorum;
    /// without it the quorum is not met.
    @Test func aWitnessCosignatureMeetsTheQuorum() throws {
        let log = try NoteVerifierKey("example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
        let witness = try NoteVerifierKey("example.com/patientvault-test-witness+ad6f2b2a+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X")
        let verifier = try CheckpointVerifier(logKey: log, witnesses: [witness], quorum: 1)
        let cosigned = try SignedCheckpoint(Self.checkpoint + Self.cosignature)
        #expect(try verifier.verify(cosigned).size == 8)
        #expect(throws: ProofError.self) { _ = try verifier.verify(try SignedCheckpoint(Self.checkpoint)) }
        // The cosignature of another tree (its text changed) does not count.
        var forged = Self.cosignature
        forged = forged.replacingOccurrences(of: "rW8rKgAAAABlU/EA", with: "rW8rKgAAAABlU/EB")
        #expect(throws: ProofError.self) { _ = try verifier.verify(try SignedCheckpoint(Self.checkpoint + forged)) }
    }

    /// One witness key listed under two names is one witness: the
    /// `cosignature/v1` message does not name the witness, so its one
    /// signature, copied under the other name, would otherwise count twice.
    @Test func oneWitnessKeyUnderTwoNamesIsOneWitness() throws {
        let log = try NoteVerifierKey("example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
        let witness = try NoteVerifierKey("example.com/patientvault-test-witness+ad6f2b2a+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X")
        let renamed = try NoteVerifierKey(name: "example.com/another-name", algorithm: .cosignatureV1, publicKey: witness.publicKey)
        #expect(throws: ProofError.self) { _ = try CheckpointVerifier(logKey: log, witnesses: [witness, renamed], quorum: 2) }
        let one = try CheckpointVerifier(logKey: log, witnesses: [witness, renamed], quorum: 1)
        #expect(try one.verify(try SignedCheckpoint(Self.checkpoint + Self.cosignature)).size == 8)
    }

    /// Without an origin, a verifier takes the log key's name as the
    /// origin a checkpoint must name (a key that signs several logs' does
    /// not vouch for another log's checkpoint).
    @Test func aVerifierWithoutAnOriginChecksTheKeysName() throws {
        let key = try Ed25519SigningKey.generate()
        let verifierKey = try NoteVerifierKey(name: "example.com/log-a", algorithm: .ed25519, publicKey: key.publicKey.bytes)
        let root = [UInt8](repeating: 1, count: 32)
        let own = try SignedCheckpoint.sign(try TreeHead(origin: "example.com/log-a", size: 3, rootHash: root), name: "example.com/log-a", key: key)
        let other = try SignedCheckpoint.sign(try TreeHead(origin: "example.com/log-b", size: 3, rootHash: root), name: "example.com/log-a", key: key)
        let verifier = try CheckpointVerifier(logKey: verifierKey)
        #expect(verifier.origin == "example.com/log-a")
        #expect(try verifier.verify(own).size == 3)
        #expect { _ = try verifier.verify(other) } throws: { ($0 as? ProofError)?.code == .wrongOrigin }
        #expect(try CheckpointVerifier(logKey: verifierKey, origin: "example.com/log-b").verify(other).size == 3)
    }

    /// An `extra` line holds standard base64: kept, written back as read,
    /// and anything else refused (the parser accepts what the encoder
    /// writes, no more).
    @Test func aProofsExtraLineIsKeptAndChecked() throws {
        let hashes = Self.stored()
        let proof = try InclusionProof(
            index: 5, hashes: MerkleTree.inclusionProof(index: 5, size: 8) { hashes[Int($0)] },
            checkpoint: try SignedCheckpoint(Self.checkpoint), extra: Array("age-v1.2.1".utf8))
        let text = proof.text
        #expect(text.hasPrefix("c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMQ==\nindex 5\n"))
        let parsed = try InclusionProof(text)
        #expect(parsed == proof && parsed.extra == Array("age-v1.2.1".utf8) && parsed.text == text)
        for bad in ["extra !!!", "extra YWd=", "extra YWdlLXYxLjIuMQ"] {
            let forged = text.replacingOccurrences(of: "extra YWdlLXYxLjIuMQ==", with: bad)
            #expect(throws: ProofError.self) { _ = try InclusionProof(forged) }
        }
        let verifier = try CheckpointVerifier(logKey: NoteVerifierKey("example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"))
        try verifier.verifyInclusion(parsed, leafData: Self.leaves[5])
    }

    /// A consistency proof from the empty tree holds only under the empty
    /// tree's root.
    @Test func aConsistencyProofFromTheEmptyTreeNeedsTheEmptyRoot() throws {
        let root = Self.hex(Self.roots[7])
        #expect(MerkleTree.verifyConsistency(oldSize: 0, newSize: 8, oldRoot: MerkleTree.emptyTreeHash, newRoot: root, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 0, newSize: 8, oldRoot: [UInt8](repeating: 0, count: 32), newRoot: root, proof: []))
    }

    /// The `tlog-proof@v1` of leaf 5, as Go's reference code formats it.
    @Test func aTlogProofLikeTheReference() throws {
        let hashes = Self.stored()
        let proof = try InclusionProof(
            index: 5, hashes: MerkleTree.inclusionProof(index: 5, size: 8) { hashes[Int($0)] },
            checkpoint: try SignedCheckpoint(Self.checkpoint))
        let expected = """
            c2sp.org/tlog-proof@v1
            index 5
            vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=
            yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=
            037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=


            """ + Self.checkpoint
        #expect(proof.text == expected)
        #expect(try InclusionProof(expected) == proof)
        let verifier = try CheckpointVerifier(logKey: NoteVerifierKey("example.com/patientvault-test-log+af2f8289+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"))
        try verifier.verifyInclusion(proof, leafData: Self.leaves[5])
        #expect(throws: ProofError.self) { try verifier.verifyInclusion(proof, leafData: Self.leaves[4]) }
    }
}

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
