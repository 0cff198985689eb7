import Foundation

/// Why a vault was closed (DOMAIN.md "Vault lifecycle").
public enum ClosureReason: String, Hashable, Sendable, CaseIterable {
    /// The patient (or a representative) asked for it.
    case patientRequest
    /// The patient died (recorded by a doctor).
    case death
}

/// A vault's closure: read-only from ``closedAt`` for the store's
/// retention period (``Configuration/closedVaultRetentionYears``, 10 years
/// by default, CSP L1111-18), then destroyable.
public struct VaultClosure: Hashable, Sendable {
    /// Why.
    public var reason: ClosureReason
    /// When.
    public var closedAt: Date
    /// Who closed it; nil in ``VaultStore/vaultInfo(for:as:purpose:secret:)``'s
    /// answer to anyone but the patient, their representatives and
    /// reviewers when a representative closed it (another person's INS).
    public var closedBy: Principal?

    /// A closure as the store records it.
    public init(reason: ClosureReason, closedAt: Date, closedBy: Principal?) {
        self.reason = reason
        self.closedAt = closedAt
        self.closedBy = closedBy
    }

    /// The end of the retention of a vault closed at `closedAt`: `years`
    /// calendar years later (Gregorian calendar, UTC), to the second.
    static func retainedUntil(_ closedAt: Date, years: Int) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(byAdding: .year, value: years, to: closedAt) ?? .distantFuture
    }
}

/// What remains of a destroyed vault: its tombstone. Its keys are
/// destroyed, so none of its records (documents, events, audit trail)
/// opens any more.
public struct DestroyedVault: Hashable, Sendable {
    /// The vault's public id (as ``VaultInfo/vaultID`` showed it).
    public var vaultID: String
    /// When it was created.
    public var createdAt: Date
    /// When it was closed, and why.
    public var closedAt: Date
    /// Why it was closed.
    public var reason: ClosureReason
    /// When it was destroyed.
    public var destroyedAt: Date
    /// Who destroyed it (a configured reviewer, or the store's own job).
    public var destroyedBy: Principal
}
