import Foundation
import Synchronization
import PatientVaultProof
import Testing
@testable import PatientVault
import Glibc

#if canImport(Glibc)
#endif

/// Kills a writer process (`PatientVaultCrashWriter`, public API only) with
/// SIGKILL at random moments, some while it is still recovering, reopens
/// the store after each kill and checks that every operation it
/// acknowledged is there, with its content, metadata and audit entry, that
/// every chain verifies, and that an operation it had not acknowledged is
/// whole or absent.
///
/// `PV_CRASH_KILLS` sets the number of kills (default 12; `.ci/run` runs
/// 200, `Scripts/crash-test.sh` thousands). With `PV_TEST_STORAGE=postgres`
/// the store is a new schema on the PostgreSQL server of
/// `PV_TEST_POSTGRES_URL` instead of a folder (no master-key rotation
/// there: such a store has no header).
@Suite struct CrashTests {
    static var writer: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("PatientVaultCrashWriter")
    }

    /// One line the writer printed.
    struct Line {
        var fields: [String]
        var kind: String { fields[0] }
        var action: String { fields.count > 1 ? fields[1] : "" }
        var op: Int { Int(fields[2])! }
    }

    /// Runs the writer for `delay`, kills it, returns what it printed.
    static func runAndKill(location: String, keyHex: String, seed: Int, delay: Duration) async throws -> [Line] {
        let process = Process()
        process.executableURL = writer
        process.arguments = [location, keyHex, "\(seed)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let collected = Mutex(Data())
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            collected.withLock { $0.append(chunk) }
        }
        try process.run()
        try await Task.sleep(for: delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        let rest = pipe.fileHandleForReading.readDataToEndOfFile()
        let data = collected.withLock { $0 + rest }
        let text = String(decoding: data, as: UTF8.self)
        // A line without its newline was cut by the kill: not printed whole.
        return text.split(separator: "\n", omittingEmptySubsequences: true).dropLast(text.hasSuffix("\n") ? 0 : 1)
            .map { Line(fields: $0.split(separator: "\t").map(String.init)) }
    }

    @Test func everyAcknowledgedOperationSurvivesSIGKILL() async throws {
        let kills = Int(ProcessInfo.processInfo.environment["PV_CRASH_KILLS"] ?? "") ?? 12
        #expect(FileManager.default.isExecutableFile(atPath: Self.writer.path), "build the package first (swift build --build-tests)")
        let folder = TestFolder()
        // A folder, or a new schema on the test server (its URL, with the
        // password the writer needs, never leaves this test).
        let store: String
        if testStorage == .postgres {
            let url = try #require(ProcessInfo.processInfo.environment["PV_TEST_POSTGRES_URL"])
            store = url + "&schema=pvcrash_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        } else {
            store = folder.url.path
        }
        // The writer rotates the master key between these two.
        let keys = [try MasterKey.generate(), try MasterKey.generate()]
        let keyHex = keys.map { k in k.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } }.joined(separator: ",")
        var current = 0
        var rotations = 0
        var acknowledged = 0, unacknowledgedChecked = 0, duringRecovery = 0
        var allAcks: [Line] = []
        var published: [SignedCheckpoint] = []
        // Documents whose erasure was begun but not acknowledged: erased or not.
        var maybeErased: Set<String> = []
        for round in 0..<kills {
            // One run in ten is killed within its first milliseconds: in
            // the middle of opening, that is of recovery.
            let early = round % 10 == 3
            // A store on PostgreSQL opens and commits more slowly: its runs
            // are longer, so that each gets past its recovery and does
            // enough (an erasure among the rest) to check.
            let span = CrashContract.isPostgres(store) ? 200...700 : 50...250
            let delay: Duration = early ? .milliseconds(Int.random(in: 0...40)) : .milliseconds(Int.random(in: span))
            let lines = try await Self.runAndKill(location: store, keyHex: keyHex, seed: round + 1, delay: delay)
            if !lines.contains(where: { $0.kind == "READY" }) { duringRecovery += 1 }
            let acks = lines.filter { $0.kind == "ACK" }
            published += try lines.filter { $0.kind == "CHECKPOINT" }.map {
                try SignedCheckpoint(String(decoding: Data(base64Encoded: $0.fields[3])!, as: UTF8.self))
            }
            let acked = Set(acks.map(\.op))
            let pending = lines.filter { $0.kind == "BEGIN" && !acked.contains($0.op) }
            maybeErased.formUnion(pending.filter { $0.action == "erase" }.map { $0.fields[4] })
            // Whatever the kill interrupted, exactly one of the two keys
            // opens the store: the one the last rotation went to if it was
            // acknowledged, else either.
            var opening: [Int] = []
            for (i, k) in keys.enumerated() {
                let outcome = await code {
                    let s = try await CrashContract.open(store, key: k)
                    try await s.close()
                }
                if outcome == nil { opening.append(i) } else { #expect(outcome == .wrongMasterKey, "key \(i): \(String(describing: outcome))") }
            }
            #expect(opening.count == 1, "round \(round): keys that open the store: \(opening)")
            if let last = lines.last(where: { $0.kind == "BEGIN" && $0.action == "rotate" }), acked.contains(last.op) {
                #expect(opening == [Int(last.fields[4])!], "round \(round): the acknowledged rotation's key")
            }
            current = opening.first ?? current
            rotations += acks.filter { $0.action == "rotate" }.count
            // Chains are walked whole every tenth round (and at the end):
            // they only grow, and the walk is the costly part of a check.
            let (checked, whole) = try await Self.check(
                store: store, key: keys[current], acks: acks, pending: pending, maybeErased: maybeErased, verifyChains: round % 10 == 9,
                published: published)
            acknowledged += checked
            unacknowledgedChecked += whole
            allAcks += acks
        }
        // Everything acknowledged in every run, once more at the end.
        let (finalChecked, _) = try await Self.check(
            store: store, key: keys[current], acks: allAcks, pending: [], maybeErased: maybeErased, verifyChains: true, published: published)
        #expect(finalChecked == allAcks.filter { !["rotate", "compact"].contains($0.action) }.count)
        print("crash test: \(CrashContract.isPostgres(store) ? "PostgreSQL, " : "")\(kills) kills (\(duringRecovery) before the store was ready), \(acknowledged) acknowledged operations checked (\(allAcks.filter { $0.action == "erase" }.count) erasures, \(allAcks.filter { $0.action == "compact" }.count) compactions, \(rotations) master-key rotations, exactly one key opening the store after every kill), \(unacknowledgedChecked) unacknowledged deposits present after recovery, each whole (the others absent); \(published.count) published checkpoints, each extended by every later recovered log")
        #expect(acknowledged > kills, "the writer acknowledged too little to test anything")
        #expect(allAcks.contains { $0.action == "erase" }, "no erasure was acknowledged: the runs are too short")
        #expect(rotations > 0 || kills < 50 || CrashContract.isPostgres(store), "no master-key rotation was acknowledged in \(kills) runs")
    }

    /// Opens the store and checks `acks` and `pending`; returns how many
    /// acknowledged operations were checked and how many pending deposits.
    static func check(
        store location: String, key: MasterKey, acks: [Line], pending: [Line], maybeErased: Set<String>, verifyChains: Bool,
        published: [SignedCheckpoint]
    ) async throws -> (Int, Int) {
        // Rotations are checked by the caller (which key opens);
        // compactions by what they leave: every erasure still reads as
        // erased, everything else whole, every published checkpoint
        // extended (a compacted record keeps its leaf).
        let acks = acks.filter { !["rotate", "compact"].contains($0.action) }
        let pending = pending.filter { !["rotate", "compact"].contains($0.action) }
        let store = try await CrashContract.open(location, key: key)
        // Every checkpoint published before a kill is extended by the log
        // recovery kept (it covers durable records only): the newest is
        // checked against the records themselves (every tenth round, the
        // full re-hash being the costly part), and each one is checked to
        // be a prefix of the store's tree now, by a consistency proof that
        // the verifier checks against both signed roots.
        if let newest = published.last {
            if verifyChains { try await store.verify(against: newest) }
            let now = try await store.checkpoint()
            let verifier = try CheckpointVerifier(logKey: store.checkpointVerifierKey)
            for checkpoint in published where checkpoint.treeHead.size >= 1 {
                let proof = try await store.consistencyProof(from: checkpoint, to: now)
                try verifier.verifyConsistency(from: checkpoint, to: now, proof: proof)
            }
        }
        var checked = 0
        var reads: [String: [String: Int]] = [:]  // patient → "doc/version" → acknowledged reads
        // An acknowledged erasure is gone for good; one begun and not
        // acknowledged left the document whole, or erased.
        let erased = Set(acks.filter { $0.action == "erase" }.map { $0.fields[4] })
        for a in acks {
            let patient = try INS(a.fields[3])
            if ["deposit", "replace"].contains(a.action), erased.contains(a.fields[4]) || maybeErased.contains(a.fields[4]) {
                let id = try DocumentID(a.fields[4])
                let version = Int(a.fields[5])!
                let outcome = await code { _ = try await store.content(of: id, version: version, includingDeprecated: true, for: patient, as: .patient(patient)) }
                if erased.contains(a.fields[4]) || outcome == .erased {
                    #expect(outcome == .erased, "op \(a.op): its document's erasure was acknowledged")
                    checked += 1
                    continue
                }
            }
            switch a.action {
            case "erase":
                let id = try DocumentID(a.fields[4])
                #expect(await code { _ = try await store.content(of: id, for: patient, as: .patient(patient)) } == .erased, "op \(a.op)")
                #expect(try await store.erasedDocuments(for: patient, as: .patient(patient)).contains { $0.id == id }, "op \(a.op)")
            case "deposit", "replace":
                let id = try DocumentID(a.fields[4])
                let version = Int(a.fields[5])!
                let size = Int(a.fields[6])!
                let author = CrashContract.professionals[Int(a.fields[7])!]
                let m = try await store.metadata(of: id, version: version, includingDeprecated: true, for: patient, as: .patient(patient))
                #expect(m.size == Int64(size) && m.title == "op \(a.op)" && m.author == author, "op \(a.op)")
                let bytes = try await store.content(of: id, version: version, includingDeprecated: true, for: patient, as: .patient(patient))
                #expect(bytes == CrashContract.content(op: a.op, size: size), "op \(a.op)")
            case "authorise":
                let pro = CrashContract.professionals[Int(a.fields[4])!]
                #expect(await code { _ = try await store.documents(for: patient, as: pro) } == nil, "op \(a.op)")
            case "read":
                reads[a.fields[3], default: [:]]["\(a.fields[4])/\(a.fields[5])", default: 0] += 1
            default:
                Issue.record("unknown acknowledgement \(a.fields)")
            }
            checked += 1
        }
        // Each acknowledged read has its allowed entry in the trail.
        for (digits, expected) in reads {
            let patient = try INS(digits)
            let trail = try await store.auditTrail(
                for: patient, matching: AuditQuery(actor: .patient(patient), actions: [.readContent], limit: 100_000), as: .patient(patient))
            var found: [String: Int] = [:]
            for e in trail where e.outcome == .allowed {
                guard let document = e.document, let version = e.version else { continue }
                found["\(document)/\(version)", default: 0] += 1
            }
            for (key, count) in expected { #expect(found[key, default: 0] >= count, "reads of \(key)") }
        }
        // A deposit the writer had not acknowledged: whole, or absent.
        var whole = 0
        for p in pending where p.action == "deposit" {
            let patient = try INS(p.fields[3])
            let size = Int(p.fields[4])!
            let docs = try await store.documents(for: patient, matching: DocumentQuery(status: .all), as: .patient(patient))
            for d in docs where d.title == "op \(p.op)" {
                let bytes = try await store.content(of: d.id, version: d.version, includingDeprecated: true, for: patient, as: .patient(patient))
                #expect(bytes == CrashContract.content(op: p.op, size: size), "unacknowledged op \(p.op) is not whole")
                whole += 1
            }
        }
        // Every chain verifies.
        for digits in Set(acks.map { $0.fields[3] } + pending.map { $0.fields[3] }) where verifyChains {
            let patient = try INS(digits)
            _ = try await store.verifyAuditTrail(for: patient, as: .patient(patient))
        }
        try await store.close()
        return (checked, whole)
    }
}
