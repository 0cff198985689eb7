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
    }

    /// A FHIR `CodeableConcept`.
    public struct CodeableConcept: Codable, Hashable, Sendable {
        public var coding: [Coding]
        public var text: String?
    }

    /// A FHIR `Identifier`.
    public struct Identifier: Codable, Hashable, Sendable {
        public var system: String?
        public var value: String
    }

    /// A FHIR `Reference`.
    public struct Reference: Codable, Hashable, Sendable {
        public var reference: String?
        public var identifier: Identifier?
        public var type: String?
        public var display: String?
    }

    /// A FHIR `Extension` with a boolean or string value.
    public struct Extension: Codable, Hashable, Sendable {
        public var url: String
        public var valueBoolean: Bool?
        public var valueString: String?
    }

    /// A FHIR `Meta`, for security labels.
    public struct Meta: Codable, Hashable, Sendable {
        public var security: [Coding]?
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
        }

        /// `AuditEvent.source`.
        public struct Source: Codable, Hashable, Sendable {
            public var observer: Reference
            public var type: [Coding]?
        }

        /// `AuditEvent.entity`.
        public struct Entity: Codable, Hashable, Sendable {
            public var what: Reference
            public var type: Coding?
            public var role: Coding?
            public var description: String?
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
        }

        /// `Attachment` (the BLAKE2b hash goes in an extension: FHIR's
        /// `hash` element is defined as SHA-1).
        public struct Attachment: Codable, Hashable, Sendable {
            public var contentType: String
            public var size: Int64
            public var title: String
            public var creation: String
            public var `extension`: [Extension]?
        }

        /// `DocumentReference.context`.
        public struct Context: Codable, Hashable, Sendable {
            public var period: Period
        }

        /// `Period`.
        public struct Period: Codable, Hashable, Sendable {
            public var start: String?
            public var end: String?
        }

        /// `DocumentReference.relatesTo`.
        public struct RelatesTo: Codable, Hashable, Sendable {
            public var code: String
            public var target: Reference
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
            let ref = "DocumentReference/\(document)" + (version.map { "/_history/\($0)" } ?? "")
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
