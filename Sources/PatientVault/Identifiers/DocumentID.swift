import VaultCrypto

/// The identifier of a document: 128 random bits, the same for all its
/// versions. Written as 32 lowercase hexadecimal characters.
public struct DocumentID: Hashable, Sendable, CustomStringConvertible, Comparable {
    let bytes: [UInt8]

    init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// A new random id.
    static func random() throws -> DocumentID { DocumentID(bytes: try SecureRandom.bytes(16)) }

    /// Parses the 32-character hexadecimal form.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    public init(_ string: String) throws(PatientVaultError) {
        let chars = Array(string.lowercased().utf8)
        guard chars.count == 32 else {
            throw PatientVaultError(.invalidIdentifier, "a document id has 32 hexadecimal characters")
        }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for i in stride(from: 0, to: 32, by: 2) {
            guard let hi = hexValue(chars[i]), let lo = hexValue(chars[i + 1]) else {
                throw PatientVaultError(.invalidIdentifier, "a document id has 32 hexadecimal characters")
            }
            out.append(hi << 4 | lo)
        }
        bytes = out
    }

    /// The 32-character hexadecimal form.
    public var description: String { hexEncoded(bytes) }
    /// The 32 lowercase hexadecimal characters (``StringIdentifier``).
    public var canonicalText: String { description }

    /// Orders ids by their 16 bytes, lexicographically: the order of their
    /// hexadecimal forms. Ids are random, so this order is not deposit order.
    public static func < (a: DocumentID, b: DocumentID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: return c - 48
    case 97...102: return c - 87
    default: return nil
    }
}

package func hexEncoded(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// A UUID (RFC 9562 version 8, lowercase) named by `name`: the first 16
/// bytes of its unkeyed BLAKE2b hash with the version and variant bits set.
/// The same name gives the same UUID (FHIR `urn:uuid:` full URLs of an
/// export); it reveals nothing the name did not.
package func nameBasedUUID(_ name: String) -> String {
    var b = BLAKE2b.hash(Array(name.utf8), outputByteCount: 16)
    b[6] = (b[6] & 0x0F) | 0x80
    b[8] = (b[8] & 0x3F) | 0x80
    let hex = hexEncoded(b)
    let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
    return parts.joined(separator: "-")
}
