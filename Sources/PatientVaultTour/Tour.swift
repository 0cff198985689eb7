// The main job: a tour of PatientVault on an embedded store in a folder,
// ending with a byte search of every file for the plaintexts written. Run by
// the demo executable (`patientvault-demo`, Scripts/demo.sh) and by
// `vaultctl demo`.

import Foundation
import PatientVault
import PatientVaultFHIR

func section(_ title: String) { print("\n== \(title)") }

func makeINS(_ nir: String) throws -> INS {
    let key = INS.key(forNIR: nir)!
    return try INS(nir + (key < 10 ? "0" : "") + String(key))
}

/// Content that is easy to recognise if it ever leaked to disk in clear.
func recognisable(_ marker: String, size: Int) -> Data {
    var bytes = [UInt8]()
    bytes.reserveCapacity(size)
    let m = Array(marker.utf8)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    while bytes.count < size {
        if bytes.count % 4096 == 0 { bytes += m }
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(UInt8(truncatingIfNeeded: state >> 33))
    }
    return Data(bytes.prefix(size))
}

/// Splits data into uneven chunks, as a network upload would deliver them.
func upload(_ data: Data) -> AsyncStream<Data> {
    AsyncStream { continuation in
        var start = data.startIndex
        var step = 100_000
        while start < data.endIndex {
            let end = data.index(start, offsetBy: step, limitedBy: data.endIndex) ?? data.endIndex
            continuation.yield(data[start..<end])
            start = end
            step = step == 100_000 ? 333_333 : 100_000
        }
        continuation.finish()
    }
}

func occurrences(of needle: [UInt8], in haystack: Data) -> Int {
    var count = 0
    var searchFrom = haystack.startIndex
    let pattern = Data(needle)
    while let r = haystack.range(of: pattern, in: searchFrom..<haystack.endIndex) {
        count += 1
        searchFrom = r.upperBound
    }
    return count
}

/// Every plaintext and identifier the tour writes (INS, RPPS numbers,
/// titles, contents, type codes): what must appear in no file of its
/// store, and in no log line or metric of it.
package let tourPlaintexts: [(label: String, text: String)] = [
    ("INS", "284077512345607"), ("INS digits", "2840775123456"),
    ("consultation content", "CONSULTATION-NOTE-CONTENT-7f3a"), ("prescription content", "PRESCRIPTION-CONTENT"),
    ("imaging content", "IMAGING-STUDY-CONTENT"), ("patient note content", "PATIENT-OWN-NOTE"),
    ("type code 11488-4", "11488-4"), ("type code 18748-4", "18748-4"), ("MIME type", "application/dicom"),
    ("RPPS", "10101234567"), ("RPPS", "10003456789"), ("RPPS", "10107654321"),
] + tourTitles.map { ("title", $0) }

let tourTitles = ["Consultation cardiologie du 12 mars", "Ordonnance antibiotique", "Scanner thoracique", "Mes allergies"]

