import Foundation

/// The 11 document categories of the access matrix.
public enum DocumentCategory: String, Hashable, Sendable, CaseIterable {
    /// Reports: consultation notes, laboratory reports, operative notes, referral letters.
    case report
    /// Summaries: episode and discharge summaries, the patient summary, the medication list.
    case summary
    /// Medical imaging: imaging studies and their reports.
    case medicalImaging
    /// Prescriptions.
    case prescription
    /// Dispensations: what a pharmacy dispensed.
    case dispensation
    /// Care plans.
    case carePlan
    /// Treatments and care administered, vaccinations among them.
    case administeredTreatment
    /// Certificates and declarations.
    case certificate
    /// Reimbursement data, which the health insurer deposits (the only
    /// category it may deposit).
    case reimbursement
    /// Documents the patient (or a representative) deposits in their own vault.
    case patientDeposited
    /// Administrative documents.
    case administrative
}

/// A coded document type, e.g. LOINC `11488-4` (consultation note).
public struct DocumentTypeCode: Hashable, Sendable {
    /// The code system, e.g. `http://loinc.org`.
    public var system: String
    /// The code, e.g. `11488-4`.
    public var code: String

    /// Creates a type code.
    public init(system: String = "http://loinc.org", code: String) {
        self.system = system
        self.code = code
    }

    /// LOINC 11488-4, consultation note.
    public static let consultationNote = DocumentTypeCode(code: "11488-4")
    /// LOINC 34133-9, summary of episode note.
    public static let summaryOfEpisode = DocumentTypeCode(code: "34133-9")
    /// LOINC 57833-6, prescription for medication.
    public static let prescription = DocumentTypeCode(code: "57833-6")
    /// LOINC 18748-4, diagnostic imaging study (the imaging report).
    public static let imagingStudy = DocumentTypeCode(code: "18748-4")
    /// LOINC 18842-5, discharge summary (lettre de liaison de sortie).
    public static let dischargeSummary = DocumentTypeCode(code: "18842-5")
    /// LOINC 11502-2, laboratory report (compte rendu de biologie).
    public static let laboratoryReport = DocumentTypeCode(code: "11502-2")
    /// LOINC 11504-8, surgical operation note (compte rendu opératoire).
    public static let operativeNote = DocumentTypeCode(code: "11504-8")
    /// LOINC 10160-0, history of medication use (the medication list).
    public static let medicationList = DocumentTypeCode(code: "10160-0")
    /// LOINC 57133-1, referral note (lettre d'adressage).
    public static let referralNote = DocumentTypeCode(code: "57133-1")
    /// LOINC 60591-5, patient summary (volet de synthèse médicale).
    public static let patientSummary = DocumentTypeCode(code: "60591-5")
    /// LOINC 11369-6, history of immunization (vaccinations).
    public static let immunizationHistory = DocumentTypeCode(code: "11369-6")
    /// LOINC 18776-5, plan of care note.
    public static let planOfCare = DocumentTypeCode(code: "18776-5")
    /// LOINC 60593-1, medication dispensed (dispensation).
    public static let medicationDispensed = DocumentTypeCode(code: "60593-1")

    /// The category of the access matrix that a known LOINC code files
    /// under (a deposit states its category; this is the usual one), or nil
    /// for a code this library does not know.
    public var usualCategory: DocumentCategory? {
        guard system == "http://loinc.org" else { return nil }
        switch code {
        case "11488-4", "11502-2", "11504-8", "57133-1": return .report
        case "34133-9", "18842-5", "60591-5", "10160-0": return .summary
        case "57833-6": return .prescription
        case "18748-4": return .medicalImaging
        case "60593-1": return .dispensation
        case "11369-6": return .administeredTreatment
        case "18776-5": return .carePlan
        default: return nil
        }
    }

    /// The LOINC codes this library names, each with its usual category.
    public static let knownLOINC: [DocumentTypeCode] = [
        .consultationNote, .summaryOfEpisode, .prescription, .imagingStudy, .dischargeSummary, .laboratoryReport,
        .operativeNote, .medicationList, .referralNote, .patientSummary, .immunizationHistory, .planOfCare,
        .medicationDispensed,
    ]
}

