import CSodium

/// libsodium's CSPRNG.
package enum SecureRandom {
    /// `count` random bytes (not secret material: nonces, salts, ids).
    /// - Throws: ``CryptoError`` if libsodium cannot initialise.
    package static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try fill(&out)
        return out
    }

    /// Fills `buffer` with random bytes.
    package static func fill(_ buffer: inout [UInt8]) throws(CryptoError) {
        try Sodium.initialize()
        buffer.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { randombytes_buf(base, raw.count) }
        }
    }

    /// Fills `buffer` with random bytes. `randombytes_buf` returns nothing
    /// and cannot fail once libsodium is initialised; initialisation is
    /// checked here.
    package static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try Sodium.initialize()
        randombytes_buf(base, buffer.count)
    }
}
