import Foundation
import VaultStorage
import VaultSync

extension VaultStore {
    // MARK: - Erasure

    /// Erases a document: every version's key is destroyed, so no key in
    /// the store decrypts its content or metadata any more, and a
    /// tombstone remains (``ErasedDocument``: id, author, dates, who, why).
    ///
    /// The patient erases a document they deposited; a professional or an
    /// organisation erases only a document they wrote, at the patient's
    /// request, and must give the reason (CSP R1111-51). Nobody erases
    /// another's document (rule ``AccessRule/onlyAuthorErases``).
    ///
    /// Afterwards the document is absent from listings, counts, access
    /// histories and the FHIR Bundle; a read of it answers
    /// ``PatientVaultError/Code/erased``; the audit trail, its chain, and
    /// every checkpoint and proof still verify (they hold hashes only).
    /// Its ciphertext stays in the log's files until compaction removes it,
    /// unreadable without the destroyed keys.
    ///
    /// Order: the tombstone and the audit entry are made durable in one
    /// group; then every version's key slot is overwritten and its key
    /// dropped from the store's cache, before the call returns (wiped as
    /// its last holder goes: a `DocumentContent` opened before the erasure
    /// holds it until released, and answers `erased` to any further
    /// read). With the file engine the
    /// overwritten slots are synced just after the return (within about
    /// 1 ms, and before any checkpoint); a crash before that leaves the
    /// tombstone, and
    /// the next load of the vault (after the store is opened again)
    /// finishes the destruction. Cost, with the file engine: one pass of
    /// its writer, one level of `fdatasync`s, as a deposit (the group's,
    /// beside the new journal key's when one is needed).
    /// - Parameters:
    ///   - document: the document to erase.
    ///   - patient: whose vault.
    ///   - reason: why; required from a professional or an organisation.
    ///   - principal: who erases: the document's author.
    ///   - secret: a secret access by the patient (hidden from
    ///     representatives' view of the trail).
    /// - Returns: the tombstone.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (not the author),
    ///   ``PatientVaultError/Code/unknownDocument`` (no such document, or
    ///   one the principal may not see), ``PatientVaultError/Code/erased``
    ///   (already erased), ``PatientVaultError/Code/invalidArgument`` (a
    ///   professional without a reason),
    ///   ``PatientVaultError/Code/conflict`` (a version of it is still being
    ///   written); each is audited. ``PatientVaultError/Code/durabilityLost``
    ///   if the key file could not be written or its new journal key
    ///   synced (the vault's next load, after a reopen, finishes the
    ///   destruction); a failure of the tombstones' own sync, after the
    ///   return, stops the store the same way.
    @discardableResult
    public func erase(
        _ document: DocumentID, for patient: INS, reason: ErasureReason? = nil, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> ErasedDocument {
        // The cached keys go when the erasure is queued and again once it
        // ends, however it ends: a read decided before it that unwraps a
        // key meanwhile cannot leave it in the cache (each removal moves
        // the cache to a new generation).
        let queued = Locked<(StreamID, [KeySlot])?>(nil)
        defer {
            if let (pseudonym, slots) = queued.withLock({ $0 }) {
                for slot in slots { documentKeyCache.remove(vault: pseudonym, slot: slot) }
            }
        }
        return try await erasing(document, for: patient, reason: reason, as: principal, secret: secret) { pseudonym, slots in
            queued.withLock { $0 = (pseudonym, slots) }
            for slot in slots { documentKeyCache.remove(vault: pseudonym, slot: slot) }
        }
    }

    /// The erasure's operation: the group (the tombstone, its compaction
    /// tickets, the entry) with the destruction of every version's key
    /// behind it, waited for.
    /// `queued` runs under the vault's lock when the erasure goes ahead.
    private func erasing(
        _ document: DocumentID, for patient: INS, reason: ErasureReason?, as principal: Principal, secret: Bool,
        queued: (StreamID, [KeySlot]) -> Void
    ) async throws(PatientVaultError) -> ErasedDocument {
        try await audited(.erase, patient, by: principal, secret: secret, document: document) {
            vault, now -> Audited<ErasedDocument> in
            if let tombstone = vault.erased[document] {
                // Its author is told it is gone; for anyone else it does
                // not exist (whether it ever did is not theirs to learn).
                guard tombstone.author == principal else {
                    return Audited(
                        action: .erase, decision: .deny(.unknownDocument), document: document, isWrite: true,
                        result: .failure(PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: document)))
                }
                return .invalid(.erase, document: document, PatientVaultError(
                    .erased, "the document was already erased", documentID: document))
            }
            let patientSide: Bool = switch principal {
            case .patient(let ins): ins == vault.creation.holder
            case .representative(let r): vault.policy.representatives[r.ins] != nil
            default: false
            }
            // A professional or organisation without a reason is bad
            // input; anyone else not on the patient's side (another
            // patient, a former representative, an insurer) is refused by
            // the rules below, as with a reason.
            if reason == nil && !patientSide && GrantHolder(principal) != nil {
                return .invalid(.erase, document: document, PatientVaultError(
                    .invalidArgument, "a professional erases a document at the patient's request and states why (reason)",
                    vaultID: vault.vaultID, documentID: document))
            }
            // Its author knows it exists (a blocked author still erases,
            // at the patient's request); anyone else must see it.
            guard let current = vault.versions(of: document).last,
                  current.author == principal || sees(current, as: principal, in: vault, at: now)
            else {
                return Audited(
                    action: .erase, decision: .deny(.unknownDocument), document: document, isWrite: true,
                    result: .failure(PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: document)))
            }
            let decision = AccessPolicy.decide(request(.erase, by: principal, vault: vault, document: current, time: now))
            let entries = vault.documents[document] ?? []
            let first = vault.versions(of: document)[0]
            // What the tombstone hides, decided before the erasure applies,
            // over every version (the tombstone does not know which version
            // an entry names): `hiddenFromPatient` if any version was still
            // hidden from the patient (a release of an earlier version does
            // not cover a later one), `hiddenFromLegalRepresentatives` if
            // any version carried it. The patient is told of the erasure
            // only when the tombstone is theirs to see.
            let holder = Principal.patient(vault.creation.holder)
            let versions = vault.versions(of: document)
            var confidentiality = current.confidentiality
            if versions.allSatisfy({ sees($0, as: holder, in: vault, at: now) }) {
                confidentiality.remove(.hiddenFromPatient)
            } else {
                confidentiality.insert(.hiddenFromPatient)
            }
            if versions.contains(where: { $0.confidentiality.contains(.hiddenFromLegalRepresentatives) }) {
                confidentiality.insert(.hiddenFromLegalRepresentatives)
            }
            let erasure = Erasure(
                id: document, author: first.author, depositedAt: first.depositedAt, versions: UInt32(entries.count), reason: reason,
                confidentiality: confidentiality)
            let slots = entries.map(\.keySlot)
            var a = Audited<ErasedDocument>(
                action: .erase, decision: decision, document: document, version: current.version, isWrite: true,
                result: .success(erasure.tombstone(at: now, by: principal)))
            guard decision.isAllowed else { return a }
            // A version still waiting for its acknowledgement would keep a
            // key this erasure does not know of.
            guard entries.allSatisfy(\.isAcknowledged) else {
                a.abandoned = true
                a.result = .failure(PatientVaultError(
                    .conflict, "a version of this document is still being written", vaultID: vault.vaultID, documentID: document))
                return a
            }
            try a.write(event: VaultEventBody(time: now, by: principal, event: .erased(erasure)), to: vault)
            // What compaction will remove, durable with the erasure: the
            // chunk references die with the keys that seal them.
            a.records += try CompactionTicket.tickets(
                { .erasedDocument(vault: vault.pseudonym, document: document, chunks: $0) },
                chunks: entries.flatMap(\.content.chunks)
            ).map { try $0.sealed(keys: keys) }
            // The event is applied as it is queued: from now on the
            // document reads as erased, and no version of it can be queued
            // behind this erasure (a replacement being prepared gets
            // `conflict`): the erasure destroys only the keys it knows of.
            a.notifications = confidentiality.contains(.hiddenFromPatient) ? [] : [.documentErased(document)]
            a.notificationsHiddenFromRepresentatives = confidentiality.contains(.hiddenFromLegalRepresentatives)
            // Destroyed once the group is durable, before the answer.
            a.destroysKeySlots = slots
            queued(vault.pseudonym, slots)
            return a
        }
    }

    /// The tombstones of a vault's erased documents, oldest erasure first.
    /// For the patient and their representatives, and configured reviewers
    /// (audited as a query of the access history, whose rule it shares).
    /// The patient and representatives do not see the tombstone of a
    /// document a version of which was hidden from them (and not released)
    /// when it was erased: representatives never, the patient for the
    /// month the law hides a document, counted from the erasure.
    /// - Throws: ``PatientVaultError/Code/accessDenied``.
    public func erasedDocuments(for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) -> [ErasedDocument] {
        try await audited(.queryAccessHistory, patient, by: principal, secret: secret) { vault, now in
            let decision = AccessPolicy.decide(request(.queryAccessHistory, by: principal, vault: vault, time: now))
            let isReviewer = configuration.isConfiguredReviewer(principal)
            let representative: Bool = if case .representative = principal { true } else { false }
            let visible = vault.erased.values.filter {
                isReviewer || !vault.erasedIsHidden($0.id, fromRepresentative: representative, at: now)
            }
            return Audited(
                action: .queryAccessHistory, decision: decision,
                result: .success(visible.sorted { ($0.erasedAt, $0.id.description) < ($1.erasedAt, $1.id.description) }))
        }
    }
}
