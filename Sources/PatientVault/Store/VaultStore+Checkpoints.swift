import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage

/// What a patient or a court keeps of a document version or an audit
/// entry: the proof that its record is in the store's log at a signed
/// checkpoint, and the record's leaf data (80 bytes that reveal nothing of
/// the record), which
/// the proof is checked against (`CheckpointVerifier.verifyInclusion(_:leafData:)` of PatientVaultProof,
/// or Go's `tlog.CheckRecord` with `tlog.RecordHash(leafData)`).
public struct Receipt: Hashable, Sendable {
    /// The inclusion proof, as `tlog-proof@v1` text with its checkpoint.
    public let proof: InclusionProof
    /// The leaf data of the version's record.
    public let leafData: [UInt8]
}

extension VaultStore {
    /// The note verifier key of the store's checkpoint signing key
    /// (`name+keyID+base64`, C2SP `signed-note`): what the host publishes
    /// for auditors, next to the checkpoints. Its name is
    /// ``checkpointOrigin``.
    public var checkpointVerifierKey: NoteVerifierKey { verifierKey(of: signingKeys.current) }

    /// The note verifier key of `key`, named ``checkpointOrigin``.
    func verifierKey(of key: Ed25519SigningKey) -> NoteVerifierKey {
        // The origin was validated as a key name when the store opened.
        try! NoteVerifierKey(name: checkpointOrigin, algorithm: .ed25519, publicKey: key.publicKey.bytes)
    }

    /// The note verifier keys of every signing key the store has had,
    /// oldest first (the current one, ``checkpointVerifierKey``, last):
    /// checkpoints signed before a rotation verify with the key of their
    /// time.
    public var checkpointVerifierKeys: [NoteVerifierKey] {
        signingKeys.publicKeys.map {
            try! NoteVerifierKey(name: checkpointOrigin, algorithm: .ed25519, publicKey: $0.bytes)
        }
    }

    /// Replaces the store's checkpoint signing key by a new random one,
    /// wrapped in a new key slot; the old key's slot is destroyed, its
    /// public key kept (``checkpointVerifierKeys``), so checkpoints it
    /// signed still verify, here and with `CheckpointVerifier`. Checkpoints
    /// made from now on are signed with the new key: publish its
    /// ``checkpointVerifierKey``. The origin does not change.
    ///
    /// For configured reviewers (the operator), recorded in their own
    /// review stream like ``activity(of:matching:as:)``. Rotations are
    /// serialised; a crash after the new key is durable and before the
    /// old slot is destroyed is finished at the next open.
    /// - Returns: the new key's note verifier key.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (`notAReviewer`),
    ///   ``PatientVaultError/Code/durabilityLost``.
    @discardableResult
    public func rotateCheckpointSigningKey(as principal: Principal) async throws(PatientVaultError) -> NoteVerifierKey {
        try await recordStoreLevelAccess(.rotateSigningKey, by: principal, target: "checkpointSigningKey")
        try await translatingErrorsAsync {
            try await signingKeyRotation.withGate {
                let rotated = try await signingKeys.rotated(engine: engine, keys: keys, now: configuration.currentTime())
                signingKeyRing.withLock { $0 = rotated }
            }
        }
        logger.notice("patientvault: checkpoint signing key rotated")
        return checkpointVerifierKey
    }

    /// The origin line of the store's checkpoints
    /// (``Configuration/checkpointOrigin``, or a default derived from the
    /// store's first signing key, so that it outlives key rotations).
    public var checkpointOrigin: String {
        configuration.checkpointOrigin
            ?? "patientvault.local/" + hexEncoded(Array(SHA256.hash(signingKeys.publicKeys[0].bytes).prefix(8)))
    }

    /// A signed checkpoint of the store's log (C2SP `tlog-checkpoint`): the
    /// size and root of the Merkle tree of every durable record, signed
    /// with the store's key. Publish it (a file, a web page, a witness):
    /// a later ``verify(against:)`` of this store, or of a copy restored
    /// from a backup, proves that nothing it covers was rewritten or lost.
    /// A host operation (like ``close()``): no vault, no audit entry.
    /// Cost: O(log n) reads of stored hashes and one Ed25519 signature.
    /// - Throws: ``PatientVaultError/Code/closed``, ``PatientVaultError/Code/io``.
    public func checkpoint() async throws(PatientVaultError) -> SignedCheckpoint {
        try await checkpoint(signedWith: signingKeys.current)
    }

