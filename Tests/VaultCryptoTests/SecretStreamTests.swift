import Testing
@testable import VaultCrypto

/// Chunked content encryption (`SecretStream`).
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