/// Runs the tour on a new store in `folder` (created; left for the caller
/// to remove), printing each step, with `configuration` (a host's logger
/// and metrics, in tests).
/// - Throws: the store's errors, or ``DemoFailure`` if a plaintext was found
///   in a file of the store.
package func runTour(in folder: URL, configuration: Configuration = Configuration()) async throws {
    section("Opening a store")
    let masterKey = try MasterKey.generate()
    let started = Date()
    let store = try await VaultStore.open(at: folder, key: .key(masterKey), configuration: configuration)
    print("store opened at \(folder.path) in \(Int(Date().timeIntervalSince(started) * 1000)) ms")
    // The host would deliver these to the patient (mail, app push...).
    let notifications = store.notifications()
    let collected = Task { () -> [VaultNotification] in
        var all: [VaultNotification] = []
        for await n in notifications { all.append(n) }
        return all
    }

    let patientINS = try makeINS("2840775123456")
    let patient = Principal.patient(patientINS)
    let pharmacist = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10003456789"), profession: .pharmacist))
    let doctor = Principal.professional(try HealthProfessional(rpps: try RPPSNumber("10101234567"), profession: .doctor, speciality: "cardiologie"))
    let hospital = Principal.organisation(Organisation(finess: try FINESSNumber("750712184"), kind: .hospital))

    section("Creating the vault (at a pharmacy counter)")
    let info = try await store.createVault(for: patientINS, as: pharmacist, channel: .pharmacy)
    print("vault \(info.vaultID.prefix(16))... created via \(info.channel)")

    section("Depositing documents")
    let now = Date()
    let consultation = recognisable("CONSULTATION-NOTE-CONTENT-7f3a", size: 6_000)
    let prescription = recognisable("PRESCRIPTION-CONTENT-amoxicilline-1g", size: 2_000)
    let imaging = recognisable("IMAGING-STUDY-CONTENT-scanner-thorax", size: 8 << 20)
    let selfNote = recognisable("PATIENT-OWN-NOTE-allergies", size: 1_500)
    let titles = tourTitles

    let d1 = try await store.deposit(
        DocumentDraft(typeCode: .consultationNote, category: .report, title: titles[0], createdAt: now, mimeType: "text/plain"),
        content: consultation, for: patientINS, as: doctor)
    let d2 = try await store.deposit(
        DocumentDraft(typeCode: .prescription, category: .prescription, title: titles[1], createdAt: now, mimeType: "application/pdf"),
        content: prescription, for: patientINS, as: doctor)
    let t0 = Date()
    let d3 = try await store.deposit(
        DocumentDraft(typeCode: .imagingStudy, category: .medicalImaging, title: titles[2], createdAt: now, mimeType: "application/dicom"),
        streaming: upload(imaging), for: patientINS, as: hospital)
    let streamedMs = Date().timeIntervalSince(t0) * 1000
    let d4 = try await store.deposit(
        DocumentDraft(typeCode: DocumentTypeCode(code: "51855-5"), category: .patientDeposited, title: titles[3], createdAt: now, mimeType: "text/plain"),
        content: selfNote, for: patientINS, as: patient)
    print("4 documents deposited; the \(imaging.count >> 20) MiB scan was streamed in \(Int(streamedMs)) ms")

    section("Reading them back")
    var matches = 0
    for (doc, expected, reader) in [(d1, consultation, patient), (d2, prescription, doctor), (d4, selfNote, patient)] {
        if try await store.content(of: doc.id, for: patientINS, as: reader) == expected { matches += 1 }
    }
    var streamedBack = 0
    var streamedOK = true
    var offset = 0
    for try await chunk in try await store.contentStream(of: d3.id, for: patientINS, as: patient) {
        streamedOK = streamedOK && imaging[offset..<(offset + chunk.count)] == chunk
        offset += chunk.count
        streamedBack += 1
    }
    print("\(matches)/3 whole reads identical; scan read back in \(streamedBack) authenticated chunks: \(streamedOK && offset == imaging.count ? "identical" : "DIFFERENT")")

    section("Listing")
    let asPatient = try await store.documents(for: patientINS, as: patient)
    let asDoctor = try await store.documents(for: patientINS, as: doctor)
    print("the patient sees \(asPatient.count) documents: \(asPatient.map(\.category.rawValue).joined(separator: ", "))")
    print("the doctor sees \(asDoctor.count) (the ones they wrote)")
    let insurer = Principal.insurer(try SystemPrincipal("cnam"))
    do {
        _ = try await store.documents(for: patientINS, as: insurer)
        print("the insurer was NOT refused")
    } catch {
        print("the insurer is refused: \(error.code), rule \(error.rule.map { "\($0)" } ?? "-")")
    }

    section("Access control")
    let gp = HealthProfessional(rpps: try RPPSNumber("10107654321"), profession: .doctor)
    let dentist = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10200000017"), profession: .dentist))
    let emergencyDoctor = Principal.professional(HealthProfessional(rpps: try RPPSNumber("10300000015"), profession: .doctor))
    try await store.setMedecinTraitant(.professional(gp), for: patientINS, as: patient)
    try await store.authorise(dentist, until: now.addingTimeInterval(30 * 86_400), for: patientINS, as: patient)
    let gpSees = try await store.documents(for: patientINS, as: .professional(gp)).count
    let dentistSees = try await store.documents(for: patientINS, as: dentist).map(\.category.rawValue)
    print("médecin traitant sees \(gpSees) documents; the dentist (authorised 30 days) sees \(dentistSees.joined(separator: ", ")) (matrix \(AccessMatrix.default2023.version))")
    do {
        _ = try await store.documents(for: patientINS, as: emergencyDoctor)
    } catch {
        print("an unauthorised doctor is refused: \(error.code), rule \(error.rule.map { "\($0)" } ?? "-")")
    }
    let urgent = try await store.documents(for: patientINS, as: emergencyDoctor, purpose: .breakGlass(reason: try BreakGlassReason("patient unconscious in A&E")))
    print("with break-glass (reason stated) the same doctor sees \(urgent.count) documents; the access is flagged")

    section("The audit trail")
    let trail = try await store.auditTrail(for: patientINS, matching: AuditQuery(limit: 6), as: patient)
    for e in trail.reversed() {
        let flag = e.isBreakGlass ? " [break-glass]" : ""
        print("#\(e.sequence) \(e.actor) \(e.action.rawValue): \(e.outcome.rawValue) by rule \(e.rule.rawValue)\(flag)")
    }
    let check = try await store.verifyAuditTrail(for: patientINS, as: patient)
    print("chain verified: \(check.entries) entries, head \(check.headHash.prefix(16))...")
    if let glass = trail.first(where: \.isBreakGlass) {
        let json = String(decoding: try FHIR.json(glass.fhirAuditEvent()), as: UTF8.self)
        print("as FHIR AuditEvent: \(json.prefix(160))...")
    }

    section("Replacing the prescription")
    let corrected = recognisable("PRESCRIPTION-CONTENT-v2-amoxicilline-500mg", size: 2_100)
    let v2 = try await store.replace(
        d2.id,
        with: DocumentDraft(typeCode: .prescription, category: .prescription, title: titles[1] + " (corrigée)", createdAt: now, mimeType: "application/pdf"),
        content: corrected, reason: .enteredInError, for: patientINS, as: doctor)
    let history = try await store.versions(of: d2.id, for: patientINS, as: patient)
    for m in history { print("version \(m.version): \(m.status)") }
    print("current version readable: \(try await store.content(of: d2.id, for: patientINS, as: patient) == corrected && v2.version == 2)")

    try await store.close()
    let delivered = await collected.value
    print("\(delivered.count) notifications for the host to deliver (new documents, first accesses, break-glass, authorisation changes)")

    section("Looking for plaintext at rest")
    let needles = tourPlaintexts.map { ($0.label, Array($0.text.utf8)) }
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    var totalBytes = 0
    var found: [String] = []
    for name in files {
        let bytes = try Data(contentsOf: folder.appendingPathComponent(name))
        totalBytes += bytes.count
        for (label, needle) in needles where occurrences(of: needle, in: bytes) > 0 {
            found.append("\(label) in \(name)")
        }
    }
    print("scanned \(files.count) files (\(totalBytes >> 20) MiB, preallocation included) for \(needles.count) plaintexts")
    if found.isEmpty {
        print("none of them was found: content, INS, titles and type codes are encrypted or pseudonymised at rest")
    } else {
        print("FOUND IN CLEAR: \(found.joined(separator: "; "))")
        throw DemoFailure()
    }
}

/// A plaintext was found in a file of the store.
package struct DemoFailure: Error {}