    /// ``checkpoint()`` signed with `key` (one of the store's, read once
    /// by a caller that signs more with it). A store closed meanwhile,
    /// whose keys are wiped, answers `closed`.
    func checkpoint(signedWith key: Ed25519SigningKey) async throws(PatientVaultError) -> SignedCheckpoint {
        try ensureOpen()
        do {
            return try signedCheckpoint(with: key)
        } catch {
            try ensureOpen()
            throw error
        }
    }

    /// ``checkpoint()`` without the check that the store is open: for
    /// `close()`, after the store stopped taking calls.
    func signedCheckpoint(with key: Ed25519SigningKey? = nil) throws(PatientVaultError) -> SignedCheckpoint {
        let size = engine.durableRecordCount
        let root = try translatingErrors { try engine.merkleTree.root(size: size) }
        pipeline.metrics.checkpoints.increment()
        return try translatingErrors {
            try SignedCheckpoint.sign(
                TreeHead(origin: checkpointOrigin, size: size, rootHash: root), name: checkpointOrigin, key: key ?? signingKeys.current)
        }
    }

    /// Checks that the store's log extends `trusted` (a checkpoint this
    /// store signed and the host kept): the log holds at least its records,
    /// and those records, read and hashed again one by one, give its root.
    /// A folder rolled back to an older copy, a newest segment deleted or
    /// cut, a record rewritten (even by a holder of the master key, whose
    /// checksums and MACs are right) or records reordered fail here.
    /// Cost: one sequential read of the records the checkpoint covers,
    /// BLAKE2b of each payload and SHA-256 of its leaf (hashed on every core,
    /// in batches of about 8 MiB), in O(log n) memory beside the batch;
    /// each leaf is compared with the stored tree on the way.
    /// - Throws: ``PatientVaultError/Code/checkpointNotExtended`` (naming
    ///   the sizes, or the first record that differs from the tree the
    ///   checkpoint signed), ``PatientVaultError/Code/corrupted`` if the
    ///   records match the checkpoint but the stored tree does not (then
    ///   proofs could not be made), ``PatientVaultError/Code/invalidArgument``
    ///   for a checkpoint this store did not sign.
    public func verify(against trusted: SignedCheckpoint) async throws(PatientVaultError) {
        try ensureOpen()
        try await verifyLog(extending: try trustedHead(trusted))
    }

    /// ``verify(against:)``, reporting its progress: `progress` is called
    /// on the verifying task after each batch with the fraction of the
    /// checkpoint's records checked (0 to 1), for a progress bar.
    /// - Throws: as ``verify(against:)``.
    public func verify(
        against trusted: SignedCheckpoint, progress: @escaping @Sendable (Double) -> Void
    ) async throws(PatientVaultError) {
        try ensureOpen()
        try await verifyLog(extending: try trustedHead(trusted), progress: progress)
    }

    /// ``verify(against:)`` for ``Configuration/trustedCheckpoint`` at open:
    /// a checkpoint of this store's origin signed with a key the folder
    /// does not hold was signed after a rotation of the signing key that
    /// the folder predates (it was rolled back), so it is
    /// ``PatientVaultError/Code/checkpointNotExtended``, as any rolled-back
    /// folder is (not `invalidArgument`, which would say the checkpoint
    /// is wrong).
    func verifyAtOpen(against trusted: SignedCheckpoint) async throws(PatientVaultError) {
        do {
            try await verify(against: trusted)
        } catch where error.code == .invalidArgument && trusted.treeHead.origin == checkpointOrigin {
            throw PatientVaultError(
                .checkpointNotExtended,
                "the trusted checkpoint is this store's, signed with a key this folder does not hold: the folder is older than it (rolled back), or the checkpoint is forged")
        }
    }

