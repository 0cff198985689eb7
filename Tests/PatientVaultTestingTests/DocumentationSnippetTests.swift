import Foundation
import PatientVault
import PatientVaultTesting
import Testing

/// Every Swift snippet of the README and of the DocC articles is code that
/// CI compiles: each stands verbatim in a compiled file (the README's
/// example and the "Getting started" article are executables that
/// `Scripts/test.sh` runs; the others are in this test target, and the
/// README's PostgreSQL one in `PostgresEngineTests`). A manifest
/// fragment (first line `// Package.swift`) is the one exception.
@Suite struct DocumentationSnippetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The ```swift blocks of a Markdown file.
    static func swiftBlocks(_ text: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    static func files(in folder: String, suffix: String) throws -> [URL] {
        let url = root.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasSuffix(suffix) }
    }

    @Test func everySnippetIsCompiledCode() throws {
        var documents = [Self.root.appendingPathComponent("README.md")]
        for catalog in [
            "Sources/PatientVault/PatientVault.docc", "Sources/PatientVaultTesting/PatientVaultTesting.docc",
            "Sources/PatientVaultProof/PatientVaultProof.docc",
        ] {
            documents += try Self.files(in: catalog, suffix: ".md")
        }
        let compiled = try ([
            Self.root.appendingPathComponent("Sources/PatientVaultREADMEExample/main.swift"),
            Self.root.appendingPathComponent("Sources/PatientVaultGettingStarted/main.swift"),
            // The README's PostgreSQL snippet (compiled with the trait Postgres).
            Self.root.appendingPathComponent("Tests/PatientVaultTests/Store/PostgresEngineTests.swift"),
        ] + Self.files(in: "Tests/PatientVaultTestingTests", suffix: ".swift")).map { try String(contentsOf: $0, encoding: .utf8) }
        var checked = 0
        for document in documents {
            for block in Self.swiftBlocks(try String(contentsOf: document, encoding: .utf8)) where !block.hasPrefix("// Package.swift") {
                #expect(compiled.contains { $0.contains(block) }, "\(document.lastPathComponent): a snippet that no compiled file holds:\n\(block)")
                checked += 1
            }
        }
        // The README's two, Getting started, Testing your service, the testing product's overview.
        #expect(checked >= 5)
    }
}

// The overview of the PatientVaultTesting catalog, verbatim.
@Test func theTestingProductsOverview() async throws {
try await withTemporaryStore { store in
    let alice = INS.example(1)
    try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
}
}
