import Foundation
import PatientVault

/// FHIR R4 exports: audit entries as `AuditEvent` (fields mapped as IHE
/// Basic Audit Log Patterns suggests) and document metadata as
/// `DocumentReference`. Plain `Codable` values; no FHIR library needed.
///
/// Patients appear by the vault's pseudonymous id (`Patient/<vaultID>`):
/// the host maps it to its own patient resource. Professionals appear by
/// RPPS (IDNPS), organisations by FINESS.
public enum FHIR {
    /// A FHIR `Coding`.
    public struct Coding: Codable, Hashable, Sendable {
        /// The URI of the code system (`Coding.system`); nil when the system
        /// is implied, as for a profession's role code.
        public var system: String?
        /// The code, a symbol defined by the system (`Coding.code`).
        public var code: String
        /// The code's meaning in words, as the system gives it (`Coding.display`).
        public var display: String?

        /// Creates the element with every field.
        public init(system: String? = nil, code: String, display: String? = nil) {
            self.system = system
            self.code = code
            self.display = display
        }
    }

    /// A FHIR `CodeableConcept`.
    public struct CodeableConcept: Codable, Hashable, Sendable {
        /// The concept as codes of one or more systems (`CodeableConcept.coding`).
        public var coding: [Coding]
        /// The concept in plain text (`CodeableConcept.text`); this library's
        /// exports leave it nil.
        public var text: String?

        /// Creates the element with every field.
        public init(coding: [Coding], text: String? = nil) {
            self.coding = coding
            self.text = text
        }
    }

    /// A FHIR `Identifier`.
    public struct Identifier: Codable, Hashable, Sendable {
        /// The namespace of the value, a URI (`Identifier.system`):
        /// `urn:oid:1.2.250.1.71.4.2.1` for an IDNPS (RPPS),
        /// `urn:oid:1.2.250.1.71.4.2.2` for a FINESS number,
        /// `urn:patientvault:system` for a system principal's identifier,
        /// `urn:ietf:rfc:3986` when the value is itself a URI.
        public var system: String?
        /// The identifier, unique within ``system`` (`Identifier.value`).
        public var value: String

        /// Creates the element with every field.
        public init(system: String? = nil, value: String) {
            self.system = system
            self.value = value
        }
    }

    /// A FHIR `Reference`.
    public struct Reference: Codable, Hashable, Sendable {
        /// A literal reference, relative to the server's base
        /// (`Reference.reference`), e.g. `Patient/<vaultID>` or
        /// `DocumentReference/<document>-<version>`.
        public var reference: String?
        /// A logical reference by identifier (`Reference.identifier`), when no
        /// resource is pointed at: a professional's IDNPS, an organisation's
        /// FINESS number, a system principal's identifier.
        public var identifier: Identifier?
        /// The type of the resource referred to (`Reference.type`), e.g.
        /// `Patient`, `Practitioner`, `Organization`, `RelatedPerson` or `Device`.
        public var type: String?
        /// Plain text naming the target (`Reference.display`).
        public var display: String?

        /// Creates the element with every field.
        public init(reference: String? = nil, identifier: Identifier? = nil, type: String? = nil, display: String? = nil) {
            self.reference = reference
            self.identifier = identifier
            self.type = type
            self.display = display
        }
    }

    /// A FHIR `Extension` with a boolean or string value.
    public struct Extension: Codable, Hashable, Sendable {
        /// The URL of the extension's definition (`Extension.url`); this
        /// library's start with `https://patientvault.dev/fhir/StructureDefinition/`.
        public var url: String
        /// The value, when it is a boolean (`Extension.valueBoolean`).
        public var valueBoolean: Bool?
        /// The value, when it is a string (`Extension.valueString`).
        public var valueString: String?

        /// Creates the element with every field.
        public init(url: String, valueBoolean: Bool? = nil, valueString: String? = nil) {
            self.url = url
            self.valueBoolean = valueBoolean
            self.valueString = valueString
        }
    }

    /// A FHIR `Meta`, for security labels.
    public struct Meta: Codable, Hashable, Sendable {
        /// Security labels of the resource (`Meta.security`): the v3 ActReason
        /// `BTG` (break the glass) on the event of a break-glass access.
        public var security: [Coding]?

        /// Creates the element with every field.
        public init(security: [Coding]? = nil) {
            self.security = security
        }
    }

    /// A FHIR R4 `AuditEvent`.
    public struct AuditEvent: Codable, Hashable, Sendable {
        /// `AuditEvent`: the resource type, as FHIR JSON names it.
        public var resourceType = "AuditEvent"
        /// The logical id: the first 16 characters of the vault id, `-`, the
        /// entry's sequence number.
        public var id: String
        /// Security labels: `BTG` for a break-glass access, else nil.
        public var meta: Meta?
        /// The type of event (`AuditEvent.type`): `rest` (Restful Operation)
        /// of the `audit-event-type` code system.
        public var type: Coding
        /// More specific types (`AuditEvent.subtype`): the RESTful interaction
        /// (`create`, `update`, `read` or `search-type`), then the `VaultAction`
        /// name in this library's `action` code system.
        public var subtype: [Coding]
        /// What kind of action (`AuditEvent.action`): `C` create, `R` read,
        /// `U` update or `E` execute (listings and queries).
        public var action: String
        /// When the event was recorded (`AuditEvent.recorded`): the entry's
        /// time, an ISO 8601 instant in UTC with milliseconds.
        public var recorded: String
        /// Whether the event succeeded (`AuditEvent.outcome`): `0` success
        /// (allowed) or `4` minor failure (denied).
        public var outcome: String
        /// A description of the outcome (`AuditEvent.outcomeDesc`): the name
        /// of the `AccessRule` that decided.
        public var outcomeDesc: String
        /// Why the access was made (`AuditEvent.purposeOfEvent`), a v3
        /// ActReason code: `TREAT` (care), `ETREAT` (emergency), `PATRQT` (the
        /// patient's own access), `HOPERAT` (audit) or `HSYSADMIN` (the store's
        /// own events).
        public var purposeOfEvent: [CodeableConcept]
        /// Who took part (`AuditEvent.agent`): the acting principal, as the
        /// requestor, and the patient as a second agent when a representative
        /// acted for them.
        public var agent: [Agent]
        /// The system that reported the event (`AuditEvent.source`):
        /// PatientVault, as an application server.
        public var source: Source
        /// What the event was about (`AuditEvent.entity`): the patient, and the
        /// document when there is one.
        public var entity: [Entity]
        /// This library's extensions: `chain-sequence` (the entry's sequence
        /// number), and when they apply `legal-basis`, `secret-access` and
        /// `target`.
        public var `extension`: [Extension]?

