import Foundation
import VaultCrypto
import VaultStorage

extension VaultStore {
    /// Largest encoded metadata of one version.
    static let maximumMetadataSize = 16 << 10

    // MARK: - Deposit

    /// Deposits a new document into the vault of `patient`, authored by
    /// `principal`, and returns its metadata once durable.
    ///
    /// The document gets a random key of its own (wrapped by the vault key,
    /// in a destroyable slot), so it can later be erased alone. Cost: O(n)
    /// in the content size; one durable commit shared with concurrent writers.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a bad draft,
    ///   ``PatientVaultError/Code/unknownVault``,
    ///   ``PatientVaultError/Code/accessDenied``; nothing is written then.
    public func deposit(
        _ draft: DocumentDraft, content: Data, for patient: INS, as principal: Principal
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await writeVersion(draft, for: patient, as: principal, replacing: nil) { writer in
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
        _ draft: DocumentDraft, streaming content: Chunks, for patient: INS, as principal: Principal
    ) async throws(PatientVaultError) -> DocumentMetadata where Chunks.Element == Data {
        try await writeVersion(draft, for: patient, as: principal, replacing: nil) { writer in
            for try await chunk in content { try await writer.append(chunk) }
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
        for patient: INS, as principal: Principal
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await writeVersion(draft, for: patient, as: principal, replacing: (document, reason)) { writer in
            try await Self.feed(content, to: writer)
        }
    }

    /// Replaces a document with new content that arrives in chunks.
    public func replace<Chunks: AsyncSequence>(
        _ document: DocumentID, with draft: DocumentDraft, streaming content: Chunks,
        reason: ReplacementReason = .superseded, for patient: INS, as principal: Principal
    ) async throws(PatientVaultError) -> DocumentMetadata where Chunks.Element == Data {
        try await writeVersion(draft, for: patient, as: principal, replacing: (document, reason)) { writer in
            for try await chunk in content { try await writer.append(chunk) }
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

    /// Validation, access decision, encryption, then one atomic, durable
    /// append of the version record (its key slot written first).
    private func writeVersion(
        _ draft: DocumentDraft, for patient: INS, as principal: Principal,
        replacing: (document: DocumentID, reason: ReplacementReason)?,
        content: (ContentWriter) async throws -> Void
    ) async throws(PatientVaultError) -> DocumentMetadata {
        // 1. Check the input and decide, under the vault's lock, and fix the
        //    version number. A refusal (bad input included) is audited at
        //    once: its entry alone, durable.
        enum Decided {
            case proceed(StreamID, VaultKeys, DocumentID, Int, AccessDecision)
            case denied(AppendTicket, PatientVaultError)
        }
        let decided = try withVault(patient) { vault -> Decided in
            let now = configuration.clock.now()
            func deny(_ a: Audited<Void>) throws -> Decided {
                let (ticket, _) = try queueAudit(a, principal: principal, purpose: .care, secret: false, vault: &vault, time: now)
                guard case .failure(let error) = a.result else { preconditionFailure("a denial carries its error") }
                return .denied(ticket, error)
            }
            do throws(PatientVaultError) {
                try Self.validate(principal: principal, asSystem: false, purpose: .care, secret: false)
                try Self.validate(draft, author: principal)
            } catch {
                return try deny(.invalid(replacing == nil ? .deposit : .replace, document: replacing?.document, error))
            }
            guard let replacing else {
                let decision = AccessPolicy.decide(request(.deposit, by: principal, vault: vault, category: draft.category, time: now))
                guard decision.isAllowed else {
                    return try deny(Audited<Void>(action: .deposit, decision: decision, isWrite: true, result: .success(()))
                        .deniedThrows(vaultID: vault.vaultID))
                }
                return .proceed(vault.pseudonym, vault.keys, try DocumentID.random(), 1, decision)
            }
            let id = replacing.document
            let unknown = PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: id)
            guard let current = vault.versions(of: id).last else {
                return try deny(Audited<Void>(action: .replace, decision: .deny(.unknownDocument), document: id, isWrite: true, result: .failure(unknown)))
            }
            let sees = AccessPolicy.decide(request(.readMetadata, by: principal, vault: vault, document: current, time: now))
            guard sees.isAllowed || current.author == principal else {
                return try deny(Audited<Void>(action: .replace, decision: sees, document: id, isWrite: true, result: .failure(unknown)))
            }
            // Decided on the new draft's category as a deposit is, and on
            // the current version's author and the vault's blocks.
            let decision = AccessPolicy.decide(request(
                .replace, by: principal, vault: vault, document: current, category: draft.category, time: now))
            guard decision.isAllowed else {
                return try deny(Audited<Void>(action: .replace, decision: decision, document: id, version: current.version, isWrite: true, result: .success(()))
                    .deniedThrows(vaultID: vault.vaultID))
            }
            // Versions are stored as 32-bit numbers.
            guard current.version < Limits.versions.upperBound else {
                return try deny(.invalid(.replace, document: id, PatientVaultError(.invalidArgument, "this document has reached its last version number")))
            }
            guard vault.documents[id]?.last?.metadata.version == current.version else {
                throw PatientVaultError(.conflict, "a replacement of this document is in progress", vaultID: vault.vaultID, documentID: id)
            }
            return .proceed(vault.pseudonym, vault.keys, id, current.version + 1, decision)
        }
        let (pseudonym, vaultKeys, id, version, decision): (StreamID, VaultKeys, DocumentID, Int, AccessDecision)
        switch decided {
        case .proceed(let p, let k, let i, let v, let d): (pseudonym, vaultKeys, id, version, decision) = (p, k, i, v, d)
        case .denied(let ticket, let error):
            do { _ = try await ticket.wait() } catch { throw PatientVaultError.wrapping(error, documentID: replacing?.document) }
            throw error
        }
        let vaultID = keys.publicVaultID(of: pseudonym)

        // 2. Encrypt and write the content, outside the lock.
        let slot: KeySlot
        let wrapped: [UInt8]
        let written: (ContentDescriptor, inline: [UInt8], hash: [UInt8])
        let size: Int64
        let documentKeys: DocumentKeys
        do {
            let documentKey: SymmetricKey
            (documentKey, documentKeys) = try DocumentKeys.generate()
            slot = try engine.reserveKeySlot()
            wrapped = try KeyWrap.wrap(
                documentKey, with: vaultKeys.documentKeyWrapping,
                context: VaultKeys.documentKeyContext(pseudonym, document: id, version: UInt32(version), slot: slot))
            let writer = try ContentWriter(
                engine: engine, vault: pseudonym, document: id, version: UInt32(version), keySlot: slot,
                contentKey: documentKeys.content, chunkSize: configuration.contentChunkSize,
                inlineLimit: configuration.inlineContentLimit)
            try await content(writer)
            written = try await writer.finish()
            size = writer.size
            try Task.checkCancellation()
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: vaultID, documentID: id)
        }

        // 3. Queue the version record, under the lock, at the next position.
        var metadata = DocumentMetadata(
            id: id, version: version, draft: draft, author: principal, depositedAt: configuration.clock.now(),
            size: size, contentHash: written.hash, status: .current)
        if let replacing { metadata.replaces = (version - 1, replacing.reason) }
        let body = DocumentVersionBody(metadata: metadata, content: written.0)
        let (ticket, sequence) = try withVault(patient) { vault -> (AppendTicket, UInt64) in
            if replacing != nil, vault.documents[id]?.last?.metadata.version != version - 1 {
                throw PatientVaultError(.conflict, "the document was replaced concurrently", vaultID: vaultID, documentID: id)
            }
            let sequence = vault.nextSequence
            let header = RecordHeader(
                kind: .documentVersion, sequence: sequence, document: id, version: UInt32(version), keySlot: slot)
            let payload = try sealRecord(
                header: header, body: body.encoded(), key: documentKeys.metadata, vault: pseudonym, rest: written.inline)
            // The version and its audit entry: one atomic, durable group.
            var records = [EngineRecord(stream: pseudonym, payload: payload)]
            if replacing == nil {
                let byInsurer: Bool = if case .insurer = principal { true } else { false }
                records.append(try statisticsRecord(.document(
                    vault: statisticsTag(of: pseudonym), user: statisticsUser(principal), byInsurer: byInsurer)))
            }
            let a = Audited<Void>(
                action: replacing == nil ? .deposit : .replace, decision: decision, document: id, version: version,
                records: records, vaultRecords: 1,
                keySlotWrites: [(slot, wrapped)], isWrite: true, result: .success(()))
            let (ticket, _) = try queueAudit(
                a, principal: principal, purpose: .care, secret: false, vault: &vault, time: metadata.depositedAt)
            vault.documents[id, default: []].append(
                VersionEntry(metadata: metadata, sequence: sequence, keySlot: slot, location: nil, content: written.0))
            return (ticket, sequence)
        }

        // 4. Wait for durability; only then does the version become visible.
        let location: RecordLocation
        do {
            location = try await ticket.wait()[0]
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: vaultID, documentID: id)
        }
        _ = try? withVault(patient) { vault in
            if let i = vault.documents[id]?.firstIndex(where: { $0.sequence == sequence }) {
                vault.documents[id]![i].location = location
                vault.authors.insert(principal)
            }
        }
        // A document hidden from the patient is announced by its 2-week
        // notice or its release, not now.
        if !draft.confidentiality.contains(.hiddenFromPatient) {
            notifier.emit(VaultNotification(patient: patient, vaultID: vaultID, kind: .newDocument(id), time: metadata.depositedAt))
        }
        logger.debug("patientvault: version deposited", metadata: ["vault": "\(vaultID)", "document": "\(id)", "version": "\(version)"])
        return metadata
    }

    /// Checks a draft before anything is written.
    static func validate(_ draft: DocumentDraft, author: Principal) throws(PatientVaultError) {
        func invalid(_ message: String) -> PatientVaultError { PatientVaultError(.invalidArgument, message) }
        let title = draft.title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw invalid("the title is empty") }
        guard draft.title.utf8.count <= Limits.title else { throw invalid("the title is longer than \(Limits.title) bytes") }
        guard !draft.typeCode.code.isEmpty, draft.typeCode.code.utf8.count <= Limits.typeCode,
              !draft.typeCode.system.isEmpty, draft.typeCode.system.utf8.count <= Limits.typeCodeSystem
        else {
            throw invalid("the type code needs a system (≤ \(Limits.typeCodeSystem) bytes) and a code (≤ \(Limits.typeCode) bytes)")
        }
        guard [draft.createdAt, draft.serviceStart, draft.serviceEnd].allSatisfy({ $0.map(Limits.isStorable) ?? true }) else {
            throw invalid("a date of the draft is not finite or is beyond ±10¹¹ s of 1970")
        }
        let mime = draft.mimeType.split(separator: "/", omittingEmptySubsequences: false)
        guard mime.count == 2, !mime[0].isEmpty, !mime[1].isEmpty, draft.mimeType.utf8.count <= Limits.mimeType,
              draft.mimeType.unicodeScalars.allSatisfy({ $0.isASCII && !$0.properties.isWhitespace })
        else { throw invalid("the MIME type must look like type/subtype") }
        if let start = draft.serviceStart, let end = draft.serviceEnd, end < start {
            throw invalid("the service ends before it starts")
        }
        guard draft.confidentiality.rawValue & ~0b111 == 0 else { throw invalid("unknown confidentiality flags") }
        // The real encoding, with an empty content descriptor, bounds the size.
        let provisional = DocumentVersionBody(
            metadata: DocumentMetadata(
                id: DocumentID(bytes: [UInt8](repeating: 0, count: 16)), version: 1, draft: draft, author: author,
                depositedAt: draft.createdAt, size: 0, contentHash: [UInt8](repeating: 0, count: 32), status: .current),
            content: ContentDescriptor(streamHeader: [UInt8](repeating: 0, count: 24), chunkCount: 1, chunkLocations: []))
        guard provisional.encoded().count <= maximumMetadataSize else {
            throw invalid("the metadata is larger than 16 KiB")
        }
    }
}
