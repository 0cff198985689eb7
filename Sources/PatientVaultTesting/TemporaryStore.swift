import Foundation
import PatientVault

/// Opens a store in a new temporary folder, runs `body` with it, then
/// closes the store and deletes the folder, whether `body` returns, throws
/// or its task is cancelled.
///
/// ```swift
/// try await withTemporaryStore { store in
///     let alice = INS.example(1)
///     try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
/// }
/// ```
///
/// The master key is random and lives only for the call. The folder is
/// under the system's temporary directory (`TMPDIR`), named
/// `patientvault-test-<UUID>`.
/// - Parameters:
///   - configuration: the store's settings; `Configuration/testing` (small
///     files, fast key derivation) by default.
///   - body: the test, given the open store.
/// - Returns: what `body` returns.
/// - Throws: what `body` throws, or the `PatientVaultError` of opening or
///   closing the store (a failed close is reported only when `body` succeeded).
public func withTemporaryStore<R: Sendable>(
    configuration: Configuration = .testing,
    _ body: (VaultStore) async throws -> R
) async throws -> R {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-test-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let store = try await VaultStore.open(at: folder, key: .key(try MasterKey.generate()), configuration: configuration)
    let result: R
    do {
        result = try await body(store)
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
    return result
}

extension Configuration {
    /// Settings for tests: the production defaults with 1 MiB segments,
    /// 64 KiB content chunks (16 KiB inline), a 64 KiB audit reserve, the
    /// smallest Argon2id cost for passphrase stores (never in production:
    /// only this product can set it) and a `ManualClock`.
    /// A fresh store takes about 1 MB of disk and opens in milliseconds.
    public static var testing: Configuration {
        var c = Configuration()
        c.segmentSize = 1 << 20
        c.contentChunkSize = 64 << 10
        c.inlineContentLimit = 16 << 10
        c.auditReserve = 64 << 10
        c.clock = ManualClock()
        c.allowsWeakPassphraseCostForTesting = true
        return c
    }

    /// These settings with `faults` injected into the store's storage: the
    /// way a host's tests make the store fail with `diskFull` or
    /// `durabilityLost` on demand.
    public func injecting(_ faults: StoreFaults) -> Configuration {
        var c = self
        c.faults = faults.injection
        return c
    }
}