        /// `AuditEvent.agent`.
        public struct Agent: Codable, Hashable, Sendable {
            /// How the agent took part (`AuditEvent.agent.type`): `IRCP`
            /// (information recipient) for the actor, `PAT` (patient) for the
            /// patient acted for.
            public var type: CodeableConcept?
            /// The agent's roles (`AuditEvent.agent.role`): a health
            /// professional's `Profession`; nil for other principals.
            public var role: [CodeableConcept]?
            /// Who the agent is (`AuditEvent.agent.who`).
            public var who: Reference
            /// Whether this agent initiated the event (`AuditEvent.agent.requestor`):
            /// true for the actor only.
            public var requestor: Bool

            /// Creates the element with every field.
            public init(type: CodeableConcept? = nil, role: [CodeableConcept]? = nil, who: Reference, requestor: Bool) {
                self.type = type
                self.role = role
                self.who = who
                self.requestor = requestor
            }
        }

        /// `AuditEvent.source`.
        public struct Source: Codable, Hashable, Sendable {
            /// The system that observed the event (`AuditEvent.source.observer`):
            /// `PatientVault`, by display name.
            public var observer: Reference
            /// The type of source (`AuditEvent.source.type`): `4` (Application
            /// Server) of the `security-source-type` code system.
            public var type: [Coding]?

            /// Creates the element with every field.
            public init(observer: Reference, type: [Coding]? = nil) {
                self.observer = observer
                self.type = type
            }
        }

        /// `AuditEvent.entity`.
        public struct Entity: Codable, Hashable, Sendable {
            /// The resource concerned (`AuditEvent.entity.what`): `Patient/<vaultID>`,
            /// or `DocumentReference/<document>-<version>` (without `-<version>`
            /// when the entry names no version).
            public var what: Reference
            /// The type of entity (`AuditEvent.entity.type`): `1` (Person) for the
            /// patient, `2` (System Object) for a document.
            public var type: Coding?
            /// The entity's role (`AuditEvent.entity.role`): `1` (Patient) or `3`
            /// (Report) of the `object-role` code system.
            public var role: Coding?
            /// A description of the entity (`AuditEvent.entity.description`); this
            /// library's exports leave it nil.
            public var description: String?

            /// Creates the element with every field.
            public init(what: Reference, type: Coding? = nil, role: Coding? = nil, description: String? = nil) {
                self.what = what
                self.type = type
                self.role = role
                self.description = description
            }
        }

        /// Creates the element with every field.
        public init(id: String, meta: Meta? = nil, type: Coding, subtype: [Coding], action: String, recorded: String, outcome: String, outcomeDesc: String, purposeOfEvent: [CodeableConcept], agent: [Agent], source: Source, entity: [Entity], `extension`: [Extension]? = nil) {
            self.id = id
            self.meta = meta
            self.type = type
            self.subtype = subtype
            self.action = action
            self.recorded = recorded
            self.outcome = outcome
            self.outcomeDesc = outcomeDesc
            self.purposeOfEvent = purposeOfEvent
            self.agent = agent
            self.source = source
            self.entity = entity
            self.`extension` = `extension`
        }
    }

    /// A FHIR R4 `DocumentReference`.
    public struct DocumentReference: Codable, Hashable, Sendable {
        /// `DocumentReference`: the resource type, as FHIR JSON names it.
        public var resourceType = "DocumentReference"
        /// The logical id: `<document id>-<version>`, one resource per version.
        public var id: String
        /// Resource metadata; nil in this library's exports (the
        /// confidentiality flags are in ``securityLabel``).
        public var meta: Meta?
        /// Business identifiers (`DocumentReference.identifier`): the URI
        /// `urn:patientvault:document:<id>:<version>`.
        public var identifier: [Identifier]
        /// The status of this reference (`DocumentReference.status`): `current`,
        /// `superseded` or `entered-in-error`, from `DocumentStatus`.
        public var status: String
        /// The status of the document itself (`DocumentReference.docStatus`):
        /// `final`, for every deposited version.
        public var docStatus: String
        /// The kind of document (`DocumentReference.type`): its
        /// `DocumentTypeCode`, usually LOINC.
        public var type: CodeableConcept
        /// The document's category (`DocumentReference.category`): its
        /// `DocumentCategory`, in this library's `dmp-category` code system.
        public var category: [CodeableConcept]
        /// Who the document is about (`DocumentReference.subject`):
        /// `Patient/<vaultID>`.
        public var subject: Reference
        /// When this reference was made (`DocumentReference.date`): the
        /// version's deposit time, an ISO 8601 instant in UTC with
        /// milliseconds.
        public var date: String
        /// Who wrote the document (`DocumentReference.author`): the principal
        /// who deposited the version.
        public var author: [Reference]
        /// A human-readable description (`DocumentReference.description`): the
        /// document's title.
        public var description: String
        /// Security labels (`DocumentReference.securityLabel`): the DMP
        /// confidentiality flags set (`MASQUE_PS`, `INVISIBLE_PATIENT`,
        /// `INVISIBLE_REPRESENTANTS_LEGAUX`); nil when none is.
        public var securityLabel: [CodeableConcept]?
        /// The content, described and not included (`DocumentReference.content`):
        /// one attachment.
        public var content: [Content]
        /// The clinical context (`DocumentReference.context`): the period of
        /// care, when the draft gives a start or an end; else nil.
        public var context: Context?
        /// Relations to other documents (`DocumentReference.relatesTo`): for a
        /// replacing version, `replaces` and the version it replaced; else nil.
        public var relatesTo: [RelatesTo]?

