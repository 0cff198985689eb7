import Foundation
import PatientVault
import PatientVaultFHIR
import PatientVaultTesting
import Testing

/// The JSON of the values a service returns: stable whatever the encoder's
/// date strategy (golden strings), and decoded back to the same values.
@Suite struct CodableTests {
    /// A plain encoder: the shapes must not depend on its strategies.
    func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    static let t = Date(timeIntervalSince1970: 1_700_000_000.25)

    @Test func identifiersAreStrings() throws {
        let id = try DocumentID("00112233445566778899aabbccddeeff")
        #expect(try json(id) == #""00112233445566778899aabbccddeeff""#)
        #expect(try decode(DocumentID.self, #""00112233445566778899aabbccddeeff""#) == id)
        let ins = INS.example(1)
        #expect(try json(ins) == "\"\(ins.digits)\"")
        #expect(try decode(INS.self, "\"\(ins.digits)\"") == ins)
        // A wrong key is refused, as by the initialiser.
        let wrongKey = String(ins.digits.prefix(13)) + (ins.digits.hasSuffix("01") ? "02" : "01")
        #expect(throws: DecodingError.self) { _ = try decode(INS.self, "\"\(wrongKey)\"") }
        #expect(throws: DecodingError.self) { _ = try decode(DocumentID.self, #""0011""#) }
    }

