import Foundation
import Testing
@testable import PatientVault
@testable import VaultCrypto
@testable import VaultStorage

/// The store's derived identifiers: stores on disk depend on them byte for byte.
@Suite struct StoreKeysTests {
    /// A vault's pseudonym is the keyed BLAKE2b-256 of `"PV1-INS"` and the
    /// INS's digits, its first byte the vault's stream class, whichever
    /// way it is computed (in place, without arrays, on every call).
    @Test func aVaultPseudonymIsTheKeyedHashOfTheINS() throws {
        let keys = try StoreKeys(master: SymmetricKey.generate())
        for ins in [Fixtures.alice, Fixtures.bob, Fixtures.ins("1600675000001")] {
            var expected = BLAKE2b.hash(Array("PV1-INS".utf8) + Array(ins.digits.utf8), key: keys.pseudonym)
            expected[0] = StoreKeys.StreamClass.vault.rawValue
            #expect(keys.vaultPseudonym(for: ins).bytes == expected)
        }
        #expect(keys.vaultPseudonym(for: Fixtures.alice) != keys.vaultPseudonym(for: Fixtures.bob))
    }
}
