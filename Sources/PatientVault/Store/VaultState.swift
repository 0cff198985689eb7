import Foundation
import Synchronization
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
    /// Where the record is; nil until the write is acknowledged, and so
    /// invisible to readers until then.
    var location: RecordLocation?
    /// Where the content is.
    var content: ContentDescriptor

    var isAcknowledged: Bool { location != nil }
}

/// The decrypted state of one vault, rebuilt from its stream on first use.
struct VaultState: Sendable {
    let pseudonym: StreamID
    let keys: VaultKeys
    let creation: VaultCreatedBody
    /// Set once the creation record is acknowledged.
    var isAcknowledged: Bool
    /// The sequence number of the next record of the stream.
    var nextSequence: UInt64
    /// Every version of every document, by id, oldest version first.
    var documents: [DocumentID: [VersionEntry]] = [:]
    /// Authors of at least one acknowledged document.
    var authors: Set<Principal> = []

    var vaultID: String { hexEncoded(pseudonym.bytes) }

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

    /// The acknowledged entry of a version (the latest if `version` is nil).
    func entry(_ id: DocumentID, version: Int?) -> VersionEntry? {
        let entries = (documents[id] ?? []).filter(\.isAcknowledged)
        guard let version else { return entries.last }
        return entries.first { $0.metadata.version == version }
    }

    func accessContext(for principal: Principal) -> VaultAccessContext {
        VaultAccessContext(holder: creation.holder, principalAuthoredAny: authors.contains(principal))
    }
}

/// The lock around one vault's state. Writers take it to assign a stream
/// position and queue their record (synchronously); they wait for
/// durability outside it, so group commit batches writers of one vault too.
final class VaultHandle: Sendable {
    let pseudonym: StreamID
    /// nil until loaded; stays nil for a vault that does not exist.
    let state = Mutex<VaultState?>(nil)

    init(pseudonym: StreamID) { self.pseudonym = pseudonym }
}