/// The per-document confidentiality flags of the DMP (independent).
public struct ConfidentialityFlags: OptionSet, Hashable, Sendable {
    /// The flags as bits: 1 ``maskedFromProfessionals``, 2
    /// ``hiddenFromPatient``, 4 ``hiddenFromLegalRepresentatives``.
    public let rawValue: UInt8
    /// Creates the set whose bits are `rawValue`. A deposit whose flags set
    /// any other bit is refused as ``PatientVaultError/Code/invalidArgument``.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `MASQUE_PS`: masked from professionals (only the patient, the author
    /// and the médecin traitant see it).
    public static let maskedFromProfessionals = ConfidentialityFlags(rawValue: 1)
    /// `INVISIBLE_PATIENT`: hidden from the patient until released.
    public static let hiddenFromPatient = ConfidentialityFlags(rawValue: 2)
    /// `INVISIBLE_REPRESENTANTS_LEGAUX`: hidden from legal representatives.
    public static let hiddenFromLegalRepresentatives = ConfidentialityFlags(rawValue: 4)
}

/// Why a version was replaced.
public enum ReplacementReason: String, Hashable, Sendable {
    /// A newer version supersedes it (XDS `RPLC`).
    case superseded
    /// It was entered in error; the new version corrects it.
    case enteredInError
}

/// The state of one version of a document.
public enum DocumentStatus: Hashable, Sendable {
    /// The current version.
    case current
    /// Replaced by the given version.
    case superseded(by: Int)
    /// Replaced by the given version because it was entered in error.
    case enteredInError(correctedBy: Int)

    /// Whether this version has been replaced.
    public var isDeprecated: Bool { self != .current }
}

/// What a depositor says about a document; the store adds the rest.
///
/// Its dates are kept to the millisecond: a version's metadata holds them
/// rounded to the nearest one, as its JSON and FHIR forms give them back
/// (so a version's metadata equals its own decoded JSON).
public struct DocumentDraft: Hashable, Sendable {
    /// Coded type.
    public var typeCode: DocumentTypeCode
    /// Matrix category.
    public var category: DocumentCategory
    /// Title, shown in listings. Not empty.
    public var title: String
    /// When the document was written.
    public var createdAt: Date
    /// Start of the care it documents, if known.
    public var serviceStart: Date?
    /// End of the care it documents, if known.
    public var serviceEnd: Date?
    /// MIME type of the content, e.g. `application/pdf`.
    public var mimeType: String
    /// Confidentiality flags.
    public var confidentiality: ConfidentialityFlags

    /// Creates a draft.
    public init(
        typeCode: DocumentTypeCode, category: DocumentCategory, title: String, createdAt: Date,
        serviceStart: Date? = nil, serviceEnd: Date? = nil, mimeType: String,
        confidentiality: ConfidentialityFlags = []
    ) {
        self.typeCode = typeCode
        self.category = category
        self.title = title
        self.createdAt = createdAt
        self.serviceStart = serviceStart
        self.serviceEnd = serviceEnd
        self.mimeType = mimeType
        self.confidentiality = confidentiality
    }

    /// This draft with its dates rounded to the nearest millisecond
    /// (``JSONDate/milliseconds(_:)``): what a version records.
    var withDatesToTheMillisecond: DocumentDraft {
        var d = self
        d.createdAt = JSONDate.milliseconds(createdAt)
        d.serviceStart = serviceStart.map(JSONDate.milliseconds)
        d.serviceEnd = serviceEnd.map(JSONDate.milliseconds)
        return d
    }
}

/// Everything known about one version of a document, except its content.
public struct DocumentMetadata: Hashable, Sendable {
    /// The document's id, shared by its versions.
    public var id: DocumentID
    /// The version number, from 1.
    public var version: Int
    /// What the depositor said.
    public var draft: DocumentDraft
    /// Who deposited it (its author).
    public var author: Principal
    /// When the store acknowledged the deposit (configured clock).
    public var depositedAt: Date
    /// Size of the content in bytes.
    public var size: Int64
    /// BLAKE2b-256 of the content.
    public var contentHash: [UInt8]
    /// The version this one replaced, and why.
    public var replaces: (version: Int, reason: ReplacementReason)? {
        get { replacedVersion.map { ($0, replacementReason ?? .superseded) } }
        set {
            replacedVersion = newValue?.version
            replacementReason = newValue?.reason
        }
    }
    /// The state of this version.
    public var status: DocumentStatus

