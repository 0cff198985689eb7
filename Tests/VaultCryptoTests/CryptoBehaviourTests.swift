import Testing
@testable import VaultCrypto

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

@Suite struct KeyTests {
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

@Suite struct SecretStreamTests {
    func sealed(_ chunks: [[UInt8]], key: SymmetricKey) throws -> (header: [UInt8], chunks: [[UInt8]]) {
        let pusher = try SecretStreamPusher(key: key)
        var out: [[UInt8]] = []
        for (i, chunk) in chunks.enumerated() {
            var c: [UInt8] = []
            try chunk.withUnsafeBytes { p in
                try [UInt8(i)].withUnsafeBytes { ad in
                    try pusher.push(p, authenticating: ad, isFinal: i == chunks.count - 1, appendingTo: &c)
                }
            }
            out.append(c)
        }
        return (pusher.header, out)
    }

    func open(_ header: [UInt8], _ chunks: [[UInt8]], key: SymmetricKey) throws -> ([UInt8], Bool) {
        let puller = try header.withUnsafeBytes { try SecretStreamPuller(key: key, header: $0) }
        var plain: [UInt8] = []
        var final = false
        for (i, c) in chunks.enumerated() {
            final = try c.withUnsafeBytes { cb in
                try [UInt8(i)].withUnsafeBytes { ad in try puller.pull(cb, authenticating: ad, appendingTo: &plain) }
            }
        }
        return (plain, final)
    }

    @Test func roundTrip() throws {
        let key = try SymmetricKey.generate()
        let parts = [[UInt8](repeating: 1, count: 1000), [2, 3], [UInt8](repeating: 4, count: 5000)]
        let (header, chunks) = try sealed(parts, key: key)
        let (plain, final) = try open(header, chunks, key: key)
        #expect(plain == parts.flatMap { $0 })
        #expect(final)
    }

    /// Pulling into the caller's buffer gives the same plaintext as
    /// appending; a buffer too small and a tampered chunk are errors, and a
    /// chunk that fails leaves no plaintext behind.
    @Test func pullIntoACallersBuffer() throws {
        let key = try SymmetricKey.generate()
        let parts = [[UInt8](repeating: 7, count: 300), [UInt8](repeating: 9, count: 20)]
        let (header, chunks) = try sealed(parts, key: key)
        let puller = try header.withUnsafeBytes { try SecretStreamPuller(key: key, header: $0) }
        var buffer = [UInt8](repeating: 0xEE, count: 400)
        let first = try chunks[0].withUnsafeBytes { c in
            try [UInt8(0)].withUnsafeBytes { ad in try buffer.withUnsafeMutableBytes { try puller.pull(c, authenticating: ad, into: $0) } }
        }
        #expect(first.count == 300 && !first.isFinal)
        #expect(Array(buffer[..<300]) == parts[0])
        var small = [UInt8](repeating: 0, count: 19)
        #expect(throws: CryptoError.self) {
            try chunks[1].withUnsafeBytes { c in
                try [UInt8(1)].withUnsafeBytes { ad in try small.withUnsafeMutableBytes { try puller.pull(c, authenticating: ad, into: $0) } }
            }
        }
        var tampered = chunks[1]
        tampered[tampered.count - 1] ^= 1
        var out = [UInt8](repeating: 0xEE, count: 20)
        #expect(throws: CryptoError.self) {
            try tampered.withUnsafeBytes { c in
                try [UInt8(1)].withUnsafeBytes { ad in try out.withUnsafeMutableBytes { try puller.pull(c, authenticating: ad, into: $0) } }
            }
        }
        #expect(out.allSatisfy { $0 == 0 })
        let last = try chunks[1].withUnsafeBytes { c in
            try [UInt8(1)].withUnsafeBytes { ad in try out.withUnsafeMutableBytes { try puller.pull(c, authenticating: ad, into: $0) } }
        }
        #expect(last.count == 20 && last.isFinal)
        #expect(out == parts[1])
    }

    @Test func reorderTruncationAndTamperingAreDetected() throws {
        let key = try SymmetricKey.generate()
        let (header, chunks) = try sealed([[1], [2], [3]], key: key)
        // Truncated: no final tag seen.
        let (_, final) = try open(header, Array(chunks.prefix(2)), key: key)
        #expect(!final)
        // Reordered.
        #expect(throws: CryptoError.self) { try open(header, [chunks[1], chunks[0], chunks[2]], key: key) }
        // Tampered.
        var bad = chunks
        bad[1][0] ^= 1
        #expect(throws: CryptoError.self) { try open(header, bad, key: key) }
        // Wrong key.
        #expect(throws: CryptoError.self) { try open(header, chunks, key: try SymmetricKey.generate()) }
        // A chunk after the final one.
        #expect(throws: CryptoError.self) { try open(header, chunks + [chunks[2]], key: key) }
    }

    @Test func incrementalBLAKE2bMatchesOneShot() throws {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        let key = try SymmetricKey.generate()
        let hasher = try BLAKE2b.Hasher(outputByteCount: 32, key: key)
        try hasher.update(Array(data[..<3333]))
        try hasher.update(Array(data[3333...]))
        #expect(try hasher.finalize() == BLAKE2b.hash(data, key: key))
        #expect(BLAKE2b.hash(data, key: key) != BLAKE2b.hash(data))
    }
}

@Suite struct KeyArenaTests {
    @Test func slotsAreDistinctReusedAndWiped() throws {
        let arena = KeyArena()
        var slots: [UnsafeMutableRawPointer] = []
        for i in 0..<600 {
            let p = try arena.allocate()
            // Fresh slots start wiped.
            #expect(UnsafeRawBufferPointer(start: p, count: KeyArena.slotSize).allSatisfy { $0 == 0 })
            p.storeBytes(of: UInt64(i + 1), as: UInt64.self)
            slots.append(p)
        }
        #expect(Set(slots.map { UInt(bitPattern: $0) }).count == 600)
        #expect(Set(slots.map { UInt(bitPattern: $0) % 64 }) == [0])
        #expect(arena.usage == (600, 3))
        for p in slots { arena.release(p) }
        #expect(arena.usage == (0, 3))
        // Reused slots come back wiped, and no new slab is needed.
        for _ in 0..<600 {
            let p = try arena.allocate()
            #expect(UnsafeRawBufferPointer(start: p, count: KeyArena.slotSize).allSatisfy { $0 == 0 })
        }
        #expect(arena.usage.slabs == 3)
    }

    @Test func keysFromTheArenaAreDistinctAndSized() throws {
        let keys = try (0..<300).map { _ in try SymmetricKey.generate() }
        #expect(Set(keys.map { k in k.withUnsafeBytes { Array($0) } }).count == 300)
        keys[7].withUnsafeBytes { #expect($0.count == 32) }
    }
}
