/// Luhn's check, as the RPPS and FINESS registers are often described to
/// use. Published official numbers fail it, so a failure is a warning
/// (``RPPSNumber/passesLuhnCheck``), never a rejection.
func luhnValid(_ digits: [UInt8]) -> Bool {
    var sum = 0
    for (i, d) in digits.reversed().enumerated() {
        var v = Int(d)
        if i % 2 == 1 {
            v *= 2
            if v > 9 { v -= 9 }
        }
        sum += v
    }
    return sum % 10 == 0
}

/// A health professional's RPPS number: exactly 11 digits.
public struct RPPSNumber: Hashable, Sendable, CustomStringConvertible {
    /// The 11 digits.
    public let digits: String
    /// The 11 digits, ``digits`` (``StringIdentifier``).
    public var canonicalText: String { digits }
    /// Whether the number passes Luhn's check. Official numbers may fail it:
    /// treat false as a warning to surface, not as invalid.
    public let passesLuhnCheck: Bool

    /// Validates the format strictly (11 digits, spaces ignored).
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    public init(_ string: String) throws(PatientVaultError) {
        let chars = Array(string.utf8.filter { $0 != UInt8(ascii: " ") })
        guard chars.count == 11, chars.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw PatientVaultError(.invalidIdentifier, "an RPPS number has exactly 11 digits")
        }
        digits = String(decoding: chars, as: UTF8.self)
        passesLuhnCheck = luhnValid(chars.map { $0 - 48 })
    }

    /// The national professional identifier: `"8"` followed by the RPPS.
    public var idnps: String { "8" + digits }

    /// The RPPS number (a public register identifier, not patient data).
    public var description: String { "RPPS \(digits)" }
}

/// An organisation's FINESS number: 9 characters, digits, where the first
/// two may be `2A` or `2B` (Corsica).
public struct FINESSNumber: Hashable, Sendable, CustomStringConvertible {
    /// The 9 characters.
    public let value: String
    /// The 9 characters, ``value`` (``StringIdentifier``).
    public var canonicalText: String { value }
    /// Whether the number passes Luhn's check (false for Corsican numbers,
    /// and for some official numbers): a warning, not a rejection.
    public let passesLuhnCheck: Bool

    /// Validates the format strictly.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    public init(_ string: String) throws(PatientVaultError) {
        let chars = Array(string.uppercased().utf8.filter { $0 != UInt8(ascii: " ") })
        guard chars.count == 9 else {
            throw PatientVaultError(.invalidIdentifier, "a FINESS number has 9 characters")
        }
        let corsica = chars[0] == UInt8(ascii: "2") && (chars[1] == UInt8(ascii: "A") || chars[1] == UInt8(ascii: "B"))
        for (i, c) in chars.enumerated() where !(c >= 48 && c <= 57) && !(corsica && i == 1) {
            throw PatientVaultError(.invalidIdentifier, "a FINESS number has digits only (2A/2B allowed first)")
        }
        value = String(decoding: chars, as: UTF8.self)
        passesLuhnCheck = !corsica && luhnValid(chars.map { $0 - 48 })
    }

    /// The FINESS number (a public register identifier).
    public var description: String { "FINESS \(value)" }
}
