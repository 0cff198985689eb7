import Foundation
import VaultCrypto
import VaultStorage

/// Reads vaults back from the log: rebuilds a vault's state from its
/// stream, unwraps its keys, walks streams and opens audit records. Reads
/// only, but for one write: a load that finds an erasure whose key slots
/// a crash left undestroyed destroys them (``load(_:)``). `async` as the
/// engine's reads; called outside every vault lock
/// (``VaultCache`` loads in the vault's `loading` gate, trail walks run on
/// a snapshot).
struct VaultLoader: Sendable {
    let engine: any StorageEngine
    let keys: StoreKeys

    /// Rebuilds a vault's state by following its stream back from the head,
    /// checking that positions run 0, 1, 2... and decrypting each record.
    ///
    /// An erased document's versions are not opened (their keys are
    /// destroyed): the vault's events are read first, so its erasures are
    /// known before its versions. If a crash came between an erasure's
    /// record and the destruction of its key slots, the destruction is
    /// finished here. A version whose key slot is destroyed without an
    /// erasure record is tampering: `corrupted`.
    /// Cost: one read and one or two decryptions per record of the vault.
    func load(_ pseudonym: StreamID) async throws -> VaultState {
        var records: [StoredRecord] = []
        try await walkBack(pseudonym, broken: corruptedChain(pseudonym)) { records.append($0); return true }
        records.reverse()
        guard let first = records.first else { throw corruptedChain(pseudonym) }
        let header = try RecordHeader.decode(first.payload, mask: keys.headerMask)
        guard header.kind == .vaultCreated, header.sequence == 0, let slot = header.keySlot else {
            throw corruptedChain(pseudonym)
        }
        let wrapped = try await engine.keySlots.readKeySlot(slot)
        let vaultKeys = try VaultKeys.unwrap(wrapped, with: keys.keyEncryption, context: StoreKeys.vaultKeyContext(pseudonym, slot: slot))
        let body = try VaultCreatedBody.decode(
            try RecordCodec.openWhole(first.payload, header: header, key: vaultKeys.records, stream: pseudonym))
        var state = VaultState(
            pseudonym: pseudonym, vaultID: keys.publicVaultID(of: pseudonym), keys: vaultKeys,
            auditStream: keys.auditStream(of: pseudonym), statisticsTag: StatisticsWriter.tag(of: pseudonym, keys: keys), creation: body,
            vaultKeySlot: slot, isAcknowledged: true, nextSequence: 1)
        // The events first (under the vault's own key): which documents
        // were erased, before any version is opened.
        var headers: [RecordHeader] = [header]
        var events: [Int: VaultEventBody] = [:]
        var erasedIDs: Set<DocumentID> = []
        for (i, record) in records.enumerated().dropFirst() {
            let h = try RecordHeader.decode(record.payload, mask: keys.headerMask)
            guard h.sequence == UInt64(i) else { throw corruptedChain(pseudonym) }
            headers.append(h)
            guard h.kind == .vaultEvent else { continue }
            let body = try VaultEventBody.decode(
                try RecordCodec.openWhole(record.payload, header: h, key: state.keys.records, stream: pseudonym))
            switch body.event {
            case .erased(let e): erasedIDs.insert(e.id)
            case .keyRotated(let version, let slot):
                // A rotated wrapping key: unwrapped now, before the versions
                // it wraps the keys of.
                let rotated = try VaultKeys.unwrap(
                    try await engine.keySlots.readKeySlot(slot), with: keys.keyEncryption,
                    context: StoreKeys.vaultKeyContext(pseudonym, slot: slot))
                state.rotatedWrappingKeys[version] = rotated.documentKeyWrapping
            default: break
            }
            events[i] = body
        }
        var erasedSlots: [KeySlot] = []
        for (i, record) in records.enumerated().dropFirst() {
            let h = headers[i]
            switch h.kind {
            case .documentVersion:
                if let id = h.document, erasedIDs.contains(id) {
                    if let slot = h.keySlot { erasedSlots.append(slot) }
                    break
                }
                var entry = try await decodeVersion(record.payload, header: h, vault: state)
                entry.reference = record.reference
                state.documents[entry.metadata.id, default: []].append(entry)
                state.authors.insert(entry.metadata.author)
            case .vaultEvent:
                state.apply(events[i]!)
            case .vaultCreated, .contentChunk, .auditEntry, .activityEntry, .statistics, .activityMark, .signingKey, .lifecycle, .compaction:
                throw corruptedChain(pseudonym)
            }
            state.nextSequence = UInt64(i) + 1
        }
        state.headHash = VaultAnchor.headHash(of: PayloadDigest(of: records[records.count - 1].payload), keys: vaultKeys)
        try await loadAuditHead(into: &state)
        // The key slots of erased versions that a crash left readable.
        try await engine.keySlots.finishDestruction(of: erasedSlots)
        return state
    }

    /// Visits `stream` newest first, until `visit` returns false (the
    /// engine's ``StorageEngine/visitNewestFirst(_:_:)``); a stream whose
    /// order the engine finds broken is `broken`.
    func walkBack(_ stream: StreamID, broken: @autoclosure () -> PatientVaultError, _ visit: (StoredRecord) throws -> Bool) async throws {
        do {
            try await engine.visitNewestFirst(stream, visit)
        } catch let error as StorageError where error.code == .corrupted {
            throw broken()
        }
    }

