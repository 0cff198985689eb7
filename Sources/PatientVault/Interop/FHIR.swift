import Foundation

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
        public var system: String?
        public var code: String
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
        public var coding: [Coding]
        public var text: String?

        /// Creates the element with every field.
        public init(coding: [Coding], text: String? = nil) {
            self.coding = coding
            self.text = text
        }
    }

    /// A FHIR `Identifier`.
    public struct Identifier: Codable, Hashable, Sendable {
        public var system: String?
        public var value: String

        /// Creates the element with every field.
        public init(system: String? = nil, value: String) {
            self.system = system
            self.value = value
        }
    }

    /// A FHIR `Reference`.
    public struct Reference: Codable, Hashable, Sendable {
        public var reference: String?
        public var identifier: Identifier?
        public var type: String?
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
        public var url: String
        public var valueBoolean: Bool?
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
        public var security: [Coding]?

        /// Creates the element with every field.
        public init(security: [Coding]? = nil) {
            self.security = security
        }
    }

    /// A FHIR R4 `AuditEvent`.
    public struct AuditEvent: Codable, Hashable, Sendable {
        public var resourceType = "AuditEvent"
        public var id: String
        public var meta: Meta?
        public var type: Coding
        public var subtype: [Coding]
        public var action: String
        public var recorded: String
        public var outcome: String
        public var outcomeDesc: String
        public var purposeOfEvent: [CodeableConcept]
        public var agent: [Agent]
        public var source: Source
        public var entity: [Entity]
        public var `extension`: [Extension]?

        /// `AuditEvent.agent`.
        public struct Agent: Codable, Hashable, Sendable {
            public var type: CodeableConcept?
            public var role: [CodeableConcept]?
            public var who: Reference
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
            public var observer: Reference
            public var type: [Coding]?

            /// Creates the element with every field.
            public init(observer: Reference, type: [Coding]? = nil) {
                self.observer = observer
                self.type = type
            }
        }

        /// `AuditEvent.entity`.
        public struct Entity: Codable, Hashable, Sendable {
            public var what: Reference
            public var type: Coding?
            public var role: Coding?
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
        public var resourceType = "DocumentReference"
        public var id: String
        public var meta: Meta?
        public var identifier: [Identifier]
        public var status: String
        public var docStatus: String
        public var type: CodeableConcept
        public var category: [CodeableConcept]
        public var subject: Reference
        public var date: String
        public var author: [Reference]
        public var description: String
        public var securityLabel: [CodeableConcept]?
        public var content: [Content]
        public var context: Context?
        public var relatesTo: [RelatesTo]?

        /// `DocumentReference.content`.
        public struct Content: Codable, Hashable, Sendable {
            public var attachment: Attachment

            /// Creates the element with every field.
            public init(attachment: Attachment) {
                self.attachment = attachment
            }
        }

        /// `Attachment` (the BLAKE2b hash goes in an extension: FHIR's
        /// `hash` element is defined as SHA-1).
        public struct Attachment: Codable, Hashable, Sendable {
            public var contentType: String
            public var size: Int64
            public var title: String
            public var creation: String
            public var `extension`: [Extension]?

            /// Creates the element with every field.
            public init(contentType: String, size: Int64, title: String, creation: String, `extension`: [Extension]? = nil) {
                self.contentType = contentType
                self.size = size
                self.title = title
                self.creation = creation
                self.`extension` = `extension`
            }
        }

        /// `DocumentReference.context`.
        public struct Context: Codable, Hashable, Sendable {
            public var period: Period

            /// Creates the element with every field.
            public init(period: Period) {
                self.period = period
            }
        }

        /// `Period`.
        public struct Period: Codable, Hashable, Sendable {
            public var start: String?
            public var end: String?

            /// Creates the element with every field.
            public init(start: String? = nil, end: String? = nil) {
                self.start = start
                self.end = end
            }
        }

        /// `DocumentReference.relatesTo`.
        public struct RelatesTo: Codable, Hashable, Sendable {
            public var code: String
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
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` if the value
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

    static func instant(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
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
    /// This entry as a FHIR R4 `AuditEvent`, mapped as IHE BALP suggests:
    /// type `rest` with the RESTful interaction as subtype, the actor as the
    /// requesting agent (with the patient as a second agent when a
    /// representative acts for them), the patient and the document as
    /// entities, the purpose as `purposeOfEvent`, and break-glass as the
    /// `BTG` security label.
    public func fhirAuditEvent() -> FHIR.AuditEvent {
        let (interaction, crud): (String, String) = switch action {
        case .createVault, .deposit: ("create", "C")
        case .replace, .authorise, .revoke, .block, .unblock, .setMedecinTraitant, .updateCareTeam, .nameRepresentative,
             .removeRepresentative, .setBreakGlassOpposition, .releaseToPatient, .automaticRelease:
            ("update", "U")
        case .listDocuments, .listVersions, .readAuditTrail, .reviewActivity, .queryAccessHistory, .readStatistics: ("search-type", "E")
        case .readVaultInfo, .readMetadata, .readContent, .verifyAuditTrail, .hiddenDocumentNotice: ("read", "R")
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
            action: crud, recorded: FHIR.instant(time), outcome: outcome == .allowed ? "0" : "4", outcomeDesc: rule.rawValue,
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
    public func fhirDocumentReference(vaultID: String) -> FHIR.DocumentReference {
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
            ? .init(period: .init(start: draft.serviceStart.map(FHIR.instant), end: draft.serviceEnd.map(FHIR.instant))) : nil
        return FHIR.DocumentReference(
            id: "\(id)-\(version)",
            identifier: [FHIR.Identifier(system: "urn:ietf:rfc:3986", value: "urn:patientvault:document:\(id):\(version)")],
            status: status, docStatus: "final",
            type: FHIR.CodeableConcept(coding: [FHIR.Coding(system: typeCode.system, code: typeCode.code)]),
            category: [FHIR.CodeableConcept(coding: [FHIR.Coding(
                system: FHIR.extensionBase.replacingOccurrences(of: "StructureDefinition/", with: "CodeSystem/dmp-category"),
                code: category.rawValue)])],
            subject: FHIR.Reference(reference: "Patient/\(vaultID)", type: "Patient"),
            date: FHIR.instant(depositedAt),
            author: [FHIR.reference(author, vaultID: vaultID)],
            description: title,
            securityLabel: labels.isEmpty ? nil : labels,
            content: [FHIR.DocumentReference.Content(attachment: .init(
                contentType: mimeType, size: size, title: title, creation: FHIR.instant(createdAt),
                extension: [FHIR.Extension(url: FHIR.extensionBase + "blake2b-256", valueString: hexEncoded(contentHash))]))],
            context: period,
            relatesTo: replaces.map { [FHIR.DocumentReference.RelatesTo(
                code: "replaces", target: FHIR.Reference(reference: "DocumentReference/\(id)-\($0.version)"))] })
    }
}

extension FHIR {
    /// A FHIR R4 `Patient`, by the vault's pseudonymous id only: the host
    /// maps it to its own patient resource (the INS never leaves the store
    /// through FHIR).
    public struct Patient: Codable, Hashable, Sendable {
        public var resourceType = "Patient"
        public var id: String
        public var identifier: [Identifier]

        /// The patient of the vault `vaultID`.
        public init(vaultID: String) {
            id = vaultID
            identifier = [Identifier(system: "urn:ietf:rfc:3986", value: "urn:patientvault:vault:\(vaultID)")]
        }
    }

    /// A FHIR R4 `Bundle` of type `collection`: a vault's export for its
    /// holder.
    public struct Bundle: Codable, Hashable, Sendable {
        public var resourceType = "Bundle"
        public var id: String
        public var type: String
        public var timestamp: String
        public var entry: [Entry]

        /// `Bundle.entry`: a resource and the URL it is known by inside the
        /// bundle (`<resourceType>/<id>`, which the references use).
        public struct Entry: Codable, Hashable, Sendable {
            public var fullUrl: String
            public var resource: Resource

            /// An entry for `resource`.
            public init(resource: Resource) {
                self.resource = resource
                fullUrl = resource.reference
            }
        }

        /// The resources a vault's export holds.
        public enum Resource: Codable, Hashable, Sendable {
            case patient(Patient)
            case documentReference(DocumentReference)
            case auditEvent(AuditEvent)

            /// `<resourceType>/<id>`.
            public var reference: String {
                switch self {
                case .patient(let p): "Patient/\(p.id)"
                case .documentReference(let d): "DocumentReference/\(d.id)"
                case .auditEvent(let a): "AuditEvent/\(a.id)"
                }
            }

            private enum Keys: String, CodingKey { case resourceType }

            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: Keys.self)
                switch try c.decode(String.self, forKey: .resourceType) {
                case "Patient": self = .patient(try Patient(from: decoder))
                case "DocumentReference": self = .documentReference(try DocumentReference(from: decoder))
                case "AuditEvent": self = .auditEvent(try AuditEvent(from: decoder))
                default: throw DecodingError.dataCorruptedError(forKey: .resourceType, in: c, debugDescription: "unexpected resource")
                }
            }

            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .patient(let p): try p.encode(to: encoder)
                case .documentReference(let d): try d.encode(to: encoder)
                case .auditEvent(let a): try a.encode(to: encoder)
                }
            }
        }

        /// A vault's export: its patient, a `DocumentReference` per document
        /// version, an `AuditEvent` per audit entry. Build it from what the
        /// holder may read (``VaultStore/vaultInfo(for:as:purpose:secret:)``,
        /// ``VaultStore/versions(of:for:as:purpose:secret:)`` or the
        /// documents' listing, ``VaultStore/auditTrail(for:matching:as:)``):
        /// each of those calls is audited, the export itself reads nothing.
        public init(vaultID: String, documents: [DocumentMetadata], auditEntries: [AuditEntry], timestamp: Date) {
            // Whole milliseconds; a date no clock gives (not finite, beyond
            // ±10¹¹ s) is never converted, so it cannot trap.
            let seconds = timestamp.timeIntervalSince1970
            let millis = seconds.isFinite && abs(seconds) <= 1e11 ? Int64(seconds * 1000) : 0
            id = "export-\(vaultID)-\(millis)"
            type = "collection"
            self.timestamp = FHIR.instant(timestamp)
            // An entry about a document without a version names the document:
            // inside the bundle, that is its newest version here.
            var newest: [String: Int] = [:]
            for d in documents { newest["\(d.id)"] = max(newest["\(d.id)"] ?? 0, d.version) }
            let events = auditEntries.map { entry -> AuditEvent in
                var event = entry.fhirAuditEvent()
                for i in event.entity.indices {
                    if let ref = event.entity[i].what.reference, ref.hasPrefix("DocumentReference/"),
                       let version = newest[String(ref.dropFirst("DocumentReference/".count))] {
                        event.entity[i].what.reference = ref + "-\(version)"
                    }
                }
                return event
            }
            entry = [Entry(resource: .patient(Patient(vaultID: vaultID)))]
                + documents.map { Entry(resource: .documentReference($0.fhirDocumentReference(vaultID: vaultID))) }
                + events.map { Entry(resource: .auditEvent($0)) }
        }
    }
}
