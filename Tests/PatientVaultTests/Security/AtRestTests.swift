import Foundation
import Testing
@testable import PatientVault

/// Nothing readable at rest: a byte search of every file of the store.
@Suite struct AtRestTests {
    @Test func noPlaintextInAnyFile() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let store = t.store
        let alice = Fixtures.alice
        let bob = Fixtures.bob
        try await store.createVault(for: alice, as: Fixtures.pharmacist, channel: .pharmacy)
        try await store.createVault(for: bob, as: Fixtures.insurer, channel: .insurerAgent)
        let titles = ["Bilan cardiologique confidentiel", "Ordonnance de lithium", "IRM cérébrale"]
        let contents = [
            Fixtures.content("SMALL-CLINICAL-NOTE-hypertension", size: 2_000),
            Fixtures.content("PRESCRIPTION-lithium-400mg", size: 10_000),
            Fixtures.content("IMAGING-irm-cerebrale-LARGE", size: 500_000),
        ]
        let types = [DocumentTypeCode(code: "11488-4"), DocumentTypeCode(code: "57833-6"), DocumentTypeCode(code: "18748-4")]
        // Document ids: errors and a host's logs name documents by them,
        // so finding one in a file would lead from a log line to the
        // vault's frames (and its stream) on disk.
        var ids: [DocumentID] = []
        for i in 0..<3 {
            let d = DocumentDraft(
                typeCode: types[i], category: .report, title: titles[i], createdAt: Date(), mimeType: "application/x-secret-mime")
            ids.append(try await store.deposit(d, streaming: chunks(of: contents[i], size: 30_000), for: alice, as: Fixtures.doctor).id)
            ids.append(try await store.deposit(d, content: contents[i], for: bob, as: Fixtures.hospital).id)
        }
        // A replacement: its record names the same document.
        let replaced = DocumentDraft(
            typeCode: types[0], category: .report, title: titles[0], createdAt: Date(), mimeType: "application/x-secret-mime")
        _ = try await store.replace(ids[1], with: replaced, content: contents[0], for: bob, as: Fixtures.hospital)
        try await store.close()

        var needles: [(String, Data)] = [
            ("INS alice", Data(alice.digits.utf8)), ("INS bob", Data(bob.digits.utf8)),
            ("NIR alice", Data(alice.digits.prefix(13).utf8)),
            ("MIME", Data("application/x-secret-mime".utf8)),
            ("RPPS", Data("10101234567".utf8)), ("FINESS", Data("750712184".utf8)),
        ]
        needles += titles.map { ("title", Data($0.utf8)) }
        needles += types.map { ("type code", Data($0.code.utf8)) }
        needles += contents.map { ("content", Data($0.prefix(24))) }
        needles += contents.map { ("content tail", Data($0.suffix(24))) }
        needles += ids.map { ("document id", Data($0.bytes)) }
        let files = try filesAndBytes(in: t.folder)
        #expect(files.count >= 4)
        #expect(Self.leaks(of: needles, in: files) == [])
        // The search itself can fail: a plaintext title in a file of the
        // folder is found by the same search (guards against a search that
        // never matches, e.g. over the wrong files or encodings).
        let probe = t.folder.appendingPathComponent("probe.txt")
        try (Data("xx".utf8) + Data(titles[0].utf8) + Data("yy".utf8)).write(to: probe)
        #expect(Self.leaks(of: needles, in: try filesAndBytes(in: t.folder)) == ["title found in probe.txt"])
    }

    /// Every needle found in a file, as "<label> found in <file>".
    static func leaks(of needles: [(String, Data)], in files: [(String, Data)]) -> [String] {
        var found: [String] = []
        for (name, bytes) in files {
            for (label, needle) in needles where bytes.range(of: needle) != nil {
                found.append("\(label) found in \(name)")
            }
        }
        return found
    }
}
