import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Reading the trail

    /// The audit trail of the vault of `patient`, newest first, filtered and
    /// paged by `query`. Reading it is itself audited (the new entry is the
    /// first of the first page).
    ///
    /// The patient and their representatives read it. Neither sees the
    /// entries about a document they may not see now: for the patient, a
    /// document hidden from them (`INVISIBLE_PATIENT`, CSP R1111-53), whose
    /// deposit and reads would name its author, profession and speciality
    /// during the month the law hides it; they appear, in place, once it is
    /// released (``AuditVerification/withheld`` counts them meanwhile).
    /// Representatives do not see secret accesses either, and their view
    /// carries no positions: ``AuditEntry/sequence`` is 0 and
    /// ``AuditEntry/previousHash`` empty in every entry they get. Cost: one read and one
    /// decryption per entry walked (newest first, stopping at the page's end).
    /// - Throws: ``PatientVaultError/Code/accessDenied``,
    ///   ``PatientVaultError/Code/corrupted`` if an entry fails authentication.
    public func auditTrail(
        for patient: INS, matching query: AuditQuery = AuditQuery(), as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> [AuditEntry] {
        // The call's own entry's place in the trail (decided and committed
        // under one hold of the vault's lock): the walk starts there, so
        // the entries of calls that follow it are not in its answer.
        var ownEntry: UInt64 = 0
        _ = try await audited(.readAuditTrail, patient, by: principal, secret: secret) { vault, now in
            try query.validate()
            ownEntry = vault.auditNext
            return Audited<Void>(
                action: .readAuditTrail, decision: AccessPolicy.decide(request(.readAuditTrail, by: principal, vault: vault, time: now)),
                waitsForEntry: true, result: .success(()))
        }
        // The walk runs on a snapshot of the vault, outside its lock.
        let vault = try await snapshot(of: patient)
        return try await translatingErrorsAsync(vaultID: vault.vaultID) {
            let now = configuration.currentTime()
            let isRepresentative: Bool = if case .representative = principal { true } else { false }
            var out: [AuditEntry] = []
            var skipped = 0
            try await loader.auditEntries(of: vault) { entry in
                guard entry.sequence <= ownEntry else { return true }
                guard var entry = redacted(entry, for: principal, representative: isRepresentative, in: vault, at: now) else {
                    return true
                }
                guard query.matches(entry) else { return true }
                if skipped < query.offset { skipped += 1; return true }
                if isRepresentative {
                    // No positions: they would show where entries were left out.
                    entry.sequence = 0
                    entry.previousHash = []
                }
                out.append(entry)
                return out.count < query.limit
            }
            return out
        }
    }

    /// What `reader` may see of an entry. Nobody sees an entry about a
    /// document they may not see now (who deposited or read a document
    /// hidden from the patient or from representatives is itself what the
    /// flag hides): nil. A legal representative does not see secret
    /// accesses either. An entry about an id that names no document (a
    /// refused read of a made-up id) is shown without the id.
    func redacted(
        _ entry: AuditEntry, for reader: Principal, representative: Bool, in vault: VaultState, at now: Date
    ) -> AuditEntry? {
        if representative && entry.isSecretAccess { return nil }
        guard let id = entry.document else { return entry }
        // An erased document's entries stay as written, withheld from whom
        // the document was hidden when it was erased.
        if vault.erased[id] != nil {
            let representativeView = representative || { if case .representative = reader { true } else { false } }()
            return vault.erasedIsHidden(id, fromRepresentative: representativeView, at: now) ? nil : entry
        }
        let versions = vault.versions(of: id)
        if let current = versions.last {
            // A version the entry names passes on its own flags too (an
            // older version hidden from the reader), as reads decide it; one
            // still being acknowledged is judged once it is. A version that
            // never was (a refused read of version 9, a replacement that was
            // refused or failed) is judged by the document, as before.
            if let named = entry.version, named != current.version {
                if let version = versions.first(where: { $0.version == named }) {
                    guard sees(version, as: reader, in: vault, at: now) else { return nil }
                } else if vault.documents[id]?.contains(where: { !$0.isAcknowledged && $0.metadata.version == named }) == true {
                    return nil
                }
            }
            let visible = sees(current, as: reader, in: vault, at: now)
            return visible ? entry : nil
        }
        // A document whose first version is still being acknowledged (its
        // deposit's entry is durable, the read's snapshot came first): not
        // a made-up id; withheld until its flags can be judged.
        if vault.documents[id] != nil { return nil }
        if representative { return nil }
        var e = entry
        e.document = nil
        e.version = nil
        if e.outcome == .denied {
            e.rule = .unknownDocument
            e.legalBasis = nil
        }
        return e
    }

    /// Walks the whole audit chain of a vault and checks it: every entry
    /// authenticates, sequences run 0, 1, 2… without gaps, each entry
    /// carries the chain hash of the one before, and the newest matches
    /// what the store last wrote. Any altered, removed or reordered entry
    /// is reported as ``PatientVaultError/Code/corrupted``. Audited.
    ///
    /// The chain alone cannot see what a holder of the master key could
    /// do: rewrite the trail and its chain, or cut its newest entries with
    /// the records after them. Anchored to a checkpoint the host kept
    /// (`anchoredTo`), the walk also proves that the log still holds every
    /// record that checkpoint covers, unchanged (``verify(against:)``), and
    /// counts the trail's entries among them
    /// (``AuditVerification/anchoredEntries``): a trail rolled back or
    /// rewritten since is ``PatientVaultError/Code/checkpointNotExtended``.
    /// Cost: the chain walk, and with an anchor one read of the records the
    /// checkpoint covers (the whole log up to it).
    ///
    /// For the patient and configured reviewers. Legal representatives are
    /// refused (rule ``AccessRule/notAuthorised``): the count and positions
    /// of the whole chain would show how many secret accesses their view
    /// leaves out.
    /// - Throws: ``PatientVaultError/Code/accessDenied``,
    ///   ``PatientVaultError/Code/corrupted``,
    ///   ``PatientVaultError/Code/checkpointNotExtended``,
    ///   ``PatientVaultError/Code/invalidArgument`` for an anchor this store
    ///   did not sign (refused and audited as such, nothing read).
    public func verifyAuditTrail(
        for patient: INS, as principal: Principal, anchoredTo anchor: SignedCheckpoint? = nil, secret: Bool = false
    ) async throws(PatientVaultError) -> AuditVerification {
        var anchorHead: TreeHead?
        var badAnchor: PatientVaultError?
        if let anchor {
            do { anchorHead = try trustedHead(anchor) } catch { badAnchor = error }
        }
        // The sequence of this call's own entry: everything up to it is
        // written once it is acknowledged.
        let own = try await audited(.verifyAuditTrail, patient, by: principal, secret: secret) { vault, now -> Audited<UInt64> in
            if let badAnchor { return .invalid(.verifyAuditTrail, badAnchor) }
            return Audited<UInt64>(
                action: .verifyAuditTrail, decision: AccessPolicy.decide(request(.verifyAuditTrail, by: principal, vault: vault, time: now)),
                waitsForEntry: true, result: .success(vault.auditNext))
        }
        // The walk runs on a snapshot of the vault, outside its lock; entries
        // written after the snapshot are checked like the others.
        let vault = try await snapshot(of: patient)
        let verification = try await translatingErrorsAsync(vaultID: vault.vaultID) {
            let vaultID = vault.vaultID
            let tampered = { (why: String) in PatientVaultError(.corrupted, "audit chain: " + why, vaultID: vaultID) }
            let now = configuration.currentTime()
            let isReviewer = configuration.isConfiguredReviewer(principal)
            // Walked newest first, one entry at a time (a trail anyone can
            // lengthen with refused calls is never held whole in memory):
            // each entry must be the one its newer neighbour's link names.
            var count = 0
            var withheld = 0
            var anchored = 0
            var head: [UInt8]?
            var atSnapshot: [UInt8]?
            var ownIsThere = false
            var newer: (sequence: UInt64, previousHash: [UInt8])?
            var broken: PatientVaultError?
            try await loader.auditRecords(of: vault) { e, record in
                count += 1
                if !isReviewer && redacted(e, for: principal, representative: false, in: vault, at: now) == nil { withheld += 1 }
                if let anchorHead, record.sequence - 1 < anchorHead.size { anchored += 1 }
                let hash = e.chainHash(key: vault.keys.auditChain)
                if let newer {
                    guard e.sequence &+ 1 == newer.sequence else {
                        broken = tampered("entry \(newer.sequence &- 1) is missing or out of order")
                        return false
                    }
                    guard newer.previousHash == hash else {
                        broken = tampered("entry \(newer.sequence) does not follow entry \(e.sequence)")
                        return false
                    }
                } else {
                    head = hash
                }
                if e.sequence &+ 1 == vault.auditNext { atSnapshot = hash }
                if e.sequence == own { ownIsThere = e.action == .verifyAuditTrail }
                newer = (e.sequence, e.previousHash)
                return true
            }
            if let broken { throw broken }
            // The oldest entry found is the chain's first.
            guard let oldest = newer, let head else { throw tampered("the newest entries are missing") }
            guard oldest.sequence == 0 else { throw tampered("entry 0 is missing or out of order") }
            guard oldest.previousHash == [UInt8](repeating: 0, count: 32) else { throw tampered("entry 0 does not start the chain") }
            // Nothing before this call's own entry may be missing; the entry
            // the snapshot saw last must be the one the store wrote there
            // (unless it is still in flight).
            guard UInt64(count) > own, ownIsThere, UInt64(count) < vault.auditNext || atSnapshot == vault.auditPreviousHash else {
                throw tampered("the newest entries are missing")
            }
            var result = AuditVerification(entries: count, headHash: hexEncoded(head), withheld: withheld)
            if anchorHead != nil { result.anchoredEntries = anchored }
            return result
        }
        if let anchorHead {
            // Every record the checkpoint covers, this trail's among them,
            // is still in the log as it was signed.
            try await verifyLog(extending: anchorHead)
        }
        return verification
    }

    /// Everything one professional or organisation did, across every vault,
    /// newest first: read from their activity stream (an index of copies of
    /// their entries, written in batches by the `ActivityWriter`; pending
    /// copies are written first), not by scanning vaults.
    ///
    /// Only a reviewer named in ``Configuration/auditReviewers`` may call it;
    /// the call is recorded in the reviewer's own activity stream, allowed
    /// or denied.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (rule `notAReviewer`).
    public func activity(
        of subject: GrantHolder, matching query: AuditQuery = AuditQuery(), as principal: Principal
    ) async throws(PatientVaultError) -> [AuditEntry] {
        var invalid: PatientVaultError?
        do { try query.validate() } catch { invalid = error }
        try await recordStoreLevelAccess(.reviewActivity, by: principal, target: subject.description, invalid: invalid)
        // The copies still pending are written first, so the walk sees them.
        try await flushActivity()
        return try await translatingErrorsAsync {
            var out: [AuditEntry] = []
            var skipped = 0
            let stream = keys.activityStream(of: subject)
            let broken = PatientVaultError(.corrupted, "the activity index is broken")
            try await loader.walkBack(stream, broken: broken) { r in
                let plain = try RecordCodec.openStoreRecord(r, kind: .activityEntry, key: keys.activity, stream: stream, broken: broken)
                // A record holds a batch of copies, oldest first: newest first here.
                for copy in try ActivityBatch.decode(plain).copies.reversed() {
                    let e = try AuditEntry.decode(copy.entry)
                    if query.matches(e) {
                        if skipped < query.offset { skipped += 1 } else { out.append(e) }
                    }
                    if out.count >= query.limit { return false }
                }
                return true
            }
            // A close() during the walk wiped the keys it hashed with.
            try ensureOpen()
            return out
        }
    }

    /// Decides a store-level request (reviews, statistics) through the
    /// pipeline: recorded, allowed or denied, in the caller's own stream.
    func recordStoreLevelAccess(
        _ action: VaultAction, by principal: Principal, target: String?, invalid: PatientVaultError? = nil
    ) async throws(PatientVaultError) {
        try await pipeline.runStoreLevel(action, principal: principal, target: target, invalid: invalid)
    }

    // MARK: - Notifications

    /// Events for the host to deliver to patients: new documents, first
    /// accesses, break-glass, the 2-week notice of a hidden document, and
    /// changes of authorisation. Each call returns a new sequence that sees
    /// events from then on; it ends when the store is closed (called after
    /// `close()`, it is already finished). Events are raised once the
    /// operation is durable.
    ///
    /// A `for await` loop over it runs until `close()`: consume it in a task
    /// of its own (`Task { for await n in store.notifications() { … } }`),
    /// never inline before the calls that produce the events, or the loop
    /// waits forever.
    public func notifications() -> AsyncStream<VaultNotification> {
        notifier.stream()
    }

    // MARK: - Scheduled events

    /// Records the time-driven events of a vault as of the configured
    /// clock: the 2-week notice of each hidden document not yet released
    /// (raising ``VaultNotification/Kind/hiddenDocumentNotice(_:)``) and the
    /// automatic release of each one a month old. Each event is a vault
    /// record with its own audit entry (actor ``Principal/system``); events
    /// already recorded are not repeated. The host calls it periodically.
    /// Visibility itself never waits for this call: the decision applies the
    /// time rule directly.
    /// - Returns: the number of events recorded.
    @discardableResult
    public func processScheduledEvents(for patient: INS) async throws(PatientVaultError) -> Int {
        try await translatingErrorsAsync { () async throws -> Int in
            try await scheduledEventRuns.withGate { try await recordScheduledEvents(for: patient) }
        }
    }

    private func recordScheduledEvents(for patient: INS) async throws(PatientVaultError) -> Int {
        var count = 0
        while let (event, document) = try await dueEvent(patient) {
            let action: VaultAction = if case .hiddenNotice = event { .hiddenDocumentNotice } else { .automaticRelease }
            _ = try await audited(action, patient, by: .system, asSystem: true) { vault, now -> Audited<Void> in
                // Due again as the vault is now, in the hold that writes it
                // (a release or an erasure may have come in between).
                guard let again = Self.dueEvent(in: vault, now: now), again.1 == document,
                      Self.isNotice(again.0) == Self.isNotice(event)
                else {
                    return .invalid(action, document: document, PatientVaultError(.conflict, "the event is no longer due"))
                }
                var a = Audited<Void>(
                    action: action, decision: AccessPolicy.decide(request(action, by: .system, vault: vault, time: now)),
                    document: document, isWrite: true, result: .success(()))
                try a.write(event: VaultEventBody(time: now, by: .system, event: event), to: vault)
                if case .hiddenNotice = event { a.notifications = [.hiddenDocumentNotice(document)] }
                a.notificationsHiddenFromRepresentatives = vault.versions(of: document).last?.confidentiality
                    .contains(.hiddenFromLegalRepresentatives) ?? false
                return a
            }
            count += 1
        }
        return count
    }

    private func dueEvent(_ patient: INS) async throws(PatientVaultError) -> (VaultEvent, DocumentID)? {
        try await withVault(patient) { vault in Self.dueEvent(in: vault, now: configuration.currentTime()) }
    }

    private static func isNotice(_ event: VaultEvent) -> Bool { if case .hiddenNotice = event { true } else { false } }

    /// The first time-driven event due in `vault` at `now`, if any.
    private static func dueEvent(in vault: VaultState, now: Date) -> (VaultEvent, DocumentID)? {
        for id in vault.documents.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            guard let current = vault.versions(of: id).last, current.confidentiality.contains(.hiddenFromPatient),
                  vault.policy.released[id].map({ $0 >= current.depositedAt }) != true
            else { continue }
            // The month counts from the start of the hidden period, across replacements.
            let age = now.timeIntervalSince(vault.hiddenSince(id) ?? current.depositedAt)
            // The notice comes first, even when the host calls late.
            if age >= AccessPolicy.hiddenDocumentNoticeDelay && !vault.noticed.contains(id) {
                return (.hiddenNotice(id), id)
            }
            if age >= AccessPolicy.hiddenDocumentReleaseDelay && !vault.autoReleased.contains(id) {
                return (.automaticRelease(id), id)
            }
        }
        return nil
    }
}
