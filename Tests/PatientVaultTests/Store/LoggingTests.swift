import Foundation
import Logging
import MetricsTestKit
import PatientVaultTesting
import PatientVaultTour
import Testing
@testable import PatientVault
@testable import VaultStorage

/// What the store tells an operator (issue #20): the demo's whole tour
/// with a log handler at trace level and a metrics backend that keeps
/// everything; no line, metadata value, label or dimension holds any of the
/// tour's plaintexts or identifiers.
@Suite struct LoggingTests {
    @Test func theTourLogsAndCountsNothingIdentifying() async throws {
        let handler = CapturingLogHandler()
        let metrics = TestMetrics()
        var c = Configuration()
        c.logger = Logger(label: "patientvault.test") { _ in handler }
        c.metricsFactory = metrics
        let folder = TestFolder()
        try await runTour(in: folder.url, configuration: c)
        let lines = handler.messages.withLock { $0 }
        // An operator learns that the store opened, and what recovery did.
        #expect(lines.contains { $0.0 == .info && $0.1.hasPrefix("patientvault: store opened") })
        #expect(lines.contains { $0.0 == .info && $0.1.hasPrefix("storage: recovered") })
        var texts = lines.map(\.1)
        for counter in metrics.counters { texts.append(counter.label + " " + counter.dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: " ")) }
        for timer in metrics.timers { texts.append(timer.label + " " + timer.dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: " ")) }
        #expect(metrics.counters.contains { $0.label == "patientvault_operations_total" })
        for (label, plaintext) in tourPlaintexts {
            let found = texts.filter { $0.contains(plaintext) }
            #expect(found.isEmpty, "\(label) in \(found.prefix(2))")
        }
    }

    /// An error that names a vault or a document names no place in the
    /// files (a log line would otherwise lead from the public ids to the
    /// vault's frames): the storage layer's segment, offset and key slot
    /// numbers are dropped; an error naming neither keeps them for the
    /// operator.
    @Test func anErrorNamingADocumentNamesNoPlaceInTheFiles() throws {
        let storage = StorageError(.keySlotDestroyed, "key slot 4242 was destroyed in segment 17", segment: 17, offset: 65_536)
        let document = DocumentID(bytes: Array(1...16))
        for (vaultID, documentID) in [("0123abcd", nil), (nil, document), ("0123abcd", document)] as [(String?, DocumentID?)] {
            let e = PatientVaultError.wrapping(storage, vaultID: vaultID, documentID: documentID)
            #expect(e.code == .erased)
            #expect(e.segment == nil && e.offset == nil)
            #expect(!e.description.contains("4242") && !e.description.contains("17") && !e.description.contains("65536"), "\(e)")
        }
        let located = PatientVaultError.wrapping(storage, vaultID: nil, documentID: nil)
        #expect(located.segment == 17 && located.offset == 65_536 && located.description.contains("4242"))
        // Wrapped first without ids (a vault's load), then with them (the
        // read that loaded it): the second wrapping scrubs it too; an
        // errno stays.
        let io = StorageError(.io, "read of record 9182 failed", segment: 3, offset: 4096, errno: 5)
        let inner = PatientVaultError.wrapping(io)
        #expect(inner.segment == 3 && inner.message.contains("9182"))
        let outer = PatientVaultError.wrapping(inner, vaultID: "0abc", documentID: document)
        #expect(outer.segment == nil && outer.offset == nil)
        #expect(outer.message == "read of record N failed (errno 5)")
        // The coded form and equality ignore where a message came from.
        #expect(try JSONDecoder().decode(PatientVaultError.self, from: JSONEncoder().encode(outer)) == outer)
    }
}
