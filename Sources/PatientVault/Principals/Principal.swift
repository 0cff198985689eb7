/// Who acts on a vault. Every operation takes the acting principal; the
/// access decision and the audit trail are about it.
public enum Principal: Hashable, Sendable, CustomStringConvertible {
    /// The patient, holder of the vault.
    case patient(INS)
    /// A legal representative (parent of a minor, guardian) acting for the
    /// patient. Identified by their own INS; allowed only once the patient's
    /// vault names them (``VaultStore/nameRepresentative(_:for:as:secret:)``).
    case representative(LegalRepresentative)
    /// A health professional, identified by RPPS, with a profession.
    case professional(HealthProfessional)
    /// A professional acting as emergency regulator (SAMU, centre 15): may
    /// use break-glass on a call.
    case emergencyRegulator(HealthProfessional)
    /// An organisation (hospital, clinic, pharmacy...), identified by FINESS.
    case organisation(Organisation)
    /// The national health insurer, a system principal. It deposits the
    /// reimbursement history and may never read (CSP L1111-18).
    case insurer(SystemPrincipal)
    /// An employer (occupational medicine's employer side, HR systems):
    /// a forbidden class, never reads (CSP L1111-18).
    case employer(SystemPrincipal)
    /// A complementary health insurer (mutuelle): a forbidden class.
    case complementaryInsurer(SystemPrincipal)
    /// A reviewer of the audit trail (data-protection officer, the
    /// establishment's security officer): reads what one professional did
    /// across vaults when ``Configuration/auditReviewers`` names it; never
    /// reads documents.
    case auditReviewer(SystemPrincipal)
    /// The store itself, for events it records on its own (the automatic
    /// release of a hidden document). Not accepted from callers.
    case system

    /// A log-safe description: professionals and organisations by their
    /// public register number, the patient and representatives never by INS.
    public var description: String {
        switch self {
        case .patient: return "patient"
        case .representative(let r): return "representative(\(r.relationship.rawValue))"
        case .professional(let p): return "professional(\(p.profession.rawValue), \(p.rpps))"
        case .emergencyRegulator(let p): return "emergencyRegulator(\(p.rpps))"
        case .organisation(let o): return "organisation(\(o.kind.rawValue), \(o.finess))"
        case .insurer(let s): return "insurer(\(s.identifier))"
        case .employer(let s): return "employer(\(s.identifier))"
        case .complementaryInsurer(let s): return "complementaryInsurer(\(s.identifier))"
        case .auditReviewer(let s): return "auditReviewer(\(s.identifier))"
        case .system: return "system"
        }
    }

    /// Insurers, employers and complementary insurers may never read a
    /// vault, whatever the grants (CSP L1111-18).
    public var isForbiddenClass: Bool {
        switch self {
        case .insurer, .employer, .complementaryInsurer: return true
        default: return false
        }
    }

    /// The national health insurer.
    var isInsurer: Bool {
        if case .insurer = self { return true }
        return false
    }

    /// The health professional behind this principal, if any.
    public var healthProfessional: HealthProfessional? {
        switch self {
        case .professional(let p), .emergencyRegulator(let p): return p
        default: return nil
        }
    }

    /// The principal kind, as a stable short name (audit, FHIR export).
    public var kind: String {
        switch self {
        case .patient: return "patient"
        case .representative: return "representative"
        case .professional: return "professional"
        case .emergencyRegulator: return "emergencyRegulator"
        case .organisation: return "organisation"
        case .insurer: return "insurer"
        case .employer: return "employer"
        case .complementaryInsurer: return "complementaryInsurer"
        case .auditReviewer: return "auditReviewer"
        case .system: return "system"
        }
    }
}

/// A legal representative of a patient.
public struct LegalRepresentative: Hashable, Sendable {
    /// The representative's own INS.
    public let ins: INS
    /// How they represent the patient.
    public let relationship: Relationship

    /// Kinds of legal representation.
    public enum Relationship: String, Hashable, Sendable, CaseIterable {
        /// Holder of parental authority over a minor.
        case parent
        /// Guardian (tutelle) of a protected adult or a minor.
        case guardian
    }

    /// Creates a representative.
    public init(ins: INS, relationship: Relationship) {
        self.ins = ins
        self.relationship = relationship
    }
}

/// A health professional.
///
/// Every field is validated when the value is created and cannot change
/// afterwards, so whatever a caller builds can be written to the audit
/// trail and read back.
public struct HealthProfessional: Hashable, Sendable {
    /// RPPS number.
    public let rpps: RPPSNumber
    /// Profession, as in the access matrix.
    public let profession: Profession
    /// Optional speciality (e.g. "psychiatrie"), as a code or label: 1 to
    /// 64 UTF-8 bytes, without control or format characters.
    public let speciality: String?

    /// The one place the fields are set: each initialiser below checks
    /// the speciality its own way first.
    private init(rpps: RPPSNumber, profession: Profession, checkedSpeciality speciality: String?) {
        self.rpps = rpps
        self.profession = profession
        self.speciality = speciality
    }

