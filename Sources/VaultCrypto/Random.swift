import CSodium

/// libsodium's CSPRNG.
package enum SecureRandom {
    /// `count` random bytes (not secret material: nonces, salts, ids).
    package static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        fill(&out)
        return out
    }

    /// Fills `buffer` with random bytes.
    package static func fill(_ buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBytes { fill($0) }
    }

    /// Fills `buffer` with random bytes.
    package static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        // randombytes_buf cannot fail once libsodium is initialised; if it
        // could not initialise, the first keyed operation reports it.
        _ = try? Sodium.initialize()
        randombytes_buf(base, buffer.count)
    }

    /// A uniformly random integer below `upperBound`.
    package static func uniform(_ upperBound: UInt32) -> UInt32 {
        _ = try? Sodium.initialize()
        return randombytes_uniform(upperBound)
    }
}
