import VaultCrypto

/// A receipt: the proof that a leaf is in a log at a signed checkpoint, as
/// C2SP `tlog-proof@v1` text, which a patient or a court keeps and checks
/// later without the store (with ``CheckpointVerifier``, or Go's
/// `tlog.CheckRecord` and `note.Open`).
///
/// ```
/// c2sp.org/tlog-proof@v1
/// index <leaf index>
/// <base64 hash>            (the inclusion proof, leaf's sibling first)
/// ...
///
/// <signed checkpoint>
/// ```
public struct InclusionProof: Hashable, Sendable, CustomStringConvertible {
    /// The leaf's index in the tree (from 0).
    public let index: UInt64
    /// The RFC 9162 inclusion proof, from the leaf's sibling up.
    public let hashes: [[UInt8]]
    /// The checkpoint whose tree holds the leaf.
    public let checkpoint: SignedCheckpoint
    /// The proof's opaque extra data (an `extra` line), if any: kept and
    /// written back as read, meaning nothing to the proof's check.
    public let extra: [UInt8]?

    static let header = "c2sp.org/tlog-proof@v1"

    /// A proof from its parts.
    /// - Throws: ``ProofError/Code/malformed`` for a hash that is not 32
    ///   bytes, more than 64 hashes, or an index outside the checkpoint's tree.
    ///   `extra` is at most 4,096 bytes.
    public init(index: UInt64, hashes: [[UInt8]], checkpoint: SignedCheckpoint, extra: [UInt8]? = nil) throws(ProofError) {
        guard hashes.count <= 64, hashes.allSatisfy({ $0.count == 32 }) else {
            throw ProofError(.malformed, "an inclusion proof is at most 64 hashes of 32 bytes")
        }
        guard index < checkpoint.treeHead.size else { throw ProofError(.malformed, "the index is outside the checkpoint's tree") }
        guard (extra?.count ?? 0) <= Self.maximumExtra else { throw ProofError(.malformed, "a proof's extra data is at most 4,096 bytes") }
        self.index = index
        self.hashes = hashes
        self.checkpoint = checkpoint
        self.extra = extra
    }

    /// The largest extra data a proof carries.
    static let maximumExtra = 4096

    /// Parses `tlog-proof@v1` text. An `extra` line must hold standard
    /// base64 (kept in ``extra``, and in ``text``).
    /// - Throws: ``ProofError/Code/malformed``.
    public init(_ text: String) throws(ProofError) {
        guard text.utf8.count <= SignedCheckpoint.maximumSize + 8192, let split = text.range(of: "\n\n") else {
            throw ProofError(.malformed, "a tlog-proof has its proof lines, a blank line, then the checkpoint")
        }
        var lines = text[..<split.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == Self.header else { throw ProofError(.malformed, "a tlog-proof starts with \(Self.header)") }
        lines.removeFirst()
        var extra: [UInt8]?
        if let line = lines.first, line.hasPrefix("extra ") {
            // Empty data is the empty text (as written for `extra: []`).
            let text = String(line.dropFirst(6))
            guard let bytes = text.isEmpty ? [] : Base64.decode(text), Base64.encode(bytes) == text else {
                throw ProofError(.malformed, "a tlog-proof's extra line holds standard base64")
            }
            extra = bytes
            lines.removeFirst()
        }
        guard let first = lines.first, first.hasPrefix("index "), let index = UInt64(first.dropFirst(6)),
              String(index) == first.dropFirst(6)
        else { throw ProofError(.malformed, "a tlog-proof names its leaf with 'index <decimal>'") }
        var hashes: [[UInt8]] = []
        for line in lines.dropFirst() {
            guard let hash = Base64.decode(line), hash.count == 32 else {
                throw ProofError(.malformed, "a tlog-proof's hashes are 32 bytes in standard base64, one per line")
            }
            hashes.append(hash)
        }
        try self.init(index: index, hashes: hashes, checkpoint: try SignedCheckpoint(String(text[split.upperBound...])), extra: extra)
    }

    /// The `tlog-proof@v1` text.
    public var text: String {
        Self.header + "\n" + (extra.map { "extra " + Base64.encode($0) + "\n" } ?? "") + "index \(index)\n"
            + hashes.map { Base64.encode($0) + "\n" }.joined() + "\n" + checkpoint.text
    }

    /// The `tlog-proof@v1` text (``text``).
    public var description: String { text }
}

/// A consistency proof between two trees of one log (RFC 9162 2.1.4): the
/// older is a prefix of the newer, so nothing in it was rewritten or
/// dropped.
public struct ConsistencyProof: Hashable, Sendable {
    /// The older tree's size (at least 1).
    public let oldSize: UInt64
    /// The newer tree's size.
    public let newSize: UInt64
    /// The proof's hashes, in the RFC's order.
    public let hashes: [[UInt8]]

