// Replays one week of the national service at its 2018 peak against a
// store in a temporary folder, prints wall time and operations per second,
// then the store's statistics next to the generator's. Exits non-zero if
// they differ.
//
//   swift run -c release pv-replay [scale]      (scale 1 = 240,090 vaults)

import Foundation
import PatientVault
import PatientVaultTesting
import Workload

let scale = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 1
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-replay-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: folder) }

let generated = Date()
let week = SeedsWeek.generate(scale: scale)
print("generated \(week.plans.count) vault plans (\(week.contentBytes >> 20) MiB of content) in \(String(format: "%.1f", Date().timeIntervalSince(generated))) s")

let clock = ManualClock(SeedsWeek.start)
var configuration = Configuration()
configuration.clock = clock
configuration.auditReviewers = [benchmarkReviewer]
let store = try await VaultStore.open(at: folder, key: .key(try MasterKey.generate()), configuration: configuration)
let started = Date()
let operations = try await week.replay(on: store, clock: clock)
let elapsed = Date().timeIntervalSince(started)
print(String(format: "replayed %d operations in %.1f s: %.0f operations/s, %.0f vault creations/s", operations, elapsed,
             Double(operations) / elapsed, Double(week.plans.count) / elapsed))
let statsStarted = Date()
let stats = try await store.statistics(as: .auditReviewer(benchmarkReviewer))
print(String(format: "statistics computed in %.2f s (no document decrypted)", Date().timeIntervalSince(statsStarted)))
try await store.close()
let (lines, ok) = week.compare(stats)
for line in lines { print(line) }
print(ok ? "the store's figures match what the generator put in" : "MISMATCH")
try? FileManager.default.removeItem(at: folder)  // exit() skips the defer
exit(ok ? 0 : 1)
