import CSodium

/// `crypto_kdf`: independent subkeys derived from one master key, each
/// named by a 64-bit id within an 8-byte context.
package enum KeyDerivation {
    /// The 8-byte domain of a family of subkeys.
    package struct Context: Sendable, Hashable {
        package let bytes: [UInt8]

        /// A context from exactly 8 ASCII characters, e.g. `"PVMASTER"`.
        package init(_ string: StaticString) {
            let b = string.withUTF8Buffer { Array($0) }
            precondition(b.count == Int(crypto_kdf_CONTEXTBYTES), "a KDF context is 8 bytes")
            bytes = b
        }
    }

    /// Derives the 32-byte subkey `id` of `master` in `context`, straight
    /// into guarded memory. Cost: one BLAKE2b block.
    package static func deriveKey(
        from master: SymmetricKey,
        id: UInt64,
        context: Context
    ) throws -> SymmetricKey {
        try SymmetricKey.filled { dest in
            let rc = master.withUnsafeBytes { m in
                context.bytes.withUnsafeBufferPointer { c in
                    c.baseAddress!.withMemoryRebound(to: CChar.self, capacity: c.count) { cc in
                        crypto_kdf_derive_from_key(
                            dest.baseAddress!.assumingMemoryBound(to: UInt8.self), dest.count,
                            id, cc, m.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            guard rc == 0 else { throw CryptoError(.invalidInput, "subkey derivation failed") }
        }
    }

    /// Derives the subkeys `ids` of `master` into one guarded allocation:
    /// the same keys as ``deriveKey(from:id:context:)``, one `sodium_malloc`.
    package static func deriveKeys(
        from master: SymmetricKey,
        ids: [UInt64],
        context: Context
    ) throws -> [SymmetricKey] {
        try SymmetricKey.filledTogether(count: ids.count) { dest in
            for (i, id) in ids.enumerated() {
                let rc = master.withUnsafeBytes { m in
                    context.bytes.withUnsafeBufferPointer { c in
                        c.baseAddress!.withMemoryRebound(to: CChar.self, capacity: c.count) { cc in
                            crypto_kdf_derive_from_key(
                                dest.baseAddress!.assumingMemoryBound(to: UInt8.self) + i * SymmetricKey.byteCount,
                                SymmetricKey.byteCount, id, cc, m.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
                guard rc == 0 else { throw CryptoError(.invalidInput, "subkey derivation failed") }
            }
        }
    }

    /// A key and its subkeys `ids`, all in one guarded allocation: `fill`
    /// writes the key's 32 bytes, the subkeys are derived from them in
    /// place. The key is element 0.
    package static func keyWithSubkeys(
        ids: [UInt64], context: Context, fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> [SymmetricKey] {
        try SymmetricKey.filledTogether(count: 1 + ids.count) { dest in
            let n = SymmetricKey.byteCount
            try fill(UnsafeMutableRawBufferPointer(rebasing: dest[0..<n]))
            let base = dest.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for (i, id) in ids.enumerated() {
                let rc = context.bytes.withUnsafeBufferPointer { c in
                    c.baseAddress!.withMemoryRebound(to: CChar.self, capacity: c.count) { cc in
                        crypto_kdf_derive_from_key(base + (i + 1) * n, n, id, cc, base)
                    }
                }
                guard rc == 0 else { throw CryptoError(.invalidInput, "subkey derivation failed") }
            }
        }
    }

    /// A fresh random key and its subkeys, in one guarded allocation.
    package static func randomKeyWithSubkeys(ids: [UInt64], context: Context) throws -> [SymmetricKey] {
        try keyWithSubkeys(ids: ids, context: context) { randombytes_buf($0.baseAddress!, $0.count) }
    }
}
