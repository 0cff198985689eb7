import Foundation
import VaultStorage

extension VaultStore {
    // MARK: - Managing access

    // Every policy call names the person it concerns as a `Principal`, the
    // type that names them everywhere else; a principal of the wrong kind
    // for the call is refused as `invalidArgument` (and audited, rule
    // `invalidRequest`, like any refusal on an existing vault). Each takes
    // `secret`: the holder's secret access (`CONNEXION_SECRETE`), its entry
    // left out of representatives' view of the trail.

    /// Authorises a professional or organisation to access the vault,
    /// optionally until `until`.
    /// - Parameters:
    ///   - grantee: a professional (`.professional`) or an organisation (`.organisation`).
    ///   - until: when the authorisation ends; nil for no end.
    ///   - patient: whose vault.
    ///   - principal: who acts: the patient or a named representative.
    ///   - secret: a secret access by the patient (hidden from
    ///     representatives' view of the trail); every policy call takes it.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` (another kind of
    ///   principal, an expiry in the past), ``PatientVaultError/Code/accessDenied``
    ///   (only the patient or a representative); either is audited.
    public func authorise(_ grantee: Principal, until: Date? = nil, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.authorise, for: patient, as: principal, secret: secret) { .authorise(grantee, until: until) }
    }

    /// Revokes the authorisation of a professional or organisation.
    public func revoke(_ grantee: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.revoke, for: patient, as: principal, secret: secret) {
            guard let holder = GrantHolder(grantee) else {
                throw PatientVaultError(.invalidArgument, "only professionals and organisations hold authorisations")
            }
            return .revoke(holder)
        }
    }

    /// Blocks a professional (the médecin traitant cannot be blocked).
    public func block(_ professional: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.block, for: patient, as: principal, secret: secret) { .block(try Self.professional(professional).rpps) }
    }

    /// Lifts a block.
    public func unblock(_ professional: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.unblock, for: patient, as: principal, secret: secret) { .unblock(try Self.professional(professional).rpps) }
    }

    /// Designates the médecin traitant, a doctor (nil removes the designation).
    public func setMedecinTraitant(_ doctor: Principal?, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.setMedecinTraitant, for: patient, as: principal, secret: secret) {
            .setMedecinTraitant(try doctor.map { p throws(PatientVaultError) in try Self.professional(p) })
        }
    }

    /// Adds a professional to the care team.
    public func addToCareTeam(_ professional: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.updateCareTeam, for: patient, as: principal, secret: secret) { .addToCareTeam(try Self.professional(professional)) }
    }

    /// Removes a professional from the care team.
    public func removeFromCareTeam(_ professional: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.updateCareTeam, for: patient, as: principal, secret: secret) { .removeFromCareTeam(try Self.professional(professional).rpps) }
    }

    /// Names a legal representative of the patient (`.representative`).
    public func nameRepresentative(_ representative: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.nameRepresentative, for: patient, as: principal, secret: secret) {
            .nameRepresentative(try Self.representative(representative))
        }
    }

    /// Removes a legal representative (`.representative`; the relationship
    /// it carries is not compared).
    public func removeRepresentative(_ representative: Principal, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.removeRepresentative, for: patient, as: principal, secret: secret) {
            .removeRepresentative(try Self.representative(representative).ins)
        }
    }

    /// The professional a policy call concerns.
    private static func professional(_ p: Principal) throws(PatientVaultError) -> HealthProfessional {
        guard let professional = p.healthProfessional else {
            throw PatientVaultError(.invalidArgument, "this call concerns a health professional (.professional)")
        }
        return professional
    }

    /// The representative a policy call concerns.
    private static func representative(_ p: Principal) throws(PatientVaultError) -> LegalRepresentative {
        guard case .representative(let r) = p else {
            throw PatientVaultError(.invalidArgument, "this call concerns a legal representative (.representative)")
        }
        return r
    }

    /// Opposes (true) or allows (false) break-glass access in advance.
    public func setBreakGlassOpposition(_ opposed: Bool, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.setBreakGlassOpposition, for: patient, as: principal, secret: secret) { .setBreakGlassOpposition(opposed) }
    }

    /// The author releases a document hidden from the patient, after
    /// announcing its result in person.
    /// - Throws: ``PatientVaultError/Code/unknownDocument`` if the principal
    ///   may not see it, ``PatientVaultError/Code/accessDenied`` if not the author.
    public func releaseToPatient(_ document: DocumentID, for patient: INS, as principal: Principal, secret: Bool = false) async throws(PatientVaultError) {
        try await change(.releaseToPatient, for: patient, as: principal, secret: secret, document: document) { .releaseToPatient(document) }
    }

    /// Applies one policy change through the pipeline: the change is made
    /// from the caller's arguments and checked (bad input is a refusal,
    /// audited), decided, then its record and its audit entry go in one
    /// durable commit.
    func change(
        _ action: VaultAction, for patient: INS, as principal: Principal, secret: Bool = false, document: DocumentID? = nil,
        _ make: () throws -> PolicyChange
    ) async throws(PatientVaultError) {
        try await audited(action, patient, by: principal, secret: secret, document: document) { vault, now in
            let change = try make()
            try VaultPolicy.validateInput(change, at: now, holder: vault.creation.holder)
            var document: DocumentMetadata?
            if case .releaseToPatient(let id) = change {
                guard let current = vault.versions(of: id).last,
                      sees(current, as: principal, in: vault, at: now)
                else {
                    return Audited<Void>(
                        action: .releaseToPatient, decision: .deny(.unknownDocument), document: id, isWrite: true,
                        result: .failure(PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: id)))
                }
                document = current
            }
            let decision = AccessPolicy.decide(request(change.action, by: principal, vault: vault, document: document, time: now))
            var a = Audited<Void>(
                action: change.action, decision: decision, document: document?.id, version: document?.version,
                target: Self.target(of: change), isWrite: true, result: .success(()))
            guard decision.isAllowed else { return a }
            let retainedUntil = vault.policy.closure.map {
                VaultClosure.retainedUntil($0.closedAt, years: configuration.closedVaultRetentionYears)
            }
            try vault.policy.validate(change, at: now, document: document, retainedUntil: retainedUntil)
            try a.write(event: VaultEventBody(time: now, by: principal, event: .policy(change)), to: vault)
            // A closure or a reopening also goes into the store's lifecycle
            // stream, in the same atomic group: the index of closed vaults
            // that destroyExpiredVaults(at:) walks.
            let lifecycleRecord: LifecycleRecord? = switch change {
            case .closeVault(let reason): .closed(vault: vault.pseudonym, at: now, reason: reason)
            case .reopenVault: .reopened(vault: vault.pseudonym)
            default: nil
            }
            if let lifecycleRecord {
                a.records.append(try lifecycleRecord.sealed(keys: keys))
                // The store's index changes with the vault's state, as the
                // group is queued: a reopening decided while the closure
                // waits for its sync is indexed after it, never before.
                let index = pipeline.lifecycleIndex
                let applyEvent = a.onQueued
                a.onQueued = { v in
                    applyEvent?(&v)
                    index.apply(lifecycleRecord)
                }
            }
            a.notifications = [.authorisationChanged(change.action)]
            a.notificationsHiddenFromRepresentatives = document?.confidentiality.contains(.hiddenFromLegalRepresentatives) ?? false
            return a
        }
    }

    /// What an audit entry says a change was about: public register
    /// numbers, never an INS.
    static func target(of change: PolicyChange) -> String? {
        switch change {
        case .authorise(let p, _): return GrantHolder(p)?.description
        case .revoke(let h): return h.description
        case .block(let r), .unblock(let r), .removeFromCareTeam(let r): return r.description
        case .setMedecinTraitant(let p): return p?.rpps.description ?? "none"
        case .addToCareTeam(let p): return p.rpps.description
        case .nameRepresentative, .removeRepresentative: return "representative"
        case .setBreakGlassOpposition(let b): return b ? "opposed" : "allowed"
        case .releaseToPatient, .reopenVault: return nil
        case .closeVault(let reason): return reason.rawValue
        // An INS never goes into an entry.
        case .authoriseHeir: return "heir"
        }
    }

    // MARK: - Who could access, when

    /// Who could read a document at `time`: the patient, representatives,
    /// the médecin traitant, the care team, authorised professionals and
    /// organisations, the author, and heirs given access to a vault closed
    /// on death, each with the rule that allowed them,
    /// as the policy stood then. Break-glass, which anyone may attempt, is
    /// not listed. Before the document's first version was deposited, the
    /// answer is empty; so is it when the version current at `time` is one
    /// the asker may not see (an older version's flags hide it from them).
    /// Audited; for the patient, representatives and reviewers.
    /// - Throws: ``PatientVaultError/Code/unknownDocument`` if the asker
    ///   cannot see the document now (whether or not it exists).
    public func whoCouldRead(
        _ document: DocumentID, at time: Date, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> [(principal: Principal, rule: AccessRule)] {
        try await audited(.queryAccessHistory, patient, by: principal, secret: secret, document: document) { vault, now in
            var a = Audited<[(principal: Principal, rule: AccessRule)]>(
                action: .queryAccessHistory, decision: AccessPolicy.decide(request(.queryAccessHistory, by: principal, vault: vault, time: now)),
                document: document, result: .success([]))
            guard a.decision.isAllowed else { return a }
            // The asker must be able to see the document now, or it does not exist for them.
            let visibleNow = vault.versions(of: document).last.map {
                configuration.isConfiguredReviewer(principal)
                    || sees($0, as: principal, in: vault, at: now)
            } ?? false
            guard visibleNow else {
                // Refused, and recorded as refused: the entry must not say
                // allowed for an answer the asker did not get.
                return Audited(
                    action: .queryAccessHistory, decision: .deny(.unknownDocument), document: document,
                    result: .failure(PatientVaultError(.unknownDocument, "no such document", vaultID: vault.vaultID, documentID: document)))
            }
            // Before its first version was deposited, nobody could read it.
            guard let then = vault.versions(of: document).last(where: { $0.depositedAt <= time }) else { return a }
            // Nor of a version the asker may not see (an older version
            // hidden from them): who could read it is what its flags hide.
            guard configuration.isConfiguredReviewer(principal) || sees(then, as: principal, in: vault, at: now) else { return a }
            let policy = vault.policy(at: time)
            var candidates: [Principal] = [.patient(vault.creation.holder), then.author]
            candidates += policy.representatives.values.map { .representative($0) }
            candidates += policy.grants.values.map(\.grantee)
            candidates += policy.careTeam.values.map { .professional($0) }
            if let mt = policy.medecinTraitant { candidates.append(.professional(mt)) }
            // Heirs read once the vault is closed on death.
            candidates += policy.heirs.sorted { $0.description < $1.description }.map { .patient($0) }
            var seen = Set<Principal>()
            var out: [(principal: Principal, rule: AccessRule)] = []
            for c in candidates where seen.insert(c).inserted {
                let d = AccessPolicy.decide(request(.readContent, by: c, vault: vault, document: then, time: time, policy: policy))
                if d.isAllowed { out.append((c, d.rule)) }
            }
            a.result = .success(out)
            return a
        }
    }

    /// Which documents a principal could read at `time` (current versions
    /// then), with the rule that allowed each: identifiers and categories,
    /// not titles. Documents the asker may not see now, and versions they
    /// may not see, are left out.
    /// Audited; for the patient, representatives and reviewers.
    public func whatCouldRead(
        _ reader: Principal, at time: Date, for patient: INS, as principal: Principal, secret: Bool = false
    ) async throws(PatientVaultError) -> [(document: DocumentID, version: Int, category: DocumentCategory, rule: AccessRule)] {
        try await audited(.queryAccessHistory, patient, by: principal, secret: secret) { vault, now in
            var a = Audited<[(document: DocumentID, version: Int, category: DocumentCategory, rule: AccessRule)]>(
                action: .queryAccessHistory, decision: AccessPolicy.decide(request(.queryAccessHistory, by: principal, vault: vault, time: now)),
                target: GrantHolder(reader)?.description, result: .success([]))
            guard a.decision.isAllowed else { return a }
            let policy = vault.policy(at: time)
            var out: [(document: DocumentID, version: Int, category: DocumentCategory, rule: AccessRule)] = []
            for then in vault.documents(at: time) {
                if !configuration.isConfiguredReviewer(principal) {
                    // The document now, and the version then (an older
                    // version passes on its own flags).
                    guard let current = vault.versions(of: then.id).last,
                          sees(current, as: principal, in: vault, at: now),
                          then.version == current.version || sees(then, as: principal, in: vault, at: now)
                    else { continue }
                }
                let d = AccessPolicy.decide(request(.readContent, by: reader, vault: vault, document: then, time: time, policy: policy))
                if d.isAllowed { out.append((then.id, then.version, then.category, d.rule)) }
            }
            a.result = .success(out.sorted { $0.document.bytes.lexicographicallyPrecedes($1.document.bytes) })
            return a
        }
    }
}
