import Foundation
import PatientVault
import VaultCrypto
import VaultSync

/// A `KeyProvider` for tests: an "HSM" in memory whose key never leaves
/// it. It wraps with XChaCha20-Poly1305 bound to the store's context, can
/// be switched off to play an outage, and counts its calls.
///
/// ```swift
/// let hsm = try TestKeyProvider()
/// let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hsm-\(UUID())")
/// defer { try? FileManager.default.removeItem(at: folder) }   // before the open, which makes the folder
/// let store = try await VaultStore.open(at: folder, key: .provider(hsm), configuration: .testing)
/// // ... the test ...
/// try await store.close()
/// ```
public final class TestKeyProvider: KeyProvider {
    /// Its name for its key (kept in the store's header).
    public let keyID: String
    private let key: SymmetricKey
    private let state = Locked<(available: Bool, wraps: Int, unwraps: Int)>((true, 0, 0))

    /// A provider with a new random key, named `keyID`.
    /// - Throws: `PatientVaultError` `cryptoUnavailable`.
    public init(keyID: String = "test-hsm/key-1") throws {
        self.keyID = keyID
        do {
            key = try SymmetricKey.generate()
        } catch {
            throw PatientVaultError(.cryptoUnavailable, "no random key for the test provider")
        }
    }

    /// Whether it answers; when false, every call throws `io` (an outage).
    public var isAvailable: Bool {
        get { state.withLock { $0.available } }
        set { state.withLock { $0.available = newValue } }
    }

    /// How many keys it wrapped and unwrapped.
    public var calls: (wraps: Int, unwraps: Int) { state.withLock { ($0.wraps, $0.unwraps) } }

    /// Wraps the store's root key under its own key, bound to `context`.
    /// - Throws: `io` while unavailable.
    public func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] {
        try use { $0.wraps += 1 }
        return try KeyWrap.wrap(key.key, with: self.key, context: context)
    }

    /// Unwraps what ``wrap(_:context:)`` returned for the same context.
    /// - Throws: `io` while unavailable; an authentication error for other
    ///   bytes or another context.
    public func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
        try use { $0.unwraps += 1 }
        return MasterKey(key: try KeyWrap.unwrap(wrapped, with: key, context: context))
    }

    private func use(_ count: (inout (available: Bool, wraps: Int, unwraps: Int)) -> Void) throws {
        try state.withLock { s in
            guard s.available else { throw PatientVaultError(.io, "the key provider is unavailable") }
            count(&s)
        }
    }
}
