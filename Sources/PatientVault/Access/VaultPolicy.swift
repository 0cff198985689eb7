import Foundation

/// Someone the patient may authorise: a professional (by RPPS) or an
/// organisation (by FINESS).
public enum GrantHolder: Hashable, Sendable, CustomStringConvertible {
    /// A health professional.
    case professional(RPPSNumber)
    /// An organisation.
    case organisation(FINESSNumber)

    /// The grant holder a principal would use, if it can hold one.
    public init?(_ principal: Principal) {
        switch principal {
        case .professional(let p), .emergencyRegulator(let p): self = .professional(p.rpps)
        case .organisation(let o): self = .organisation(o.finess)
        default: return nil
        }
    }

    /// Public register numbers only.
    public var description: String {
        switch self {
        case .professional(let r): return r.description
        case .organisation(let f): return f.description
        }
    }
}

/// A patient's authorisation of a professional or organisation.
public struct Grant: Hashable, Sendable {
    /// Who is authorised (a professional, with profession, or an organisation).
    public var grantee: Principal
    /// When it was given.
    public var since: Date
    /// When it ends by itself, if it does.
    public var until: Date?
    /// When it was revoked, if it was.
    public var revokedAt: Date?
    /// Whether a legal representative gave it: such a grant does not open
    /// documents hidden from legal representatives.
    public var grantedByRepresentative = false

    /// Whether it authorises at `time`.
    public func isActive(at time: Date) -> Bool {
        time >= since && (until.map { time < $0 } ?? true) && (revokedAt.map { time < $0 } ?? true)
    }
}

/// A change to who may access a vault, kept as a record in the vault's
/// append-only history (so the state at any past time can be rebuilt).
public enum PolicyChange: Hashable, Sendable {
    /// Authorises a professional or organisation (any other principal is
    /// refused as `invalidArgument`), optionally until a time.
    case authorise(Principal, until: Date?)
    /// Revokes an authorisation.
    case revoke(GrantHolder)
    /// Blocks a professional: no access, whatever else allows it.
    case block(RPPSNumber)
    /// Lifts a block.
    case unblock(RPPSNumber)
    /// Designates (or, with nil, removes) the médecin traitant.
    case setMedecinTraitant(HealthProfessional?)
    /// Adds a professional to the care team.
    case addToCareTeam(HealthProfessional)
    /// Removes a professional from the care team.
    case removeFromCareTeam(RPPSNumber)
    /// Names a legal representative.
    case nameRepresentative(LegalRepresentative)
    /// Removes a legal representative.
    case removeRepresentative(INS)
    /// Opposes (true) or allows (false) break-glass access in advance.
    case setBreakGlassOpposition(Bool)
    /// The author releases a document hidden from the patient (after
    /// announcing its result in person).
    case releaseToPatient(DocumentID)
    /// Closes the vault: read-only for its retention period.
    case closeVault(ClosureReason)
    /// Reopens a closed vault, during its retention period.
    case reopenVault
    /// After the patient's death, gives an heir (by their INS) read access,
    /// on their request.
    case authoriseHeir(INS)

    /// The audited action of this change.
    var action: VaultAction {
        switch self {
        case .authorise: return .authorise
        case .revoke: return .revoke
        case .block: return .block
        case .unblock: return .unblock
        case .setMedecinTraitant: return .setMedecinTraitant
        case .addToCareTeam, .removeFromCareTeam: return .updateCareTeam
        case .nameRepresentative: return .nameRepresentative
        case .removeRepresentative: return .removeRepresentative
        case .setBreakGlassOpposition: return .setBreakGlassOpposition
        case .releaseToPatient: return .releaseToPatient
        case .closeVault(.patientRequest): return .closeVault
        case .closeVault(.death): return .recordDeath
        case .reopenVault: return .reopenVault
        case .authoriseHeir: return .authoriseHeir
        }
    }
}

/// Who may access a vault at one time: the result of replaying its policy
/// changes up to that time.
public struct VaultPolicy: Hashable, Sendable {
    /// Authorisations, current and past (revoked or expired ones stay, so
    /// denials can say why).
    public var grants: [GrantHolder: Grant] = [:]
    /// Blocked professionals.
    public var blocked: Set<RPPSNumber> = []
    /// The patient's registered GP.
    public var medecinTraitant: HealthProfessional?
    /// The care team, by RPPS.
    public var careTeam: [RPPSNumber: HealthProfessional] = [:]
    /// Named legal representatives, by their INS.
    public var representatives: [INS: LegalRepresentative] = [:]
    /// Whether the patient opposed break-glass in advance.
    public var breakGlassOpposed = false
    /// Documents hidden from the patient that their author released, and when.
    public var released: [DocumentID: Date] = [:]
    /// Care-team members a legal representative added (they do not see
    /// documents hidden from legal representatives).
    public var careTeamAddedByRepresentative: Set<RPPSNumber> = []
    /// Whether a legal representative designated the current médecin
    /// traitant (who then does not see documents hidden from legal representatives).
    public var medecinTraitantSetByRepresentative = false
    /// The vault's closure, while it is closed.
    public var closure: VaultClosure?
    /// Heirs given read access after the patient's death, by INS (cleared
    /// when the vault is reopened).
    public var heirs: Set<INS> = []

    /// Creates an empty policy: nobody but the patient.
    public init() {}