    /// A proof from its parts.
    /// - Throws: ``ProofError/Code/malformed`` for sizes out of order, a
    ///   hash that is not 32 bytes, or more than 128 hashes.
    public init(oldSize: UInt64, newSize: UInt64, hashes: [[UInt8]]) throws(ProofError) {
        guard oldSize >= 1, oldSize <= newSize, hashes.count <= 128, hashes.allSatisfy({ $0.count == 32 }) else {
            throw ProofError(.malformed, "a consistency proof goes from a tree of at least 1 leaf to one as large or larger")
        }
        self.oldSize = oldSize
        self.newSize = newSize
        self.hashes = hashes
    }
}

/// Checks what a PatientVault store (or any log in the transparency-log
/// formats) publishes, without the store: a checkpoint's signature and
/// witness cosignatures, an inclusion proof, a consistency proof. A
/// service or an auditor links this module alone.
///
/// ```swift
/// let verifier = try CheckpointVerifier(logKey: NoteVerifierKey(published))
/// let head = try verifier.verify(checkpoint)
/// try verifier.verifyInclusion(receipt, leafData: leaf)
/// ```
public struct CheckpointVerifier: Sendable {
    /// The log's key (algorithm ``NoteVerifierKey/Algorithm/ed25519``).
    public let logKey: NoteVerifierKey
    /// The origin a checkpoint must name: the one given, or by default the
    /// log key's name (a PatientVault store names its key after its origin).
    public let origin: String
    /// Witnesses whose `cosignature/v1` counts.
    public let witnesses: [NoteVerifierKey]
    /// How many distinct witnesses must have cosigned.
    public let quorum: Int

    /// A verifier for one log.
    /// - Parameters:
    ///   - logKey: the log's note verifier key (Ed25519).
    ///   - origin: the log's origin; nil for the log key's name.
    ///   - witnesses: the witnesses' cosignature keys.
    ///   - quorum: how many distinct witnesses must have cosigned.
    /// - Throws: ``ProofError/Code/malformed`` if `logKey` is not an
    ///   Ed25519 note key, a witness key is not a cosignature key, or the
    ///   quorum is negative or above the number of distinct witness public
    ///   keys (one key listed under two names is one witness: the
    ///   cosigned message does not name the witness).
    public init(logKey: NoteVerifierKey, origin: String? = nil, witnesses: [NoteVerifierKey] = [], quorum: Int = 0) throws(ProofError) {
        guard logKey.algorithm == .ed25519 else { throw ProofError(.malformed, "a log key signs notes (algorithm 0x01)") }
        guard witnesses.allSatisfy({ $0.algorithm == .cosignatureV1 }), (0...Set(witnesses.map(\.publicKey)).count).contains(quorum) else {
            throw ProofError(.malformed, "witness keys are cosignature keys (0x04), and the quorum at most their number")
        }
        self.logKey = logKey
        self.origin = origin ?? logKey.name
        self.witnesses = witnesses
        self.quorum = quorum
    }

    /// Checks the checkpoint's origin, its log signature and the witness
    /// quorum; returns what it states.
    /// - Throws: ``ProofError/Code/wrongOrigin``, ``ProofError/Code/badSignature``,
    ///   ``ProofError/Code/quorumNotMet``.
    @discardableResult
    public func verify(_ checkpoint: SignedCheckpoint) throws(ProofError) -> TreeHead {
        let head = checkpoint.treeHead
        if head.origin != origin {
            throw ProofError(.wrongOrigin, "the checkpoint is of another log")
        }
        let message = Array(checkpoint.noteText.utf8)
        let mine = checkpoint.signatures.filter { $0.name == logKey.name && $0.keyID == logKey.keyID }
        guard !mine.isEmpty, mine.allSatisfy({ $0.signature.count == 64 && logKey.verifies($0.signature, of: message) }) else {
            throw ProofError(.badSignature, "the checkpoint is not signed by the log's key")
        }
        // Counted by public key: one key under two names is one witness.
        var cosigned = Set<[UInt8]>()
        for witness in witnesses where !cosigned.contains(witness.publicKey) {
            for line in checkpoint.signatures where line.name == witness.name && line.keyID == witness.keyID && line.signature.count == 72 {
                let time = line.signature[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let signed = Array("cosignature/v1\ntime \(time)\n".utf8) + message
                if time <= UInt64(Int64.max), witness.verifies(Array(line.signature[8...]), of: signed) { cosigned.insert(witness.publicKey) }
            }
        }
        guard cosigned.count >= quorum else {
            throw ProofError(.quorumNotMet, "\(cosigned.count) of the \(quorum) witness cosignatures required")
        }
        return head
    }

    /// Checks the proof's checkpoint (``verify(_:)``), then that the leaf
    /// whose data is `leafData` is at the proof's index in its tree.
    /// - Throws: as ``verify(_:)``, and ``ProofError/Code/notIncluded``.
    public func verifyInclusion(_ proof: InclusionProof, leafData: [UInt8]) throws(ProofError) {
        let head = try verify(proof.checkpoint)
        guard MerkleTree.verifyInclusion(
            leaf: MerkleTree.leafHash(leafData), index: proof.index, size: head.size, proof: proof.hashes, root: head.rootHash)
        else { throw ProofError(.notIncluded, "the proof does not lead from the leaf to the checkpoint's root") }
    }

    /// Checks both checkpoints (``verify(_:)``), then that the older tree
    /// is a prefix of the newer.
    /// - Throws: as ``verify(_:)``, and ``ProofError/Code/notConsistent``.
    public func verifyConsistency(from old: SignedCheckpoint, to new: SignedCheckpoint, proof: ConsistencyProof) throws(ProofError) {
        let a = try verify(old), b = try verify(new)
        guard a.origin == b.origin, proof.oldSize == a.size, proof.newSize == b.size,
              MerkleTree.verifyConsistency(oldSize: a.size, newSize: b.size, oldRoot: a.rootHash, newRoot: b.rootHash, proof: proof.hashes)
        else { throw ProofError(.notConsistent, "the newer checkpoint does not extend the older") }
    }
}
