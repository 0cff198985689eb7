import Testing
@testable import VaultCrypto

/// XChaCha20-Poly1305 sealing and key wrapping (`XChaCha20Poly1305`).
@Suite struct AEADTests {
    @Test func roundTripAndRandomNonces() throws {
        let key = try SymmetricKey.generate()
        let message = Array("a clinical note".utf8)
        let a = try XChaCha20Poly1305.seal(message, using: key, authenticating: [1, 2])
        let b = try XChaCha20Poly1305.seal(message, using: key, authenticating: [1, 2])
        #expect(a != b)
        #expect(a.count == message.count + XChaCha20Poly1305.overhead)
        #expect(try XChaCha20Poly1305.open(a, using: key, authenticating: [1, 2]) == message)
        #expect(try XChaCha20Poly1305.open(b, using: key, authenticating: [1, 2]) == message)
    }

    /// A box sealed in place opens like any other, its plaintext no longer
    /// readable where it was; the same plaintext sealed twice differs.
    @Test func sealInPlaceMakesAnOrdinaryBox() throws {
        let key = try SymmetricKey.generate()
        let message = Array("a discharge summary, sealed where it lies".utf8)
        func box() throws -> [UInt8] {
            var box = [UInt8](repeating: 0, count: XChaCha20Poly1305.nonceByteCount)
            box += message
            box += [UInt8](repeating: 0, count: XChaCha20Poly1305.tagByteCount)
            try box.withUnsafeMutableBytes { b in
                try [UInt8]([9, 9]).withUnsafeBytes { try XChaCha20Poly1305.sealInPlace(b, using: key, authenticating: $0) }
            }
            return box
        }
        let a = try box()
        let b = try box()
        #expect(a != b)
        #expect(Array(a[XChaCha20Poly1305.nonceByteCount..<(XChaCha20Poly1305.nonceByteCount + message.count)]) != message)
        #expect(try XChaCha20Poly1305.open(a, using: key, authenticating: [9, 9]) == message)
        #expect(throws: CryptoError.self) { _ = try XChaCha20Poly1305.open(a, using: key, authenticating: [9]) }
        var tooSmall = [UInt8](repeating: 0, count: XChaCha20Poly1305.overhead - 1)
        #expect(throws: CryptoError.self) {
            try tooSmall.withUnsafeMutableBytes { b in try [UInt8]().withUnsafeBytes { try XChaCha20Poly1305.sealInPlace(b, using: key, authenticating: $0) } }
        }
    }

    @Test func everyFlippedByteFailsAuthentication() throws {
        let key = try SymmetricKey.generate()
        let box = try XChaCha20Poly1305.seal(Array(repeating: 0x41, count: 64), using: key, authenticating: [9])
        for i in box.indices {
            var tampered = box
            tampered[i] ^= 0x01
            #expect(throws: CryptoError(.authenticationFailed, "sealed box did not authenticate")) {
                try XChaCha20Poly1305.open(tampered, using: key, authenticating: [9])
            }
        }
    }

    @Test func wrongKeyOrContextFails() throws {
        let key = try SymmetricKey.generate()
        let box = try XChaCha20Poly1305.seal([1, 2, 3], using: key, authenticating: Array("vault A".utf8))
        #expect { try XChaCha20Poly1305.open(box, using: key, authenticating: Array("vault B".utf8)) } throws: {
            ($0 as? CryptoError)?.code == .authenticationFailed
        }
        #expect { try XChaCha20Poly1305.open(box, using: try SymmetricKey.generate(), authenticating: Array("vault A".utf8)) } throws: {
            ($0 as? CryptoError)?.code == .authenticationFailed
        }
        #expect { try XChaCha20Poly1305.open(Array(box.prefix(20)), using: key, authenticating: []) } throws: {
            ($0 as? CryptoError)?.code == .authenticationFailed
        }
    }

    @Test func keyWrapBindsContext() throws {
        let kek = try SymmetricKey.generate()
        let key = try SymmetricKey.generate()
        let wrapped = try KeyWrap.wrap(key, with: kek, context: [1])
        #expect(wrapped.count == KeyWrap.wrappedByteCount)
        #expect(try KeyWrap.unwrap(wrapped, with: kek, context: [1]) == key)
        #expect { try KeyWrap.unwrap(wrapped, with: kek, context: [2]) } throws: { ($0 as? CryptoError)?.code == .authenticationFailed }
        #expect { try KeyWrap.unwrap(wrapped, with: key, context: [1]) } throws: { ($0 as? CryptoError)?.code == .authenticationFailed }
    }
}
