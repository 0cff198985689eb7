import Foundation
import VaultSync
import VaultCrypto
import VaultStorage

extension VaultStore {
    /// Finds the version a principal asked for and decides, for the audited
    /// path. A document the principal may not see is reported exactly like
    /// an unknown one (the audit entry keeps the real rule).
    func lookup<R>(
        _ id: DocumentID, version: Int?, includingDeprecated: Bool, action: VaultAction,
        in vault: VaultState, as principal: Principal, purpose: AccessPurpose, time: Date,
        _ result: (DocumentMetadata, VersionEntry) throws -> R
    ) throws -> Audited<R> {
        do {
            try Self.validate(version: version)
        } catch {
            return .invalid(action, document: id, error)
        }
        var vaultDecision = AccessPolicy.decide(request(action, by: principal, purpose: purpose, vault: vault, time: time))
        // The author of an erased document, without any other basis here
        // (their authorship of it ended with it), is still told it was
        // erased, below: the same answer whether or not the store was
        // reopened since.
        if [.notAuthorised, .grantRevoked, .grantExpired].contains(vaultDecision.rule), !vaultDecision.isAllowed,
           let tombstone = vault.erased[id], tombstone.author == principal
        {
            vaultDecision = .allow(.authorOfDocument)
        }
        guard vaultDecision.isAllowed else {
            return Audited<R>(action: action, decision: vaultDecision, document: id, version: version, result: .failure(.denied))
        }
        let unknown = PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: id)
        if let tombstone = vault.erased[id] {
            // Allowed on the vault, but nothing to read. Told `erased` (the
            // entry records the attempt as abandoned): its author, and the
            // holder and representatives unless it was hidden from them,
            // to whom its tombstone is listed (`erasedDocuments`). For
            // anyone else (an heir, a professional) it does not exist:
            // whether it ever did is not theirs to learn.
            let told: Bool = switch principal {
            case _ where tombstone.author == principal: true
            case .patient(let ins): ins == vault.creation.holder && !vault.erasedIsHidden(id, fromRepresentative: false, at: time)
            case .representative: !vault.erasedIsHidden(id, fromRepresentative: true, at: time)
            default: false
            }
            guard told else {
                return Audited(action: action, decision: .deny(.unknownDocument), document: id, version: version, result: .failure(unknown))
            }
            let erased = PatientVaultError(.erased, "the document was erased", vaultID: vault.vaultID, documentID: id)
            return Audited(action: action, decision: vaultDecision, document: id, version: version, abandoned: true, result: .failure(erased))
        }
        // The current version (the common case) without the list of all
        // of them, which an older version needs for its status.
        guard let newest = vault.currentEntry(of: id) else {
            return Audited(action: action, decision: .deny(.unknownDocument), document: id, version: version, result: .failure(unknown))
        }
        let current = newest.metadata
        let decision = AccessPolicy.decide(request(action, by: principal, purpose: purpose, vault: vault, document: current, time: time))
        guard decision.isAllowed else {
            return Audited(action: action, decision: decision, document: id, version: version, result: .failure(unknown))
        }
        let found: (DocumentMetadata, VersionEntry)? = if version == nil || version == current.version {
            (current, newest)
        } else {
            vault.versions(of: id).first { $0.version == version }.flatMap { m in vault.entry(id, version: m.version).map { (m, $0) } }
        }
        guard case let (chosen, entry)? = found else {
            return Audited(action: action, decision: .deny(.unknownDocument), document: id, version: version, result: .failure(unknown))
        }
        // An older version is judged by its own flags, category and time.
        if chosen.version != current.version {
            let old = AccessPolicy.decide(request(action, by: principal, purpose: purpose, vault: vault, document: chosen, time: time))
            guard old.isAllowed else {
                return Audited(action: action, decision: old, document: id, version: chosen.version, result: .failure(unknown))
            }
        }
        // A first access made by reading a document hidden from
        // representatives is not theirs to be told of (on every allowed
        // answer: a first access is recorded for each).
        let hiddenFromRepresentatives = current.confidentiality.contains(.hiddenFromLegalRepresentatives)
            || chosen.confidentiality.contains(.hiddenFromLegalRepresentatives)
        var a: Audited<R>
        if chosen.status.isDeprecated && !includingDeprecated {
            let error = PatientVaultError(
                .deprecatedVersion, "version \(chosen.version) was replaced; the current version is \(current.version)",
                vaultID: vault.vaultID, documentID: id)
            // Allowed by the rules; the entry records the attempt on the old version.
            a = Audited(action: action, decision: decision, document: id, version: chosen.version, result: .failure(error))
        } else {
            a = Audited(action: action, decision: decision, document: id, version: chosen.version, result: .success(try result(chosen, entry)))
        }
        a.notificationsHiddenFromRepresentatives = hiddenFromRepresentatives
        a.concernsDocumentHiddenFromPatient = vault.isHiddenFromPatient(current, at: time) || vault.isHiddenFromPatient(chosen, at: time)
        return a
    }

    // MARK: - Metadata

    /// The metadata of a document: its current version, or `version`.
    /// Audited (one entry, allowed or denied).
    /// - Parameters:
    ///   - document: the document's id.
    ///   - version: a version number (from 1); nil for the current one.
    ///   - includingDeprecated: allows asking for a replaced version.
    ///   - patient: whose vault.
    ///   - principal: who asks.
    ///   - purpose: `.breakGlass(reason:)` for an emergency access.
    ///   - secret: a secret access by the patient (hidden from representatives' view of the trail).
    /// - Throws: ``PatientVaultError/Code/unknownDocument`` (also when the
    ///   principal may not see it), ``PatientVaultError/Code/deprecatedVersion``,
    ///   ``PatientVaultError/Code/accessDenied`` (vault level, naming the rule).
    public func metadata(
        of document: DocumentID, version: Int? = nil, includingDeprecated: Bool = false,
        for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await audited(.readMetadata, patient, by: principal, purpose: purpose, secret: secret, document: document) { vault, now in
            try lookup(document, version: version, includingDeprecated: includingDeprecated, action: .readMetadata,
                   in: vault, as: principal, purpose: purpose, time: now) { m, _ in m }
        }
    }

    /// Every version of a document, oldest first, with their statuses. Audited.
    public func versions(
        of document: DocumentID, for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> [DocumentMetadata] {
        try await audited(.listVersions, patient, by: principal, purpose: purpose, secret: secret, document: document) { vault, now in
            try lookup(document, version: nil, includingDeprecated: false, action: .listVersions,
                   in: vault, as: principal, purpose: purpose, time: now) { _, _ in
                vault.versions(of: document).filter {
                    sees($0, as: principal, purpose: purpose, in: vault, at: now)
                }
            }
        }
    }

    /// The documents of a vault that `principal` may see, newest deposit
    /// first, filtered by `query`. Hidden documents are absent and are not
    /// counted. Audited (one entry for the listing). Cost: O(documents in
    /// the vault) decisions; no decryption (metadata is decrypted once,
    /// when the vault is loaded).
    public func documents(
        for patient: INS, matching query: DocumentQuery = DocumentQuery(), as principal: Principal,
        purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> [DocumentMetadata] {
        try await audited(.listDocuments, patient, by: principal, purpose: purpose, secret: secret) { vault, now in
            let decision = AccessPolicy.decide(request(.listDocuments, by: principal, purpose: purpose, vault: vault, time: now))
            guard decision.isAllowed else {
                return Audited<[DocumentMetadata]>(action: .listDocuments, decision: decision, result: .success([]))
            }
            return Audited(action: .listDocuments, decision: decision,
                           result: .success(visibleDocuments(in: vault, matching: query, as: principal, purpose: purpose, time: now)))
        }
    }

    /// The versions `principal` may see, newest first.
    func visibleDocuments(
        in vault: VaultState, matching query: DocumentQuery, as principal: Principal, purpose: AccessPurpose, time: Date
    ) -> [DocumentMetadata] {
        var found: [(UInt64, DocumentMetadata)] = []
        for id in vault.documents.keys {
            let versions = vault.versions(of: id)
            guard let current = versions.last,
                  sees(current, as: principal, purpose: purpose, in: vault, at: time)
            else { continue }
            let entries = (vault.documents[id] ?? []).filter(\.isAcknowledged)
            for (m, e) in zip(versions, entries) where query.matches(m) {
                // Older versions are judged by their own flags and category.
                if m.version != current.version,
                   !sees(m, as: principal, purpose: purpose, in: vault, at: time)
                {
                    continue
                }
                found.append((e.sequence, m))
            }
        }
        return found.sorted { $0.0 > $1.0 }.map(\.1)
    }

    // MARK: - Content

    /// The largest document ``content(of:version:includingDeprecated:for:as:purpose:secret:)``
    /// and ``document(_:version:includingDeprecated:for:as:purpose:secret:)``
    /// return whole, in memory: 1 GiB. Larger ones are read with
    /// ``contentStream(of:version:includingDeprecated:for:as:purpose:secret:)``,
    /// one chunk at a time.
    public static let wholeContentLimit: Int64 = 1 << 30

    /// The whole content of a document (current version, or `version`).
    /// For large documents prefer ``contentStream(of:version:includingDeprecated:for:as:purpose:secret:)``.
    /// - Throws: as ``metadata(of:version:includingDeprecated:for:as:purpose:secret:)``,
    ///   ``PatientVaultError/Code/invalidArgument`` for a document larger
    ///   than ``wholeContentLimit`` (recorded as bad input, nothing read), and
    ///   ``PatientVaultError/Code/corrupted`` if stored bytes fail
    ///   authentication, ``PatientVaultError/Code/erased`` if its key was destroyed.
    public func content(
        of document: DocumentID, version: Int? = nil, includingDeprecated: Bool = false,
        for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> Data {
        try await self.document(
            document, version: version, includingDeprecated: includingDeprecated, for: patient, as: principal,
            purpose: purpose, secret: secret
        ).content
    }

    /// The content of a document as a sequence of chunks, decrypted one at a
    /// time: memory stays bounded by one chunk whatever the size. The access
    /// decision is taken and audited now (the entry is durable before this
    /// returns, in the default audit mode); iterating reads and verifies the
    /// chunks (authenticity, order, completeness and size).
    public func contentStream(
        of document: DocumentID, version: Int? = nil, includingDeprecated: Bool = false,
        for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> DocumentContent {
        try await openContent(
            of: document, version: version, includingDeprecated: includingDeprecated, for: patient, as: principal,
            purpose: purpose, secret: secret, atMost: nil)
    }

    /// ``contentStream(of:version:includingDeprecated:for:as:purpose:secret:)``,
    /// refusing in the decision (bad input, audited) a version larger than
    /// `limit` bytes: the whole-content reads' bound.
    func openContent(
        of document: DocumentID, version: Int?, includingDeprecated: Bool,
        for patient: INS, as principal: Principal, purpose: AccessPurpose, secret: Bool, atMost limit: Int64?
    ) async throws(PatientVaultError) -> DocumentContent {
        let (metadata, entry, pseudonym, vaultID, wrapping, generation) = try await audited(
            .readContent, patient, by: principal, purpose: purpose, secret: secret, document: document
        ) { vault, now in
            try lookup(document, version: version, includingDeprecated: includingDeprecated, action: .readContent,
                   in: vault, as: principal, purpose: purpose, time: now) { m, e in
                if let limit, m.size > limit {
                    throw PatientVaultError(
                        .invalidArgument, "the document is larger than \(limit) bytes: read it with contentStream", vaultID: vault.vaultID,
                        documentID: document)
                }
                return (m, e, vault.pseudonym, vault.vaultID, vault.documentKeyWrapping(e.keyVersion), documentKeyCache.generation)
            }
        }
        let keys = try await translatingErrorsAsync(vaultID: vaultID, documentID: document) {
            try await documentKeyCache.keys(vault: pseudonym, slot: entry.keySlot, since: generation) {
                try await loader.documentKeys(document, version: metadata.version, slot: entry.keySlot, vault: pseudonym, wrapping: wrapping)
            }
        }
        // Asked before each chunk: an erasure (or the vault's destruction)
        // acknowledged after this read was decided ends the pass, as it
        // ends every later read. Cheap while no key left the cache since
        // the last check (the cache's generation moves with every removal,
        // under the vault's lock that sets `erased`); a store closed or a
        // vault destroyed meanwhile answers as such.
        let (cache, pipeline) = (documentKeyCache, pipeline)
        let checked = Locked(generation)
        let stillReadable: @Sendable () async throws -> Bool = {
            let now = cache.generation
            if checked.withLock({ $0 }) == now { return true }
            let erased = try await pipeline.withVault(pseudonym) { $0.erased[document] != nil }
            if !erased { checked.withLock { $0 = now } }
            return !erased
        }
        return DocumentContent(
            engine: engine, vault: pseudonym, vaultID: vaultID, entry: entry, contentKey: keys.content, stillReadable: stillReadable)
    }
}

/// The content key of one audited read, handed out once: the first
/// iterator takes it, and it is dropped (wiped with its last reference)
/// when that iterator ends, fails or is dropped.
final class ContentKeyHolder: Sendable {
    private let key: Locked<SymmetricKey?>

    init(_ key: SymmetricKey) { self.key = Locked(key) }

    /// The key, the first time; nil afterwards.
    func take() -> SymmetricKey? { key.withLock { k in defer { k = nil }; return k } }
}

/// The content of one document version, as an asynchronous sequence of
/// decrypted chunks. Each chunk is authenticated (and bound to its vault,
/// document, version and position) before it is returned; the end checks
/// that nothing was dropped and that the size matches (the stream's
/// authentication makes a second hash of the plaintext unnecessary).
///
/// Single-pass: one audited read gives one pass over the content. The
/// first iterator takes the content key; a second iterator throws
/// ``PatientVaultError/Code/invalidArgument`` at its first `next()`. To read
/// again, ask the store again (a new decision and a new audit entry).
public struct DocumentContent: AsyncSequence, Sendable {
    /// A chunk of plaintext.
    public typealias Element = Data

    let engine: any StorageEngine
    let vault: StreamID
    /// The public id, for errors.
    let vaultID: String
    let entry: VersionEntry
    let key: ContentKeyHolder
    /// Whether the document may still be read (false once it is erased
    /// after the read was decided; throws for a store closed or a vault
    /// destroyed): asked before each chunk. Nil: a read that ends within
    /// its call (an export).
    let stillReadable: (@Sendable () async throws -> Bool)?

    init(
        engine: any StorageEngine, vault: StreamID, vaultID: String, entry: VersionEntry, contentKey: SymmetricKey,
        stillReadable: (@Sendable () async throws -> Bool)? = nil
    ) {
        self.engine = engine
        self.vault = vault
        self.vaultID = vaultID
        self.entry = entry
        self.key = ContentKeyHolder(contentKey)
        self.stillReadable = stillReadable
    }

    /// The content's size in bytes.
    public var size: Int64 { entry.metadata.size }

    /// The metadata of the version read (decided and audited with it).
    public var metadata: DocumentMetadata { entry.metadata }

    /// Starts the one pass over the content.
    public func makeAsyncIterator() -> Iterator {
        Iterator(content: self, contentKey: key.take())
    }

    /// Reads and decrypts one chunk per call to `next()`.
    public struct Iterator: AsyncIteratorProtocol {
        private let content: DocumentContent
        /// Dropped at the end, so the key does not outlive the pass.
        private var contentKey: SymmetricKey?
        private var index = 0
        private var puller: SecretStreamPuller?
        private var size: Int64 = 0
        private var finished = false

        init(content: DocumentContent, contentKey: SymmetricKey?) {
            self.content = content
            self.contentKey = contentKey
        }

        /// The next decrypted chunk, or nil at the end.
        /// - Throws: ``PatientVaultError`` (`corrupted` for altered, moved,
        ///   reordered or missing chunks).
        public mutating func next() async throws -> Data? {
            guard !finished else { return nil }
            let entry = content.entry
            let id = entry.metadata.id
            do {
                try Task.checkCancellation()
                if let stillReadable = content.stillReadable, !(try await stillReadable()) {
                    throw PatientVaultError(
                        .erased, "the document was erased after this read was decided", vaultID: content.vaultID, documentID: id)
                }
                if puller == nil {
                    guard let contentKey else {
                        throw PatientVaultError(
                            .invalidArgument, "this content was already read once; ask the store again for a new audited read")
                    }
                    puller = try entry.content.streamHeader.withUnsafeBytes {
                        try SecretStreamPuller(key: contentKey, header: $0)
                    }
                    self.contentKey = nil
                }
                guard index < entry.content.chunkCount else { throw corrupted("content ends before its final chunk") }
                let header = RecordCodec.chunkHeader(
                    document: id, version: UInt32(entry.metadata.version), keySlot: entry.keySlot, index: UInt64(index))
                // The chunk's ciphertext, where it sits in the record read.
                let payload: [UInt8]
                let ciphertextStart: Int
                if entry.content.isInline {
                    guard let reference = entry.reference else { throw corrupted("version record missing") }
                    payload = try await content.engine.read(reference).payload
                    ciphertextStart = try RecordCodec.inlineContentOffset(payload)
                } else {
                    guard index < entry.content.chunks.count else { throw corrupted("chunk list is short") }
                    payload = try await content.engine.read(entry.content.chunks[index]).payload
                    // Its stored header names no document (``RecordHeader``):
                    // its place and key slot must be this chunk's.
                    let stored = try RecordHeader.decode(payload, mask: nil)
                    guard stored.kind == .contentChunk, stored.sequence == header.sequence, stored.keySlot == header.keySlot else {
                        throw corrupted("a chunk is out of place")
                    }
                    ciphertextStart = RecordHeader.size
                }
                // Decrypted straight into the buffer handed to the caller:
                // the plaintext is never copied here.
                let capacity = Swift.max(0, payload.count - ciphertextStart - SecretStream.chunkOverhead)
                var plaintext = Data(count: capacity)
                let (count, isFinal) = try payload.withUnsafeBytes { raw in
                    try header.withAssociatedData(vault: content.vault) { ad in
                        try plaintext.withUnsafeMutableBytes { out in
                            try puller!.pull(UnsafeRawBufferPointer(rebasing: raw[ciphertextStart...]), authenticating: ad, into: out)
                        }
                    }
                }
                index += 1
                var length = count
                if isFinal {
                    // Strip the final chunk's padding: zeros up to its size
                    // class, after the size sealed in the metadata.
                    let real = entry.metadata.size - size
                    guard real >= 0, real <= Int64(count),
                          plaintext[Int(real)..<count].allSatisfy({ $0 == 0 })
                    else { throw corrupted("content does not match its size") }
                    length = Int(real)
                }
                plaintext.count = length
                size += Int64(length)
                if isFinal {
                    finished = true
                    puller = nil
                    // The plaintext is not hashed again: the stream's
                    // authentication (under this version's own key, with
                    // the chunk's place as associated data, and its final
                    // tag) already proves it is the content whose hash the
                    // metadata holds, whole and in order.
                    guard index == entry.content.chunkCount, size == entry.metadata.size
                    else { throw corrupted("content does not match its size") }
                }
                return plaintext
            } catch {
                finished = true
                puller = nil
                contentKey = nil
                throw PatientVaultError.wrapping(error, vaultID: content.vaultID, documentID: id)
            }
        }

        private func corrupted(_ message: String) -> PatientVaultError {
            PatientVaultError(.corrupted, message, vaultID: content.vaultID, documentID: content.entry.metadata.id)
        }
    }
}
