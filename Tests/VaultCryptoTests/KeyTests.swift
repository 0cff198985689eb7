import Testing
@testable import VaultCrypto

/// Keys wipe themselves and derive subkeys (`SymmetricKey`, `KeyDerivation`).
@Suite struct KeyTests {
    /// A signing key wiped by its owner (a store at `close()`) signs
    /// nothing more: a signature asked for after the wipe throws, never
    /// returns bytes that do not verify.
    @Test func aWipedSigningKeySignsNothing() throws {
        let key = try Ed25519SigningKey.generate()
        let message = Array("checkpoint".utf8)
        #expect(key.publicKey.isValidSignature(try key.signature(for: message), for: message))
        key.wipe()
        #expect(throws: CryptoError.self) { _ = try key.signature(for: message) }
    }

    @Test func keysCompareInConstantTimeByValue() throws {
        let bytes = [UInt8](repeating: 7, count: 32)
        let a = try bytes.withUnsafeBytes { try SymmetricKey.copying($0) }
        let b = try bytes.withUnsafeBytes { try SymmetricKey.copying($0) }
        #expect(a == b)
        #expect(a != (try SymmetricKey.generate()))
        #expect { try [UInt8](repeating: 1, count: 31).withUnsafeBytes { try SymmetricKey.copying($0) } } throws: {
            ($0 as? CryptoError)?.code == .invalidInput
        }
    }

    @Test func derivedSubkeysDifferByIdAndContext() throws {
        let master = try SymmetricKey.generate()
        let a = try KeyDerivation.deriveKey(from: master, id: 1, context: .init("PVMASTER"))
        let a2 = try KeyDerivation.deriveKey(from: master, id: 1, context: .init("PVMASTER"))
        let b = try KeyDerivation.deriveKey(from: master, id: 2, context: .init("PVMASTER"))
        let c = try KeyDerivation.deriveKey(from: master, id: 1, context: .init("PVOTHER_"))
        #expect(a == a2)
        #expect(a != b)
        #expect(a != c)
    }

    @Test func keysDerivedTogetherEqualKeysDerivedAlone() throws {
        let master = try SymmetricKey.generate()
        let together = try KeyDerivation.deriveKeys(from: master, ids: [1, 2, 3], context: .init("PVVAULT_"))
        #expect(together.count == 3)
        for (i, id) in [UInt64(1), 2, 3].enumerated() {
            #expect(together[i] == (try KeyDerivation.deriveKey(from: master, id: id, context: .init("PVVAULT_"))))
        }
        #expect(together[0] != together[1] && together[1] != together[2])
        // Each key sees exactly its own 32 bytes.
        together[1].withUnsafeBytes { #expect($0.count == 32) }
        // A key generated with its subkeys: the same subkeys as derived alone.
        let bundle = try KeyDerivation.randomKeyWithSubkeys(ids: [1, 2], context: .init("PVDOCKEY"))
        #expect(bundle[1] == (try KeyDerivation.deriveKey(from: bundle[0], id: 1, context: .init("PVDOCKEY"))))
        #expect(bundle[2] == (try KeyDerivation.deriveKey(from: bundle[0], id: 2, context: .init("PVDOCKEY"))))
        // And unwrapped with them.
        let wrapping = try SymmetricKey.generate()
        let wrapped = try KeyWrap.wrap(bundle[0], with: wrapping, context: [1, 2, 3])
        let unwrapped = try KeyWrap.unwrap(wrapped, with: wrapping, context: [1, 2, 3], subkeys: [1, 2], derivation: .init("PVDOCKEY"))
        #expect(unwrapped == bundle)
        #expect(throws: (any Error).self) {
            _ = try KeyWrap.unwrap(wrapped, with: wrapping, context: [1, 2, 4], subkeys: [1, 2], derivation: .init("PVDOCKEY"))
        }
    }

    @Test func argon2idIsDeterministicPerSaltAndRefusesBadSalts() throws {
        let salt = [UInt8](repeating: 3, count: Argon2id.saltByteCount)
        let pw = Array("correct horse".utf8)
        let k1 = try pw.withUnsafeBytes { try Argon2id.deriveKey(from: $0, salt: salt, parameters: .minimum) }
        let k2 = try pw.withUnsafeBytes { try Argon2id.deriveKey(from: $0, salt: salt, parameters: .minimum) }
        let k3 = try pw.withUnsafeBytes { try Argon2id.deriveKey(from: $0, salt: [UInt8](repeating: 4, count: 16), parameters: .minimum) }
        #expect(k1 == k2)
        #expect(k1 != k3)
        #expect { try pw.withUnsafeBytes { try Argon2id.deriveKey(from: $0, salt: [1, 2], parameters: .minimum) } } throws: {
            ($0 as? CryptoError)?.code == .invalidInput
        }
    }
}