    @Test func principalsAreTaggedByKind() throws {
        let golden: [(Principal, String)] = [
            (.patient(INS.example(1)), #"{"ins":"\#(INS.example(1).digits)","kind":"patient"}"#),
            (.doctor(), #"{"kind":"professional","profession":"doctor","rpps":"10000000001"}"#),
            (.emergencyRegulator(try HealthProfessional(rpps: .example(2), profession: .doctor, speciality: "urgences")),
             #"{"kind":"emergencyRegulator","profession":"doctor","rpps":"10000000002","speciality":"urgences"}"#),
            (.hospital(), #"{"finess":"990000001","kind":"organisation","organisationKind":"hospital"}"#),
            (.healthInsurer, #"{"identifier":"cnam","kind":"insurer"}"#),
            (.representative(LegalRepresentative(ins: INS.example(2), relationship: .parent)),
             #"{"ins":"\#(INS.example(2).digits)","kind":"representative","relationship":"parent"}"#),
            (.system, #"{"kind":"system"}"#),
        ]
        for (principal, text) in golden {
            #expect(try json(principal) == text)
            #expect(try decode(Principal.self, text) == principal)
        }
        #expect(throws: DecodingError.self) { _ = try decode(Principal.self, #"{"kind":"martian"}"#) }
    }

    @Test func metadataHasItsDocumentedShape() throws {
        var metadata = DocumentMetadata(
            id: try DocumentID("00112233445566778899aabbccddeeff"), version: 2,
            draft: DocumentDraft(
                typeCode: .dischargeSummary, category: .summary, title: "Sortie", createdAt: Self.t, mimeType: "application/pdf",
                confidentiality: [.hiddenFromPatient]),
            author: .hospital(), depositedAt: Self.t.addingTimeInterval(60), size: 4096, contentHash: [0xAB, 0x01],
            status: .superseded(by: 3))
        metadata.replaces = (1, .enteredInError)
        let golden = #"{"author":{"finess":"990000001","kind":"organisation","organisationKind":"hospital"},"contentHash":"ab01","depositedAt":"2023-11-14T22:14:20.250Z","draft":{"category":"summary","confidentiality":["hiddenFromPatient"],"createdAt":"2023-11-14T22:13:20.250Z","mimeType":"application\/pdf","title":"Sortie","typeCode":{"code":"18842-5","system":"http:\/\/loinc.org"}},"id":"00112233445566778899aabbccddeeff","replaces":{"reason":"enteredInError","version":1},"size":4096,"status":{"by":3,"state":"superseded"},"version":2}"#
        #expect(try json(metadata) == golden)
        let back = try decode(DocumentMetadata.self, golden)
        #expect(back == metadata)
        #expect(back.replaces?.version == 1 && back.replaces?.reason == .enteredInError)
    }

    @Test func vaultInfoAndAuditEntriesFromAStoreRoundTrip() async throws {
        let alice = INS.example(9)
        try await withTemporaryStore(configuration: .testing(clock: ManualClock())) { store in
            try await store.createVault(for: alice, as: .pharmacist(), channel: .pharmacy)
            let info = try await store.vaultInfo(for: alice, as: .patient(alice))
            let text = try json(info)
            #expect(text.contains(#""channel":"pharmacy""#) && text.contains(#""createdAt":"2023-11-14T22:13:20.000Z""#))
            #expect(try decode(VaultInfo.self, text) == info)
            let emergency = Principal.professional(try HealthProfessional(rpps: .example(5), profession: .doctor, speciality: nil))
            _ = try await store.documents(for: alice, as: emergency, purpose: .breakGlass(reason: try BreakGlassReason("inconscient, urgence")))
            let trail = try await store.auditTrail(for: alice, as: .patient(alice))
            #expect(trail.count >= 3)
            for entry in trail {
                let encoded = try json(entry)
                #expect(try decode(AuditEntry.self, encoded) == entry)
                #expect(encoded.contains(#""previousHash":""#) && !encoded.contains("[0,"))
            }
            let breakGlass = try #require(trail.first { $0.isBreakGlass })
            #expect(try json(breakGlass).contains(#""purpose":"emergency""#))
        }
    }
}

/// A vault's FHIR R4 Bundle for its holder, checked against R4's structure:
/// resource types, required fields, every reference resolving inside it.
@Test func aVaultExportsAsAFHIRBundle() async throws {
    let alice = INS.example(11)
    let (bundle, auditCount) = try await withTemporaryStore { store -> (FHIR.Bundle, Int) in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let draft = DocumentDraft(typeCode: .laboratoryReport, category: .report, title: "Bilan", createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "application/pdf")
        let first = try await store.deposit(draft, content: Data("v1".utf8), for: alice, as: .laboratory())
        _ = try await store.replace(first.id, with: draft, content: Data("v2".utf8), reason: .superseded, for: alice, as: .laboratory())
        _ = try await store.content(of: first.id, for: alice, as: .patient(alice))
        let info = try await store.vaultInfo(for: alice, as: .patient(alice))
        var documents: [DocumentMetadata] = []
        for d in try await store.documents(for: alice, as: .patient(alice)) {
            documents += try await store.versions(of: d.id, for: alice, as: .patient(alice))
        }
        let trail = try await store.auditTrail(for: alice, as: .patient(alice))
        let bundle = try FHIR.Bundle(vaultID: info.vaultID, documents: documents, auditEntries: trail, timestamp: Date(timeIntervalSince1970: 1_700_000_000))
        return (bundle, trail.count)
    }
    try checkBundleStructure(bundle, documentReferences: 2, auditEvents: auditCount)
    // And the bundle decodes back.
    #expect(try JSONDecoder().decode(FHIR.Bundle.self, from: try FHIR.json(bundle)) == bundle)
}

/// A patient's export as a FHIR Bundle: each version's attachment names a
/// `Binary` of the bundle that holds its content.
@Test func anExportBecomesABundleWithItsContentAsBinaries() async throws {
    let alice = INS.example(12)
    let (bundle, export) = try await withTemporaryStore { store -> (FHIR.Bundle, VaultExport) in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let draft = DocumentDraft(typeCode: .laboratoryReport, category: .report, title: "Bilan", createdAt: Date(timeIntervalSince1970: 1_700_000_000), mimeType: "application/pdf")
        let first = try await store.deposit(draft, content: Data("v1".utf8), for: alice, as: .laboratory())
        _ = try await store.replace(first.id, with: draft, content: Data("v2".utf8), reason: .superseded, for: alice, as: .laboratory())
        let export = try await store.exportVault(for: alice, as: .patient(alice))
        return (try FHIR.Bundle(export: export), export)
    }
    try checkBundleStructure(bundle, documentReferences: 2, auditEvents: export.auditTrail.count, binaries: 2)
    let byURL = Dictionary(uniqueKeysWithValues: bundle.entry.map { ($0.fullUrl, $0.resource) })
    for entry in bundle.entry {
        guard case .documentReference(let reference) = entry.resource else { continue }
        let url = try #require(reference.content.first?.attachment.url)
        guard case .binary(let binary) = try #require(byURL[url]) else { Issue.record("\(url) is not a Binary"); continue }
        let version = try #require(export.documents.first { "\($0.metadata.id)-\($0.metadata.version)" == reference.id })
        #expect(Data(base64Encoded: binary.data) == version.content && binary.contentType == "application/pdf")
    }
    #expect(try JSONDecoder().decode(FHIR.Bundle.self, from: try FHIR.json(bundle)) == bundle)
}

/// With the host's FHIR base, full URLs are `<base>/<type>/<id>`; a
/// representative's view (every entry at sequence 0) still gives unique
/// AuditEvent ids; an audit query becomes a `searchset` with its total.
@Test func bundlesHaveAbsoluteURLsUniqueIdsAndASearchset() async throws {
    let child = INS.example(21)
    let parent = Principal.representative(LegalRepresentative(ins: INS.example(22), relationship: .parent))
    try await withTemporaryStore { store in
        try await store.createVault(for: child, as: .patient(child), channel: .patientOnline)
        try await store.nameRepresentative(parent, for: child, as: .patient(child))
        for _ in 0..<3 { _ = try await store.documents(for: child, as: parent) }
        let info = try await store.vaultInfo(for: child, as: parent)
        let trail = try await store.auditTrail(for: child, as: parent)
        #expect(Set(trail.map(\.sequence)) == [0])
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let base = "https://fhir.example.org/r4"
        let collection = try FHIR.Bundle(vaultID: info.vaultID, documents: [], auditEntries: trail, timestamp: now, baseURL: base)
        try checkBundleStructure(collection, documentReferences: 0, auditEvents: trail.count, baseURL: base)
        let search = try FHIR.Bundle(searchset: trail, vaultID: info.vaultID, timestamp: now)
        #expect(search.total == trail.count && search.type == "searchset")
        try checkBundleStructure(search, documentReferences: 0, auditEvents: trail.count, type: "searchset")
        #expect(try JSONDecoder().decode(FHIR.Bundle.self, from: try FHIR.json(search)) == search)
    }
}

/// An error has a stable JSON (for a service's response) and a FHIR
/// OperationOutcome, both without patient data.
@Test func anErrorHasAStableJSONAndAnOperationOutcome() throws {
    let error = PatientVaultError(.accessDenied, "readContent denied", rule: .blockedByPatient)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let text = String(decoding: try encoder.encode(error), as: UTF8.self)
    #expect(text == #"{"code":"accessDenied","httpStatus":403,"message":"readContent denied","rule":"blockedByPatient"}"#)
    #expect(try JSONDecoder().decode(PatientVaultError.self, from: Data(text.utf8)) == error)
    for code in PatientVaultError.Code.all {
        let e = PatientVaultError(code, "m")
        #expect(try JSONDecoder().decode(PatientVaultError.self, from: try encoder.encode(e)) == e)
    }
    for bad in [#"{"code":"nope","httpStatus":500,"message":"m"}"#, #"{"code":"io","httpStatus":404,"message":"m"}"#,
                #"{"code":"accessDenied","httpStatus":403,"message":"m","rule":"nope"}"#,
                #"{"code":"accessDenied","httpStatus":403,"message":"m","vaultID":"v"}"#] {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PatientVaultError.self, from: Data(bad.utf8)) }
    }
    let outcome = FHIR.OperationOutcome(error)
    let json = String(decoding: try FHIR.json(outcome), as: UTF8.self)
    #expect(json.contains(#""resourceType":"OperationOutcome""#) && json.contains(#""code":"forbidden""#) && json.contains(#""blockedByPatient""#))
    #expect(FHIR.OperationOutcome(PatientVaultError(.unknownDocument, "x")).issue[0].code == "not-found")
}

/// R4's structure: a collection of entries whose `fullUrl` is absolute (a
/// `urn:uuid:`, or `<base>/<resourceType>/<id>` with a base) and unique, ids
/// unique per type, the required fields (1..1) of each resource, and every
/// literal reference resolving to an entry.
func checkBundleStructure(
    _ bundle: FHIR.Bundle, documentReferences: Int, auditEvents: Int, type bundleType: String = "collection", baseURL: String? = nil,
    binaries: Int = 0
) throws {
    let object = try #require(try JSONSerialization.jsonObject(with: try FHIR.json(bundle)) as? [String: Any])
    #expect(object["resourceType"] as? String == "Bundle" && object["type"] as? String == bundleType)
    let entries = try #require(object["entry"] as? [[String: Any]])
    var urls = Set<String>()
    var ids = Set<String>()
    var kinds: [String: Int] = [:]
    for e in entries {
        let resource = try #require(e["resource"] as? [String: Any])
        let type = try #require(resource["resourceType"] as? String)
        let id = try #require(resource["id"] as? String)
        let fullUrl = try #require(e["fullUrl"] as? String)
        if let baseURL {
            #expect(fullUrl == "\(baseURL)/\(type)/\(id)")
        } else {
            #expect(fullUrl.wholeMatch(of: /urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(fullUrl)")
        }
        #expect(urls.insert(fullUrl).inserted, "a fullUrl twice")
        #expect(ids.insert("\(type)/\(id)").inserted, "\(type)/\(id) twice")
        if bundleType == "searchset" { #expect((e["search"] as? [String: Any])?["mode"] as? String == "match") }
        kinds[type, default: 0] += 1
        switch type {
        case "DocumentReference": for field in ["status", "content"] { #expect(resource[field] != nil, "\(field)") }
        case "AuditEvent": for field in ["type", "recorded", "agent", "source"] { #expect(resource[field] != nil, "\(field)") }
        case "Binary": for field in ["contentType", "data"] { #expect(resource[field] != nil, "\(field)") }
        default: #expect(type == "Patient")
        }
    }
    var expected = ["AuditEvent": auditEvents]
    if bundleType == "collection" { expected["Patient"] = 1 }
    if documentReferences > 0 { expected["DocumentReference"] = documentReferences }
    if binaries > 0 { expected["Binary"] = binaries }
    #expect(kinds == expected)
    // Every reference to a resource of the bundle resolves: as written (a
    // urn:uuid), or against the base (a relative `<type>/<id>`).
    let all = entries.flatMap { literalReferences(in: $0["resource"] as Any) }
    #expect(!all.isEmpty)
    for reference in all {
        let resolved = baseURL.map { reference.hasPrefix("urn:") ? reference : "\($0)/\(reference)" } ?? reference
        #expect(urls.contains(resolved) || (bundleType == "searchset" && reference.hasPrefix("Patient/")), "\(reference)")
    }
}

/// The `reference` strings anywhere in a JSON value.
func literalReferences(in root: Any) -> [String] {
    var found: [String] = []
    var pending: [Any] = [root]
    while let value = pending.popLast() {
        if let object = value as? [String: Any] {
            if let reference = object["reference"] as? String { found.append(reference) }
            pending.append(contentsOf: Array(object.values))
        } else if let array = value as? [Any] {
            pending.append(contentsOf: array)
        }
    }
    return found
}

/// A host's test can fake an audit entry, and its JSON is the documented one.
@Test func anAuditEntryCanBeMadeByAHostsTest() throws {
    let entry = AuditEntry(
        sequence: 3, time: CodableTests.t, actor: .doctor(), onBehalfOf: nil, action: .readContent, vaultID: "v1",
        document: try DocumentID("00112233445566778899aabbccddeeff"), version: 1, outcome: .allowed, rule: .medecinTraitant,
        purpose: .care, legalBasis: nil, isBreakGlass: false, isSecretAccess: false, target: nil, reasonHash: nil,
        matrixVersion: "2023", previousHash: [0xFF, 0x00])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let text = String(decoding: try encoder.encode(entry), as: UTF8.self)
    #expect(text == #"{"action":"readContent","actor":{"kind":"professional","profession":"doctor","rpps":"10000000001"},"document":"00112233445566778899aabbccddeeff","isBreakGlass":false,"isSecretAccess":false,"matrixVersion":"2023","outcome":"allowed","previousHash":"ff00","purpose":"care","rule":"medecinTraitant","sequence":3,"time":"2023-11-14T22:13:20.250Z","vaultID":"v1","version":1}"#)
    #expect(try JSONDecoder().decode(AuditEntry.self, from: Data(text.utf8)) == entry)
}

/// Hostile numbers and dates given to the builders and the export never trap.
@Test func buildersAndTheExportTakeAnyNumberOrDate() throws {
    for n in [Int.min, -1, 1_000_000, 1_000_000_000, Int.max] {
        _ = try INS(INS.example(n).digits)
        _ = try RPPSNumber(RPPSNumber.example(n).digits)
        _ = try FINESSNumber(FINESSNumber.example(n).value)
    }
    #expect(INS.example(-1) == INS.example(999_999))
    for date in [Date.distantFuture, Date(timeIntervalSince1970: -.greatestFiniteMagnitude)] {
        let bundle = try FHIR.Bundle(vaultID: "v", documents: [], auditEntries: [], timestamp: date)
        #expect(bundle.entry.count == 1)
    }
    // A date that is not finite has no FHIR instant: a typed refusal, not
    // a trap (Foundation's ISO 8601 style traps on NaN on some platforms)
    // nor a date of another year.
    for date in [Date(timeIntervalSince1970: .nan), Date(timeIntervalSince1970: .infinity), Date(timeIntervalSince1970: -.infinity)] {
        #expect(throws: PatientVaultError.self) { _ = try FHIR.Bundle(vaultID: "v", documents: [], auditEntries: [], timestamp: date) }
        do {
            _ = try FHIR.Bundle(searchset: [], vaultID: "v", timestamp: date)
            Issue.record("a searchset stamped with a date that is not finite was built")
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }
}

/// Every date the store records survives its JSON form: the store reads its
/// clock to the millisecond, and the codec rounds to the nearest one
/// (Foundation's style truncated the binary fraction: 0.61 s became ".609").
@Test func datesFromTheSystemClockSurviveTheirJSONForm() async throws {
    let alice = INS.example(31)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for _ in 0..<20 { _ = try await store.vaultInfo(for: alice, as: .patient(alice)) }
        let info = try await store.vaultInfo(for: alice, as: .patient(alice))
        #expect(try JSONDecoder().decode(VaultInfo.self, from: JSONEncoder().encode(info)) == info)
        for entry in try await store.auditTrail(for: alice, as: .patient(alice)) {
            #expect(try JSONDecoder().decode(AuditEntry.self, from: JSONEncoder().encode(entry)) == entry)
        }
    }
    for ms in [1_897_504_368_610, 1_803_016_115_032, 0, -1, -86_400_001] as [Int64] {
        let info = VaultInfo(
            vaultID: "v", createdBy: .patient(alice), channel: .patientOnline,
            createdAt: Date(timeIntervalSince1970: Double(ms) / 1000), documentCount: 0)
        #expect(try JSONDecoder().decode(VaultInfo.self, from: JSONEncoder().encode(info)) == info, "\(ms)")
    }
}

/// A date that is not finite has no ISO 8601 form: encoding a value that
/// holds one throws `EncodingError.invalidValue` (before, Foundation's
/// style was given it: a trap on some platforms, a date of another year,
/// which never decodes, on others).
@Test(arguments: [Double.nan, .infinity, -.infinity])
func aDateThatIsNotFiniteIsAnEncodingError(seconds: Double) throws {
    let date = Date(timeIntervalSince1970: seconds)
    let ins = INS.example(7)
    var draft = DocumentDraft(
        typeCode: DocumentTypeCode(code: "11488-4"), category: .report, title: "t", createdAt: Date(timeIntervalSince1970: 0),
        mimeType: "text/plain")
    func refused(_ value: some Encodable) {
        #expect {
            _ = try JSONEncoder().encode(value)
        } throws: { error in
            guard case EncodingError.invalidValue = error else { return false }
            return true
        }
    }
    draft.serviceEnd = date
    refused(draft)
    draft.serviceEnd = nil
    draft.createdAt = date
    refused(draft)
    refused(DocumentMetadata(
        id: try DocumentID("00112233445566778899aabbccddeeff"), version: 1, draft: DocumentDraft(
            typeCode: DocumentTypeCode(code: "1"), category: .report, title: "t", createdAt: Date(timeIntervalSince1970: 0), mimeType: "a/b"),
        author: .patient(ins), depositedAt: date, size: 1, contentHash: [1], status: .current))
    refused(AuditEntry(
        sequence: 1, time: date, actor: .patient(ins), onBehalfOf: nil, action: .readContent, vaultID: "v", document: nil, version: nil,
        outcome: .allowed, rule: .medecinTraitant, purpose: .care, legalBasis: nil, isBreakGlass: false, isSecretAccess: false, target: nil,
        reasonHash: nil, matrixVersion: "1", previousHash: []))
    var info = VaultInfo(vaultID: "v", createdBy: .patient(ins), channel: .patientOnline, createdAt: Date(timeIntervalSince1970: 0), documentCount: 0)
    info.retainedUntil = date
    refused(info)
}

/// A closed vault's information keeps its closure and the end of its
/// retention through JSON (before, both were dropped: the decoded value
/// read as an open vault). An open vault's JSON is unchanged.
@Test func aClosedVaultsInformationSurvivesItsJSONForm() async throws {
    let alice = INS.example(41)
    try await withTemporaryStore { store in
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let open = try await store.vaultInfo(for: alice, as: .patient(alice))
        let openJSON = String(decoding: try JSONEncoder().encode(open), as: UTF8.self)
        #expect(!openJSON.contains("closure") && !openJSON.contains("retainedUntil"))
        try await store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        let closed = try await store.vaultInfo(for: alice, as: .patient(alice))
        #expect(closed.closure != nil && closed.retainedUntil != nil)
        let back = try JSONDecoder().decode(VaultInfo.self, from: JSONEncoder().encode(closed))
        #expect(back == closed)
        #expect(back.closure?.reason == .patientRequest && back.closure?.closedBy == .patient(alice))
    }
}
