import Testing
@testable import PatientVault

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

@Suite struct ProfessionalIdentifierTests {
    @Test func rppsFormatIsStrictLuhnIsAWarning() throws {
        // 10000000009 passes Luhn; 10000000001 fails it and is still accepted.
        #expect(try RPPSNumber("10000000009").passesLuhnCheck)
        let failing = try RPPSNumber("10000000001")
        #expect(!failing.passesLuhnCheck)
        #expect(failing.idnps == "810000000001")
        for bad in ["", "1000000000", "100000000011", "1000000000A"] {
            #expect(throws: PatientVaultError.self) { try RPPSNumber(bad) }
        }
    }

    @Test func finessAcceptsCorsicaAndWarnsOnLuhn() throws {
        #expect(try FINESSNumber("2A0000024").value == "2A0000024")
        #expect(try FINESSNumber("2A0000024").passesLuhnCheck == false)
        #expect(try FINESSNumber("750000002").passesLuhnCheck)
        #expect(try FINESSNumber("750000001").passesLuhnCheck == false)
        for bad in ["", "75000000", "7500000000", "7X0000000", "2C0000000"] {
            #expect(throws: PatientVaultError.self) { try FINESSNumber(bad) }
        }
    }

    @Test func documentIDRoundTripsAndRejectsGarbage() throws {
        let id = try DocumentID.random()
        #expect(try DocumentID(id.description) == id)
        for bad in ["", "xyz", String(repeating: "g", count: 32), String(repeating: "a", count: 31)] {
            #expect(throws: PatientVaultError.self) { try DocumentID(bad) }
        }
    }

    @Test func systemPrincipalIsValidated() {
        #expect(throws: PatientVaultError.self) { try SystemPrincipal("") }
        #expect(throws: PatientVaultError.self) { try SystemPrincipal("has space") }
        #expect((try? SystemPrincipal("cnam.paris-75")) != nil)
    }
}
