import Testing
@testable import PatientVault

/// The INS: NIR and key, Corsica, bounds (`INS`).
@Suite struct INSTests {
    @Test(arguments: [
        // (NIR, expected key): key = 97 − (NIR mod 97), computed independently.
        ("1850578006084", 97 - Int(1_850_578_006_084 % 97)),
        ("2840775123456", 97 - Int(2_840_775_123_456 % 97)),
        // Corsica: 2A counts as 19, 2B as 18.
        ("180072A123456", 97 - Int(1_800_719_123_456 % 97)),
        ("299122B543210", 97 - Int(2_991_218_543_210 % 97)),
    ])
    func keyOfNIR(nir: String, expected: Int) throws {
        #expect(INS.key(forNIR: nir) == expected)
        let formatted = String(format: "%02d", expected)
        let ins = try INS(nir + formatted)
        #expect(ins.digits == (nir + formatted).uppercased())
    }

    /// No key for a NIR that is not thirteen digits (2A and 2B aside):
    /// a sign, a space or a letter elsewhere is malformed, not a number.
    @Test(arguments: ["+123456789012", "-123456789012", " 123456789012", "1234567890 12", "18005A1234567", "1800\u{0661}2A123456"])
    func noKeyForAMalformedNIR(_ nir: String) {
        #expect(INS.key(forNIR: nir) == nil)
    }

    @Test func acceptsSpacesAndLowercaseCorsica() throws {
        let key = INS.key(forNIR: "180072A123456")!
        let spaced = "1 80 07 2a 123 456 " + String(format: "%02d", key)
        #expect(try INS(spaced).digits == "180072A123456" + String(format: "%02d", key))
    }

    @Test(arguments: [
        "",                    // empty
        "12345",               // too short
        "18505780060849912",   // too long
        "1850578OO6084XX",     // letters
        "5850578006084" + "00", // bad first digit
        "18005A1234567" + "00", // letter outside the department
    ])
    func rejectsMalformed(_ s: String) {
        #expect(throws: PatientVaultError.self) { try INS(s) }
        do { _ = try INS(s) } catch { #expect(error.code == .invalidIdentifier) }
    }

    @Test func rejectsEveryWrongKey() throws {
        let nir = "1850578006084"
        let good = INS.key(forNIR: nir)!
        for k in 0...99 where k != good {
            #expect(throws: PatientVaultError.self) { try INS(nir + String(format: "%02d", k)) }
        }
        #expect(try INS(nir + String(format: "%02d", good)).digits.hasPrefix(nir))
    }

    @Test func descriptionNeverShowsTheINS() {
        let ins = Fixtures.alice
        #expect(!ins.description.contains(ins.digits))
        #expect(!"\(Principal.patient(ins))".contains(ins.digits))
    }
}