    var replacedVersion: Int?
    var replacementReason: ReplacementReason?

    /// Metadata as the store builds it; public so that hosts can put a
    /// document before ``AccessPolicy/decide(_:)`` (policy tests, what-if
    /// tools) without a store.
    public init(
        id: DocumentID, version: Int, draft: DocumentDraft, author: Principal, depositedAt: Date, size: Int64,
        contentHash: [UInt8], status: DocumentStatus = .current
    ) {
        self.id = id
        self.version = version
        self.draft = draft
        self.author = author
        self.depositedAt = depositedAt
        self.size = size
        self.contentHash = contentHash
        self.status = status
    }

    // Convenience accessors for the draft's fields.
    /// Coded type.
    public var typeCode: DocumentTypeCode { draft.typeCode }
    /// Matrix category.
    public var category: DocumentCategory { draft.category }
    /// Title.
    public var title: String { draft.title }
    /// MIME type.
    public var mimeType: String { draft.mimeType }
    /// Confidentiality flags.
    public var confidentiality: ConfidentialityFlags { draft.confidentiality }
    /// When the document was written.
    public var createdAt: Date { draft.createdAt }
}

/// A filter for listing a vault's documents. Empty fields match everything.
public struct DocumentQuery: Hashable, Sendable {
    /// Only these categories.
    public var categories: Set<DocumentCategory>?
    /// Only this type code.
    public var typeCode: DocumentTypeCode?
    /// Only documents by this author.
    public var author: Principal?
    /// Only documents created in this range (inclusive).
    public var createdBetween: ClosedRange<Date>?
    /// Which versions, by status: current ones (the default), replaced
    /// ones, or all.
    public var status: StatusFilter

    /// Creates a query.
    public init(
        categories: Set<DocumentCategory>? = nil, typeCode: DocumentTypeCode? = nil, author: Principal? = nil,
        createdBetween: ClosedRange<Date>? = nil, status: StatusFilter = .current
    ) {
        (self.categories, self.typeCode, self.author) = (categories, typeCode, author)
        (self.createdBetween, self.status) = (createdBetween, status)
    }

    func matches(_ m: DocumentMetadata) -> Bool {
        if let categories, !categories.contains(m.category) { return false }
        if let typeCode, typeCode != m.typeCode { return false }
        if let author, author != m.author { return false }
        if let createdBetween, !createdBetween.contains(m.createdAt) { return false }
        switch status {
        case .current: if m.status.isDeprecated { return false }
        case .deprecated: if !m.status.isDeprecated { return false }
        case .all: break
        }
        return true
    }
}

/// Which versions a ``DocumentQuery`` returns.
public enum StatusFilter: Hashable, Sendable {
    /// Current versions only.
    case current
    /// Replaced versions only (superseded or entered in error).
    case deprecated
    /// Every version.
    case all
}

/// What the store knows about a vault, as its holder may see it.
public struct VaultInfo: Hashable, Sendable {
    /// The vault's pseudonymous id (hexadecimal keyed BLAKE2b of the INS):
    /// what logs, errors and files use instead of the INS.
    public var vaultID: String
    /// Who created it.
    public var createdBy: Principal
    /// Through which channel.
    public var channel: CreationChannel
    /// When.
    public var createdAt: Date
    /// Number of documents (current versions) visible to the asker.
    public var documentCount: Int
    /// The vault's closure, while it is closed (read-only).
    public var closure: VaultClosure?
    /// While it is closed, the end of its retention: from then on it can
    /// be destroyed, no longer reopened.
    public var retainedUntil: Date?

    /// Vault information as the store returns it; public so that a host's
    /// tests can fake a store's answers.
    public init(vaultID: String, createdBy: Principal, channel: CreationChannel, createdAt: Date, documentCount: Int) {
        self.vaultID = vaultID
        self.createdBy = createdBy
        self.channel = channel
        self.createdAt = createdAt
        self.documentCount = documentCount
    }
}
