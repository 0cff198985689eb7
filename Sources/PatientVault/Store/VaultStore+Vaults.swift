import Foundation
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Access

    /// Applies an access decision: throws ``PatientVaultError/Code/accessDenied``
    /// naming the rule when it denies. The single place every operation's
    /// decision goes through (and where the audit trail will record it).
    func enforce(_ decision: AccessDecision, _ action: VaultAction, vaultID: String, documentID: DocumentID? = nil) throws {
        guard decision.isAllowed else {
            logger.debug("patientvault: access denied", metadata: ["action": "\(action)", "rule": "\(decision.rule)"])
            throw PatientVaultError(
                .accessDenied, "\(action) denied", vaultID: vaultID, documentID: documentID, rule: decision.rule)
        }
    }

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
        for patient: INS, by principal: Principal, channel: CreationChannel
    ) async throws(PatientVaultError) -> VaultInfo {
        let pseudonym = keys.vaultPseudonym(for: patient)
        let vaultID = hexEncoded(pseudonym.bytes)
        let context = VaultAccessContext(holder: patient, principalAuthoredAny: false)
        let createdAt = configuration.clock.now()
        let handle = handle(for: pseudonym)
        let ticket: AppendTicket
        do {
            try enforce(AccessPolicy.decide(.createVault, by: principal, vault: context, channel: channel), .createVault, vaultID: vaultID)
            ticket = try handle.state.withLock { (state: inout VaultState?) throws -> AppendTicket in
                guard state == nil, engine.head(of: pseudonym) == nil else {
                    throw PatientVaultError(.vaultAlreadyExists, "this patient already has a vault", vaultID: vaultID)
                }
                let vaultKey = try SymmetricKey.generate()
                let vaultKeys = try VaultKeys(vaultKey: vaultKey)
                let slot = try engine.reserveKeySlot()
                let wrapped = try KeyWrap.wrap(vaultKey, with: keys.keyEncryption, context: StoreKeys.vaultKeyContext(pseudonym, slot: slot))
                let body = VaultCreatedBody(holder: patient, createdBy: principal, channel: channel, createdAt: createdAt)
                let header = RecordHeader(kind: .vaultCreated, sequence: 0, document: nil, version: 0, keySlot: slot)
                let payload = try sealRecord(header: header, body: body.encoded(), key: vaultKeys.records, vault: pseudonym)
                let ticket = try engine.append(
                    [EngineRecord(stream: pseudonym, payload: payload)], keySlotWrites: [(slot, wrapped)], durability: durability)
                state = VaultState(pseudonym: pseudonym, keys: vaultKeys, creation: body, isAcknowledged: false, nextSequence: 1)
                return ticket
            }
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: vaultID)
        }
        do {
            _ = try await ticket.wait()
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: vaultID)
        }
        handle.state.withLock { $0?.isAcknowledged = true }
        logger.debug("patientvault: vault created", metadata: ["vault": "\(vaultID)", "channel": "\(channel)"])
        return VaultInfo(vaultID: vaultID, createdBy: principal, channel: channel, createdAt: createdAt, documentCount: 0)
    }

    /// What the store knows about the vault of `patient`, as `principal`
    /// may see it (the document count only counts what they may see).
    /// - Throws: ``PatientVaultError/Code/unknownVault``,
    ///   ``PatientVaultError/Code/accessDenied``.
    public func vaultInfo(for patient: INS, as principal: Principal) async throws(PatientVaultError) -> VaultInfo {
        try withVault(patient) { vault in
            let context = vault.accessContext(for: principal)
            try enforce(AccessPolicy.decide(.readVaultInfo, by: principal, vault: context), .readVaultInfo, vaultID: vault.vaultID)
            let visible = vault.documents.keys.filter { id in
                guard let m = vault.versions(of: id).last else { return false }
                return AccessPolicy.decide(.readMetadata, by: principal, vault: context, document: m).isAllowed
            }
            return VaultInfo(
                vaultID: vault.vaultID, createdBy: vault.creation.createdBy, channel: vault.creation.channel,
                createdAt: vault.creation.createdAt, documentCount: visible.count)
        }
    }
}
