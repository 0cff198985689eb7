import Foundation
import Synchronization
import VaultSync
import VaultCrypto
import VaultStorage

/// One version of a document, as the store keeps it in memory.
struct VersionEntry: Sendable {
    /// Metadata, with `status` left at `.current` (derived on read).
    var metadata: DocumentMetadata
    /// Position in the vault's stream.
    var sequence: UInt64
    /// Where the wrapped document key is.
    var keySlot: KeySlot
    /// The engine's reference to the record; nil until the write is
    /// acknowledged, and so invisible to readers until then.
    var reference: RecordReference?
    /// Where the content is.
    var content: ContentDescriptor
    /// The version of the vault's wrapping key that wraps its key.
    var keyVersion: UInt32 = 0

    var isAcknowledged: Bool { reference != nil }
}

/// The decrypted state of one vault, rebuilt from its stream on first use.
struct VaultState: Sendable {
    let pseudonym: StreamID
    /// The id the API shows (``StoreKeys/publicVaultID(of:)``), never the stream id.
    let vaultID: String
    let keys: VaultKeys
    /// The stream of its audit trail (``StoreKeys/auditStream(of:)``),
    /// derived once.
    let auditStream: StreamID
    /// Its tag in the statistics stream (``StatisticsWriter/tag(of:keys:)``),
    /// derived once.
    let statisticsTag: [UInt8]
    let creation: VaultCreatedBody
    /// The key slot of the vault's key (destroyed with the vault).
    var vaultKeySlot: KeySlot?
    /// Set once the creation record is acknowledged.
    var isAcknowledged: Bool
    /// The append of the creation record while it waits for its sync: a
    /// concurrent creation attempt waits on it (it always completes,
    /// acknowledged or failed) before recording its refusal in this vault.
    var creationTicket: AppendTicket?
    /// The last group appended to the vault's or its trail's stream:
    /// groups are acknowledged in order, so once it is done nothing of
    /// the vault is queued (the vault may then leave memory).
    var lastTicket: AppendTicket?
    /// The group of its newest vault event (applied as queued), for the
    /// reads that do not wait for their own entry (``AuditMode/batched``).
    var lastEventTicket: AppendTicket?
    /// The sequence number of the next record of the stream.
    var nextSequence: UInt64
    /// Keyed hash of the stream's newest record (``VaultAnchor``).
    var headHash = [UInt8](repeating: 0, count: 16)
    /// Every version of every document, by id, oldest version first.
    var documents: [DocumentID: [VersionEntry]] = [:]
    /// Authors of at least one acknowledged document.
    var authors: Set<Principal> = []
    /// Every policy change queued, oldest first, with its time and author
    /// (a vault event applies as its group is queued: ``apply(_:)``).
    var policyHistory: [(time: Date, change: PolicyChange, by: Principal)] = []
    /// The policy after every change queued.
    var policy = VaultPolicy()
    /// Professionals and organisations that accessed the vault at least once.
    var accessedBy: Set<GrantHolder> = []
    /// Hidden documents whose 2-week notice was recorded.
    var noticed: Set<DocumentID> = []
    /// Hidden documents whose automatic release was recorded.
    var autoReleased: Set<DocumentID> = []
    /// Erased documents' tombstones, by id (their versions are gone from
    /// ``documents``).
    var erased: [DocumentID: ErasedDocument] = [:]
    /// The histories of the vault in the stores it was imported from.
    var imported: [ImportedHistory] = []
    /// The key slots of the vault's rotated wrapping keys, by version (1…).
    var rotatedKeySlots: [UInt32: KeySlot] = [:]
    /// Those keys, unwrapped (the loader reads them; a rotation adds its own).
    var rotatedWrappingKeys: [UInt32: SymmetricKey] = [:]

    /// The wrapping key's version new document keys are wrapped under.
    var currentKeyVersion: UInt32 { rotatedKeySlots.keys.max() ?? 0 }

    /// The document-key wrapping key of `version`, if the vault has it.
    func documentKeyWrapping(_ version: UInt32) -> SymmetricKey? {
        version == 0 ? keys.documentKeyWrapping : rotatedWrappingKeys[version]
    }

