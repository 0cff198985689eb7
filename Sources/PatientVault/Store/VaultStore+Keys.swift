import Foundation
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Master-key rotation

    /// Wraps the store's root key under a new master key (a raw key, a
    /// passphrase with a new salt, or a ``KeyProvider``) and replaces
    /// `store.header` atomically (a temporary file, synced, renamed, the
    /// folder synced): at every instant exactly one of the two keys opens
    /// the store, and once this returns the old one opens nothing in it. A
    /// rotation cut short leaves the old header (and a temporary file the
    /// next rotation overwrites): call it again.
    ///
    /// Every key of the store derives from its root key, which does not
    /// change: nothing else is rewritten, whatever the store's size (one
    /// header write). So copies of the store taken before the rotation
    /// (a backup, an old `store.header`) still open with the old key:
    /// destroy it, and the copies' headers become useless; their other
    /// files (key slots of erased documents included) remain openable by
    /// whoever holds the root key, that is the new master key
    /// (Documentation/Lifecycle.md).
    ///
    /// For configured reviewers (the operator), recorded in their own
    /// review stream like ``activity(of:matching:as:)``.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/invalidArgument`` for a store in memory
    ///   (no header, no master key to rotate) or a bad source (an empty
    ///   passphrase, a malformed provider `keyID`: recorded as denied,
    ///   rule `invalidRequest`; a provider whose unwrap does not give back
    ///   its wrap: the old header stays),
    ///   ``PatientVaultError/Code/io`` if the header cannot be written (the
    ///   old one stays); ``PatientVaultError/Code/durabilityLost`` if the new
    ///   header was renamed into place but its folder did not sync: after a
    ///   power loss either key may be the one that opens the store, so keep
    ///   both until a later rotation succeeds.
    public func rotateMasterKey(to source: MasterKeySource, as principal: Principal) async throws(PatientVaultError) {
        let inMemory = rootKey == nil || !location.isFileURL
        // The source is checked before the review entry is written, so that
        // a bad one is recorded as the pipeline records bad input (denied,
        // rule `invalidRequest`), never as an allowed rotation.
        try await recordStoreLevelAccess(
            .rotateMasterKey, by: principal, target: "masterKey",
            invalid: inMemory
                ? PatientVaultError(.invalidArgument, "a store in memory or on PostgreSQL has no header: it has no master key to rotate")
                : RootKeyWrapping.problem(with: source))
        guard let rootKey else { return }
        let directory = location.path
        let weakCost = configuration.allowsWeakPassphraseCostForTesting
        try await translatingErrorsAsync {
            try await keyGate.withGate {
                // Closed meanwhile: its root key is wiped, or about to be.
                try ensureOpen()
                guard let current = try StoreHeader.read(directory: directory) else {
                    throw PatientVaultError(.corrupted, "the store's header is missing")
                }
                let header = try await RootKeyWrapping.header(wrapping: rootKey, with: source, storeID: current.storeID, weakCost: weakCost)
                try header.write(directory: directory)
            }
        }
        logger.notice("patientvault: master key rotated")
    }
}

extension VaultStore {
    // MARK: - Vault-key rotation

    /// Gives the patient's vault a new document-key wrapping key: a new
    /// random key, wrapped like the vault key (under the store's
    /// key-encryption key) in a key slot of its own, recorded by a vault
    /// event in the call's atomic group. Document versions deposited from
    /// then on have their keys wrapped under it (their record header names
    /// its version); older versions keep theirs and read as before. A
    /// vault destroyed later destroys every one of these slots with the
    /// vault key's.
    ///
    /// The vault's own records and trail stay sealed under the vault key's
    /// subkeys: what this rotates is which key protects new documents'
    /// keys, so that a wrapping key suspected exposed protects nothing
    /// deposited after the rotation.
    ///
    /// The holder, or a configured reviewer (action `rotateVaultKey`); one
    /// decision, one audit entry; a closed vault refuses it.
    /// - Returns: the new wrapping key's version (1 for the first rotation).
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (audited),
    ///   ``PatientVaultError/Code/invalidArgument`` (audited) past 256
    ///   rotations of the vault's key, ``PatientVaultError/Code/unknownVault``.
    @discardableResult
    public func rotateVaultKey(for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) -> Int {
        try await audited(.rotateVaultKey, patient, by: principal, secret: secret) { vault, now -> Audited<Int> in
            let decision = AccessPolicy.decide(request(.rotateVaultKey, by: principal, vault: vault, time: now))
            guard decision.isAllowed else { return Audited(action: .rotateVaultKey, decision: decision, isWrite: true, result: .failure(.denied)) }
            guard vault.currentKeyVersion < UInt32(Limits.vaultKeyRotations) else {
                return .invalid(.rotateVaultKey, PatientVaultError(
                    .invalidArgument, "a vault's key is rotated at most \(Limits.vaultKeyRotations) times", vaultID: vault.vaultID))
            }
            let version = vault.currentKeyVersion + 1
            // Allowed, but the key's slot may be refused (a full disk that
            // the key file cannot grow on): the entry says so (abandoned).
            let rotated: VaultKeys
            let slot: KeySlot
            let wrapped: [UInt8]
            do {
                let vaultKey: SymmetricKey
                (vaultKey, rotated) = try VaultKeys.generate()
                slot = try engine.keySlots.reserveKeySlot()
                wrapped = try KeyWrap.wrap(vaultKey, with: keys.keyEncryption, context: StoreKeys.vaultKeyContext(vault.pseudonym, slot: slot))
            } catch {
                return Audited(
                    action: .rotateVaultKey, decision: decision, isWrite: true, abandoned: true,
                    result: .failure(PatientVaultError.wrapping(error, vaultID: vault.vaultID)))
            }
            var a = Audited<Int>(action: .rotateVaultKey, decision: decision, isWrite: true, result: .success(Int(version)))
            try a.write(event: VaultEventBody(time: now, by: principal, event: .keyRotated(version: version, slot: slot)), to: vault)
            a.keySlotWrites = [(slot, wrapped)]
            let applyEvent = a.onQueued
            let wrapping = rotated.documentKeyWrapping
            a.onQueued = { vault in
                vault.rotatedWrappingKeys[version] = wrapping
                applyEvent?(&vault)
            }
            return a
        }
    }
}
