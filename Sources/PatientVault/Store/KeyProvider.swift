import Foundation
import VaultCrypto

/// A key manager that wraps and unwraps the store's root key without ever
/// handing out its own key: a cloud KMS, an HSM, a hospital's key server.
/// Open a store with ``MasterKeySource/provider(_:)``.
///
/// The store calls ``wrap(_:context:)`` when it is created (and when its
/// master key is rotated to this provider), each time followed by an
/// ``unwrap(_:context:)`` of what it returned, which must give back the
/// same key (or nothing is written: `invalidArgument` for another key,
/// `io` if the unwrap throws), and
/// ``unwrap(_:context:)`` at every open. `context` is the store header's bytes before the wrapped
/// key (format, store id, the provider's ``keyID``): bind the wrapped key
/// to it (a KMS's encryption context, AEAD associated data), so that a
/// wrapped key moved to another store, or a header altered, does not
/// unwrap.
///
/// `PatientVaultTesting` has one for tests (`TestKeyProvider`).
public protocol KeyProvider: Sendable {
    /// The provider's name for its key (a KMS key id, an HSM label): 1 to
    /// 255 UTF-8 bytes, no control or format characters, never a secret.
    /// Kept in the store's header and shown in errors.
    var keyID: String { get }

    /// Wraps `key` (the store's 32-byte root key), bound to `context`.
    /// Returns at most 1,024 bytes.
    func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8]

    /// Unwraps what ``wrap(_:context:)`` returned for the same `context`.
    /// Throws if the bytes or the context do not authenticate (the store
    /// then answers `wrongMasterKey`) or the provider cannot be reached.
    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey
}

/// How a store's root key is wrapped, given the caller's master-key
/// source; the one place that knows the three kinds.
enum RootKeyWrapping {
    /// The root key of the store whose header is `header`, unwrapped with
    /// `source`. Cost: Argon2id for a passphrase, a provider call for a
    /// provider.
    /// - Throws: ``PatientVaultError/Code/wrongMasterKey`` (another key,
    ///   another kind of source, or an altered header),
    ///   ``PatientVaultError/Code/corrupted`` for an Argon2id cost no store
    ///   is made with.
    static func unwrapRoot(
        _ source: MasterKeySource, header: StoreHeader, allowsWeakCost: Bool
    ) async throws(PatientVaultError) -> SymmetricKey {
        let root = try await unwrapUnchecked(source, header: header, allowsWeakCost: allowsWeakCost)
        // The header's check value: a provider's wrap is opaque to the
        // store, and a provider may return another key without an error.
        guard header.isRootKey(root) else {
            root.wipe()
            // A raw key's or a passphrase's unwrap authenticated the key:
            // the header was altered. A provider's is opaque: it gave back
            // another key.
            if header.source == .provider {
                throw PatientVaultError(.wrongMasterKey, "the key provider gave back a key that is not this store's root key")
            }
            throw PatientVaultError(.corrupted, "store.header's root check does not match the key its wrap holds")
        }
        return root
    }

    /// The root key as `source` unwraps it, before the header's check.
    private static func unwrapUnchecked(
        _ source: MasterKeySource, header: StoreHeader, allowsWeakCost: Bool
    ) async throws(PatientVaultError) -> SymmetricKey {
        switch (source, header.source) {
        case (.key(let master), .rawKey):
            return try header.unwrapRoot(with: master.key)
        case (.passphrase(let passphrase, _), .argon2id):
            try checkCost(header.parameters, allowsWeakCost: allowsWeakCost)
            let master = try translatingErrors { try deriveFromPassphrase(passphrase, salt: header.salt, parameters: header.parameters) }
            defer { master.wipe() }
            return try header.unwrapRoot(with: master)
        case (.provider(let provider), .provider):
            guard provider.keyID == header.keyID else {
                throw PatientVaultError(.wrongMasterKey, "this store's root key is wrapped by another provider key")
            }
            let root: MasterKey
            do {
                root = try await provider.unwrap(header.wrapped, context: header.prefix())
            } catch let error as PatientVaultError {
                throw error
            } catch {
                throw PatientVaultError(.wrongMasterKey, "the key provider did not unwrap this store's root key")
            }
            // A copy of its own: the store wipes its root key at close,
            // and a provider may keep the object it returned (a cache).
            return try translatingErrors { try root.key.withUnsafeBytes { try SymmetricKey.copying($0) } }
        case (_, .rawKey):
            throw PatientVaultError(.wrongMasterKey, "this store's master key is a raw key")
        case (_, .argon2id):
            throw PatientVaultError(.wrongMasterKey, "this store's master key comes from a passphrase")
        case (_, .provider):
            throw PatientVaultError(.wrongMasterKey, "this store's root key is wrapped by a key provider")
        }
    }

