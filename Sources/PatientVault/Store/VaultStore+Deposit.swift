import Foundation
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Deposit

    /// Deposits a new document into the vault of `patient`, authored by
    /// `principal`, and returns its metadata once durable.
    ///
    /// The document gets a random key of its own (wrapped by the vault key,
    /// in a destroyable slot), so it can later be erased alone. Cost: O(n)
    /// in the content size; one durable commit shared with concurrent writers.
    /// With `secret`, the patient's own deposit is a secret access (its
    /// entry hidden from representatives' view of the trail).
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a bad draft,
    ///   ``PatientVaultError/Code/unknownVault``,
    ///   ``PatientVaultError/Code/accessDenied``; nothing is written then.
    ///   ``PatientVaultError/Code/conflict`` (its entry `abandoned`) if the
    ///   vault was closed or its key rotated while the content was written:
    ///   a version is never acknowledged under a key a rotation retired.
    public func deposit(
        _ draft: DocumentDraft, content: Data, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await writeVersion(draft, for: patient, as: principal, secret: secret, replacing: nil) { writer in
            try await Self.feed(content, to: writer)
        }
    }

    /// Deposits a new document whose content arrives as a sequence of
    /// chunks (of any sizes), for large files: memory stays bounded by about
    /// two storage chunks whatever the document's size.
    ///
    /// If the sequence throws or the task is cancelled, nothing becomes
    /// visible and the error is rethrown (as ``PatientVaultError``).
    public func deposit<Chunks: AsyncSequence>(
        _ draft: DocumentDraft, streaming content: Chunks, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentMetadata where Chunks.Element == Data {
        try await writeVersion(draft, for: patient, as: principal, secret: secret, replacing: nil) { writer in
            try await Self.feed(content, to: writer)
        }
    }

    // MARK: - Replace

    /// Replaces the current version of a document with a new one. The old
    /// version stays in history with status `.superseded` (or
    /// `.enteredInError`); nothing is overwritten.
    /// - Throws: ``PatientVaultError/Code/unknownDocument``,
    ///   ``PatientVaultError/Code/accessDenied`` (only the author replaces),
    ///   ``PatientVaultError/Code/conflict`` if another replacement won.
    public func replace(
        _ document: DocumentID, with draft: DocumentDraft, content: Data, reason: ReplacementReason = .superseded,
        for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await writeVersion(draft, for: patient, as: principal, secret: secret, replacing: (document, reason)) { writer in
            try await Self.feed(content, to: writer)
        }
    }

    /// Replaces a document with new content that arrives in chunks.
    public func replace<Chunks: AsyncSequence>(
        _ document: DocumentID, with draft: DocumentDraft, streaming content: Chunks,
        reason: ReplacementReason = .superseded, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentMetadata where Chunks.Element == Data {
        try await writeVersion(draft, for: patient, as: principal, secret: secret, replacing: (document, reason)) { writer in
            try await Self.feed(content, to: writer)
        }
    }

    /// Feeds the caller's sequence to `writer`. What the sequence throws is
    /// the caller's failure, not the store's: it comes back as
    /// ``PatientVaultError/Code/contentSourceFailed`` (a cancellation stays
    /// `cancelled`), never as `io`.
    private static func feed<Chunks: AsyncSequence>(_ content: Chunks, to writer: ContentWriter) async throws
    where Chunks.Element == Data {
        var chunks = content.makeAsyncIterator()
        while true {
            let chunk: Data?
            do {
                chunk = try await chunks.next()
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as PatientVaultError {
                throw error
            } catch {
                throw PatientVaultError(.contentSourceFailed, "the content sequence threw; nothing of the document was kept")
            }
            guard let chunk else { return }
            // A caller's element of any size, in steps: the writer's buffer
            // stays about one storage chunk whatever the caller yields.
            try await feed(chunk, to: writer)
        }
    }

    private static func feed(_ data: Data, to writer: ContentWriter) async throws {
        var start = data.startIndex
        let step = 1 << 20
        while start < data.endIndex {
            let end = data.index(start, offsetBy: step, limitedBy: data.endIndex) ?? data.endIndex
            try await writer.append(data[start..<end])
            start = end
        }
    }

    // MARK: - The write path

    /// What the decide phase of a write fixes: the vault, the document and
    /// its version number.
    private struct VersionPlan {
        var pseudonym: StreamID
        /// The vault's current document-key wrapping key, and its version.
        var wrapping: SymmetricKey
        var keyVersion: UInt32
        var id: DocumentID
        var version: Int
        var decision: AccessDecision
    }

    /// What the prepare phase hands to the commit: the written content and
    /// the version's keys.
    private struct PreparedVersion {
        var plan: VersionPlan
        var slot: KeySlot
        var wrapped: [UInt8]
        var content: ContentDescriptor
        var inline: [UInt8]
        var hash: [UInt8]
        var size: Int64
        var keys: DocumentKeys
    }

    /// A new version through the ``OperationPipeline``: validation and the
    /// access decision under the vault's lock, which also fix the version
    /// number; key generation, wrapping and the content's encryption and
    /// writes outside it; then the version record, its key slot and its
    /// audit entry as one atomic, durable group. The version becomes
    /// visible once that group is acknowledged.
    private func writeVersion(
        _ draft: DocumentDraft, for patient: INS, as principal: Principal, secret: Bool,
        replacing: (document: DocumentID, reason: ReplacementReason)?,
        content: (ContentWriter) async throws -> Void
    ) async throws(PatientVaultError) -> DocumentMetadata {
        let action: VaultAction = replacing == nil ? .deposit : .replace
        return try await pipeline.run(
            action, Caller(patient: patient, principal: principal, secret: secret, document: replacing?.document),
            decide: { vault, now throws -> Decided<VersionPlan, DocumentMetadata> in
                try Self.validate(draft, author: principal)
                let wrapping = try vault.currentWrapping()
                func plan(_ id: DocumentID, _ version: Int, _ decision: AccessDecision) -> Decided<VersionPlan, DocumentMetadata> {
                    .prepare(
                        VersionPlan(
                            pseudonym: vault.pseudonym, wrapping: wrapping.key, keyVersion: wrapping.version, id: id, version: version,
                            decision: decision),
                        allowed: Audited(action: action, decision: decision, document: id, version: version, isWrite: true,
                                         result: .failure(PatientVaultError(.conflict, "abandoned"))))
                }
                guard let replacing else {
                    let decision = AccessPolicy.decide(request(.deposit, by: principal, vault: vault, category: draft.category, time: now))
                    guard decision.isAllowed else {
                        return .commit(Audited(action: .deposit, decision: decision, isWrite: true, result: .failure(.denied)))
                    }
                    return plan(try DocumentID.random(), 1, decision)
                }
                let id = replacing.document
                let unknown = PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: id)
                guard let current = vault.versions(of: id).last else {
                    return .commit(Audited(action: .replace, decision: .deny(.unknownDocument), document: id, isWrite: true, result: .failure(unknown)))
                }
                let sees = AccessPolicy.decide(request(.readMetadata, by: principal, vault: vault, document: current, time: now))
                guard sees.isAllowed || current.author == principal else {
                    return .commit(Audited(action: .replace, decision: sees, document: id, isWrite: true, result: .failure(unknown)))
                }
                // Decided on the new draft's category as a deposit is, and on
                // the current version's author and the vault's blocks.
                let decision = AccessPolicy.decide(request(
                    .replace, by: principal, vault: vault, document: current, category: draft.category, time: now))
                guard decision.isAllowed else {
                    return .commit(Audited(action: .replace, decision: decision, document: id, version: current.version, isWrite: true,
                                           result: .failure(.denied)))
                }
                // Versions are stored as 32-bit numbers.
                guard current.version < Limits.versions.upperBound else {
                    throw PatientVaultError(.invalidArgument, "this document has reached its last version number")
                }
                // Another replacement is committed and waiting for its sync:
                // allowed, but it cannot go on; its entry says so.
                guard vault.documents[id]?.last?.metadata.version == current.version else {
                    return .commit(Audited(
                        action: .replace, decision: decision, document: id, version: current.version + 1, isWrite: true, abandoned: true,
                        result: .failure(PatientVaultError(
                            .conflict, "a replacement of this document is in progress", vaultID: vault.vaultID, documentID: id))))
                }
                return plan(id, current.version + 1, decision)
            },
            prepare: { plan throws -> PreparedVersion in
                let (documentKeys, slot, wrapped, writer) = try newVersion(
                    plan.id, version: plan.version, vault: plan.pseudonym, wrapping: plan.wrapping)
                try await content(writer)
                let written = try await writer.finish()
                return PreparedVersion(
                    plan: plan, slot: slot, wrapped: wrapped, content: written.0, inline: written.inline, hash: written.hash,
                    size: writer.size, keys: documentKeys)
            },
            commit: { vault, p, now throws -> Audited<DocumentMetadata> in
                let (id, version) = (p.plan.id, p.plan.version)
                // Closed while the content was prepared: allowed when
                // decided, but a closed vault takes no new version.
                if vault.policy.closure != nil {
                    throw PatientVaultError(.conflict, "the vault was closed while the document was prepared", vaultID: vault.vaultID, documentID: id)
                }
                // Replaced, or its erasure queued, while the content was
                // prepared (a version behind an erasure would keep a key the
                // erasure does not destroy).
                if replacing != nil, vault.documents[id]?.last?.metadata.version != version - 1 {
                    throw PatientVaultError(.conflict, "the document was replaced or erased concurrently", vaultID: vault.vaultID, documentID: id)
                }
                // The vault's key rotated while the content was prepared:
                // this version's key is wrapped under the key the rotation
                // retired, which must protect nothing acknowledged after it.
                if try vault.currentWrapping().version != p.plan.keyVersion {
                    throw PatientVaultError(.conflict, "the vault's key was rotated while the document was prepared", vaultID: vault.vaultID, documentID: id)
                }
                // Decided again on the vault as it is now: a block, a
                // revocation or an expiry queued while the content was
                // prepared binds this version too, and its entry, after
                // them in the log, records the refusal.
                let again = AccessPolicy.decide(replacing == nil
                    ? request(.deposit, by: principal, vault: vault, category: draft.category, time: now)
                    : request(.replace, by: principal, vault: vault, document: vault.versions(of: id).last, category: draft.category, time: now))
                guard again.isAllowed else {
                    return Audited(action: action, decision: again, document: id, version: version, isWrite: true, result: .failure(.denied))
                }
                var metadata = DocumentMetadata(
                    id: id, version: version, draft: draft.withDatesToTheMillisecond, author: principal, depositedAt: now,
                    size: p.size, contentHash: p.hash, status: .current)
                if let replacing { metadata.replaces = (version - 1, replacing.reason) }
                let sequence = vault.nextSequence
                let header = RecordHeader(
                    kind: .documentVersion, sequence: sequence, document: id, version: UInt32(version), keySlot: p.slot,
                    keyVersion: p.plan.keyVersion)
                let payload = try RecordCodec.seal(
                    header: header, body: DocumentVersionBody(metadata: metadata, content: p.content).encoded(), key: p.keys.metadata,
                    stream: vault.pseudonym, rest: p.inline, mask: keys.headerMask)
                // The version and its audit entry: one atomic, durable group.
                var records = [EngineRecord(stream: vault.pseudonym, payload: payload)]
                if replacing == nil {
                    let byInsurer: Bool = if case .insurer = principal { true } else { false }
                    records.append(try statisticsWriter.record(.document(
                        vault: vault.statisticsTag, user: statisticsWriter.user(principal), byInsurer: byInsurer)))
                }
                var a = Audited<DocumentMetadata>(
                    action: action, decision: p.plan.decision, document: id, version: version,
                    records: records, vaultRecords: 1, keySlotWrites: [(p.slot, p.wrapped)], isWrite: true, result: .success(metadata))
                let entry = VersionEntry(
                    metadata: metadata, sequence: sequence, keySlot: p.slot, reference: nil, content: p.content, keyVersion: p.plan.keyVersion)
                a.onQueued = { vault in vault.documents[id, default: []].append(entry) }
                // Visible only once durable: the reference marks it acknowledged;
                // its keys join the cache, for the reads that often follow.
                let (cache, keys, slot, pseudonym) = (documentKeyCache, p.keys, p.slot, vault.pseudonym)
                a.onAcknowledged = { vault, references in
                    guard let reference = references.first,
                          let i = vault.documents[id]?.firstIndex(where: { $0.sequence == sequence }) else { return }
                    vault.documents[id]![i].reference = reference
                    vault.authors.insert(principal)
                    cache.insert(keys, vault: pseudonym, slot: slot)
                }
                // A document hidden from the patient is announced by its
                // 2-week notice or its release, not now.
                if !draft.confidentiality.contains(.hiddenFromPatient) { a.notifications = [.newDocument(id)] }
                a.notificationsHiddenFromRepresentatives = draft.confidentiality.contains(.hiddenFromLegalRepresentatives)
                return a
            })
    }

    /// A new version's random keys, the key slot reserved for them, the
    /// document key wrapped for that slot, and the writer of its content.
    func newVersion(
        _ id: DocumentID, version: Int, vault: StreamID, wrapping: SymmetricKey
    ) throws -> (keys: DocumentKeys, slot: KeySlot, wrapped: [UInt8], writer: ContentWriter) {
        let (documentKey, documentKeys) = try DocumentKeys.generate()
        let slot = try engine.keySlots.reserveKeySlot()
        let wrapped = try KeyWrap.wrap(
            documentKey, with: wrapping,
            context: VaultKeys.documentKeyContext(vault, document: id, version: UInt32(version), slot: slot))
        let writer = try ContentWriter(
            engine: engine, vault: vault, document: id, version: UInt32(version), keySlot: slot, contentKey: documentKeys.content,
            chunkSize: configuration.contentChunkSize, inlineLimit: configuration.inlineContentLimit)
        return (documentKeys, slot, wrapped, writer)
    }

    /// Checks a draft before anything is written.
    static func validate(_ draft: DocumentDraft, author: Principal) throws(PatientVaultError) {
        func invalid(_ message: String) -> PatientVaultError { PatientVaultError(.invalidArgument, message) }
        guard draft.title.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else { throw invalid("the title is empty") }
        // No control or format characters in text that listings, FHIR and
        // vaultctl hand back (terminal escapes, bidirectional overrides).
        guard Limits.isPrintable(draft.title, maximum: Limits.title) else {
            throw invalid("the title is at most \(Limits.title) bytes, without control or format characters")
        }
        guard Limits.isPrintable(draft.typeCode.code, maximum: Limits.typeCode),
              Limits.isPrintable(draft.typeCode.system, maximum: Limits.typeCodeSystem)
        else {
            throw invalid(
                "the type code needs a system (≤ \(Limits.typeCodeSystem) bytes) and a code (≤ \(Limits.typeCode) bytes), without control or format characters")
        }
        guard [draft.createdAt, draft.serviceStart, draft.serviceEnd].allSatisfy({ $0.map(Limits.isStorable) ?? true }) else {
            throw invalid("a date of the draft is not \(Limits.dateRangeDescription)")
        }
        // type/subtype: one slash, with something on each side.
        let mime = draft.mimeType.utf8
        guard let slash = mime.firstIndex(of: UInt8(ascii: "/")), slash != mime.startIndex,
              mime.index(after: slash) != mime.endIndex, !mime[mime.index(after: slash)...].contains(UInt8(ascii: "/")),
              mime.count <= Limits.mimeType,
              // Visible ASCII only (RFC 6838 names): no space, no control.
              mime.allSatisfy({ (0x21...0x7E).contains($0) })
        else { throw invalid("the MIME type must look like type/subtype") }
        if let start = draft.serviceStart, let end = draft.serviceEnd, end < start {
            throw invalid("the service ends before it starts")
        }
        guard draft.confidentiality.rawValue & ~0b111 == 0 else { throw invalid("unknown confidentiality flags") }
        // The metadata's size needs no check: every field is bounded above
        // (title 1 KiB, type code and system, MIME type, the author's
        // identifiers), so the largest draft encodes far below
        // `Limits.versionMetadata` (`DocumentTests.theLargestDraftFitsTheMetadataBound`).
    }
}