    /// The wrapping key new document keys are wrapped under, and its version.
    func currentWrapping() throws(PatientVaultError) -> (key: SymmetricKey, version: UInt32) {
        let version = currentKeyVersion
        guard let key = documentKeyWrapping(version) else {
            throw PatientVaultError(.corrupted, "the vault's current wrapping key is missing")
        }
        return (key, version)
    }

    /// Every key slot of the vault's own keys: the vault key's and the
    /// rotated wrapping keys'.
    var vaultKeySlots: [KeySlot] { (vaultKeySlot.map { [$0] } ?? []) + rotatedKeySlots.sorted { $0.key < $1.key }.map(\.value) }
    /// Set when the vault's destruction is queued: a second destruction,
    /// racing it, is refused.
    var isBeingDestroyed = false
    /// Erased documents' confidentiality flags: their current version's,
    /// with `hiddenFromPatient` if any version was then still hidden from
    /// the patient and `hiddenFromLegalRepresentatives` if any carried it.
    var erasedConfidentiality: [DocumentID: ConfidentialityFlags] = [:]
    /// The audit chain: the next entry's sequence and the previous hash.
    var auditNext: UInt64 = 0
    var auditPreviousHash = [UInt8](repeating: 0, count: 32)

    /// The acknowledged versions of a document, with their status derived.
    func versions(of id: DocumentID) -> [DocumentMetadata] {
        let entries = (documents[id] ?? []).filter(\.isAcknowledged)
        var out: [DocumentMetadata] = []
        out.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() {
            var m = e.metadata
            if i + 1 < entries.count {
                let next = entries[i + 1].metadata
                m.status = next.replacementReason == .enteredInError
                    ? .enteredInError(correctedBy: next.version) : .superseded(by: next.version)
            }
            out.append(m)
        }
        return out
    }

    /// The newest acknowledged version's entry: its metadata is
    /// `versions(of: id).last` (the newest has no successor to set its
    /// status), found without building the others.
    func currentEntry(of id: DocumentID) -> VersionEntry? {
        documents[id]?.last(where: \.isAcknowledged)
    }

    /// The acknowledged entry of a version (the latest if `version` is nil).
    func entry(_ id: DocumentID, version: Int?) -> VersionEntry? {
        let entries = (documents[id] ?? []).filter(\.isAcknowledged)
        guard let version else { return entries.last }
        return entries.first { $0.metadata.version == version }
    }

    /// Applies a vault event: as its group is queued (``Audited/write(event:to:)``),
    /// and at load, as the log holds it.
    mutating func apply(_ body: VaultEventBody) {
        switch body.event {
        case .policy(let change):
            // Once only: a vault reloaded from disk between the write and its
            // acknowledgement already has it.
            if let last = policyHistory.last, last.time == body.time, last.change == change { return }
            policyHistory.append((body.time, change, body.by))
            policy.apply(change, at: body.time, by: body.by)
        case .firstAccess(let holder): accessedBy.insert(holder)
        case .hiddenNotice(let d): noticed.insert(d)
        case .automaticRelease(let d): autoReleased.insert(d)
        case .erased(let e):
            erased[e.id] = e.tombstone(at: body.time, by: body.by)
            erasedConfidentiality[e.id] = e.confidentiality
            documents[e.id] = nil
            // As a load from disk rebuilds it (from the documents left): an
            // author of nothing left here has no author's rights.
            authors = Set(documents.values.lazy.flatMap { $0.lazy.filter(\.isAcknowledged).map(\.metadata.author) })
        case .imported(let history):
            guard !imported.contains(history) else { return }
            imported.append(history)
            // An export holds what the patient saw: a version hidden from
            // them in it had been released in its source store (by its
            // author, or by the month). Released here from the import on
            // (the vault held nothing else then), or it would be hidden
            // from them again for up to a month. At the import's time: a
            // version dated later (a source whose clock ran ahead) is not
            // covered, and stays hidden as a new one would (a release set
            // in the future would uncover versions deposited here before
            // it).
            let hidden = documents.filter { $0.value.contains { $0.metadata.confidentiality.contains(.hiddenFromPatient) } }
            for id in hidden.keys.sorted(by: { $0.description < $1.description }) {
                let change = PolicyChange.releaseToPatient(id)
                policyHistory.append((body.time, change, body.by))
                policy.apply(change, at: body.time, by: body.by)
            }
        case .keyRotated(let version, let slot):
            rotatedKeySlots[version] = slot
        }
    }