        /// `DocumentReference.content`.
        public struct Content: Codable, Hashable, Sendable {
            /// What the content is (`DocumentReference.content.attachment`),
            /// without its data or a URL: the content is read from the store.
            public var attachment: Attachment

            /// Creates the element with every field.
            public init(attachment: Attachment) {
                self.attachment = attachment
            }
        }

        /// `Attachment` (the BLAKE2b hash goes in an extension: FHIR's
        /// `hash` element is defined as SHA-1).
        public struct Attachment: Codable, Hashable, Sendable {
            /// The MIME type of the content (`Attachment.contentType`).
            public var contentType: String
            /// The size of the content in bytes (`Attachment.size`).
            public var size: Int64
            /// A label for the content (`Attachment.title`): the document's title.
            public var title: String
            /// When the content was written (`Attachment.creation`): the draft's
            /// `DocumentDraft/createdAt`, an ISO 8601 instant in UTC with
            /// milliseconds.
            public var creation: String
            /// `blake2b-256`: the BLAKE2b-256 hash of the content, as lowercase hex.
            public var `extension`: [Extension]?
            /// Where the content is (`Attachment.url`): the `Binary` resource
            /// of the same bundle that holds it, when the bundle carries it
            /// (``Bundle/init(export:baseURL:)``); nil otherwise.
            public var url: String?

            /// Creates the element with every field.
            public init(
                contentType: String, size: Int64, title: String, creation: String, `extension`: [Extension]? = nil, url: String? = nil
            ) {
                self.contentType = contentType
                self.size = size
                self.title = title
                self.creation = creation
                self.`extension` = `extension`
                self.url = url
            }
        }

        /// `DocumentReference.context`.
        public struct Context: Codable, Hashable, Sendable {
            /// The time of the care the document records
            /// (`DocumentReference.context.period`).
            public var period: Period

            /// Creates the element with every field.
            public init(period: Period) {
                self.period = period
            }
        }

        /// `Period`.
        public struct Period: Codable, Hashable, Sendable {
            /// The start (`Period.start`), an ISO 8601 instant in UTC with
            /// milliseconds; nil if unknown.
            public var start: String?
            /// The end (`Period.end`), an ISO 8601 instant in UTC with
            /// milliseconds; nil if unknown.
            public var end: String?

            /// Creates the element with every field.
            public init(start: String? = nil, end: String? = nil) {
                self.start = start
                self.end = end
            }
        }

        /// `DocumentReference.relatesTo`.
        public struct RelatesTo: Codable, Hashable, Sendable {
            /// The relation (`DocumentReference.relatesTo.code`): `replaces`.
            public var code: String
            /// The version replaced (`DocumentReference.relatesTo.target`):
            /// `DocumentReference/<document>-<version>`.
            public var target: Reference

            /// Creates the element with every field.
            public init(code: String, target: Reference) {
                self.code = code
                self.target = target
            }
        }

        /// Creates the element with every field.
        public init(id: String, meta: Meta? = nil, identifier: [Identifier], status: String, docStatus: String, type: CodeableConcept, category: [CodeableConcept], subject: Reference, date: String, author: [Reference], description: String, securityLabel: [CodeableConcept]? = nil, content: [Content], context: Context? = nil, relatesTo: [RelatesTo]? = nil) {
            self.id = id
            self.meta = meta
            self.identifier = identifier
            self.status = status
            self.docStatus = docStatus
            self.type = type
            self.category = category
            self.subject = subject
            self.date = date
            self.author = author
            self.description = description
            self.securityLabel = securityLabel
            self.content = content
            self.context = context
            self.relatesTo = relatesTo
        }
    }

    static let extensionBase = "https://patientvault.dev/fhir/StructureDefinition/"
    static let rppsSystem = "urn:oid:1.2.250.1.71.4.2.1"
    static let finessSystem = "urn:oid:1.2.250.1.71.4.2.2"

