import VaultCrypto

/// The store's 32-byte master key, kept in guarded memory (locked, guard
/// pages, wiped on release) and never copied into ordinary memory by the
/// library.
public final class MasterKey: Sendable {
    package let key: SymmetricKey

    package init(key: SymmetricKey) { self.key = key }

    /// A new random key. The host must keep it (in a KMS or HSM): without it
    /// the store cannot be opened.
    /// - Throws: ``PatientVaultError/Code/cryptoUnavailable``.
    public static func generate() throws(PatientVaultError) -> MasterKey {
        try translatingErrors { MasterKey(key: try SymmetricKey.generate()) }
    }

    /// Copies 32 bytes into guarded memory. The caller should wipe its copy.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` if not 32 bytes.
    public init(bytes: UnsafeRawBufferPointer) throws(PatientVaultError) {
        guard bytes.count == 32 else {
            throw PatientVaultError(.invalidArgument, "a master key is 32 bytes")
        }
        key = try translatingErrors { try SymmetricKey.copying(bytes) }
    }

    /// Copies 32 bytes into guarded memory. The caller should wipe its copy.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` if not 32 bytes.
    public convenience init(bytes: [UInt8]) throws(PatientVaultError) {
        guard bytes.count == 32 else {
            throw PatientVaultError(.invalidArgument, "a master key is 32 bytes")
        }
        let key = try translatingErrors { try bytes.withUnsafeBytes { try SymmetricKey.copying($0) } }
        self.init(key: key)
    }

    /// Gives `body` the key bytes, to store them in the host's key manager.
    /// The pointer must not escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try key.withUnsafeBytes(body)
    }
}
