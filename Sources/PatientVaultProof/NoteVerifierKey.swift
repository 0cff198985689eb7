import Foundation
import VaultCrypto

/// A signed-note verifier key (C2SP `signed-note`), as Go's
/// `golang.org/x/mod/sumdb/note` writes and reads it:
/// `name+keyID+base64(algorithm ‖ public key)`, the key ID being the first
/// four bytes (big-endian) of `SHA-256(name ‖ "\n" ‖ algorithm ‖ key)`, in
/// 8 lowercase hexadecimal digits.
///
/// Two algorithms: Ed25519 signatures of notes (`0x01`, a log's key) and
/// Ed25519 witness cosignatures (`0x04`, C2SP `tlog-cosignature`).
public struct NoteVerifierKey: Hashable, Sendable, CustomStringConvertible {
    /// The key's algorithm.
    public enum Algorithm: UInt8, Hashable, Sendable {
        /// Ed25519 signatures of the note text (a log's key).
        case ed25519 = 0x01
        /// Ed25519 `cosignature/v1` (a witness's key).
        case cosignatureV1 = 0x04
    }

    /// The key's name (non-empty, no spaces, no `+`, at most 256 bytes).
    public let name: String
    /// Its algorithm.
    public let algorithm: Algorithm
    /// The 32-byte Ed25519 public key.
    public let publicKey: [UInt8]
    /// The key ID: `SHA-256(name ‖ "\n" ‖ algorithm ‖ publicKey)[0..<4]`.
    public var keyID: UInt32 { Self.keyID(name: name, algorithm: algorithm, publicKey: publicKey) }

    /// A key from its parts.
    /// - Throws: ``ProofError/Code/malformed`` for an invalid name or a key
    ///   that is not 32 bytes.
    public init(name: String, algorithm: Algorithm, publicKey: [UInt8]) throws(ProofError) {
        guard Self.isValidName(name) else { throw ProofError(.malformed, "a key name is 1 to 256 bytes without spaces or '+'") }
        guard Self.staysApart(name) else {
            throw ProofError(.malformed, "a key name neither starts with a combining mark nor ends with a prepended one")
        }
        try self.init(parsedName: name, algorithm: algorithm, publicKey: publicKey)
    }

    /// A key read back: its name checked scalar by scalar only, so that a
    /// decoder does not depend on the grapheme rules of the toolchain
    /// that reads it (those are checked when a key is made).
    private init(parsedName name: String, algorithm: Algorithm, publicKey: [UInt8]) throws(ProofError) {
        guard Self.isValidName(name) else { throw ProofError(.malformed, "a key name is 1 to 256 bytes without spaces or '+'") }
        guard publicKey.count == 32 else { throw ProofError(.malformed, "an Ed25519 public key is 32 bytes") }
        self.name = name
        self.algorithm = algorithm
        self.publicKey = publicKey
    }

    /// Parses `name+keyID+base64`.
    /// - Throws: ``ProofError/Code/malformed`` for another shape, an
    ///   unknown algorithm, or a key ID that does not match the key.
    public init(_ text: String) throws(ProofError) {
        // Split scalar by scalar: a `+` after a prepending scalar (U+0600)
        // is one grapheme with it, and still a separator here.
        let parts = text.unicodeScalars.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false).map { String($0) }
        guard text.utf8.count <= 512, parts.count == 3, parts[1].utf8.count == 8,
              let id = UInt32(parts[1], radix: 16), let raw = Base64.decode(parts[2]), raw.count == 33,
              let algorithm = Algorithm(rawValue: raw[0])
        else { throw ProofError(.malformed, "a verifier key is name+keyID+base64(algorithm ‖ 32-byte key)") }
        try self.init(parsedName: parts[0], algorithm: algorithm, publicKey: Array(raw[1...]))
        guard id == keyID else { throw ProofError(.malformed, "the verifier key's ID does not match its key") }
        // Lowercase hex, as written: one text per key.
        guard parts[1] == hex8(id) else { throw ProofError(.malformed, "a verifier key's ID is 8 lowercase hex digits") }
    }

    /// `name+keyID+base64(algorithm ‖ key)`.
    public var description: String {
        name + "+" + hex8(keyID) + "+" + Base64.encode([algorithm.rawValue] + publicKey)
    }

    static func keyID(name: String, algorithm: Algorithm, publicKey: [UInt8]) -> UInt32 {
        let digest = SHA256.hash(Array(name.utf8) + [0x0A, algorithm.rawValue] + publicKey)
        return UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8 | UInt32(digest[3])
    }

    static func isValidName(_ name: String) -> Bool {
        (1...256).contains(name.utf8.count) && !name.unicodeScalars.contains { $0 == "+" || $0.properties.isWhitespace || $0.value < 0x20 }
    }

    /// Whether the name's characters stay its own beside the separators
    /// around it (a signature line's "— name base64", a key's
    /// "name+hash+key"): no first scalar that joins the space before it (a
    /// combining mark), no last one that joins what follows (a prepended
    /// mark), or a note signed under it would not parse. Checked when a
    /// key is made, not when one is read.
    static func staysApart(_ name: String) -> Bool {
        let line = "\u{2014} " + name + " +"
        return line.hasPrefix("\u{2014} ") && line.hasSuffix(" +") && line.dropFirst(2).dropLast(2).elementsEqual(name)
    }

    /// Whether `signature` (64 bytes) is this key's Ed25519 signature of `message`.
    func verifies(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard let key = try? Ed25519PublicKey(bytes: publicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

/// Standard base64 with padding, decoded strictly (canonical form only).
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func decode(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count % 4 == 0,
              text.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 47 || $0 == 61 }),
              let data = Data(base64Encoded: text)
        else { return nil }
        let bytes = [UInt8](data)
        // Canonical only: what this encoder would write.
        return encode(bytes) == text ? bytes : nil
    }
}
