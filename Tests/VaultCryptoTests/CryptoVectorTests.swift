import Testing
@testable import VaultCrypto

/// Published test vectors: each value below is copied from the source named.
@Suite struct CryptoVectorTests {
    /// draft-irtf-cfrg-xchacha-03, A.3.1 AEAD_XChaCha20_Poly1305.
    @Test func xchacha20Poly1305Draft() throws {
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let keyBytes = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        let ciphertext = hex("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e")
        let tag = hex("c0875924c1c7987947deafd8780acf49")
        let key = try keyBytes.withUnsafeBytes { try SymmetricKey.copying($0) }
        var box: [UInt8] = []
        try plaintext.withUnsafeBytes { p in
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try XChaCha20Poly1305.seal(p, using: key, nonce: n, authenticating: a, appendingTo: &box)
                }
            }
        }
        #expect(box == nonce + ciphertext + tag)
        #expect(try XChaCha20Poly1305.open(box, using: key, authenticating: aad) == plaintext)
    }

    /// RFC 7693 Appendix A: BLAKE2b-512("abc").
    @Test func blake2b512OfABC() {
        #expect(hexString(BLAKE2b.hash(Array("abc".utf8), outputByteCount: 64))
            == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
    }

    /// BLAKE2b-512 and BLAKE2b-256 of the empty string (BLAKE2 reference KAT
    /// and implementations' tests).
    @Test func blake2bOfEmpty() {
        #expect(hexString(BLAKE2b.hash([], outputByteCount: 64))
            == "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce")
        #expect(hexString(BLAKE2b.hash([], outputByteCount: 32))
            == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
    }

    /// BLAKE2/BLAKE2 testvectors, keyed BLAKE2b-512 (key 00..3f): inputs ""
    /// and 00, with a 64-byte key in guarded memory.
    @Test func blake2bKeyedKAT() throws {
        let key = (0..<64).map { UInt8($0) }
        let secure = try key.withUnsafeBytes { try SecureBytes.copying($0) }
        func keyed(_ input: [UInt8]) -> [UInt8] {
            input.withUnsafeBytes { BLAKE2b.hash($0, outputByteCount: 64, keyBytes: secure) }
        }
        #expect(hexString(keyed([])) == "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568")
        #expect(hexString(keyed([0])) == "961f6dd1e4dd30f63901690c512e78e4b45e4742ed197c3c5e45c549fd25f2e4187b0bc9fe30492b16b0d0bc4ef9b0f34c7003fac09a5ef1532e69430234cebd")
    }

    /// RFC 8032 section 7.1, TEST 1 and TEST 2.
    @Test(arguments: [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ])
    func ed25519RFC8032(seed: String, publicKey: String, message: String, signature: String) throws {
        let key = try hex(seed).withUnsafeBytes { try SymmetricKey.copying($0) }
        let signing = try Ed25519SigningKey.fromSeed(key)
        #expect(signing.publicKey.bytes == hex(publicKey))
        let sig = try signing.signature(for: hex(message))
        #expect(sig == hex(signature))
        #expect(signing.publicKey.isValidSignature(sig, for: hex(message)))
        var bad = sig
        bad[10] ^= 1
        #expect(!signing.publicKey.isValidSignature(bad, for: hex(message)))
        #expect(!signing.publicKey.isValidSignature(sig, for: hex(message) + [0]))
    }

    /// libsodium test/default/kdf.exp: master key 00..1f, context "KDF test",
    /// subkey id 32 of length 32.
    @Test func kdfLibsodiumVector() throws {
        let master = try (0..<32).map { UInt8($0) }.withUnsafeBytes { try SymmetricKey.copying($0) }
        let subkey = try KeyDerivation.deriveKey(from: master, id: 32, context: .init("KDF test"))
        let expected = try hex("154b291f11196737f8b7f491e4ca11764e0227d34f94295408a869f007aa8618").withUnsafeBytes { try SymmetricKey.copying($0) }
        #expect(subkey == expected)
        let other = try KeyDerivation.deriveKey(from: master, id: 33, context: .init("KDF test"))
        #expect(subkey != other)
    }

    /// libsodium test/default/pwhash_argon2id.c, tv[0].
    @Test func argon2idLibsodiumVector() throws {
        let password = hex("a347ae92bce9f80f6f595a4480fc9c2fe7e7d7148d371e9487d75f5c23008ffae065577a928febd9b1973a5a95073acdbeb6a030cfc0d79caa2dc5cd011cef02c08da232d76d52dfbca38ca8dcbd665b17d1665f7cf5fe59772ec909733b24de97d6f58d220b20c60d7c07ec1fd93c52c31020300c6c1facd77937a597c7a6")
        let salt = hex("5541fbc995d5c197ba290346d2c559de")
        let out = try Argon2id.rawOutput(
            passphrase: password, salt: salt, parameters: .init(opsLimit: 5, memLimit: 7_256_678), outputByteCount: 155)
        #expect(hexString(out) == "18acec5d6507739f203d1f5d9f1d862f7c2cdac4f19d2bdff64487e60d969e3ced615337b9eec6ac4461c6ca07f0939741e57c24d0005c7ea171a0ee1e7348249d135b38f222e4dad7b9a033ed83f5ca27277393e316582033c74affe2566a2bea47f91f0fd9fe49ece7e1f79f3ad6e9b23e0277c8ecc4b313225748dd2a80f5679534a0700e246a79a49b3f74eb89ec6205fe1eeb941c73b1fcf1")
    }
}
