import Foundation
import VaultCrypto

/// A log's state, as a C2SP `tlog-checkpoint` note text states it: origin,
/// tree size, root hash (RFC 9162).
public struct TreeHead: Hashable, Sendable {
    /// The log's name (non-empty, at most 256 bytes, no newline).
    public let origin: String
    /// How many leaves the tree has.
    public let size: UInt64
    /// The tree's root hash (32 bytes).
    public let rootHash: [UInt8]

    /// A tree head from its parts.
    /// - Throws: ``ProofError/Code/malformed`` for an empty or oversized
    ///   origin, one with a control character, or a root that is not 32 bytes.
    public init(origin: String, size: UInt64, rootHash: [UInt8]) throws(ProofError) {
        guard (1...256).contains(origin.utf8.count), !origin.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw ProofError(.malformed, "an origin is 1 to 256 bytes without control characters")
        }
        guard rootHash.count == 32 else { throw ProofError(.malformed, "a root hash is 32 bytes") }
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
    }

    /// The note text: `origin\nsize\nbase64(root)\n`.
    public var noteText: String { origin + "\n" + String(size) + "\n" + Base64.encode(rootHash) + "\n" }

    /// Parses a checkpoint's note text (extension lines are allowed and ignored).
    init(noteText text: String) throws(ProofError) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 4, lines.removeLast().isEmpty, !lines.contains(where: \.isEmpty) else {
            throw ProofError(.malformed, "a checkpoint is origin, size and root hash, one per line")
        }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else {
            throw ProofError(.malformed, "a checkpoint's tree size is a decimal number without leading zeros")
        }
        guard let root = Base64.decode(lines[2]), root.count == 32 else {
            throw ProofError(.malformed, "a checkpoint's root hash is 32 bytes in standard base64")
        }
        // The empty tree's root is SHA-256 of nothing (RFC 6962), as
        // tlog-checkpoint says and Go's tlog checks.
        guard size > 0 || root == SHA256.hash(parts: []) else {
            throw ProofError(.malformed, "a checkpoint of size 0 has the empty tree's root hash")
        }
        try self.init(origin: lines[0], size: size, rootHash: root)
    }
}

/// A signed checkpoint: a C2SP `tlog-checkpoint` as a signed note, the text
/// a store publishes and Go's `note.Open` reads.
///
/// ```
/// <origin>
/// <tree size>
/// <base64 root hash>
///
/// — <key name> <base64(key ID ‖ signature)>
/// ```
public struct SignedCheckpoint: Hashable, Sendable, CustomStringConvertible {
    /// The whole note, signatures included.
    public let text: String
    /// What the note states.
    public let treeHead: TreeHead
    /// The signed part of the note (its first lines, each ending in a newline).
    let noteText: String
    /// The signature lines: key name and the decoded `keyID ‖ signature`.
    let signatures: [(name: String, keyID: UInt32, signature: [UInt8])]

    /// The largest note accepted.
    public static let maximumSize = 1 << 20
    /// The most signature lines accepted.
    public static let maximumSignatures = 100

    /// Parses a signed note holding a checkpoint. Signatures are not
    /// checked here: see ``CheckpointVerifier``.
    /// - Throws: ``ProofError/Code/malformed``.
    public init(_ text: String) throws(ProofError) {
        guard text.utf8.count <= Self.maximumSize,
              !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" })
        else { throw ProofError(.malformed, "a note is at most 1 MiB of text without control characters") }
        guard let split = text.range(of: "\n\n", options: .backwards) else {
            throw ProofError(.malformed, "a note has its text, a blank line, then signatures")
        }
        let noteText = String(text[..<split.lowerBound]) + "\n"
        let block = String(text[split.upperBound...])
        guard !block.isEmpty, block.hasSuffix("\n") else { throw ProofError(.malformed, "a note ends with a signature line") }
        var signatures: [(String, UInt32, [UInt8])] = []
        // Lines split on newlines (a newline is a character of its own
        // whatever follows it), the rest by Unicode scalars: how characters
        // group depends on the toolchain's Unicode tables, the format's
        // separators do not (a name may start with a combining mark, which
        // joins the space before it into one character).
        for line in block.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            let scalars = line.unicodeScalars
            guard scalars.starts(with: "\u{2014} ".unicodeScalars) else {
                throw ProofError(.malformed, "a signature line starts with an em dash and a space")
            }
            let rest = scalars.dropFirst(2)
            guard let space = rest.firstIndex(of: " "), let raw = Base64.decode(String(Substring(rest[rest.index(after: space)...]))),
                  raw.count >= 5, NoteVerifierKey.isValidName(String(Substring(rest[..<space])))
            else { throw ProofError(.malformed, "a signature line is a key name and base64(key ID ‖ signature)") }
            let id = UInt32(raw[0]) << 24 | UInt32(raw[1]) << 16 | UInt32(raw[2]) << 8 | UInt32(raw[3])
            signatures.append((String(Substring(rest[..<space])), id, Array(raw[4...])))
        }
        guard signatures.count <= Self.maximumSignatures else { throw ProofError(.malformed, "a note has at most 100 signatures") }
        treeHead = try TreeHead(noteText: noteText)
        self.text = text
        self.noteText = noteText
        self.signatures = signatures
    }

    /// Signs `head` with an Ed25519 log key named `name` (package: the
    /// store's own signer).
    package static func sign(_ head: TreeHead, name: String, key: Ed25519SigningKey) throws -> SignedCheckpoint {
        let verifier = try NoteVerifierKey(name: name, algorithm: .ed25519, publicKey: key.publicKey.bytes)
        let noteText = head.noteText
        let signature = try key.signature(for: Array(noteText.utf8))
        var id = verifier.keyID.bigEndian
        let idBytes = withUnsafeBytes(of: &id) { Array($0) }
        return try SignedCheckpoint(noteText + "\n\u{2014} " + name + " " + Base64.encode(idBytes + signature) + "\n")
    }

    /// The whole note (``text``).
    public var description: String { text }

    /// Two checkpoints are equal when their notes are, byte for byte.
    public static func == (a: SignedCheckpoint, b: SignedCheckpoint) -> Bool { a.text == b.text }
    /// Hashes the note's text.
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}