    /// JSON with sorted keys (stable output).
    /// - Throws: `PatientVaultError/Code/invalidArgument` if the value
    ///   cannot be encoded (the FHIR types here always can).
    public static func json<T: Encodable>(_ value: T) throws(PatientVaultError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(value)
        } catch {
            throw PatientVaultError(.invalidArgument, "the value cannot be encoded as JSON")
        }
    }

    /// A FHIR `instant`: ISO 8601 with milliseconds, in UTC.
    /// - Throws: `PatientVaultError` `invalidArgument` for a date that
    ///   is not finite, which has none (the store records none: such a date
    ///   comes from a value its caller built).
    static func instant(_ date: Date) throws(PatientVaultError) -> String {
        guard let text = JSONDate.format(date) else {
            throw PatientVaultError(.invalidArgument, "a date that is not finite has no FHIR instant")
        }
        return text
    }

    static func reference(_ principal: Principal, vaultID: String) -> Reference {
        switch principal {
        case .patient: return Reference(reference: "Patient/\(vaultID)", type: "Patient")
        case .representative(let r): return Reference(type: "RelatedPerson", display: "legal representative (\(r.relationship.rawValue))")
        case .professional(let p), .emergencyRegulator(let p):
            return Reference(identifier: Identifier(system: rppsSystem, value: p.rpps.idnps), type: "Practitioner")
        case .organisation(let o): return Reference(identifier: Identifier(system: finessSystem, value: o.finess.value), type: "Organization")
        case .insurer(let s), .employer(let s), .complementaryInsurer(let s), .auditReviewer(let s):
            return Reference(identifier: Identifier(system: "urn:patientvault:system", value: s.identifier), type: "Device", display: principal.kind)
        case .system: return Reference(type: "Device", display: "PatientVault")
        }
    }
}

extension AuditEntry {
    /// The FHIR `AuditEvent.outcome` code of an outcome: `0` success, `4`
    /// minor failure (a refusal, like an HTTP 4xx), `8` serious failure (an
    /// allowed operation that was not carried out).
    static func fhirOutcome(_ outcome: AuditOutcome) -> String {
        switch outcome {
        case .allowed: "0"
        case .denied: "4"
        case .abandoned: "8"
        }
    }