    /// The tree head of a checkpoint this store signed, with any of its
    /// signing keys (the current one first).
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` otherwise.
    func trustedHead(_ checkpoint: SignedCheckpoint) throws(PatientVaultError) -> TreeHead {
        var failure: ProofError?
        for publicKey in signingKeys.publicKeys.reversed() {
            do {
                let key = try NoteVerifierKey(name: checkpointOrigin, algorithm: .ed25519, publicKey: publicKey.bytes)
                return try CheckpointVerifier(logKey: key, origin: checkpointOrigin).verify(checkpoint)
            } catch {
                failure = error
            }
        }
        throw PatientVaultError(
            .invalidArgument, "the checkpoint is not one this store signed (\(failure?.code.rawValue ?? "no key"))")
    }

    /// The check of ``verify(against:)``, for a head already authenticated.
    func verifyLog(extending head: TreeHead, progress: (@Sendable (Double) -> Void)? = nil) async throws(PatientVaultError) {
        try await Self.verifyLog(of: engine, extending: head, progress: progress)
    }

    /// The check of ``verify(against:)`` on `engine` (this store's, or a
    /// backup's copy opened as an engine alone).
    static func verifyLog(
        of engine: any StorageEngine, extending head: TreeHead, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(PatientVaultError) {
        let size = engine.durableRecordCount
        guard head.size <= size else {
            throw PatientVaultError(
                .checkpointNotExtended, "the log holds \(size) records; the trusted checkpoint covers \(head.size)")
        }
        let tree = engine.merkleTree
        let storedRoot = try translatingErrors { try tree.root(size: head.size) }
        // The records themselves, leaf by leaf, against the stored leaves:
        // read and hashed again by the engine, on every core it can use
        // (BLAKE2b of the payloads is the cost), and appended in order.
        var recomputed = MerkleTree.Accumulator()
        var firstDifference: UInt64?
        do {
            try await engine.recomputeLeaves(count: head.size) { leaves in
                for start in stride(from: 0, to: leaves.count, by: MerkleTree.hashSize) {
                    let leaf = Array(leaves[start..<(start + MerkleTree.hashSize)])
                    if firstDifference == nil, try tree.leaf(recomputed.size) != leaf { firstDifference = recomputed.size + 1 }
                    recomputed.append(leaf)
                }
                if let progress, head.size > 0 { progress(Double(recomputed.size) / Double(head.size)) }
            }
        } catch {
            throw PatientVaultError.wrapping(error)
        }
        guard recomputed.size == head.size, recomputed.root == head.rootHash else {
            if storedRoot == head.rootHash, let first = firstDifference {
                throw PatientVaultError(
                    .checkpointNotExtended,
                    "record \(first) is not the one the trusted checkpoint covers (rewritten after it was signed)")
            }
            throw PatientVaultError(
                .checkpointNotExtended, "the log's first \(head.size) records are not those of the trusted checkpoint")
        }
        guard storedRoot == head.rootHash, firstDifference == nil else {
            throw PatientVaultError(.corrupted, "merkle.hashes differs from the records from record \(firstDifference ?? 0)")
        }
    }


    /// The consistency proof between two checkpoints of this store (the
    /// older first): what a witness or an auditor checks to see that the
    /// newer extends the older.
    /// Made from the stored tree (O(log n) reads) and checked against both
    /// roots before it is handed out; ``verify(against:)`` is the full check
    /// of the records.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for checkpoints
    ///   this store did not sign or out of order,
    ///   ``PatientVaultError/Code/checkpointNotExtended`` if the stored tree
    ///   does not extend them.
    public func consistencyProof(from old: SignedCheckpoint, to new: SignedCheckpoint) async throws(PatientVaultError) -> ConsistencyProof {
        try ensureOpen()
        // Each with the key of its time (a rotation may lie between them).
        let (a, b) = (try trustedHead(old), try trustedHead(new))
        guard b.size <= engine.durableRecordCount else {
            throw PatientVaultError(.checkpointNotExtended, "the newer checkpoint covers more records than the log holds")
        }
        guard a.size >= 1, a.size <= b.size else {
            throw PatientVaultError(.invalidArgument, "a consistency proof goes from a non-empty older checkpoint to a newer one")
        }
        let hashes = try translatingErrors { try engine.merkleTree.consistencyProof(old: a.size, new: b.size) }
        let proof = try translatingErrors { try ConsistencyProof(oldSize: a.size, newSize: b.size, hashes: hashes) }
        // Checked before it is handed out: a stored hash altered on disk
        // gives an error, never a proof that fails later at the auditor's.
        guard MerkleTree.verifyConsistency(oldSize: a.size, newSize: b.size, oldRoot: a.rootHash, newRoot: b.rootHash, proof: hashes) else {
            throw PatientVaultError(.checkpointNotExtended, "the log does not extend the older checkpoint")
        }
        return proof
    }

    /// A receipt for an entry of a vault's audit trail (by its sequence
    /// number, from 0): the proof that its record is in the log at a new
    /// signed checkpoint. For the holder of the vault and configured
    /// reviewers, as ``verifyAuditTrail(for:as:anchoredTo:secret:)`` (a legal representative
    /// is refused: some entries are withheld from their view); audited as a
    /// verification of the trail.
    /// - Throws: ``PatientVaultError/Code/accessDenied``,
    ///   ``PatientVaultError/Code/invalidArgument`` for a sequence beyond
    ///   the trail, ``PatientVaultError/Code/corrupted``.
    public func receipt(
        forAuditEntry sequence: UInt64, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> Receipt {
        let next = try await audited(.verifyAuditTrail, patient, by: principal, secret: secret) { vault, now -> Audited<UInt64> in
            let decision = AccessPolicy.decide(request(.verifyAuditTrail, by: principal, vault: vault, time: now))
            // Bad input is recorded as such (refused, `invalidRequest`),
            // after the decision: a refused caller learns nothing of the
            // trail's length.
            if decision.isAllowed, sequence >= vault.auditNext {
                return .invalid(.verifyAuditTrail, PatientVaultError(.invalidArgument, "the trail has no entry \(sequence) yet"))
            }
            return Audited<UInt64>(action: .verifyAuditTrail, decision: decision, waitsForEntry: true, result: .success(vault.auditNext))
        }
        guard sequence < next else { throw PatientVaultError(.invalidArgument, "the trail has no entry \(sequence) yet") }
        let vault = try await snapshot(of: patient)
        var found: StoredRecord?
        do {
            try await loader.auditRecords(of: vault) { entry, record in
                if entry.sequence == sequence { found = record }
                return found == nil && entry.sequence > sequence
            }
        } catch {
            throw PatientVaultError.wrapping(error, vaultID: vault.vaultID)
        }
        guard let record = found else {
            throw PatientVaultError(.corrupted, "audit entry \(sequence) is missing from the trail", vaultID: vault.vaultID)
        }
        return try await receipt(of: record)
    }

    /// A receipt for a document version: the proof that its record is in
    /// the log at a new signed checkpoint (``Receipt``). Audited
    /// as a metadata read, with the same rules and errors as
    /// ``metadata(of:version:includingDeprecated:for:as:purpose:secret:)``.
    public func receipt(
        for document: DocumentID, version: Int? = nil, for patient: INS, as principal: Principal,
        purpose: AccessPurpose = .care, secret: Bool = false
    ) async throws(PatientVaultError) -> Receipt {
        let reference = try await audited(.readMetadata, patient, by: principal, purpose: purpose, secret: secret, document: document) { vault, now in
            try lookup(document, version: version, includingDeprecated: true, action: .readMetadata,
                       in: vault, as: principal, purpose: purpose, time: now) { _, entry in entry.reference }
        }
        guard let reference else {
            throw PatientVaultError(.conflict, "the version is not acknowledged yet", documentID: document)
        }
        let record: StoredRecord
        do {
            record = try await engine.read(reference)
        } catch {
            throw PatientVaultError.wrapping(error, documentID: document)
        }
        return try await receipt(of: record)
    }

    /// The receipt of a record: a new checkpoint, the record's inclusion
    /// proof in its tree, checked before it is handed out.
    private func receipt(of record: StoredRecord) async throws(PatientVaultError) -> Receipt {
        // A compacted record's content is gone; its receipts were given before.
        guard !record.isCompacted else { throw PatientVaultError(.erased, "the record was erased and compacted") }
        let leafData = record.payload.withUnsafeBytes { MerkleLog.leafData(stream: record.stream, payload: $0) }
        // One key for the checkpoint and its check: a rotation meanwhile
        // would make a good proof look like a damaged tree.
        let signingKey = signingKeys.current
        let checkpoint = try await checkpoint(signedWith: signingKey)
        let index = record.sequence - 1
        guard index < checkpoint.treeHead.size else {
            throw PatientVaultError(.conflict, "the record is not durable yet")
        }
        let proof = try translatingErrors {
            try InclusionProof(
                index: index, hashes: try engine.merkleTree.inclusionProof(index: index, size: checkpoint.treeHead.size),
                checkpoint: checkpoint)
        }
        do {
            try CheckpointVerifier(logKey: verifierKey(of: signingKey)).verifyInclusion(proof, leafData: leafData)
        } catch {
            throw PatientVaultError(.corrupted, "the Merkle tree's stored hashes do not prove the record")
        }
        return Receipt(proof: proof, leafData: leafData)
    }
}