    /// Whether an erased document is hidden, at `time`, from the patient
    /// or, for a representative, from representatives too. Its tombstone
    /// keeps `INVISIBLE_PATIENT` when a version was still hidden from the
    /// patient at the erasure (a release of an earlier version does not
    /// cover a later one), and `INVISIBLE_REPRESENTANTS_LEGAUX` when any
    /// version carried it. From the patient, only for the month the law
    /// hides a document (CSP R1111-53), counted from the erasure: the
    /// hidden period began before it, so it has ended by then.
    func erasedIsHidden(_ id: DocumentID, fromRepresentative: Bool, at time: Date) -> Bool {
        let flags = erasedConfidentiality[id] ?? []
        let hiddenFromPatient = flags.contains(.hiddenFromPatient)
            && erased[id].map { time < $0.erasedAt.addingTimeInterval(AccessPolicy.hiddenDocumentReleaseDelay) } ?? true
        return hiddenFromPatient || (fromRepresentative && flags.contains(.hiddenFromLegalRepresentatives))
    }

    /// The policy in force at `time` (replaying the history up to it).
    func policy(at time: Date) -> VaultPolicy {
        var p = VaultPolicy()
        for (t, change, by) in policyHistory where t <= time { p.apply(change, at: t, by: by) }
        return p
    }

    /// When the document's current period of being hidden from the patient
    /// began, among its acknowledged versions up to `version` (all if nil):
    /// the deposit of the first hidden version of the unbroken run of hidden
    /// versions that ends with it, not counting versions a release covers.
    /// The one month (CSP R1111-53) counts from there, whatever replaced it
    /// since; a version deposited visible, or a release, ends a period.
    func hiddenSince(_ id: DocumentID, upTo version: Int? = nil) -> Date? {
        let released = policy.released[id]
        var since: Date?
        for e in documents[id] ?? [] where e.isAcknowledged && (version.map { e.metadata.version <= $0 } ?? true) {
            let m = e.metadata
            if !m.confidentiality.contains(.hiddenFromPatient) || released.map({ $0 >= m.depositedAt }) == true {
                since = nil
            } else if since == nil {
                since = m.depositedAt
            }
        }
        return since
    }

    /// Whether version `m` is hidden from the patient at `time`: flagged
    /// ``ConfidentialityFlags/hiddenFromPatient``, not covered by a
    /// release, and within the month of its hidden period (CSP R1111-53),
    /// as ``AccessPolicy`` judges the holder's read.
    func isHiddenFromPatient(_ m: DocumentMetadata, at time: Date) -> Bool {
        guard m.confidentiality.contains(.hiddenFromPatient) else { return false }
        if let released = policy.released[m.id], released >= m.depositedAt { return false }
        let since = hiddenSince(m.id, upTo: m.version) ?? m.depositedAt
        return time < since.addingTimeInterval(AccessPolicy.hiddenDocumentReleaseDelay)
    }

    /// The current versions of documents as they were at `time`.
    func documents(at time: Date) -> [DocumentMetadata] {
        var out: [DocumentMetadata] = []
        for id in documents.keys {
            let versions = self.versions(of: id).filter { $0.depositedAt <= time }
            if let last = versions.last { out.append(last) }
        }
        return out
    }
}

/// The lock around one vault's state. Writers take it to assign a stream
/// position and queue their record (synchronously); they wait for
/// durability outside it, so group commit batches writers of one vault too.
final class VaultHandle: Sendable {
    let pseudonym: StreamID
    /// nil until loaded; stays nil for a vault that does not exist.
    let state = Locked<VaultState?>(nil)
    /// Set, under `state`'s lock, when eviction removes this handle from
    /// the store's map: a caller that finds it set takes the lock of the
    /// vault's new handle instead, so one vault never has two live states.
    let retired = Atomic<Bool>(false)
    /// Held while the vault loads from the engine (``VaultCache``), so
    /// that it loads once however many callers want it, without holding
    /// `state`; the callers waiting are suspended, not blocked.
    let loading = AsyncGate()

    init(pseudonym: StreamID) { self.pseudonym = pseudonym }
}
