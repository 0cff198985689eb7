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
    /// 64 KiB content chunks (16 KiB inline) and a 64 KiB audit reserve.
    /// A fresh store takes about 1 MB of disk and opens in milliseconds.
    ///
    /// The clock is the system's: a test that needs to move time passes
    /// its own (``testing(clock:)`` with a ``ManualClock``). Key derivation
    /// keeps its production cost: a passphrase store asks for the cheap
    /// one only through ``withInsecureKeyDerivationForTests()``.
    public static var testing: Configuration { testing(clock: SystemClock()) }

    /// ``testing`` with `clock` as the store's clock: pass a ``ManualClock``
    /// to move time in a test (grant expiry, the hidden-document month).
    ///
    /// ```swift
    /// let clock = ManualClock(Date())
    /// try await withTemporaryStore(configuration: .testing(clock: clock)) { store in
    ///     clock.advance(by: 31 * 86_400)   // a month later
    /// }
    /// ```
    public static func testing(clock: any VaultClock) -> Configuration {
        var c = Configuration()
        c.segmentSize = 1 << 20
        c.contentChunkSize = 64 << 10
        c.inlineContentLimit = 16 << 10
        c.auditReserve = 64 << 10
        c.clock = clock
        return c
    }

    /// These settings with libsodium's smallest Argon2id cost (1 pass,
    /// 8 KiB) for the passphrase stores they create, whatever
    /// `PassphraseStrength` is asked for, and with stores of that cost
    /// accepted at open: passphrase tests then take milliseconds instead of
    /// a second each. Never in production: a store created this way can be
    /// guessed cheaply, and a configuration without this opt-in refuses to
    /// open it (`invalidArgument`, saying why).
    public func withInsecureKeyDerivationForTests() -> Configuration {
        var c = self
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
