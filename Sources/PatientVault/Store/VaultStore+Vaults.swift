import Foundation
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Vaults

    /// Creates the vault of `patient`, recording who created it and through
    /// which channel. Acknowledged once durable.
    ///
    /// A random 256-bit vault key is generated, wrapped by the master key
    /// and stored in a destroyable key slot; the vault is addressed by a
    /// keyed pseudonym of the INS, never by the INS.
    /// - Throws: ``PatientVaultError/Code/vaultAlreadyExists``,
    ///   ``PatientVaultError/Code/accessDenied`` if the channel does not fit
    ///   the principal (e.g. `.patientOnline` by someone else).
    @discardableResult
    public func createVault(
        for patient: INS, as principal: Principal, channel: CreationChannel, region: Region? = nil
    ) async throws(PatientVaultError) -> VaultInfo {
        let decision = AccessPolicy.decide(AccessRequest(
            action: .createVault, principal: principal, holder: patient, channel: channel,
            matrix: configuration.accessMatrix, time: configuration.currentTime()))
        let (createdAt, vaultID) = try await pipeline.create(patient, principal: principal, decision: decision) { pseudonym, vaultID, createdAt in
            let (vaultKey, vaultKeys) = try VaultKeys.generate()
            let slot = try engine.keySlots.reserveKeySlot()
            let wrapped = try KeyWrap.wrap(vaultKey, with: keys.keyEncryption, context: StoreKeys.vaultKeyContext(pseudonym, slot: slot))
            let body = VaultCreatedBody(holder: patient, createdBy: principal, channel: channel, createdAt: createdAt, region: region)
            let header = RecordHeader(kind: .vaultCreated, sequence: 0, document: nil, version: 0, keySlot: slot)
            let payload = try RecordCodec.seal(header: header, body: body.encoded(), key: vaultKeys.records, stream: pseudonym)
            let created = VaultState(
                pseudonym: pseudonym, vaultID: vaultID, keys: vaultKeys,
                auditStream: keys.auditStream(of: pseudonym), statisticsTag: StatisticsWriter.tag(of: pseudonym, keys: keys),
                creation: body, vaultKeySlot: slot,
                isAcknowledged: false, nextSequence: 0)
            // The creation and its audit entry: one atomic, durable group.
            let a = Audited<Void>(
                action: .createVault, decision: decision,
                records: [
                    EngineRecord(stream: pseudonym, payload: payload),
                    try statisticsWriter.record(.vaultCreated(
                        time: createdAt, channel: channel, region: region, creator: statisticsWriter.user(principal))),
                ],
                vaultRecords: 1, keySlotWrites: [(slot, wrapped)], isWrite: true, result: .success(()))
            return (created, a)
        }
        logger.debug("patientvault: vault created", metadata: ["vault": "\(vaultID)", "channel": "\(channel)"])
        return VaultInfo(vaultID: vaultID, createdBy: principal, channel: channel, createdAt: createdAt, documentCount: 0)
    }

    /// What the store knows about the vault of `patient`, as `principal`
    /// may see it (the document count only counts what they may see).
    /// - Throws: ``PatientVaultError/Code/unknownVault``,
    ///   ``PatientVaultError/Code/accessDenied``.
    public func vaultInfo(
        for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> VaultInfo {
        try await audited(.readVaultInfo, patient, by: principal, purpose: purpose, secret: secret) { vault, now in
            let decision = AccessPolicy.decide(request(.readVaultInfo, by: principal, purpose: purpose, vault: vault, time: now))
            guard decision.isAllowed else {
                return Audited<VaultInfo>(action: .readVaultInfo, decision: decision, result: .failure(.denied))
            }
            let visible = vault.documents.keys.filter { id in
                guard let m = vault.versions(of: id).last else { return false }
                return sees(m, as: principal, purpose: purpose, in: vault, at: now)
            }
            var info = VaultInfo(
                vaultID: vault.vaultID, createdBy: vault.creation.createdBy, channel: vault.creation.channel,
                createdAt: vault.creation.createdAt, documentCount: visible.count)
            info.closure = vault.policy.closure
            // A representative who closed it is a person other than the
            // patient: named only to the patient's side (and reviewers),
            // never, through the patient's vault, to a professional.
            if case .representative? = info.closure?.closedBy {
                let patientSide: Bool = switch principal {
                case .patient(let ins): ins == vault.creation.holder
                case .representative(let r): vault.policy.representatives[r.ins] != nil
                default: configuration.isConfiguredReviewer(principal)
                }
                if !patientSide { info.closure?.closedBy = nil }
            }
            info.retainedUntil = vault.policy.closure.map {
                VaultClosure.retainedUntil($0.closedAt, years: configuration.closedVaultRetentionYears)
            }
            return Audited(action: .readVaultInfo, decision: decision, result: .success(info))
        }
    }
}
