import Foundation
import Synchronization
import VaultSync
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Decisions

    /// Builds the request the decision sees for `vault` at `time`.
    func request(
        _ action: VaultAction, by principal: Principal, purpose: AccessPurpose = .care, vault: VaultState,
        document: DocumentMetadata? = nil, category: DocumentCategory? = nil, time: Date, policy: VaultPolicy? = nil
    ) -> AccessRequest {
        AccessRequest(
            action: action, principal: principal, purpose: purpose, holder: vault.creation.holder,
            policy: policy ?? vault.policy, document: document,
            // Only a version hidden from the patient needs its period (a walk
            // of the document's versions, on every listing's decisions).
            hiddenSince: document.flatMap {
                $0.confidentiality.contains(.hiddenFromPatient) ? vault.hiddenSince($0.id, upTo: $0.version) : nil
            },
            category: category,
            principalAuthoredAny: vault.authors.contains(principal),
            isConfiguredReviewer: configuration.isConfiguredReviewer(principal), matrix: configuration.accessMatrix, time: time)
    }

    /// Whether `principal` may see `document` (its metadata) at `time`: the
    /// one visibility rule of listings, counts, the trail and the access
    /// history. A document they may not see does not exist for them.
    func sees(
        _ document: DocumentMetadata, as principal: Principal, purpose: AccessPurpose = .care, in vault: VaultState, at time: Date
    ) -> Bool {
        AccessPolicy.decide(request(.readMetadata, by: principal, purpose: purpose, vault: vault, document: document, time: time)).isAllowed
    }

    /// Checks a version number a caller asked for (stored as 32 bits, from 1).
    static func validate(version: Int?) throws(PatientVaultError) {
        if let version, !Limits.versions.contains(version) {
            throw PatientVaultError(.invalidArgument, "a version number is 1 to \(UInt32.max)")
        }
    }

    /// An operation with no work outside the vault's lock, through the
    /// ``OperationPipeline`` (which commits its one entry). `document`: the
    /// document the call names, which a refusal for bad input names too
    /// (so that whoever may not see that document does not see the entry).
    func audited<R>(
        _ action: VaultAction, _ patient: INS, by principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false,
        asSystem: Bool = false, document: DocumentID? = nil, _ body: (inout VaultState, Date) throws -> Audited<R>
    ) async throws(PatientVaultError) -> R {
        try await pipeline.run(
            action,
            Caller(patient: patient, principal: principal, purpose: purpose, secret: secret, asSystem: asSystem, document: document),
            decide: body)
    }
}

extension Configuration {
    /// Whether `principal` is a reviewer this store was configured with.
    func isConfiguredReviewer(_ principal: Principal) -> Bool {
        if case .auditReviewer(let r) = principal { return auditReviewers.contains(r) }
        return false
    }
}
