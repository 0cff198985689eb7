import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage

/// A vault's history in the store it was exported from, kept by the store
/// it was imported into (``VaultStore/importedHistory(for:as:secret:)``): the
/// original audit trail, and the checkpoint and key its export was signed
/// with, so that the export file's proofs can still be checked.
public struct ImportedHistory: Sendable, Hashable {
    /// The vault's id in the store it came from.
    public let sourceVaultID: String
    /// When it was exported.
    public let exportedAt: Date
    /// The checkpoint of the source store the export's proofs are against.
    public let checkpoint: SignedCheckpoint
    /// The source store's key that signed the checkpoint and the export.
    public let verifierKey: NoteVerifierKey
    /// The vault's audit trail there, oldest first (its export last).
    public let auditTrail: [AuditEntry]

    func write(to w: inout ByteWriter) {
        w.write(string: sourceVaultID)
        w.write(date: exportedAt)
        w.write(string: checkpoint.text)
        w.write(string: verifierKey.description)
        w.writeVarint(UInt64(auditTrail.count))
        for entry in auditTrail { w.write(lengthPrefixed: entry.encoded()) }
    }

    static func read(from r: inout ByteReader) throws -> ImportedHistory {
        let id = try r.readString(limit: Limits.publicVaultID)
        let at = try r.readDate()
        let checkpoint = try SignedCheckpoint(try r.readString(limit: SignedCheckpoint.maximumSize))
        let key = try NoteVerifierKey(try r.readString(limit: 1024))
        let count = try r.readVarint()
        guard count <= UInt64(r.remaining) else { throw ByteReader.Malformed() }
        var trail: [AuditEntry] = []
        for _ in 0..<count { trail.append(try AuditEntry.decode(try r.readLengthPrefixed(limit: 1 << 16))) }
        return ImportedHistory(sourceVaultID: id, exportedAt: at, checkpoint: checkpoint, verifierKey: key, auditTrail: trail)
    }
}