    /// Creates a professional without a speciality.
    public init(rpps: RPPSNumber, profession: Profession) {
        self.init(rpps: rpps, profession: profession, checkedSpeciality: nil)
    }

    /// A professional read back from a record: the speciality was checked
    /// when it was created; here only its byte bounds are (a decoder must
    /// not depend on the Unicode tables of the toolchain that reads it).
    init(rpps: RPPSNumber, profession: Profession, storedSpeciality speciality: String?) throws(PatientVaultError) {
        if let speciality, !(1...Limits.speciality).contains(speciality.utf8.count) {
            throw PatientVaultError(.invalidArgument, "a stored speciality is out of bounds")
        }
        self.init(rpps: rpps, profession: profession, checkedSpeciality: speciality)
    }

    /// Creates a professional with a speciality (nil for none).
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` if the
    ///   speciality is empty, longer than 64 UTF-8 bytes, or holds control
    ///   or format characters.
    public init(rpps: RPPSNumber, profession: Profession, speciality: String?) throws(PatientVaultError) {
        if let speciality, !Limits.isPrintable(speciality, maximum: Limits.speciality) {
            throw PatientVaultError(
                .invalidArgument, "a speciality is 1 to \(Limits.speciality) UTF-8 bytes without control or format characters")
        }
        self.init(rpps: rpps, profession: profession, checkedSpeciality: speciality)
    }
}

/// The professions of the 2023 access matrix (arrêté of 26 October 2023).
public enum Profession: String, Hashable, Sendable, CaseIterable {
    /// Doctor (médecin); the only profession a médecin traitant may have.
    case doctor
    /// Pharmacist (pharmacien).
    case pharmacist
    /// Dentist (chirurgien-dentiste).
    case dentist
    /// Midwife (sage-femme).
    case midwife
    /// Nurse (infirmier).
    case nurse
    /// Physiotherapist (masseur-kinésithérapeute).
    case physiotherapist
    /// Podiatrist (pédicure-podologue).
    case podiatrist
    /// Occupational therapist (ergothérapeute).
    case occupationalTherapist
    /// Psychomotor therapist (psychomotricien).
    case psychomotorTherapist
    /// Speech therapist (orthophoniste).
    case speechTherapist
    /// Orthoptist (orthoptiste).
    case orthoptist
    /// Radiographer (manipulateur d'électroradiologie médicale).
    case radiographer
    /// Medical laboratory technician (technicien de laboratoire médical).
    case medicalLaboratoryTechnician
    /// Hearing aid specialist (audioprothésiste).
    case hearingAidSpecialist
    /// Optician (opticien-lunetier).
    case optician
    /// Orthotist or prosthetist (orthoprothésiste, orthopédiste-orthésiste, podo-orthésiste).
    case orthotistProsthetist
    /// Dietitian (diététicien).
    case dietitian
    /// Pharmacy technician (préparateur en pharmacie).
    case pharmacyTechnician
    /// Paramedic (ambulancier).
    case paramedic
}

/// An organisation that deposits documents.
public struct Organisation: Hashable, Sendable {
    /// FINESS number.
    public let finess: FINESSNumber
    /// What kind of organisation it is.
    public let kind: OrganisationKind

    /// Creates an organisation.
    public init(finess: FINESSNumber, kind: OrganisationKind) {
        self.finess = finess
        self.kind = kind
    }
}

/// Kinds of organisation. Every kind but ``pharmacy`` creates vaults
/// through ``CreationChannel/establishment``.
public enum OrganisationKind: String, Hashable, Sendable, CaseIterable {
    /// A hospital.
    case hospital
    /// A private clinic.
    case clinic
    /// A pharmacy: the only kind that creates vaults through
    /// ``CreationChannel/pharmacy``.
    case pharmacy
    /// A medical laboratory.
    case laboratory
    /// A medical centre (centre de santé).
    case medicalCentre
    /// Any other kind of organisation.
    case other
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

/// A system principal (the insurer's systems, for instance).
public struct SystemPrincipal: Hashable, Sendable {
    /// A short identifier: 1 to 64 characters among letters, digits, `.`, `_` and `-`.
    public let identifier: String
    /// The identifier, ``identifier`` (``StringIdentifier``).
    public var canonicalText: String { identifier }

    /// Validates the identifier.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier``.
    public init(_ identifier: String) throws(PatientVaultError) {
        let ok = (1...Limits.systemIdentifier).contains(identifier.utf8.count) && identifier.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
        }
        guard ok else {
            throw PatientVaultError(.invalidIdentifier, "a system principal id is 1-64 characters of [A-Za-z0-9._-]")
        }
        self.identifier = identifier
    }
}

/// `{"finess": "750712184", "kind": "hospital"}`: the synthesized form (the
/// FINESS number validates itself as it decodes).
extension Organisation: Codable {}

/// `{"ins": "…", "relationship": "parent"}`: the synthesized form (the INS
/// validates itself, key included, as it decodes).
extension LegalRepresentative: Codable {}
