import Foundation
import Logging
import Testing
import VaultSync
@testable import PatientVault

/// A log handler that keeps every message, for tests of what the store logs.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // @unchecked: `messages` is behind its own lock; the rest is set once.
    let messages = Locked<[(Logger.Level, String)]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // The message, then every metadata value (the handler's and the call's).
        let values = metadata.merging(event.metadata ?? [:]) { $1 }.map { "\($0.key)=\($0.value)" }.sorted()
        messages.withLock { $0.append((event.level, ([("\(event.message)")] + values).joined(separator: " "))) }
    }
}

/// A store dropped without `close()` releases everything (the batched-audit
/// flusher kept it alive for ever: engine, thread, descriptors, `flock`)
/// and says so.
@Suite struct DroppedStoreTests {
    /// The store, or nil while another holds its LOCK.
    static func openUnlessLocked(_ url: URL, key: MasterKey) async throws -> VaultStore? {
        let result: Result<VaultStore, PatientVaultError>
        do {
            result = .success(try await VaultStore.open(at: url, key: .key(key), configuration: Fixtures.configuration()))
        } catch {
            result = .failure(error)
        }
        if case .failure(let e) = result, e.code == .storeLocked { return nil }
        return try result.get()
    }

    @Test(arguments: [false, true])
    func aDroppedStoreReleasesItsFilesAndSaysSo(batchedAudit: Bool) async throws {
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let handler = CapturingLogHandler()
        var c = Fixtures.configuration()
        c.logger = Logger(label: "test") { _ in handler }
        if batchedAudit { c.auditMode = .batched(maxDelay: .milliseconds(50)) }
        let alice = Fixtures.alice
        var doc: DocumentID?
        do {
            let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: c)
            try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
            doc = try await store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor).id
            _ = try await store.documents(for: alice, as: .patient(alice))
            // Dropped here, without close().
        }
        #expect(handler.messages.withLock { $0.contains { $0.0 == .warning && $0.1.contains("without close()") } })
        // The LOCK is released once the engine has synced and stopped.
        var reopened: VaultStore?
        for _ in 0..<1500 where reopened == nil {  // up to 30 s on a loaded machine
            reopened = try await Self.openUnlessLocked(folder.url, key: key)
            if reopened == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let store = try #require(reopened, "the dropped store kept its LOCK")
        #expect(try await store.content(of: doc!, for: alice, as: .patient(alice)) == Data([1]))
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await store.close()
    }
}