extension VaultStore {
    /// Imports a patient's export (``VaultExport``, already verified) into
    /// their vault in this store, which must exist and hold no document
    /// and no import yet (``createVault(for:as:channel:region:)`` first): every version comes
    /// back with its id, version number, author, deposit time, metadata
    /// and content, under new keys of this store, in one atomic, durable
    /// group with the vault's ``ImportedHistory`` (the original trail, and
    /// the source store's checkpoint and key: the export file's proofs stay
    /// checkable) and the call's one audit entry.
    ///
    /// `trusted` are the source store's note verifier keys, as it publishes
    /// them: the export must be signed by one of them (a file signed by any
    /// other key, its own included, could claim any author and any date).
    ///
    /// The patient's own (action `importVault`). The imported versions are
    /// the source's as the patient saw them: hidden documents not yet
    /// released and erased ones were not exported. Access follows this
    /// store's rules from now on (authors keep an author's rights).
    /// Cost: a write of every version's content, one group commit.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (audited),
    ///   ``PatientVaultError/Code/invalidArgument`` (an export not signed by
    ///   a trusted key, a vault that already holds documents or an import, a
    ///   history larger than a record, a value this store's records cannot
    ///   hold, such as a vault id or an entry's field past its bound), each
    ///   audited,
    ///   ``PatientVaultError/Code/conflict`` (audited, `abandoned`) if the
    ///   vault was written, closed or its key rotated while the content was
    ///   written, ``PatientVaultError/Code/unknownVault``.
    @discardableResult
    public func importVault(
        _ export: VaultExport, trusting trusted: [NoteVerifierKey], as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> [DocumentMetadata] {
        struct Plan { var pseudonym: StreamID; var wrapping: SymmetricKey; var keyVersion: UInt32; var decision: AccessDecision }
        struct Prepared {
            var metadata: DocumentMetadata
            var slot: KeySlot
            var wrapped: [UInt8]
            var content: ContentDescriptor
            var inline: [UInt8]
            var keys: DocumentKeys
        }
        let history = ImportedHistory(
            sourceVaultID: export.vaultID, exportedAt: export.exportedAt, checkpoint: export.checkpoint, verifierKey: export.verifierKey,
            auditTrail: export.auditTrail)
        return try await pipeline.run(
            .importVault, Caller(patient: export.patient, principal: principal, secret: secret),
            decide: { vault, now throws -> Decided<Plan, [DocumentMetadata]> in
                let decision = AccessPolicy.decide(request(.importVault, by: principal, vault: vault, time: now))
                guard decision.isAllowed else {
                    return .commit(Audited(action: .importVault, decision: decision, isWrite: true, result: .failure(.denied)))
                }
                guard trusted.contains(export.verifierKey) else {
                    return .commit(.invalid(.importVault, PatientVaultError(
                        .invalidArgument, "the export is not signed by a trusted key of its source store", vaultID: vault.vaultID)))
                }
                guard vault.documents.isEmpty, vault.erased.isEmpty, vault.imported.isEmpty else {
                    return .commit(.invalid(.importVault, PatientVaultError(
                        .invalidArgument, "an export is imported into a vault that holds no document and no import yet", vaultID: vault.vaultID)))
                }
                // What the file carries must fit this store's records,
                // checked before anything is written (content, key slots);
                // the commit phase checks the records it seals again.
                let probe = ContentDescriptor(streamHeader: [UInt8](repeating: 0, count: 24), chunkCount: 1, chunks: [])
                // The history reads back as it is (not merely without error:
                // a value the encoder would write otherwise, a version -1
                // written as none, is refused); every document's dates are
                // ones this store keeps, its version and size in range. Not
                // the text rules of a new deposit: a document deposited
                // before they tightened (a tab in its title) still moves
                // with its patient.
                let historyEvent = VaultEventBody(time: now, by: principal, event: .imported(history))
                let historyBody = historyEvent.encoded()
                let keepsHistory = (try? VaultEventBody.decode(historyBody)) == historyEvent
                // Each version's record, as large as it will be: its body
                // (metadata and content descriptor), and its content when
                // it is stored inline, else its chunks' references.
                var payloads: [Int] = []
                let keepsDocuments = export.documents.allSatisfy { document in
                    let m = document.metadata
                    let dates = [m.createdAt, m.depositedAt] + [m.draft.serviceStart, m.draft.serviceEnd].compactMap { $0 }
                    guard dates.allSatisfy(Limits.isStorable), m.version >= 1, m.size >= 0 else { return false }
                    let body = DocumentVersionBody(metadata: m, content: probe).encoded()
                    let size = Int(clamping: m.size)
                    let chunks = size <= configuration.inlineContentLimit ? 0 : (size - 1) / configuration.contentChunkSize + 1
                    payloads.append(
                        RecordCodec.sealedCount(bodyCount: body.count + chunks * RecordReference.byteCount, kind: .documentVersion)
                            + (chunks == 0 ? size + size / 128 + 64 : 0))
                    return (try? DocumentVersionBody.decode(body, id: m.id, version: m.version)) != nil
                }
                guard keepsHistory && keepsDocuments else {
                    return .commit(.invalid(.importVault, PatientVaultError(
                        .invalidArgument, "the export holds a value this store cannot keep", vaultID: vault.vaultID)))
                }
                // The history's record fits (its time is the commit's, of
                // the same size): found here, not after every document's
                // content was written.
                let historyRecord = RecordCodec.sealedCount(bodyCount: historyBody.count, kind: .vaultEvent)
                guard historyRecord <= configuration.contentChunkSize + Limits.recordOverhead else {
                    return .commit(.invalid(.importVault, PatientVaultError(
                        .invalidArgument, "the imported history is larger than a record", vaultID: vault.vaultID)))
                }
                // The whole import is one atomic group (every version, its
                // key slot, the history): one the engine cannot take is
                // refused now, before any content is written, not after.
                // (And the import's audit entry, far below 4 KiB.)
                guard engine.groupCapacity.fits(payloads: payloads + [historyRecord, 4096], keySlotWrites: payloads.count) else {
                    return .commit(.invalid(.importVault, PatientVaultError(
                        .invalidArgument,
                        "the export holds more than one atomic group of this store takes (\(payloads.count) versions): import it into a store of larger segments",
                        vaultID: vault.vaultID)))
                }
                let wrapping = try vault.currentWrapping()
                return .prepare(
                    Plan(pseudonym: vault.pseudonym, wrapping: wrapping.key, keyVersion: wrapping.version, decision: decision),
                    allowed: Audited(action: .importVault, decision: decision, isWrite: true, result: .failure(PatientVaultError(.conflict, "abandoned"))))
            },
            prepare: { plan throws -> (Plan, [Prepared]) in
                var prepared: [Prepared] = []
                for document in export.documents {
                    var metadata = document.metadata
                    metadata.status = .current
                    let (documentKeys, slot, wrapped, writer) = try newVersion(
                        metadata.id, version: metadata.version, vault: plan.pseudonym, wrapping: plan.wrapping)
                    var start = document.content.startIndex
                    while start < document.content.endIndex {
                        let end = document.content.index(start, offsetBy: 1 << 20, limitedBy: document.content.endIndex) ?? document.content.endIndex
                        try await writer.append(document.content[start..<end])
                        start = end
                    }
                    let written = try await writer.finish()
                    // The content is the one its metadata describes (the
                    // export was verified; this store checks again).
                    guard written.hash == metadata.contentHash, writer.size == metadata.size else {
                        throw BadInputInPreparation(error: PatientVaultError(
                            .invalidArgument, "an exported document's content does not match its metadata"))
                    }
                    prepared.append(Prepared(
                        metadata: metadata, slot: slot, wrapped: wrapped, content: written.0, inline: written.inline, keys: documentKeys))
                }
                return (plan, prepared)
            },
            commit: { vault, ready, now throws -> Audited<[DocumentMetadata]> in
                let (plan, prepared) = ready
                guard vault.documents.isEmpty, vault.erased.isEmpty, vault.imported.isEmpty else {
                    throw PatientVaultError(.conflict, "documents were deposited or imported while the import was prepared", vaultID: vault.vaultID)
                }
                // As a deposit's commit: closed, or its key rotated, while
                // the content was prepared; then decided again on the vault
                // as it is now.
                if vault.policy.closure != nil {
                    throw PatientVaultError(.conflict, "the vault was closed while the import was prepared", vaultID: vault.vaultID)
                }
                if try vault.currentWrapping().version != plan.keyVersion {
                    throw PatientVaultError(.conflict, "the vault's key was rotated while the import was prepared", vaultID: vault.vaultID)
                }
                let again = AccessPolicy.decide(request(.importVault, by: principal, vault: vault, time: now))
                guard again.isAllowed else {
                    return Audited(action: .importVault, decision: again, isWrite: true, result: .failure(.denied))
                }
                // The export's values come from a file its source store
                // signed, bounded by that store's build, not this one's:
                // each record this import writes must read back here, or
                // the vault would no longer load. Refused (audited) if not.
                let cannotKeep = PatientVaultError(
                    .invalidArgument, "the export holds a value this store cannot keep", vaultID: vault.vaultID)
                var records: [EngineRecord] = []
                var entries: [(DocumentID, VersionEntry, DocumentKeys)] = []
                for (i, p) in prepared.enumerated() {
                    let sequence = vault.nextSequence + UInt64(i)
                    let header = RecordHeader(
                        kind: .documentVersion, sequence: sequence, document: p.metadata.id, version: UInt32(p.metadata.version), keySlot: p.slot,
                        keyVersion: plan.keyVersion)
                    let body = DocumentVersionBody(metadata: p.metadata, content: p.content).encoded()
                    guard (try? DocumentVersionBody.decode(body, id: p.metadata.id, version: p.metadata.version)) != nil else {
                        throw cannotKeep
                    }
                    records.append(EngineRecord(stream: vault.pseudonym, payload: try RecordCodec.seal(
                        header: header, body: body, key: p.keys.metadata, stream: vault.pseudonym, rest: p.inline, mask: keys.headerMask)))
                    entries.append((p.metadata.id, VersionEntry(
                        metadata: p.metadata, sequence: sequence, keySlot: p.slot, reference: nil, content: p.content, keyVersion: plan.keyVersion), p.keys))
                }
                let event = VaultEventBody(time: now, by: principal, event: .imported(history))
                let eventHeader = RecordHeader(
                    kind: .vaultEvent, sequence: vault.nextSequence + UInt64(prepared.count), document: nil, version: 0, keySlot: nil)
                let eventBody = event.encoded()
                guard (try? VaultEventBody.decode(eventBody)) != nil else { throw cannotKeep }
                let eventPayload = try RecordCodec.seal(
                    header: eventHeader, body: eventBody, key: vault.keys.records, stream: vault.pseudonym)
                guard eventPayload.count <= configuration.contentChunkSize + Limits.recordOverhead else {
                    throw PatientVaultError(.invalidArgument, "the imported history is larger than a record", vaultID: vault.vaultID)
                }
                records.append(EngineRecord(stream: vault.pseudonym, payload: eventPayload))
                var a = Audited<[DocumentMetadata]>(
                    action: .importVault, decision: plan.decision,
                    records: records, vaultRecords: records.count, keySlotWrites: prepared.map { ($0.slot, $0.wrapped) }, isWrite: true,
                    result: .success(prepared.map(\.metadata)))
                let versions = entries
                a.onQueued = { vault in for (id, entry, _) in versions { vault.documents[id, default: []].append(entry) } }
                let (cache, pseudonym) = (documentKeyCache, vault.pseudonym)
                a.onAcknowledged = { vault, references in
                    for (i, (id, entry, keys)) in versions.enumerated() where i < references.count {
                        guard let j = vault.documents[id]?.firstIndex(where: { $0.sequence == entry.sequence }) else { continue }
                        vault.documents[id]![j].reference = references[i]
                        vault.authors.insert(entry.metadata.author)
                        cache.insert(keys, vault: pseudonym, slot: entry.keySlot)
                    }
                    vault.apply(event)
                }
                return a
            })
    }

    /// The vault's histories in the stores it was imported from, oldest
    /// import first. The patient's own (audited as a read of the trail): a
    /// legal representative is refused, since those trails were filtered
    /// for the patient when exported (they hold secret accesses and
    /// entries of documents hidden from representatives).
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (audited).
    public func importedHistory(for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) -> [ImportedHistory] {
        try await audited(.readAuditTrail, patient, by: principal, secret: secret) { vault, now in
            var decision = AccessPolicy.decide(request(.readAuditTrail, by: principal, vault: vault, time: now))
            if decision.isAllowed, case .representative = principal { decision = .deny(.notAuthorised) }
            guard decision.isAllowed else { return Audited(action: .readAuditTrail, decision: decision, result: .failure(.denied)) }
            return Audited(action: .readAuditTrail, decision: decision, target: "importedHistory", result: .success(vault.imported))
        }
    }
}
