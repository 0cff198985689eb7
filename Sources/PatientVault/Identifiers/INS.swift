/// A patient's national health identifier (INS): the 13-character NIR and
/// its 2-digit key, validated strictly.
///
/// The key is `97 − (NIR mod 97)`; for Corsica, department `2A` counts as
/// `19` and `2B` as `18` when computing it. The value never appears in a
/// description, a log line or an error message: `description` is redacted,
/// and the store addresses vaults by a keyed pseudonym of it.
public struct INS: Hashable, Sendable, CustomStringConvertible {
    /// The 15 canonical characters (NIR then key), e.g. for display to the
    /// patient. Handle as personal data.
    public let digits: String
    /// The 15 canonical characters, ``digits`` (``StringIdentifier``).
    public var canonicalText: String { digits }

    /// Validates an INS given as 15 characters, spaces allowed between groups.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier`` if the length,
    ///   the characters or the key are wrong (the message never repeats the value).
    public init(_ string: String) throws(PatientVaultError) {
        let chars = Array(string.uppercased().utf8.filter { $0 != UInt8(ascii: " ") })
        guard chars.count == 15 else {
            throw PatientVaultError(.invalidIdentifier, "an INS has 15 characters: a 13-character NIR and a 2-digit key")
        }
        func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        let corsica = chars[5] == UInt8(ascii: "2") && (chars[6] == UInt8(ascii: "A") || chars[6] == UInt8(ascii: "B"))
        for (i, c) in chars.enumerated() where !isDigit(c) && !(corsica && i == 6) {
            throw PatientVaultError(.invalidIdentifier, "an INS has only digits (and 2A/2B as Corsican department)")
        }
        guard [UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "4"),
               UInt8(ascii: "7"), UInt8(ascii: "8")].contains(chars[0]) else {
            throw PatientVaultError(.invalidIdentifier, "an INS starts with 1, 2, 3, 4, 7 or 8")
        }
        let nir = String(decoding: chars[0..<13], as: UTF8.self)
        let key = Int(String(decoding: chars[13..<15], as: UTF8.self))!
        guard key == INS.key(forNIR: nir) else {
            throw PatientVaultError(.invalidIdentifier, "the INS key does not match its NIR")
        }
        digits = String(decoding: chars, as: UTF8.self)
    }

    /// The key of a 13-character NIR: `97 − (NIR mod 97)`, with `2A` read as
    /// `19` and `2B` as `18`. Returns nil if the NIR is malformed.
    public static func key(forNIR nir: String) -> Int? {
        var s = nir.uppercased()
        // ASCII only: the department is found by character offset below.
        guard s.utf8.count == 13, s.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        let index = s.index(s.startIndex, offsetBy: 5)
        let department = s[index..<s.index(index, offsetBy: 2)]
        if department == "2A" { s.replaceSubrange(index..<s.index(index, offsetBy: 2), with: "19") }
        if department == "2B" { s.replaceSubrange(index..<s.index(index, offsetBy: 2), with: "18") }
        // Thirteen digits now, nothing else (`UInt64` alone would take a sign).
        guard s.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = UInt64(s) else { return nil }
        return 97 - Int(n % 97)
    }

    /// Redacted: an INS is personal data.
    public var description: String { "INS(redacted)" }
}
