import Foundation
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
    ///   (no header, no master key to rotate) or a bad source,
    ///   ``PatientVaultError/Code/io`` if the header cannot be written (the
    ///   old one stays).
    public func rotateMasterKey(to source: MasterKeySource, as principal: Principal) async throws(PatientVaultError) {
        let inMemory = rootKey == nil || !location.isFileURL
        try await recordStoreLevelAccess(
            .rotateMasterKey, by: principal, target: "masterKey",
            invalid: inMemory ? PatientVaultError(.invalidArgument, "a store in memory or on PostgreSQL has no header: it has no master key to rotate") : nil)
        guard let rootKey else { return }
        let directory = location.path
        let weakCost = configuration.allowsWeakPassphraseCostForTesting
        try await translatingErrorsAsync {
            try await masterKeyRotation.withGate {
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
