import Foundation
import MetricsTestKit
import PatientVaultTesting
import Testing
@testable import PatientVault

/// The store's metrics: one count per operation with the outcome its audit
/// entry records, a duration per operation, checkpoints; no patient data
/// in any dimension.
@Suite struct MetricsTests {
    @Test func everyOperationIsCountedAsItsEntrySays() async throws {
        let metrics = TestMetrics()
        var c = Fixtures.configuration()
        c.metricsFactory = metrics
        let t = try await TestStore(configuration: c, engine: testStorage)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor)
        _ = try await t.store.content(of: doc.id, for: alice, as: .patient(alice))
        #expect(await code { _ = try await t.store.content(of: doc.id, for: alice, as: Fixtures.otherDoctor) } == .accessDenied)
        _ = try await t.store.checkpoint()
        func count(_ action: String, _ outcome: String) throws -> Int64 {
            try metrics.expectCounter("patientvault_operations_total", [("action", action), ("outcome", outcome)]).totalValue
        }
        #expect(try count("deposit", "allowed") == 1)
        #expect(try count("readContent", "allowed") == 1)
        #expect(try count("readContent", "denied") == 1)
        #expect(try count("deposit", "denied") == 0)
        #expect(try metrics.expectTimer("patientvault_operation_duration", [("action", "deposit")]).values.count == 1)
        #expect(try metrics.expectCounter("patientvault_checkpoints_total").totalValue >= 1)
        // Dimensions are action and outcome names only.
        for counter in metrics.counters(label: "patientvault_operations_total") {
            #expect(counter.dimensions.allSatisfy { ["action", "outcome"].contains($0.0) })
            #expect(!counter.dimensions.contains { $0.1.contains(alice.digits) })
        }
        try await t.close()
    }
}
