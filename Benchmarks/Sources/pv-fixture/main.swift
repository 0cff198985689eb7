// Builds the fixture of the "open a large store" benchmark: a store of
// N vaults (default 1,000,000) with 4 small documents each, in a folder
// outside the repository (default /work/pv-fixture-1m, or $PV_FIXTURE),
// its master key beside it (<folder>.key). Built once, kept.
//
//   swift run -c release pv-fixture [vaults]

import Foundation
import PatientVault
import PatientVaultTesting
import Workload

let vaults = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 1_000_000
let path = ProcessInfo.processInfo.environment["PV_FIXTURE"] ?? "/work/pv-fixture-1m"
let folder = URL(fileURLWithPath: path)
guard !FileManager.default.fileExists(atPath: path) else {
    print("\(path) exists; remove it (and \(path).key) to build it again")
    exit(1)
}
let key = try MasterKey.generate()
var configuration = Configuration()
// Built without a sync per write (close() makes everything durable), and
// with few vaults in memory at once.
configuration.durability = .relaxed
configuration.loadedVaultLimit = 1024
let store = try await VaultStore.open(at: folder, key: .key(key), configuration: configuration)
try key.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path + ".key")) }
try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path + ".key")

let doctors = (0..<1_000).map { Principal.doctor($0) }
let started = Date()
let done = Counter()
let categories: [DocumentCategory] = [.report, .prescription, .summary, .dispensation]
try await withThrowingTaskGroup(of: Void.self) { group in
    let next = Counter()
    for _ in 0..<32 {
        group.addTask {
            while true {
                let i = next.value.add(1, ordering: .relaxed).oldValue
                guard i < vaults else { return }
                let ins = INS.example(i)
                try await store.createVault(for: ins, as: .patient(ins), channel: .patientOnline)
                for k in 0..<4 {
                    _ = try await store.deposit(
                        DocumentDraft(typeCode: .consultationNote, category: categories[k], title: "Document \(k)", createdAt: Date(), mimeType: "text/plain"),
                        content: Data(repeating: UInt8(truncatingIfNeeded: i &+ k), count: 256 + (i &* 7 &+ k &* 13) % 768),
                        for: ins, as: doctors[(i &+ k) % doctors.count])
                }
                let n = done.value.add(1, ordering: .relaxed).newValue
                if n % 50_000 == 0 {
                    let s = Date().timeIntervalSince(started)
                    print(String(format: "%d vaults, %.0f s, %.0f vaults/s", n, s, Double(n) / s))
                }
            }
        }
    }
    try await group.waitForAll()
}
let closing = Date()
try await store.close()
let total = Date().timeIntervalSince(started)
print(String(format: "built %d vaults and %d documents in %.0f s (close and checkpoint %.1f s)", vaults, 4 * vaults, total, Date().timeIntervalSince(closing)))
