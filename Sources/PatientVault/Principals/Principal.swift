/// Who acts on a vault. Every operation takes the acting principal; the
/// access decision and (later) the audit trail are about it.
public enum Principal: Hashable, Sendable, CustomStringConvertible {
    /// The patient, holder of the vault.
    case patient(INS)
    /// A health professional, identified by RPPS, with a profession.
    case professional(HealthProfessional)
    /// An organisation (hospital, clinic, pharmacy...), identified by FINESS.
    case organisation(Organisation)
    /// The national health insurer, a system principal. It deposits the
    /// reimbursement history and may never read (CSP L1111-18).
    case insurer(SystemPrincipal)

    /// A log-safe description: professionals and organisations by their
    /// public register number, the patient never by INS.
    public var description: String {
        switch self {
        case .patient: return "patient"
        case .professional(let p): return "professional(\(p.profession.rawValue), \(p.rpps))"
        case .organisation(let o): return "organisation(\(o.kind.rawValue), \(o.finess))"
        case .insurer(let s): return "insurer(\(s.identifier))"
        }
    }
}

/// A health professional.
public struct HealthProfessional: Hashable, Sendable {
    /// RPPS number.
    public var rpps: RPPSNumber
    /// Profession, as in the access matrix.
    public var profession: Profession
    /// Optional speciality (e.g. "psychiatrie"), as a code or label.
    public var speciality: String?

    /// Creates a professional.
    public init(rpps: RPPSNumber, profession: Profession, speciality: String? = nil) {
        self.rpps = rpps
        self.profession = profession
        self.speciality = speciality
    }
}

/// The professions of the 2023 access matrix (arrêté of 26 October 2023).
public enum Profession: String, Hashable, Sendable, CaseIterable {
    case doctor
    case pharmacist
    case dentist
    case midwife
    case nurse
    case physiotherapist
    case podiatrist
    case occupationalTherapist
    case psychomotorTherapist
    case speechTherapist
    case orthoptist
    case radiographer
    case medicalLaboratoryTechnician
    case hearingAidSpecialist
    case optician
    case orthotistProsthetist
    case dietitian
    case pharmacyTechnician
    case paramedic
}

/// An organisation that deposits documents.
public struct Organisation: Hashable, Sendable {
    /// FINESS number.
    public var finess: FINESSNumber
    /// What kind of organisation it is.
    public var kind: OrganisationKind

    /// Creates an organisation.
    public init(finess: FINESSNumber, kind: OrganisationKind) {
        self.finess = finess
        self.kind = kind
    }
}

/// Kinds of organisation.
public enum OrganisationKind: String, Hashable, Sendable, CaseIterable {
    case hospital
    case clinic
    case pharmacy
    case laboratory
    case medicalCentre
    case other
}

/// A system principal (the insurer's systems, for instance).
public struct SystemPrincipal: Hashable, Sendable {
    /// A short identifier: 1 to 64 characters among letters, digits, `.`, `_` and `-`.
    public let identifier: String

    /// Validates the identifier.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    public init(_ identifier: String) throws(PatientVaultError) {
        let ok = (1...64).contains(identifier.utf8.count) && identifier.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
        }
        guard ok else {
            throw PatientVaultError(.invalidIdentifier, "a system principal id is 1-64 characters of [A-Za-z0-9._-]")
        }
        self.identifier = identifier
    }
}

/// How a vault came to be created (the seeds count vaults by channel).
public enum CreationChannel: String, Hashable, Sendable, CaseIterable {
    /// The patient, online.
    case patientOnline
    /// At a pharmacy counter (a pharmacist, or the pharmacy's system).
    case pharmacy
    /// By an agent of the health insurer.
    case insurerAgent
    /// By a health professional.
    case healthProfessional
    /// By an establishment (hospital, clinic).
    case establishment
}