    /// Unwraps a document version's key from its slot, with the vault's
    /// wrapping key of the entry's key version.
    /// - Throws: ``PatientVaultError/Code/erased`` (as a storage error) if
    ///   the slot was destroyed, `corrupted` for a key version the vault
    ///   does not have.
    func documentKeys(_ entry: VersionEntry, vault: VaultState) async throws -> DocumentKeys {
        try await documentKeys(
            entry.metadata.id, version: entry.metadata.version, slot: entry.keySlot, vault: vault.pseudonym,
            wrapping: vault.documentKeyWrapping(entry.keyVersion))
    }

    /// The same, with the wrapping key already looked up (nil: the vault
    /// has none of that version).
    func documentKeys(
        _ id: DocumentID, version: Int, slot: KeySlot, vault: StreamID, wrapping: SymmetricKey?
    ) async throws -> DocumentKeys {
        guard let wrapping else {
            throw PatientVaultError(.corrupted, "a document's key names a wrapping key the vault does not have", vaultID: keys.publicVaultID(of: vault), documentID: id)
        }
        let wrapped = try await engine.keySlots.readKeySlot(slot)
        return try DocumentKeys.unwrap(
            wrapped, with: wrapping,
            context: VaultKeys.documentKeyContext(vault, document: id, version: UInt32(version), slot: slot))
    }

    private func decodeVersion(_ payload: [UInt8], header h: RecordHeader, vault: VaultState) async throws -> VersionEntry {
        guard let id = h.document, let slot = h.keySlot, h.version >= 1 else { throw corruptedChain(vault.pseudonym) }
        let docKeys: DocumentKeys
        do {
            docKeys = try await documentKeys(
                id, version: Int(h.version), slot: slot, vault: vault.pseudonym, wrapping: vault.documentKeyWrapping(h.keyVersion))
        } catch let error as StorageError where error.code == .keySlotDestroyed {
            // No erasure record names it: someone destroyed it behind the store.
            throw PatientVaultError(
                .corrupted, "a document's key slot was destroyed without an erasure", vaultID: vault.vaultID, documentID: id)
        }
        let (plaintext, rest) = try RecordCodec.open(payload, header: h, key: docKeys.metadata, stream: vault.pseudonym)
        let body = try DocumentVersionBody.decode(plaintext, id: id, version: Int(h.version))
        // Bytes after the box are the inline content, and only there.
        guard body.content.isInline || rest == payload.count else { throw corruptedChain(vault.pseudonym) }
        return VersionEntry(
            metadata: body.metadata, sequence: h.sequence, keySlot: slot, reference: nil, content: body.content, keyVersion: h.keyVersion)
    }

    private func corruptedChain(_ pseudonym: StreamID) -> PatientVaultError {
        PatientVaultError(.corrupted, "the vault's record chain is broken", vaultID: keys.publicVaultID(of: pseudonym))
    }

    // MARK: - Audit records

    /// Reads the head of a vault's audit chain (at load) and checks the
    /// vault's history against the anchor it seals: a vault whose stream is
    /// shorter (or other) than its newest audit entry says is `corrupted`,
    /// never served.
    func loadAuditHead(into state: inout VaultState) async throws {
        let stream = state.auditStream
        let broken = PatientVaultError(.corrupted, "the vault's history does not match its audit trail", vaultID: state.vaultID)
        // The creation and its entry are one atomic group: no vault lacks one.
        var newest: StoredRecord?
        try await walkBack(stream, broken: broken) { newest = $0; return false }
        guard let newest else { throw broken }
        let (anchor, entry) = try openAuditRecordWithAnchor(newest, vault: state)
        guard anchor.records == state.nextSequence, anchor.headHash == state.headHash else { throw broken }
        state.auditNext = entry.sequence + 1
        state.auditPreviousHash = entry.chainHash(key: state.keys.auditChain)
    }

    func openAuditRecord(_ record: StoredRecord, vault: VaultState) throws -> AuditEntry {
        try openAuditRecordWithAnchor(record, vault: vault).entry
    }

    func openAuditRecordWithAnchor(_ record: StoredRecord, vault: VaultState) throws -> (anchor: VaultAnchor, entry: AuditEntry) {
        let stream = vault.auditStream
        let header = try RecordHeader.decode(record.payload, mask: keys.headerMask)
        let tampered = PatientVaultError(.corrupted, "an audit entry failed verification", vaultID: vault.vaultID)
        guard header.kind == .auditEntry, record.stream == stream else { throw tampered }
        let plaintext: [UInt8]
        do {
            plaintext = try RecordCodec.openWhole(record.payload, header: header, key: vault.keys.audit, stream: stream)
        } catch {
            throw tampered
        }
        guard plaintext.count > VaultAnchor.size else { throw tampered }
        let anchor = try VaultAnchor.decode(plaintext[..<VaultAnchor.size])
        let entry = try AuditEntry.decode(Array(plaintext[VaultAnchor.size...]))
        guard entry.sequence == header.sequence, entry.vaultID == vault.vaultID else { throw tampered }
        return (anchor, entry)
    }

    /// Every audit entry of a vault, newest first, checked one by one.
    func auditEntries(of vault: VaultState, _ visit: (AuditEntry) throws -> Bool) async throws {
        try await auditRecords(of: vault) { entry, _ in try visit(entry) }
    }

    /// ``auditEntries(of:_:)`` with each entry's record, as the engine holds it.
    func auditRecords(of vault: VaultState, _ visit: (AuditEntry, StoredRecord) throws -> Bool) async throws {
        try await walkBack(
            vault.auditStream,
            broken: PatientVaultError(.corrupted, "the audit chain is broken", vaultID: vault.vaultID)
        ) { try visit(try openAuditRecord($0, vault: vault), $0) }
    }
}
