import Foundation

/// One patient's vault as one principal uses it: the store's calls
/// without repeating the patient and the acting principal (GRDB's
/// database-access style). A plain value: cheap to make, `Sendable`, it
/// holds no lock and no key; every call is the store's own call, decided
/// and audited as usual.
///
/// ```swift
/// let doctor = Principal.professional(HealthProfessional(rpps: rpps, profession: .doctor))
/// let vault = store.vault(for: ins, as: doctor)
/// let note = try await vault.deposit(draft, content: pdf)
/// let (metadata, content) = try await vault.document(note.id)   // one audit entry
/// ```
public struct VaultAccess: Sendable {
    /// The store.
    public let store: VaultStore
    /// The patient whose vault this is.
    public let patient: INS
    /// Who acts.
    public let principal: Principal
    /// Why, for reads (`.breakGlass(reason:)` in an emergency).
    public let purpose: AccessPurpose
    /// Whether every call is a secret access (*connexion secrète*): the
    /// patient's own, its audit entries hidden from legal representatives.
    /// Only the vault's holder acting as `.patient` may ask for it; any
    /// other principal's call is refused (`invalidArgument`) and audited.
    public let secret: Bool

    /// The vault's information.
    public func info() async throws(PatientVaultError) -> VaultInfo {
        try await store.vaultInfo(for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// The documents the principal may see, newest first.
    public func documents(matching query: DocumentQuery = DocumentQuery()) async throws(PatientVaultError) -> [DocumentMetadata] {
        try await store.documents(for: patient, matching: query, as: principal, purpose: purpose, secret: secret)
    }

    /// A document's metadata (current version, or `version`).
    public func metadata(of document: DocumentID, version: Int? = nil) async throws(PatientVaultError) -> DocumentMetadata {
        try await store.metadata(of: document, version: version, for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// Every version of a document the principal may see, oldest first.
    public func versions(of document: DocumentID) async throws(PatientVaultError) -> [DocumentMetadata] {
        try await store.versions(of: document, for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// A document's metadata and whole content, with one audit entry (a
    /// content read).
    public func document(_ document: DocumentID, version: Int? = nil) async throws(PatientVaultError) -> (metadata: DocumentMetadata, content: Data) {
        try await store.document(document, version: version, for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// A document's whole content.
    public func content(of document: DocumentID, version: Int? = nil) async throws(PatientVaultError) -> Data {
        try await store.content(of: document, version: version, for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// A document's content as a sequence of chunks (bounded memory).
    public func contentStream(of document: DocumentID, version: Int? = nil) async throws(PatientVaultError) -> DocumentContent {
        try await store.contentStream(of: document, version: version, for: patient, as: principal, purpose: purpose, secret: secret)
    }

    /// Deposits a document.
    public func deposit(_ draft: DocumentDraft, content: Data) async throws(PatientVaultError) -> DocumentMetadata {
        try await store.deposit(draft, content: content, for: patient, as: principal, secret: secret)
    }

    /// Deposits a document streamed in chunks.
    public func deposit<Chunks: AsyncSequence>(
        _ draft: DocumentDraft, streaming content: Chunks
    ) async throws(PatientVaultError) -> DocumentMetadata where Chunks.Element == Data {
        try await store.deposit(draft, streaming: content, for: patient, as: principal, secret: secret)
    }

    /// Replaces the current version of a document.
    public func replace(
        _ document: DocumentID, with draft: DocumentDraft, content: Data, reason: ReplacementReason = .superseded
    ) async throws(PatientVaultError) -> DocumentMetadata {
        try await store.replace(document, with: draft, content: content, reason: reason, for: patient, as: principal, secret: secret)
    }

    /// Erases a document (its author's; ``VaultStore/erase(_:for:reason:as:secret:)``).
    @discardableResult
    public func erase(_ document: DocumentID, reason: ErasureReason? = nil) async throws(PatientVaultError) -> ErasedDocument {
        try await store.erase(document, for: patient, reason: reason, as: principal, secret: secret)
    }

    /// The vault's erased documents the principal may know of.
    public func erasedDocuments() async throws(PatientVaultError) -> [ErasedDocument] {
        try await store.erasedDocuments(for: patient, as: principal, secret: secret)
    }

    /// The patient's export of the vault (``VaultStore/exportVault(for:as:secret:)``).
    public func exportVault() async throws(PatientVaultError) -> VaultExport {
        try await store.exportVault(for: patient, as: principal, secret: secret)
    }

    /// The vault's audit trail as the principal may see it.
    public func auditTrail(matching query: AuditQuery = AuditQuery()) async throws(PatientVaultError) -> [AuditEntry] {
        try await store.auditTrail(for: patient, matching: query, as: principal, secret: secret)
    }

    /// Verifies the vault's audit chain.
    public func verifyAuditTrail() async throws(PatientVaultError) -> AuditVerification {
        try await store.verifyAuditTrail(for: patient, as: principal, secret: secret)
    }

    /// Who could read a document at `time`.
    public func whoCouldRead(_ document: DocumentID, at time: Date) async throws(PatientVaultError) -> [(principal: Principal, rule: AccessRule)] {
        try await store.whoCouldRead(document, at: time, for: patient, as: principal, secret: secret)
    }

    /// What `reader` could read at `time`.
    public func whatCouldRead(
        _ reader: Principal, at time: Date
    ) async throws(PatientVaultError) -> [(document: DocumentID, version: Int, category: DocumentCategory, rule: AccessRule)] {
        try await store.whatCouldRead(reader, at: time, for: patient, as: principal, secret: secret)
    }

    // MARK: Who may read: the patient's (or a representative's) decisions

    /// Authorises a professional or organisation to read, until `until`
    /// (nil: until revoked).
    public func authorise(_ grantee: Principal, until: Date? = nil) async throws(PatientVaultError) {
        try await store.authorise(grantee, until: until, for: patient, as: principal, secret: secret)
    }

    /// Revokes an authorisation.
    public func revoke(_ grantee: Principal) async throws(PatientVaultError) { try await store.revoke(grantee, for: patient, as: principal, secret: secret) }

    /// Blocks a professional.
    public func block(_ professional: Principal) async throws(PatientVaultError) { try await store.block(professional, for: patient, as: principal, secret: secret) }

    /// Lifts a block.
    public func unblock(_ professional: Principal) async throws(PatientVaultError) { try await store.unblock(professional, for: patient, as: principal, secret: secret) }

    /// Designates the médecin traitant (nil: none).
    public func setMedecinTraitant(_ doctor: Principal?) async throws(PatientVaultError) { try await store.setMedecinTraitant(doctor, for: patient, as: principal, secret: secret) }

    /// Adds a professional to the care team.
    public func addToCareTeam(_ professional: Principal) async throws(PatientVaultError) { try await store.addToCareTeam(professional, for: patient, as: principal, secret: secret) }

    /// Removes a professional from the care team.
    public func removeFromCareTeam(_ professional: Principal) async throws(PatientVaultError) { try await store.removeFromCareTeam(professional, for: patient, as: principal, secret: secret) }

    /// Names a legal representative.
    public func nameRepresentative(_ representative: Principal) async throws(PatientVaultError) { try await store.nameRepresentative(representative, for: patient, as: principal, secret: secret) }

    /// Removes a legal representative.
    public func removeRepresentative(_ representative: Principal) async throws(PatientVaultError) { try await store.removeRepresentative(representative, for: patient, as: principal, secret: secret) }

    /// Opposes (or stops opposing) break-glass access in advance.
    public func setBreakGlassOpposition(_ opposed: Bool) async throws(PatientVaultError) { try await store.setBreakGlassOpposition(opposed, for: patient, as: principal, secret: secret) }

    /// Releases a document hidden from the patient (its author only).
    public func releaseToPatient(_ document: DocumentID) async throws(PatientVaultError) { try await store.releaseToPatient(document, for: patient, as: principal, secret: secret) }

    /// Closes the vault at the patient's request (or records a death).
    public func closeVault(reason: ClosureReason) async throws(PatientVaultError) {
        try await store.closeVault(for: patient, reason: reason, as: principal, secret: secret)
    }

    /// Reopens a closed vault during its retention.
    public func reopenVault() async throws(PatientVaultError) { try await store.reopenVault(for: patient, as: principal, secret: secret) }

    /// Rotates the vault's document-key wrapping key; the new version.
    @discardableResult
    public func rotateVaultKey() async throws(PatientVaultError) -> Int {
        try await store.rotateVaultKey(for: patient, as: principal, secret: secret)
    }
}

extension VaultStore {
    /// The vault of `patient` as `principal` uses it, for `purpose`: every
    /// call of the returned value drops both arguments. With `secret`, the
    /// patient's secret connection: every call through it, reads, policy
    /// changes, deposits, erasures, trail reads and exports alike, is a
    /// secret access, its entry hidden from legal representatives.
    public func vault(for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false) -> VaultAccess {
        VaultAccess(store: self, patient: patient, principal: principal, purpose: purpose, secret: secret)
    }

    /// A document's metadata and whole content, in one audited call (one
    /// entry: a content read). Same rules and errors as
    /// ``content(of:version:includingDeprecated:for:as:purpose:secret:)``.
    public func document(
        _ document: DocumentID, version: Int? = nil, includingDeprecated: Bool = false,
        for patient: INS, as principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> (metadata: DocumentMetadata, content: Data) {
        let stream = try await openContent(
            of: document, version: version, includingDeprecated: includingDeprecated, for: patient, as: principal,
            purpose: purpose, secret: secret, atMost: Self.wholeContentLimit)
        // One chunk (most documents) is handed over as decrypted; more are
        // appended once each into a buffer of the final size.
        var out = Data()
        do {
            for try await chunk in stream {
                if out.isEmpty {
                    out = chunk
                    if chunk.count < stream.size { out.reserveCapacity(Int(stream.size)) }
                } else {
                    out.append(chunk)
                }
            }
        } catch {
            throw PatientVaultError.wrapping(error, documentID: document)
        }
        return (stream.metadata, out)
    }
}
