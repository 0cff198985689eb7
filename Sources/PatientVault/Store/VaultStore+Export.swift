import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage

extension VaultStore {
    /// Bytes an audit entry takes in an export, at least: its record in
    /// base64 (over 600 bytes), its JSON and its inclusion proof.
    static let exportBytesPerEntryAtLeast: Int64 = 1024
    /// Bytes an entry's JSON and proof take in an export besides its
    /// record, at least, as counted while the trail is collected: the walk
    /// stops once the export will certainly pass its bound (memory stays
    /// near it), and never refuses one that fits; the file's exact size
    /// is checked when it is verified.
    static let exportBytesPerEntryBesidesRecord: Int64 = 256

    /// The patient's vault as a self-verifying export file (``VaultExport``):
    /// every document version the patient may read (hidden documents not
    /// yet released are left out, as from every listing), decrypted, with
    /// its sealed record, its own metadata key and its inclusion proof; the
    /// audit trail with each entry's record and proof; a new signed
    /// checkpoint; all signed with the store's checkpoint signing key.
    /// Write ``VaultExport/bytes`` to a file, or ``VaultExport/sealed(to:)``
    /// to hand it to someone else.
    ///
    /// The patient's own (a legal representative's view leaves entries
    /// out, so it could not be checked whole). One decision, one audit
    /// entry (action `exportVault`), which the export includes and ends with.
    /// Cost: a read and a decryption of every version's content, a walk of
    /// the trail, one checkpoint and an inclusion proof per record.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (audited),
    ///   ``PatientVaultError/Code/invalidArgument`` beyond ``VaultExport/maximumSize``,
    ///   ``PatientVaultError/Code/conflict`` if a record is not durable yet
    ///   (relaxed durability: try again after the next durable write), or if
    ///   a document was erased while the export was made (ask again),
    ///   ``PatientVaultError/Code/vaultDestroyed`` if the vault was
    ///   destroyed meanwhile,
    ///   ``PatientVaultError/Code/erased`` / ``PatientVaultError/Code/corrupted``
    ///   as reads.
    public func exportVault(for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) -> VaultExport {
        // The key cache's generation, taken with the decision (under the
        // vault's lock): no key unwrapped after a destruction decided
        // meanwhile goes back into the cache.
        var generation: UInt64 = 0
        // The export's own entry's place in the trail (decided and
        // committed under one hold of the vault's lock): the trail it
        // carries ends there, whatever calls on the vault follow it.
        var ownEntry: UInt64 = 0
        let versions = try await audited(.exportVault, patient, by: principal, secret: secret) {
            vault, now -> Audited<[(DocumentMetadata, VersionEntry)]> in
            generation = documentKeyCache.generation
            ownEntry = vault.auditNext
            let decision = AccessPolicy.decide(request(.exportVault, by: principal, vault: vault, time: now))
            guard decision.isAllowed else { return Audited(action: .exportVault, decision: decision, result: .failure(.denied)) }
            var visible: [(DocumentMetadata, VersionEntry)] = []
            for id in vault.documents.keys.sorted(by: { $0.description < $1.description }) where vault.erased[id] == nil {
                // The document first (its current version), as listings
                // decide it; then each version on its own flags.
                guard let current = vault.versions(of: id).last, sees(current, as: principal, in: vault, at: now) else { continue }
                for metadata in vault.versions(of: id) where sees(metadata, as: principal, in: vault, at: now) {
                    if let entry = vault.entry(id, version: metadata.version), entry.isAcknowledged { visible.append((metadata, entry)) }
                }
            }
            // The export's size from the versions' sizes and the trail's
            // length, before any content is read: an export that cannot be
            // made is refused as bad input, not found out after gigabytes
            // were read into memory. Each entry of the trail takes more
            // than ``exportBytesPerEntryAtLeast`` (its record, its JSON and
            // its proof): a trail that long alone is refused here.
            var total = Int64(vault.auditNext) * Self.exportBytesPerEntryAtLeast
            guard total <= Int64(VaultExport.maximumSize) else {
                return .invalid(.exportVault, PatientVaultError(
                    .invalidArgument, "the vault's export would exceed \(VaultExport.maximumSize) bytes", vaultID: vault.vaultID))
            }
            for (metadata, entry) in visible {
                // The content in base64, then the version's record in
                // base64: its sealed metadata and, for a document stored
                // inline, its content again (sealed), else its list of
                // chunk references.
                let size = min(max(metadata.size, 0), Int64(VaultExport.maximumSize))
                let record = entry.content.isInline ? size : Int64(entry.content.chunks.count) * Int64(RecordReference.byteCount)
                total += size / 3 * 4 + 4 + record / 3 * 4 + 4 + 4096
                guard total <= Int64(VaultExport.maximumSize) else {
                    return .invalid(.exportVault, PatientVaultError(
                        .invalidArgument, "the vault's export would exceed \(VaultExport.maximumSize) bytes", vaultID: vault.vaultID))
                }
            }
            return Audited(action: .exportVault, decision: decision, waitsForEntry: true, result: .success(visible))
        }
        let vault = try await snapshot(of: patient)
        return try await translatingErrorsAsync(vaultID: vault.vaultID) { () async throws -> VaultExport in
            var documents: [ExportPayload.Version] = []
            var pending: [StoredRecord] = []
            var total = 0
            // An erasure (or the vault's destruction) queued since the
            // decision moves the key cache's generation, under the vault's
            // lock that sets `erased`: the erased content must not go out in
            // a file returned after the erasure, as a read's stream ends at
            // it. Asked before each version and once the file is made, of
            // every document the export holds: the export is refused (asked
            // again, it is made without the document).
            var checked = generation
            let exported = Set(versions.map(\.0.id))
            let pipeline = pipeline
            func ensureNothingErased() async throws {
                let now = documentKeyCache.generation
                guard now != checked else { return }
                if try await pipeline.withVault(vault.pseudonym, { v in exported.contains { v.erased[$0] != nil } }) {
                    throw PatientVaultError(.conflict, "a document was erased while the export was made: export the vault again")
                }
                checked = now
            }
            for (metadata, entry) in versions {
                guard let reference = entry.reference else { continue }
                try await ensureNothingErased()
                let keys = try await documentKeyCache.keys(vault: vault.pseudonym, slot: entry.keySlot, since: generation) {
                    try await loader.documentKeys(entry, vault: vault)
                }
                var content = Data()
                for try await chunk in DocumentContent(
                    engine: engine, vault: vault.pseudonym, vaultID: vault.vaultID, entry: entry, contentKey: keys.content) {
                    content.append(chunk)
                }
                let record = try await engine.read(reference)
                total += content.count * 4 / 3 + record.payload.count * 4 / 3 + 4096
                guard total <= VaultExport.maximumSize else {
                    throw PatientVaultError(.invalidArgument, "the vault's export would exceed \(VaultExport.maximumSize) bytes")
                }
                let key = keys.metadata.withUnsafeBytes { Data($0).base64EncodedString() }
                documents.append(ExportPayload.Version(
                    metadata: metadata, content: content.base64EncodedString(), record: Data(record.payload).base64EncodedString(),
                    key: key, proof: ""))
                pending.append(record)
            }
            // The trail, the export's own entry included (durable: the
            // decision waited for it), and nothing after it (another call
            // on the vault meanwhile: its entry may not be durable yet).
            let now = configuration.currentTime()
            var trail: [ExportPayload.Entry] = []
            var tooLarge = false
            try await loader.auditRecords(of: vault) { entry, record in
                guard entry.sequence <= ownEntry else { return true }
                if let visible = redacted(entry, for: principal, representative: false, in: vault, at: now) {
                    // Counted as it is collected (its record in base64, its
                    // JSON and proof), so that a long trail stops the walk.
                    total += record.payload.count * 4 / 3 + Int(Self.exportBytesPerEntryBesidesRecord)
                    if total > VaultExport.maximumSize {
                        tooLarge = true
                        return false
                    }
                    trail.append(ExportPayload.Entry(entry: visible, record: Data(record.payload).base64EncodedString(), proof: ""))
                    pending.append(record)
                }
                return true
            }
            guard !tooLarge else {
                throw PatientVaultError(.invalidArgument, "the vault's export would exceed \(VaultExport.maximumSize) bytes")
            }
            // Newest first: the export's own entry comes first.
            guard trail.first?.entry.sequence == ownEntry else {
                throw PatientVaultError(.corrupted, "the export's own entry is not in the vault's trail", vaultID: vault.vaultID)
            }
            // One signing key for the checkpoint and the file: a rotation
            // meanwhile must not leave them signed by two.
            let signingKey = signingKeys.current
            let verifierKey = verifierKey(of: signingKey)
            let checkpoint = try await checkpoint(signedWith: signingKey)
            let tree = engine.merkleTree
            var proofs: [String] = []
            for record in pending {
                guard record.sequence <= checkpoint.treeHead.size else {
                    throw PatientVaultError(.conflict, "a record of the vault is not durable yet", vaultID: vault.vaultID)
                }
                let hashes = try tree.inclusionProof(index: record.sequence - 1, size: checkpoint.treeHead.size)
                proofs.append(try InclusionProof(index: record.sequence - 1, hashes: hashes, checkpoint: checkpoint).text)
            }
            // Documents first, then the trail newest first, as collected.
            for i in documents.indices { documents[i].proof = proofs[i] }
            for i in trail.indices { trail[i].proof = proofs[documents.count + i] }
            trail.reverse()
            let payload = ExportPayload(
                format: VaultExport.format, vaultID: vault.vaultID, patient: vault.creation.holder.digits, stream: Data(vault.pseudonym.bytes).base64EncodedString(),
                auditStream: Data(vault.auditStream.bytes).base64EncodedString(), checkpoint: checkpoint.text,
                verifierKey: verifierKey.description, documents: documents, auditTrail: trail)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = try encoder.encode(payload)
            let signature: [UInt8]
            do {
                // The signed message in one buffer (an export is up to
                // 1 GiB: each copy of it counts).
                var message = Array((VaultExport.magic + "\n").utf8)
                message.reserveCapacity(message.count + json.count)
                message.append(contentsOf: json)
                signature = try signingKey.signature(for: message)
            } catch {
                // Closed meanwhile: its signing key is wiped.
                try ensureOpen()
                throw error
            }
            var file = Data(
                (VaultExport.magic + " " + verifierKey.description + " " + Data(signature).base64EncodedString() + "\n").utf8)
            file.reserveCapacity(file.count + json.count)
            file.append(json)
            let export = try VaultExport(verifying: file, trusting: [verifierKey])
            // The last check, with nothing awaited after it: an erasure
            // queued from here on comes after the export.
            try await ensureNothingErased()
            return export
        }
    }
}
