// pv-postgres-load: group commit on PostgreSQL, measured. Deposits of
// 4 KiB from 1, 8 and 32 concurrent writers into a store on PostgreSQL and,
// in the same run, into a store in a folder (the local log's group commit),
// printed as deposits per second and as ratios to one writer.
//
//   swift run --traits Postgres -c release PatientVaultPostgresLoad <postgres URL> [deposits per level]
//
// Scripts/postgres-load.sh starts a throwaway cluster and runs it. Not a
// product: a measuring tool, like the benchmark package's executables.
#if Postgres
import Foundation
import PatientVault
import PatientVaultPostgres

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: PatientVaultPostgresLoad <postgres URL> [deposits per level]\n".utf8))
    exit(2)
}
let perLevel = arguments.count > 2 ? Int(arguments[2]) ?? 2_000 : 2_000
let levels = [1, 8, 32]
let patients: [INS] = (0..<64).map { i in
    let nir = "1840175" + String(format: "%06d", i + 1)
    let key = INS.key(forNIR: nir)!
    return try! INS(nir + (key < 10 ? "0" : "") + String(key))
}
let doctor = Principal.professional(HealthProfessional(rpps: try! RPPSNumber("10101234567"), profession: .doctor))
let content = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) })

/// Deposits per second with `writers` concurrent writers.
func measure(_ store: VaultStore, writers: Int) async throws -> Double {
    let each = perLevel / writers
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<writers {
            group.addTask {
                for i in 0..<each {
                    let patient = patients[(w * 7 + i) % patients.count]
                    let draft = DocumentDraft(
                        typeCode: .consultationNote, category: .report, title: "load", createdAt: Date(), mimeType: "text/plain")
                    _ = try await store.deposit(draft, content: content, for: patient, as: doctor)
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(each * writers) / seconds
}

func run(_ name: String, _ store: VaultStore) async throws -> [Double] {
    for p in patients {
        try await store.createVault(for: p, as: .patient(p), channel: .patientOnline)
        try await store.authorise(doctor, for: p, as: .patient(p))
    }
    _ = try await measure(store, writers: 8)  // warm-up
    var rates: [Double] = []
    for writers in levels { rates.append(try await measure(store, writers: writers)) }
    try await store.close()
    return rates
}

/// Both stores, measured in turn, then the table.
func main() async throws {
    let key = try MasterKey.generate()
    var postgres = try PostgresStorage(url: arguments[1])
    postgres = try PostgresStorage(
        host: postgres.host, port: postgres.port, username: postgres.username, password: postgres.password, database: postgres.database,
        schema: "pvload_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""), tls: postgres.tls)
    let onPostgres = try await run("PostgreSQL", try await VaultStore.open(postgres: postgres, key: key))
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-load-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let inFolder = try await run("folder", try await VaultStore.open(at: folder, key: .key(key)))

    print("deposits of 4 KiB per second (\(perLevel) per level), same run:")
    print("writers | PostgreSQL | ×1 writer | folder | ×1 writer | PostgreSQL / folder")
    for (i, writers) in levels.enumerated() {
        print(
            String(
                format: "%7d | %10.0f | %8.2f× | %6.0f | %8.2f× | %.2f×", writers, onPostgres[i], onPostgres[i] / onPostgres[0], inFolder[i],
                inFolder[i] / inFolder[0], onPostgres[i] / inFolder[i]))
    }
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("PatientVaultPostgresLoad: \(error)\n".utf8))
    exit(1)
}
#else
print("built without the trait Postgres: swift run --traits Postgres PatientVaultPostgresLoad <URL>")
#endif
