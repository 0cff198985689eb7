// The main job: the tour of PatientVault (PatientVaultTour) on a store in a
// temporary folder, removed afterwards.

import Foundation
import PatientVaultTour

@main
struct Demo {
    static func main() async {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            try await runTour(in: folder)
        } catch {
            print("demo failed: \(error)")
            exit(1)
        }
    }
}