    /// Applies one change made at `time` (the store replays a vault's
    /// changes this way; hosts may too, to build a policy for
    /// ``AccessPolicy/decide(_:)``). It does not validate the change.
    /// `actor` is who made it: designations by a legal representative do
    /// not open documents hidden from legal representatives.
    public mutating func apply(_ change: PolicyChange, at time: Date, by actor: Principal? = nil) {
        let byRepresentative: Bool = if case .representative = actor { true } else { false }
        switch change {
        case .authorise(let grantee, let until):
            if let holder = GrantHolder(grantee) {
                grants[holder] = Grant(
                    grantee: grantee, since: time, until: until, revokedAt: nil, grantedByRepresentative: byRepresentative)
            }
        case .revoke(let holder): grants[holder]?.revokedAt = time
        case .block(let r): blocked.insert(r)
        case .unblock(let r): blocked.remove(r)
        case .setMedecinTraitant(let r):
            medecinTraitant = r
            medecinTraitantSetByRepresentative = r != nil && byRepresentative
        case .addToCareTeam(let p):
            careTeam[p.rpps] = p
            if byRepresentative { careTeamAddedByRepresentative.insert(p.rpps) } else { careTeamAddedByRepresentative.remove(p.rpps) }
        case .removeFromCareTeam(let r):
            careTeam[r] = nil
            careTeamAddedByRepresentative.remove(r)
        case .nameRepresentative(let r): representatives[r.ins] = r
        case .removeRepresentative(let i): representatives[i] = nil
        case .setBreakGlassOpposition(let b): breakGlassOpposed = b
        case .releaseToPatient(let d): released[d] = time
        case .closeVault(let reason): closure = VaultClosure(reason: reason, closedAt: time, closedBy: actor)
        case .reopenVault:
            closure = nil
            heirs = []
        case .authoriseHeir(let i): heirs.insert(i)
        }
    }

    /// Checks what can be checked of `change` without the vault's state:
    /// done before the access decision (bad input is refused with its own
    /// audit entry, rule ``AccessRule/invalidRequest``).
    static func validateInput(_ change: PolicyChange, at time: Date, holder: INS) throws(PatientVaultError) {
        func invalid(_ m: String) -> PatientVaultError { PatientVaultError(.invalidArgument, m) }
        switch change {
        case .authorise(let grantee, let until):
            guard GrantHolder(grantee) != nil else {
                throw invalid("only professionals and organisations can be authorised")
            }
            if let until, !Limits.isStorable(until) { throw invalid("the expiry is not \(Limits.dateRangeDescription)") }
            if let until, until <= time { throw invalid("the authorisation would expire in the past") }
        case .setMedecinTraitant(let p):
            if let p, p.profession != .doctor { throw invalid("the médecin traitant is a doctor") }
        case .nameRepresentative(let r):
            if r.ins == holder { throw invalid("the patient cannot be their own representative") }
        case .authoriseHeir(let i):
            if i == holder { throw invalid("the patient is not their own heir") }
        default:
            break
        }
    }

    /// Checks that `change` makes sense in this state; throws
    /// `invalidArgument` if not. Done after the access decision, so that
    /// only those allowed to change the policy learn about its state.
    func validate(
        _ change: PolicyChange, at time: Date, document: DocumentMetadata?, retainedUntil: Date? = nil
    ) throws(PatientVaultError) {
        func invalid(_ m: String) -> PatientVaultError { PatientVaultError(.invalidArgument, m) }
        switch change {
        case .authorise:
            break
        case .revoke(let holder):
            guard let g = grants[holder], g.isActive(at: time) else { throw invalid("there is no active authorisation to revoke") }
        case .block(let r):
            if medecinTraitant?.rpps == r { throw invalid("the médecin traitant cannot be blocked") }
            if blocked.contains(r) { throw invalid("this professional is already blocked") }
        case .unblock(let r):
            if !blocked.contains(r) { throw invalid("this professional is not blocked") }
        case .setMedecinTraitant(let r):
            if let r, blocked.contains(r.rpps) { throw invalid("a blocked professional cannot be the médecin traitant; unblock first") }
        case .addToCareTeam(let p):
            if careTeam[p.rpps] != nil { throw invalid("already in the care team") }
        case .removeFromCareTeam(let r):
            if careTeam[r] == nil { throw invalid("not in the care team") }
        case .nameRepresentative(let r):
            if representatives[r.ins] != nil { throw invalid("already a representative") }
        case .removeRepresentative(let i):
            if representatives[i] == nil { throw invalid("not a representative") }
        case .setBreakGlassOpposition:
            break
        case .releaseToPatient(let d):
            // A release covers the versions deposited before it: a version
            // deposited hidden again after it needs a release of its own.
            if let r = released[d], r >= (document?.depositedAt ?? .distantFuture) {
                throw invalid("the document was already released")
            }
            if document?.confidentiality.contains(.hiddenFromPatient) != true { throw invalid("the document is not hidden from the patient") }
        case .closeVault:
            // A closed vault refuses this in the decision (`vaultClosed`).
            break
        case .reopenVault:
            guard closure != nil else { throw invalid("the vault is not closed") }
            if let retainedUntil, time >= retainedUntil {
                throw PatientVaultError(.conflict, "the vault's retention period has ended: it can only be destroyed")
            }
        case .authoriseHeir(let i):
            guard closure?.reason == .death else { throw invalid("heirs are given access to the vault of a deceased patient only") }
            if heirs.contains(i) { throw invalid("this heir already has access") }
        }
    }
}