    /// This entry as a FHIR R4 `AuditEvent`, mapped as IHE BALP suggests:
    /// type `rest` with the RESTful interaction as subtype, the actor as the
    /// requesting agent (with the patient as a second agent when a
    /// representative acts for them), the patient and the document as
    /// entities, the purpose as `purposeOfEvent`, and break-glass as the
    /// `BTG` security label.
    /// - Throws: `PatientVaultError` `invalidArgument` if its `time` is
    ///   not finite (no entry the store returns has one).
    public func fhirAuditEvent() throws(PatientVaultError) -> FHIR.AuditEvent {
        let (interaction, crud): (String, String) = switch action {
        case .createVault, .deposit, .importVault: ("create", "C")
        case .replace, .authorise, .revoke, .block, .unblock, .setMedecinTraitant, .updateCareTeam, .nameRepresentative,
             .removeRepresentative, .setBreakGlassOpposition, .releaseToPatient, .automaticRelease, .closeVault, .recordDeath,
             .reopenVault, .authoriseHeir, .rotateSigningKey, .rotateMasterKey, .compact, .scrub, .rotateVaultKey:
            ("update", "U")
        case .listDocuments, .listVersions, .readAuditTrail, .reviewActivity, .queryAccessHistory, .readStatistics: ("search-type", "E")
        case .readVaultInfo, .readMetadata, .readContent, .verifyAuditTrail, .hiddenDocumentNotice, .exportVault: ("read", "R")
        case .erase, .destroyVault: ("delete", "D")
        }
        let purposeCode: String = switch purpose {
        case .care: "TREAT"
        case .emergency: "ETREAT"
        case .personalAccess: "PATRQT"
        case .audit: "HOPERAT"
        case .system: "HSYSADMIN"
        }
        var agents = [FHIR.AuditEvent.Agent(
            type: FHIR.CodeableConcept(coding: [FHIR.Coding(
                system: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", code: "IRCP", display: "information recipient")]),
            role: actor.healthProfessional.map { [FHIR.CodeableConcept(coding: [FHIR.Coding(system: nil, code: $0.profession.rawValue)])] },
            who: FHIR.reference(actor, vaultID: vaultID), requestor: true)]
        if let onBehalfOf {
            agents.append(FHIR.AuditEvent.Agent(
                type: FHIR.CodeableConcept(coding: [FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/v3-RoleClass", code: "PAT")]),
                role: nil, who: FHIR.reference(onBehalfOf, vaultID: vaultID), requestor: false))
        }
        var entities = [FHIR.AuditEvent.Entity(
            what: FHIR.Reference(reference: "Patient/\(vaultID)", type: "Patient"),
            type: FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/audit-entity-type", code: "1", display: "Person"),
            role: FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/object-role", code: "1", display: "Patient"))]
        if let document {
            // The version's DocumentReference (its id is `<document>-<version>`).
            let ref = "DocumentReference/\(document)" + (version.map { "-\($0)" } ?? "")
            entities.append(FHIR.AuditEvent.Entity(
                what: FHIR.Reference(reference: ref, type: "DocumentReference"),
                type: FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/audit-entity-type", code: "2", display: "System Object"),
                role: FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/object-role", code: "3", display: "Report")))
        }
        var extensions = [FHIR.Extension(url: FHIR.extensionBase + "chain-sequence", valueString: String(sequence))]
        if let legalBasis { extensions.append(FHIR.Extension(url: FHIR.extensionBase + "legal-basis", valueString: legalBasis)) }
        if isSecretAccess { extensions.append(FHIR.Extension(url: FHIR.extensionBase + "secret-access", valueBoolean: true)) }
        if let target { extensions.append(FHIR.Extension(url: FHIR.extensionBase + "target", valueString: target)) }
        return FHIR.AuditEvent(
            id: "\(vaultID.prefix(16))-\(sequence)",
            meta: isBreakGlass ? FHIR.Meta(security: [FHIR.Coding(
                system: "http://terminology.hl7.org/CodeSystem/v3-ActReason", code: "BTG", display: "break the glass")]) : nil,
            type: FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/audit-event-type", code: "rest", display: "Restful Operation"),
            subtype: [
                FHIR.Coding(system: "http://hl7.org/fhir/restful-interaction", code: interaction),
                FHIR.Coding(system: FHIR.extensionBase.replacingOccurrences(of: "StructureDefinition/", with: "CodeSystem/action"), code: action.rawValue),
            ],
            action: crud, recorded: try FHIR.instant(time), outcome: Self.fhirOutcome(outcome), outcomeDesc: rule.rawValue,
            purposeOfEvent: [FHIR.CodeableConcept(coding: [FHIR.Coding(
                system: "http://terminology.hl7.org/CodeSystem/v3-ActReason", code: purposeCode)])],
            agent: agents,
            source: FHIR.AuditEvent.Source(
                observer: FHIR.Reference(display: "PatientVault"),
                type: [FHIR.Coding(system: "http://terminology.hl7.org/CodeSystem/security-source-type", code: "4", display: "Application Server")]),
            entity: entities, extension: extensions)
    }
}

extension DocumentMetadata {
    /// This version's metadata as a FHIR R4 `DocumentReference` (content is
    /// described, not included). `vaultID` names the patient pseudonymously.
    /// - Throws: `PatientVaultError` `invalidArgument` if one of its
    ///   dates is not finite (no metadata the store returns has one).
    public func fhirDocumentReference(vaultID: String) throws(PatientVaultError) -> FHIR.DocumentReference {
        let status: String = switch self.status {
        case .current: "current"
        case .superseded: "superseded"
        case .enteredInError: "entered-in-error"
        }
        var labels: [FHIR.CodeableConcept] = []
        let flagSystem = FHIR.extensionBase.replacingOccurrences(of: "StructureDefinition/", with: "CodeSystem/dmp-confidentiality")
        if confidentiality.contains(.maskedFromProfessionals) { labels.append(.init(coding: [.init(system: flagSystem, code: "MASQUE_PS")])) }
        if confidentiality.contains(.hiddenFromPatient) { labels.append(.init(coding: [.init(system: flagSystem, code: "INVISIBLE_PATIENT")])) }
        if confidentiality.contains(.hiddenFromLegalRepresentatives) {
            labels.append(.init(coding: [.init(system: flagSystem, code: "INVISIBLE_REPRESENTANTS_LEGAUX")]))
        }
        let period: FHIR.DocumentReference.Context? = (draft.serviceStart != nil || draft.serviceEnd != nil)
            ? .init(period: .init(
                start: try draft.serviceStart.map { d throws(PatientVaultError) in try FHIR.instant(d) },
                end: try draft.serviceEnd.map { d throws(PatientVaultError) in try FHIR.instant(d) })) : nil
        return FHIR.DocumentReference(
            id: "\(id)-\(version)",
            identifier: [FHIR.Identifier(system: "urn:ietf:rfc:3986", value: "urn:patientvault:document:\(id):\(version)")],
            status: status, docStatus: "final",
            type: FHIR.CodeableConcept(coding: [FHIR.Coding(system: typeCode.system, code: typeCode.code)]),
            category: [FHIR.CodeableConcept(coding: [FHIR.Coding(
                system: FHIR.extensionBase.replacingOccurrences(of: "StructureDefinition/", with: "CodeSystem/dmp-category"),
                code: category.rawValue)])],
            subject: FHIR.Reference(reference: "Patient/\(vaultID)", type: "Patient"),
            date: try FHIR.instant(depositedAt),
            author: [FHIR.reference(author, vaultID: vaultID)],
            description: title,
            securityLabel: labels.isEmpty ? nil : labels,
            content: [FHIR.DocumentReference.Content(attachment: .init(
                contentType: mimeType, size: size, title: title, creation: try FHIR.instant(createdAt),
                extension: [FHIR.Extension(url: FHIR.extensionBase + "blake2b-256", valueString: hexEncoded(contentHash))]))],
            context: period,
            relatesTo: replaces.map { [FHIR.DocumentReference.RelatesTo(
                code: "replaces", target: FHIR.Reference(reference: "DocumentReference/\(id)-\($0.version)"))] })
    }
}

extension FHIR {
    /// A FHIR R4 `OperationOutcome`: a `PatientVaultError` as a FHIR
    /// server answers an error (one issue, severity `error`). Like the error,
    /// it carries no patient data.
    public struct OperationOutcome: Codable, Hashable, Sendable {
        /// `OperationOutcome`: the resource type, as FHIR JSON names it.
        public var resourceType = "OperationOutcome"
        /// The issues (`OperationOutcome.issue`): one.
        public var issue: [Issue]

        /// `OperationOutcome.issue`.
        public struct Issue: Codable, Hashable, Sendable {
            /// `error` (`issue.severity`), or `fatal` for damage and lost durability.
            public var severity: String
            /// The R4 issue type (`issue.code`): `invalid`, `forbidden`,
            /// `not-found`, `conflict`, `duplicate`, `deleted`, `security`,
            /// `transient`, `exception`, ... from the error's code.
            public var code: String
            /// The store's code (`issue.details`), in the system
            /// `urn:patientvault:error`, with the deciding rule as a second
            /// coding (`urn:patientvault:rule`) for a refusal.
            public var details: CodeableConcept
            /// The error's message (`issue.diagnostics`).
            public var diagnostics: String

            /// An issue with every field.
            public init(severity: String, code: String, details: CodeableConcept, diagnostics: String) {
                self.severity = severity
                self.code = code
                self.details = details
                self.diagnostics = diagnostics
            }
        }

        /// The outcome of `error`.
        public init(_ error: PatientVaultError) {
            let code = error.code
            let type: String = switch code {
            case .invalidIdentifier, .invalidArgument, .contentSourceFailed: "invalid"
            case .accessDenied: "forbidden"
            case .unknownVault, .unknownDocument: "not-found"
            case .vaultAlreadyExists: "duplicate"
            case .conflict: "conflict"
            case .deprecatedVersion, .erased: "deleted"
            case .wrongMasterKey: "security"
            case .storeLocked, .closed, .durabilityLost, .cancelled: "transient"
            case .diskFull: "too-costly"
            case .unsupportedFormat: "not-supported"
            default: "exception"
            }
            var coding = [Coding(system: "urn:patientvault:error", code: code.description)]
            if let rule = error.rule { coding.append(Coding(system: "urn:patientvault:rule", code: rule.rawValue)) }
            let fatal = code == .corrupted || code == .durabilityLost
            issue = [Issue(
                severity: fatal ? "fatal" : "error", code: type, details: CodeableConcept(coding: coding), diagnostics: error.message)]
        }
    }

    /// A FHIR R4 `Patient`, by the vault's pseudonymous id only: the host
    /// maps it to its own patient resource (the INS never leaves the store
    /// through FHIR).
    public struct Patient: Codable, Hashable, Sendable {
        /// `Patient`: the resource type, as FHIR JSON names it.
        public var resourceType = "Patient"
        /// The logical id: the vault's pseudonymous id.
        public var id: String
        /// Identifiers (`Patient.identifier`): the URI
        /// `urn:patientvault:vault:<vaultID>`; never the INS.
        public var identifier: [Identifier]

        /// The patient of the vault `vaultID`.
        public init(vaultID: String) {
            id = vaultID
            identifier = [Identifier(system: "urn:ietf:rfc:3986", value: "urn:patientvault:vault:\(vaultID)")]
        }
    }

    /// A FHIR R4 `Binary`: a document version's content, in a patient's
    /// export (``Bundle/init(export:baseURL:)``), named by its
    /// `DocumentReference`'s attachment.
    public struct Binary: Codable, Hashable, Sendable {
        /// `Binary`: the resource type, as FHIR JSON names it.
        public var resourceType = "Binary"
        /// The logical id: the version's (`<document>-<version>`).
        public var id: String
        /// The content's MIME type (`Binary.contentType`).
        public var contentType: String
        /// The content, in standard base64 (`Binary.data`).
        public var data: String

        /// A binary resource with every field.
        public init(id: String, contentType: String, data: String) {
            self.id = id
            self.contentType = contentType
            self.data = data
        }
    }

    /// A FHIR R4 `Bundle`: a vault's export for its holder (type
    /// `collection`), or the result of an audit query (type `searchset`).
    ///
    /// Every entry's `fullUrl` is absolute, as R4 requires: `<base>/<type>/<id>`
    /// when the host gives its FHIR base URL (the references inside, written
    /// `<type>/<id>`, then resolve against it), else a `urn:uuid:` derived
    /// from the bundle and the resource, with every reference to a resource
    /// of the bundle rewritten to it. Ids are unique within the bundle.
    public struct Bundle: Codable, Hashable, Sendable {
        /// `Bundle`: the resource type, as FHIR JSON names it.
        public var resourceType = "Bundle"
        /// The logical id: `export-<vaultID>-<ms>` (a collection) or
        /// `audit-<vaultID>-<ms>` (a searchset), where `<ms>` is ``timestamp``
        /// in whole milliseconds since 1970 (0 for a date no clock gives).
        public var id: String
        /// The bundle's type (`Bundle.type`): `collection` or `searchset`.
        public var type: String
        /// When the bundle was assembled (`Bundle.timestamp`), an ISO 8601
        /// instant in UTC with milliseconds.
        public var timestamp: String
        /// For a `searchset`, the number of matches (`Bundle.total`); nil
        /// for a collection.
        public var total: Int?
        /// The entries (`Bundle.entry`): for a collection, the patient, then a
        /// `DocumentReference` per document version, then an `AuditEvent` per
        /// audit entry; for a searchset, an `AuditEvent` per match.
        public var entry: [Entry]

        /// `Bundle.entry`: a resource and the absolute URL it is known by.
        public struct Entry: Codable, Hashable, Sendable {
            /// The absolute URL of the resource (`Bundle.entry.fullUrl`).
            public var fullUrl: String
            /// The resource (`Bundle.entry.resource`).
            public var resource: Resource
            /// For a searchset entry (`Bundle.entry.search`): why it is there.
            public var search: Search?

            /// An entry for `resource`, known by `fullUrl`.
            public init(fullUrl: String, resource: Resource, search: Search? = nil) {
                self.fullUrl = fullUrl
                self.resource = resource
                self.search = search
            }
        }

        /// `Bundle.entry.search`.
        public struct Search: Codable, Hashable, Sendable {
            /// `match`: the entry matched the search.
            public var mode: String

            /// A search element of `mode`.
            public init(mode: String) { self.mode = mode }
        }

        /// The resources a bundle holds.
        public enum Resource: Codable, Hashable, Sendable {
            /// The vault's patient.
            case patient(Patient)
            /// One document version's metadata.
            case documentReference(DocumentReference)
            /// One audit entry.
            case auditEvent(AuditEvent)
            /// One document version's content.
            case binary(Binary)

            /// `<resourceType>/<id>`.
            public var reference: String {
                switch self {
                case .patient(let p): "Patient/\(p.id)"
                case .documentReference(let d): "DocumentReference/\(d.id)"
                case .auditEvent(let a): "AuditEvent/\(a.id)"
                case .binary(let b): "Binary/\(b.id)"
                }
            }

            private enum Keys: String, CodingKey { case resourceType }

            /// Decodes the resource its `resourceType` names (`Patient`,
            /// `DocumentReference` or `AuditEvent`); any other type is
            /// `DecodingError.dataCorrupted`.
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: Keys.self)
                switch try c.decode(String.self, forKey: .resourceType) {
                case "Patient": self = .patient(try Patient(from: decoder))
                case "DocumentReference": self = .documentReference(try DocumentReference(from: decoder))
                case "AuditEvent": self = .auditEvent(try AuditEvent(from: decoder))
                case "Binary": self = .binary(try Binary(from: decoder))
                default: throw DecodingError.dataCorruptedError(forKey: .resourceType, in: c, debugDescription: "unexpected resource")
                }
            }

            /// Encodes the resource itself, its `resourceType` included, with
            /// no wrapping object.
            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .patient(let p): try p.encode(to: encoder)
                case .documentReference(let d): try d.encode(to: encoder)
                case .auditEvent(let a): try a.encode(to: encoder)
                case .binary(let b): try b.encode(to: encoder)
                }
            }

            /// The same resource with each literal reference found in `map`
            /// replaced by its value.
            func rewritingReferences(_ map: [String: String]) -> Resource {
                func fix(_ r: inout Reference) {
                    if let old = r.reference, let new = map[old] { r.reference = new }
                }
                switch self {
                case .patient, .binary:
                    return self
                case .documentReference(var d):
                    fix(&d.subject)
                    for i in d.content.indices {
                        if let url = d.content[i].attachment.url, let new = map[url] { d.content[i].attachment.url = new }
                    }
                    for i in d.author.indices { fix(&d.author[i]) }
                    if var relates = d.relatesTo {
                        for i in relates.indices { fix(&relates[i].target) }
                        d.relatesTo = relates
                    }
                    return .documentReference(d)
                case .auditEvent(var a):
                    for i in a.agent.indices { fix(&a.agent[i].who) }
                    fix(&a.source.observer)
                    for i in a.entity.indices { fix(&a.entity[i].what) }
                    return .auditEvent(a)
                }
            }
        }

        /// A vault's export: its patient, a `DocumentReference` per document
        /// version, an `AuditEvent` per audit entry. Build it from what the
        /// holder may read (`VaultStore/vaultInfo(for:as:purpose:secret:)`,
        /// `VaultStore/versions(of:for:as:purpose:secret:)` or the
        /// documents' listing, `VaultStore/auditTrail(for:matching:as:)`):
        /// each of those calls is audited, the export itself reads nothing.
        /// - Parameters:
        ///   - vaultID: the vault's id (`VaultInfo.vaultID`).
        ///   - documents: the document versions to export.
        ///   - auditEntries: the audit entries to export.
        ///   - timestamp: when the bundle is assembled.
        ///   - baseURL: the host's FHIR base (`https://fhir.example/r4`);
        ///     nil gives `urn:uuid:` full URLs.
        /// - Throws: `PatientVaultError` `invalidArgument` if
        ///   `timestamp` or a date of the documents or entries is not
        ///   finite.
        public init(
            vaultID: String, documents: [DocumentMetadata], auditEntries: [AuditEntry], timestamp: Date, baseURL: String? = nil
        ) throws(PatientVaultError) {
            id = "export-\(vaultID)-\(Bundle.milliseconds(timestamp))"
            type = "collection"
            self.timestamp = try FHIR.instant(timestamp)
            entry = Bundle.entries(
                try Bundle.collection(vaultID: vaultID, documents: documents, auditEntries: auditEntries), bundleID: id, baseURL: baseURL,
                search: nil)
        }

        /// The resources of a vault's collection, references not yet resolved.
        private static func collection(
            vaultID: String, documents: [DocumentMetadata], auditEntries: [AuditEntry]
        ) throws(PatientVaultError) -> [Resource] {
            // An entry about a document without a version names the document:
            // inside the bundle, that is its newest version here.
            var newest: [String: Int] = [:]
            for d in documents { newest["\(d.id)"] = max(newest["\(d.id)"] ?? 0, d.version) }
            let events = try auditEntries.map { entry throws(PatientVaultError) -> AuditEvent in
                var event = try entry.fhirAuditEvent()
                for i in event.entity.indices {
                    if let ref = event.entity[i].what.reference, ref.hasPrefix("DocumentReference/"),
                       let version = newest[String(ref.dropFirst("DocumentReference/".count))] {
                        event.entity[i].what.reference = ref + "-\(version)"
                    }
                }
                return event
            }
            let references = try documents.map { d throws(PatientVaultError) in Resource.documentReference(try d.fhirDocumentReference(vaultID: vaultID)) }
            return [Resource.patient(Patient(vaultID: vaultID))] + references + Bundle.uniquelyNamed(events).map { .auditEvent($0) }
        }

        /// A patient's export (`VaultExport`, verified) as a `collection`
        /// Bundle: the patient, a `DocumentReference` per version whose
        /// attachment's `url` names a `Binary` resource holding the
        /// content (base64), then an `AuditEvent` per audit entry. The
        /// exporter may read every version of an export, so each carries
        /// its content.
        /// - Throws: `PatientVaultError` `invalidArgument` if a date
        ///   of the export is not finite (no export the store makes has
        ///   one).
        public init(export: VaultExport, baseURL: String? = nil) throws(PatientVaultError) {
            id = "export-\(export.vaultID)-\(Bundle.milliseconds(export.exportedAt))"
            type = "collection"
            timestamp = try FHIR.instant(export.exportedAt)
            var resources = try Bundle.collection(
                vaultID: export.vaultID, documents: export.documents.map(\.metadata), auditEntries: export.auditTrail)
            for (i, resource) in resources.enumerated() {
                guard case .documentReference(var reference) = resource,
                      let document = export.documents.first(where: { "\($0.metadata.id)-\($0.metadata.version)" == reference.id })
                else { continue }
                reference.content[0].attachment.url = "Binary/\(reference.id)"
                resources[i] = .documentReference(reference)
                resources.append(.binary(Binary(
                    id: reference.id, contentType: document.metadata.mimeType, data: document.content.base64EncodedString())))
            }
            entry = Bundle.entries(resources, bundleID: id, baseURL: baseURL, search: nil)
        }

        /// The result of an audit query as a `searchset` Bundle: an
        /// `AuditEvent` per entry (as `VaultStore/auditTrail(for:matching:as:)`
        /// returned them), each with `search.mode` `match`, and `total`.
        /// - Parameters:
        ///   - auditEntries: the entries the query returned, in its order.
        ///   - vaultID: the vault's id (`VaultInfo.vaultID`).
        ///   - timestamp: when the bundle is assembled.
        ///   - baseURL: as for a collection.
        /// - Throws: `PatientVaultError` `invalidArgument` if
        ///   `timestamp` or an entry's time is not finite.
        public init(searchset auditEntries: [AuditEntry], vaultID: String, timestamp: Date, baseURL: String? = nil) throws(PatientVaultError) {
            id = "audit-\(vaultID)-\(Bundle.milliseconds(timestamp))"
            type = "searchset"
            self.timestamp = try FHIR.instant(timestamp)
            total = auditEntries.count
            let events = Bundle.uniquelyNamed(try auditEntries.map { e throws(PatientVaultError) in try e.fhirAuditEvent() })
            entry = Bundle.entries(events.map { .auditEvent($0) }, bundleID: id, baseURL: baseURL, search: Search(mode: "match"))
        }

        /// Whole milliseconds; a date no clock gives (not finite, beyond
        /// ±10¹¹ s) is never converted, so it cannot trap.
        private static func milliseconds(_ date: Date) -> Int64 {
            let seconds = date.timeIntervalSince1970
            return seconds.isFinite && abs(seconds) <= 1e11 ? Int64(seconds * 1000) : 0
        }

        /// The events with ids unique within the bundle: an entry seen
        /// without its position (a representative's view has sequence 0
        /// throughout) gets `-2`, `-3`, ... after the first of its id.
        private static func uniquelyNamed(_ events: [AuditEvent]) -> [AuditEvent] {
            var seen: [String: Int] = [:]
            var used = Set(events.map(\.id))
            return events.map { event in
                var e = event
                let count = seen[event.id, default: 0] + 1
                seen[event.id] = count
                if count > 1 {
                    var n = count
                    while used.contains("\(event.id)-\(n)") { n += 1 }
                    e.id = "\(event.id)-\(n)"
                    used.insert(e.id)
                }
                return e
            }
        }

        /// Entries with absolute full URLs: under `baseURL`, or `urn:uuid:`
        /// names derived from the bundle's id and each resource's, with the
        /// references to them rewritten.
        private static func entries(_ resources: [Resource], bundleID: String, baseURL: String?, search: Search?) -> [Entry] {
            if let baseURL {
                let base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
                return resources.map { Entry(fullUrl: base + "/" + $0.reference, resource: $0, search: search) }
            }
            var urls: [String: String] = [:]
            for r in resources { urls[r.reference] = "urn:uuid:" + nameBasedUUID(bundleID + "|" + r.reference) }
            return resources.map { r in
                Entry(fullUrl: urls[r.reference]!, resource: r.rewritingReferences(urls), search: search)
            }
        }
    }
}

// Resources that carry clinical content (a document's title, type and
// content, a Bundle of them) print without it, as the values they are
// built from do: `print`, `dump` and reflecting loggers see their id only.
// Their JSON (`Codable`) is unchanged.

// (`DocumentReference` has a FHIR element named `description`, the
// document's title: it is not `CustomStringConvertible`; interpolation and
// `print` go through its mirror.)
extension FHIR.DocumentReference: CustomDebugStringConvertible, CustomReflectable {
    /// The resource's id only.
    public var debugDescription: String { "FHIR.DocumentReference(id: \(id))" }
    /// No children: reflection shows neither title, type nor attachment.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension FHIR.DocumentReference.Attachment: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `FHIR.Attachment(redacted)`.
    public var description: String { "FHIR.Attachment(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither title nor type.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension FHIR.Binary: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The resource's id only.
    public var description: String { "FHIR.Binary(id: \(id))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither the content nor its type.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension FHIR.Bundle: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The Bundle's id only.
    public var description: String { "FHIR.Bundle(id: \(id))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows none of its entries.
    public var customMirror: Mirror { Mirror(self, children: []) }
}
