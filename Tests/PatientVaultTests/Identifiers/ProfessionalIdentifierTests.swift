import Testing
@testable import PatientVault

/// RPPS and FINESS numbers: strict format, Luhn as a warning (`ProfessionalIdentifiers`).
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