    /// What is wrong with `source` as the key of a new header, found
    /// without a key derivation or a provider call: an empty passphrase, a
    /// provider's malformed ``KeyProvider/keyID``. Nil for a usable one.
    static func problem(with source: MasterKeySource) -> PatientVaultError? {
        switch source {
        case .key:
            return nil
        case .passphrase(let passphrase, _):
            return passphrase.isEmpty ? PatientVaultError(.invalidArgument, "the passphrase is empty") : nil
        case .provider(let provider):
            return Limits.isPrintable(provider.keyID, maximum: Limits.keyProviderID) ? nil : PatientVaultError(
                .invalidArgument, "a key provider's keyID is 1 to \(Limits.keyProviderID) UTF-8 bytes without control or format characters")
        }
    }

    /// A header for the store `storeID` whose root key `root` is wrapped
    /// with `source` (a new random salt for a passphrase). A provider's
    /// wrap is unwrapped once more by the same provider and must give back
    /// `root`: a header is never made that its own provider cannot open.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a bad
    ///   source (``problem(with:)``), a wrapped key of the wrong size, or a
    ///   provider whose unwrap gives back another key; `io` if its wrap or
    ///   its trial unwrap throws (an outage); the provider's own
    ///   `PatientVaultError` as it is.
    static func header(
        wrapping root: SymmetricKey, with source: MasterKeySource, storeID: [UInt8], weakCost: Bool
    ) async throws(PatientVaultError) -> StoreHeader {
        let header = try await uncheckedHeader(wrapping: root, with: source, storeID: storeID, weakCost: weakCost)
        return try translatingErrors { try header.checked(root: root) }
    }

