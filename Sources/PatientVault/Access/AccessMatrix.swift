/// The profession × document category matrix: which categories each
/// profession may read (arrêté of 26 October 2023). A versioned value the
/// host may replace through ``Configuration/accessMatrix``; every audit
/// entry records the version that decided.
public struct AccessMatrix: Hashable, Sendable {
    /// A name for this version of the matrix, recorded in audit entries:
    /// 1 to 64 UTF-8 bytes without control or format characters.
    public let version: String
    /// Categories each profession may read. A profession absent from the
    /// table reads nothing. Immutable, as ``version`` is: a changed table
    /// is a new matrix, made with ``init(version:professions:organisations:)``
    /// under a new version name, so that no audit entry records a version
    /// whose table it was not decided by.
    public let professions: [Profession: Set<DocumentCategory>]
    /// Categories an organisation (FINESS) that the patient authorised may
    /// read through its systems. Immutable (see ``professions``).
    public let organisations: Set<DocumentCategory>

    /// Creates a matrix.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` if `version` is
    ///   empty, longer than 64 UTF-8 bytes, or holds control or format characters.
    public init(
        version: String, professions: [Profession: Set<DocumentCategory>], organisations: Set<DocumentCategory>
    ) throws(PatientVaultError) {
        guard Limits.isPrintable(version, maximum: Limits.matrixVersion) else {
            throw PatientVaultError(
                .invalidArgument, "a matrix version is 1 to \(Limits.matrixVersion) UTF-8 bytes without control or format characters")
        }
        self.version = version
        self.professions = professions
        self.organisations = organisations
    }

    /// The built-in matrix, whose version name is a valid constant.
    private init(validVersion: String, professions: [Profession: Set<DocumentCategory>], organisations: Set<DocumentCategory>) {
        self.version = validVersion
        self.professions = professions
        self.organisations = organisations
    }

    /// Whether `profession` may read documents of `category`.
    public func allows(_ profession: Profession, _ category: DocumentCategory) -> Bool {
        professions[profession]?.contains(category) ?? false
    }

    /// The built-in default, following the 2023 matrix in spirit:
    /// doctors and midwives read every category; pharmacists what concerns
    /// medicines and care; dentists all but summaries (which carry
    /// psychiatric and other history), care plans and administrative
    /// documents; nurses and physiotherapists clinical follow-up; the other
    /// paramedical professions reports, prescriptions, care plans and the
    /// patient's own documents; radiographers, laboratory technicians,
    /// pharmacy technicians and paramedics a few categories each.
    /// Reimbursement data is read by doctors, midwives, pharmacists and
    /// dentists only. `Documentation/AccessModel.md` lists
    /// the table and where it departs from the official one.
    public static let default2023: AccessMatrix = {
        let all = Set(DocumentCategory.allCases)
        let paramedical: Set<DocumentCategory> = [.report, .prescription, .carePlan, .patientDeposited]
        var table: [Profession: Set<DocumentCategory>] = [:]
        table[.doctor] = all
        table[.midwife] = all
        table[.pharmacist] = [
            .summary, .prescription, .dispensation, .carePlan, .administeredTreatment, .certificate,
            .reimbursement, .patientDeposited,
        ]
        table[.dentist] = all.subtracting([.summary, .carePlan, .administrative])
        table[.nurse] = [
            .report, .summary, .prescription, .dispensation, .carePlan, .administeredTreatment, .certificate,
            .patientDeposited,
        ]
        table[.physiotherapist] = [.report, .summary, .medicalImaging, .prescription, .carePlan, .administeredTreatment, .patientDeposited]
        for p in [Profession.podiatrist, .occupationalTherapist, .psychomotorTherapist, .speechTherapist, .orthoptist,
                  .dietitian, .hearingAidSpecialist, .optician, .orthotistProsthetist] {
            table[p] = paramedical
        }
        table[.radiographer] = [.report, .medicalImaging, .prescription]
        table[.medicalLaboratoryTechnician] = [.report, .prescription]
        table[.pharmacyTechnician] = [.prescription, .dispensation]
        table[.paramedic] = [.summary, .carePlan, .administeredTreatment]
        return AccessMatrix(
            validVersion: "pv-default-2023.1", professions: table,
            organisations: [.report, .summary, .medicalImaging, .prescription, .dispensation, .carePlan, .administeredTreatment])
    }()
}
