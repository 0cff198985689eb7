import Foundation
import VaultStorage

extension VaultStore {
    // MARK: - Closure, retention, destruction

    /// Closes the vault: from now on it is read-only (deposits,
    /// replacements, erasures, releases and access changes are refused,
    /// rule ``AccessRule/vaultClosed``) for its retention period
    /// (``Configuration/closedVaultRetentionYears``, 10 years by default,
    /// CSP L1111-18); reads follow the usual rules. Afterwards it can only
    /// be destroyed (``destroyVault(for:as:)``).
    ///
    /// At the patient's request (`.patientRequest`): the patient or a named
    /// representative. On death (`.death`): a doctor (action
    /// ``VaultAction/recordDeath``, rule ``AccessRule/certifiesDeath``).
    /// Audited, and recorded in the vault's history and in the store's
    /// lifecycle index in one durable group.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (rules
    ///   `onlyPatientManagesAccess`, `onlyDoctorCertifiesDeath`, or
    ///   `vaultClosed` for a vault already closed).
    public func closeVault(for patient: INS, reason: ClosureReason, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(reason == .death ? .recordDeath : .closeVault, for: patient, as: principal, secret: secret) { .closeVault(reason) }
    }

    /// Reopens a closed vault during its retention period: by the patient
    /// or a representative after a closure at their request, by a doctor
    /// after a death recorded by mistake. Heirs' access ends with it.
    /// - Throws: ``PatientVaultError/Code/accessDenied``,
    ///   ``PatientVaultError/Code/invalidArgument`` (not closed),
    ///   ``PatientVaultError/Code/conflict`` (retention over: it can only be
    ///   destroyed); each audited.
    public func reopenVault(for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.reopenVault, for: patient, as: principal, secret: secret) { .reopenVault }
    }

    /// After the patient's death, gives an heir read access to the vault
    /// on their request (they then read as `.patient(heir)`, rule
    /// ``AccessRule/heirOfDeceased``, seeing what the patient saw). Decided
    /// by the operator: a configured reviewer. Audited like any grant.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/invalidArgument`` (the vault is not closed
    ///   on death, the heir is the patient or already has access).
    public func authoriseHeir(_ heir: INS, for patient: INS, as principal: Principal) async throws(PatientVaultError) {
        try await change(.authoriseHeir, for: patient, as: principal) { .authoriseHeir(heir) }
    }

    /// Destroys a closed vault whose retention has ended: a tombstone
    /// (``DestroyedVault``: public id, created, closed and destroyed dates,
    /// reason) is made durable with the call's audit entry, then the
    /// vault's key slot is destroyed, so no key in the store opens any of
    /// its records (documents, history, audit trail) any more, and its
    /// state leaves memory. Every later call on it answers
    /// ``PatientVaultError/Code/vaultDestroyed``; so does a creation for
    /// the same patient. A crash between the tombstone and the key's
    /// destruction is finished at the next open.
    ///
    /// The operator's act: a configured reviewer (or the store's own job,
    /// ``destroyExpiredVaults(at:)``). Its entry is in the vault's trail,
    /// which goes with the vault; the tombstone, which says who destroyed
    /// it and when, stays (``destroyedVaults(as:)``).
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/invalidArgument`` (not closed),
    ///   ``PatientVaultError/Code/conflict`` (retention not over), each
    ///   audited; ``PatientVaultError/Code/vaultDestroyed``.
    @discardableResult
    public func destroyVault(for patient: INS, as principal: Principal) async throws(PatientVaultError) -> DestroyedVault {
        try await destroyVault(for: patient, as: principal, asSystem: false)
    }

    /// The host's daily job: destroys every closed vault whose retention
    /// ended at or before `date` (and before the store's clock's now), as
    /// the store's own `.system` principal. Returns their tombstones,
    /// oldest closure first. Cost: O(closed vaults) to find them, then one
    /// destruction each. A vault that cannot be destroyed for a reason of
    /// its own (`corrupted`, say) is logged and passed over: the vaults
    /// after it are still destroyed, and the next run tries it again.
    /// - Throws: the first error of the store as a whole (`io`,
    ///   `durabilityLost`, `diskFull`, `closed`…), at once; else, once
    ///   every other vault due is destroyed, the first vault's own error,
    ///   saying how many were passed over. The destructions done stay done
    ///   (``destroyedVaults(as:)`` lists their tombstones).
    @discardableResult
    public func destroyExpiredVaults(at date: Date) async throws(PatientVaultError) -> [DestroyedVault] {
        try ensureOpen()
        let limit = min(date, configuration.currentTime())
        let years = configuration.closedVaultRetentionYears
        let due = pipeline.lifecycleIndex.closed
            .filter { VaultClosure.retainedUntil($0.closedAt, years: years) <= limit }
            .sorted { $0.closedAt < $1.closedAt }
        var destroyed: [DestroyedVault] = []
        var passedOver: [PatientVaultError] = []
        for (vault, _) in due {
            do {
                let holder = try await pipeline.withVault(vault) { $0.creation.holder }
                destroyed.append(try await destroyVault(for: holder, as: .system, asSystem: true))
            } catch where [.corrupted, .invalidArgument, .conflict, .vaultDestroyed, .unknownVault, .erased].contains(error.code) {
                // The store's own job, for the host: the vault is named
                // (a failure a call on the vault meets names none).
                var error = error
                if !PatientVaultError.refusals.contains(error.code) { error.vaultID = error.vaultID ?? keys.publicVaultID(of: vault) }
                logger.error(
                    "patientvault: a closed vault was not destroyed; the others go on",
                    metadata: ["code": "\(error.code)", "vault": "\(error.vaultID ?? "-")"])
                passedOver.append(error)
            }
        }
        // A destruction is owed by law: the host hears of every vault
        // passed over, once the others are done.
        if let first = passedOver.first {
            throw PatientVaultError(
                first.code, "\(passedOver.count) closed vault(s) due for destruction could not be destroyed (\(destroyed.count) were); the first: \(first.message)",
                vaultID: first.vaultID)
        }
        return destroyed
    }

    /// The tombstones of every destroyed vault, oldest destruction first:
    /// for configured reviewers, recorded in their own review stream
    /// (action ``VaultAction/reviewActivity``, target `destroyedVaults`).
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`).
    public func destroyedVaults(as principal: Principal) async throws(PatientVaultError) -> [DestroyedVault] {
        try await recordStoreLevelAccess(.reviewActivity, by: principal, target: "destroyedVaults")
        return pipeline.lifecycleIndex.destroyed.sorted { $0.destroyedAt < $1.destroyedAt }
    }

    private func destroyVault(for patient: INS, as principal: Principal, asSystem: Bool) async throws(PatientVaultError) -> DestroyedVault {
        let (record, tombstone, slots, pseudonym) = try await audited(.destroyVault, patient, by: principal, asSystem: asSystem) {
            vault, now -> Audited<(LifecycleRecord, DestroyedVault, [KeySlot], StreamID)> in
            let decision = AccessPolicy.decide(request(.destroyVault, by: principal, vault: vault, time: now))
            guard decision.isAllowed else {
                return Audited(action: .destroyVault, decision: decision, isWrite: true, result: .failure(.denied))
            }
            if vault.isBeingDestroyed || pipeline.lifecycleIndex.isBeingDestroyed(vault.pseudonym) {
                return .invalid(.destroyVault, PatientVaultError(.vaultDestroyed, "the vault is being destroyed", vaultID: vault.vaultID))
            }
            guard let closure = vault.policy.closure else {
                return .invalid(.destroyVault, PatientVaultError(.invalidArgument, "only a closed vault is destroyed", vaultID: vault.vaultID))
            }
            let until = VaultClosure.retainedUntil(closure.closedAt, years: configuration.closedVaultRetentionYears)
            guard now >= until else {
                return .invalid(.destroyVault, PatientVaultError(
                    .conflict, "the vault's retention period has not ended (it ends \(configuration.closedVaultRetentionYears) years after the closure)", vaultID: vault.vaultID))
            }
            guard vault.vaultKeySlot != nil else {
                throw PatientVaultError(.corrupted, "the vault's key slot is unknown", vaultID: vault.vaultID)
            }
            // The vault key's slot and every rotated wrapping key's.
            let slots = vault.vaultKeySlots
            let tombstone = DestroyedVault(
                vaultID: vault.vaultID, createdAt: vault.creation.createdAt, closedAt: closure.closedAt, reason: closure.reason,
                destroyedAt: now, destroyedBy: principal)
            let record = LifecycleRecord.destroyed(vault: vault.pseudonym, keySlots: slots, tombstone: tombstone)
            // What compaction will remove, durable with the tombstone: the
            // vault's streams, and its documents' chunks (their references
            // are sealed under keys this destruction makes unreadable).
            let tickets = try CompactionTicket.tickets(
                { .destroyedVault(vault: vault.pseudonym, chunks: $0) },
                chunks: vault.documents.values.flatMap { $0.flatMap(\.content.chunks) }
            ).map { try $0.sealed(keys: keys) }
            var a = Audited<(LifecycleRecord, DestroyedVault, [KeySlot], StreamID)>(
                action: .destroyVault, decision: decision, records: [try record.sealed(keys: keys)] + tickets, isWrite: true,
                result: .success((record, tombstone, slots, vault.pseudonym)))
            let index = pipeline.lifecycleIndex
            a.onQueued = { vault in
                vault.isBeingDestroyed = true
                index.markBeingDestroyed(vault.pseudonym)
            }
            return a
        }
        // The tombstone is durable: every call finds it from now on, and the
        // key goes.
        pipeline.lifecycleIndex.apply(record)
        cache.drop(pseudonym)
        documentKeyCache.removeAll(vault: pseudonym)
        pipeline.vaultCount.withLock { $0 -= 1 }
        do {
            try await engine.keySlots.destroyKeySlots(slots)
        } catch {
            throw lifecycle.reported(PatientVaultError.wrapping(error, vaultID: tombstone.vaultID))
        }
        logger.notice("patientvault: vault destroyed", metadata: ["vault": "\(tombstone.vaultID)"])
        return tombstone
    }
}