    /// ``header(wrapping:with:storeID:weakCost:)`` before its root check is set.
    private static func uncheckedHeader(
        wrapping root: SymmetricKey, with source: MasterKeySource, storeID: [UInt8], weakCost: Bool
    ) async throws(PatientVaultError) -> StoreHeader {
        if let problem = problem(with: source) { throw problem }
        let zeroSalt = [UInt8](repeating: 0, count: 16)
        switch source {
        case .key(let master):
            var h = StoreHeader(
                source: .rawKey, salt: zeroSalt, parameters: .init(opsLimit: 0, memLimit: 0), storeID: storeID, keyID: "", wrapped: [])
            h.wrapped = try translatingErrors { try h.wrapping(root, under: master.key) }
            return h
        case .passphrase(let passphrase, let strength):
            let parameters: Argon2id.Parameters = if weakCost {
                .minimum
            } else {
                switch strength {
                case .interactive: .interactive
                case .moderate: .moderate
                }
            }
            let salt = try translatingErrors { try SecureRandom.bytes(Argon2id.saltByteCount) }
            var h = StoreHeader(source: .argon2id, salt: salt, parameters: parameters, storeID: storeID, keyID: "", wrapped: [])
            let master = try translatingErrors { try deriveFromPassphrase(passphrase, salt: salt, parameters: parameters) }
            defer { master.wipe() }
            h.wrapped = try translatingErrors { try h.wrapping(root, under: master) }
            return h
        case .provider(let provider):
            // Read once and checked as read: a provider's `keyID` may be
            // computed, and another value than the one checked above must
            // never reach a header (one the store could not open again).
            let keyID = provider.keyID
            guard Limits.isPrintable(keyID, maximum: Limits.keyProviderID) else {
                throw PatientVaultError(
                    .invalidArgument, "a key provider's keyID is 1 to \(Limits.keyProviderID) UTF-8 bytes without control or format characters")
            }
            var h = StoreHeader(
                source: .provider, salt: zeroSalt, parameters: .init(opsLimit: 0, memLimit: 0), storeID: storeID, keyID: keyID, wrapped: [])
            let wrapped: [UInt8]
            do {
                // A copy: the provider may keep what it is handed, and
                // the store wipes its own root key at close.
                let copy = try translatingErrors { try root.withUnsafeBytes { try SymmetricKey.copying($0) } }
                wrapped = try await provider.wrap(MasterKey(key: copy), context: h.prefix())
            } catch let error as PatientVaultError {
                throw error
            } catch {
                throw PatientVaultError(.io, "the key provider did not wrap the store's root key")
            }
            guard (1...Limits.wrappedRootKey).contains(wrapped.count) else {
                throw PatientVaultError(.invalidArgument, "a key provider's wrapped key is 1 to \(Limits.wrappedRootKey) bytes")
            }
            // The trial unwrap: a provider that cannot open its own wrap
            // (another key behind the same keyID, a context it does not
            // bind the way it checks it) would leave a store that opens
            // now, from the root key in memory, and never again.
            let unwrapped: MasterKey
            do {
                unwrapped = try await provider.unwrap(wrapped, context: h.prefix())
            } catch let error as PatientVaultError {
                throw error
            } catch {
                // Its own failure (a KMS timeout, an outage), as `wrap`'s
                // is reported: not a verdict on the key.
                throw PatientVaultError(.io, "the key provider failed to unwrap the key it wrapped: nothing was written")
            }
            // Constant time (`SymmetricKey`'s ==). Not wiped here: the
            // provider may hand back the very key it was given.
            guard unwrapped.key == root else {
                throw PatientVaultError(.invalidArgument, "the key provider's unwrap does not give back the key it wrapped: nothing was written")
            }
            h.wrapped = wrapped
            return h
        }
    }

    /// The Argon2id cost of a header, read before it can be authenticated:
    /// capped, so a forged header can neither make opening hang nor make
    /// guessing cheap.
    private static func checkCost(_ parameters: Argon2id.Parameters, allowsWeakCost: Bool) throws(PatientVaultError) {
        guard parameters.opsLimit <= Argon2id.Parameters.sensitive.opsLimit,
              parameters.memLimit <= Argon2id.Parameters.sensitive.memLimit
        else {
            throw PatientVaultError(.corrupted, "store.header asks for an Argon2id cost above the maximum")
        }
        // No production store is created below `interactive`: the
        // testing-only cost needs the tests' opt-in, and any other lower
        // cost is a forged header trying to make guessing cheap.
        let production = parameters.opsLimit >= Argon2id.Parameters.interactive.opsLimit
            && parameters.memLimit >= Argon2id.Parameters.interactive.memLimit
        if !production && !(allowsWeakCost && parameters == .minimum) {
            guard parameters == .minimum else {
                throw PatientVaultError(.corrupted, "store.header asks for an Argon2id cost below the minimum")
            }
            throw PatientVaultError(
                .invalidArgument,
                "this store was created with the testing-only key-derivation cost "
                    + "(PatientVaultTesting's withInsecureKeyDerivationForTests()); a production configuration refuses to open it")
        }
    }

    /// Argon2id over the passphrase's own UTF-8 storage, without another copy.
    private static func deriveFromPassphrase(
        _ passphrase: String, salt: [UInt8], parameters: Argon2id.Parameters
    ) throws -> SymmetricKey {
        var text = passphrase
        return try text.withUTF8 { utf8 in
            try Argon2id.deriveKey(from: UnsafeRawBufferPointer(utf8), salt: salt, parameters: parameters)
        }
    }
}
