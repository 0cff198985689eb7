import Foundation
import PatientVault
import VaultSync

/// Where a temporary store keeps its records.
public enum TemporaryStorage: Sendable, Hashable {
    /// A new folder under the system's temporary directory: the log of
    /// files a production store uses, with its recovery and its syncs.
    case folder
    /// A ``MemoryEngine``: no disk at all, about ten times faster to open,
    /// and the same behaviour but for what only files have (crashes, power
    /// loss, damaged files, ``StoreFaults``: a configuration with faults
    /// injected is refused with `invalidArgument`; a master-key rotation
    /// and a backup, which act on the header and the files, are refused
    /// with `invalidArgument` too: test those on a folder).
    case memory
}

/// Opens a store in a new temporary folder (or in memory), runs `body`
/// with it, then closes the store and deletes the folder, whether `body`
/// returns, throws or its task is cancelled.
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
/// `patientvault-test-<UUID>`. A test that reopens the store, opens a
/// second one on the same folder or needs the key uses
/// ``withTemporaryStoreFolder(configuration:storage:key:isolation:_:)``.
/// - Parameters:
///   - configuration: the store's settings; `Configuration/testing` (small
///     files) by default.
///   - storage: a folder (the default) or memory.
///   - key: how the store's master key is given: nil (the default) for a
///     random raw key; a passphrase (with
///     `Configuration.withInsecureKeyDerivationForTests()`, or it costs
///     Argon2id's production price) or a ``TestKeyProvider`` for a
///     folder. A store in memory has no header: it takes a raw key only
///     (`invalidArgument` otherwise).
///   - isolation: the caller's actor, where `body` runs (a suite on the
///     main actor keeps it); filled in by the compiler.
///   - body: the test, given the open store.
/// - Returns: what `body` returns (it need not be `Sendable`).
/// - Throws: what `body` throws, or the `PatientVaultError` of opening or
///   closing the store (see ``TemporaryStore/close()`` for what a close
///   does not report again).
public func withTemporaryStore<R>(
    configuration: Configuration = .testing,
    storage: TemporaryStorage = .folder,
    key: MasterKeySource? = nil,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (VaultStore) async throws -> R
) async throws -> R {
    try await withTemporaryStoreFolder(configuration: configuration, storage: storage, key: key, isolation: isolation) { temporary in
        _ = isolation  // the closure runs on the caller's actor, as `body` expects
        return try await body(temporary.store)
    }
}

/// Opens a store in a new temporary folder and runs `body` with what a
/// test of reopening needs: the store, its folder, its master key and
/// ``TemporaryStore/reopen(configuration:)``. Then closes the store and
/// deletes the folder, whether `body` returns, throws or is cancelled.
///
/// ```swift
/// try await withTemporaryStoreFolder { temporary in
///     let alice = INS.example(1)
///     try await temporary.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
///     let reopened = try await temporary.reopen()
///     _ = try await reopened.vaultInfo(for: alice, as: .patient(alice))
/// }
/// ```
/// - Parameters:
///   - configuration: the store's settings; `Configuration/testing` by default.
///   - storage: a folder (the default) or memory (then ``TemporaryStore/reopen(configuration:)``
///     opens the same memory again).
///   - key: nil for a random raw key, or the master-key source to open
///     with (see ``withTemporaryStore(configuration:storage:key:isolation:_:)``).
///   - isolation: the caller's actor, where `body` runs; filled in by
///     the compiler.
///   - body: the test, given the temporary store.
/// - Returns: what `body` returns (it need not be `Sendable`).
/// - Throws: what `body` throws, or the `PatientVaultError` of opening or
///   closing the store.
public func withTemporaryStoreFolder<R>(
    configuration: Configuration = .testing,
    storage: TemporaryStorage = .folder,
    key: MasterKeySource? = nil,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (TemporaryStore) async throws -> R
) async throws -> R {
    let temporary = try await TemporaryStore(configuration: configuration, storage: storage, key: key)
    defer { temporary.removeFolder() }
    let result: R
    do {
        result = try await body(temporary)
    } catch {
        try? await temporary.store.close()
        throw error
    }
    try await temporary.close()
    return result
}

/// A store in a temporary folder (``withTemporaryStoreFolder(configuration:storage:key:isolation:_:)``):
/// the open store, where it is, its key, and a way to reopen it.
public final class TemporaryStore: Sendable {
    /// The store's folder (deleted by `withTemporaryStore`'s end, by
    /// `closeAndRemove()`, or when this value is released); never created for
    /// a store in memory.
    public let folder: URL
    /// The memory of a store opened with ``TemporaryStorage/memory``, nil
    /// for a folder.
    public let memory: MemoryEngine?
    /// The store's raw master key: the one the test passed (`key: .key(k)`),
    /// or a random one for this test only; not the store's key when it was
    /// opened with a passphrase or a provider (``keySource``).
    public let key: MasterKey
    /// How the store's master key is given at each open: `.key(key)`
    /// unless the test passed another source.
    public let keySource: MasterKeySource
    /// The settings the store was opened with.
    public let configuration: Configuration
    private let current: Locked<VaultStore>
    /// How a store on another engine opens (this package's suites over
    /// PostgreSQL); nil for a folder or memory.
    private let opener: Opener?

    /// Opens a store with `key` and `configuration` on an engine the
    /// testing product does not know.
    package typealias Opener = @Sendable (MasterKey, Configuration) async throws(PatientVaultError) -> VaultStore

    /// Opens a store with a random key in a new folder under the system's
    /// temporary directory, `patientvault-test-<UUID>`. The folder is
    /// deleted when this value is released (close the store first); prefer
    /// ``withTemporaryStoreFolder(configuration:storage:key:isolation:_:)``, which closes and
    /// deletes whatever the test does.
    /// - Parameters:
    ///   - configuration: the store's settings.
    ///   - storage: a folder (the default) or memory.
    ///   - source: (label `key`) nil for a random raw key (``key``), or the
    ///     master-key source to open with (a store in memory takes a raw
    ///     key only).
    /// - Throws: the `PatientVaultError` of opening the store.
    public init(configuration: Configuration, storage: TemporaryStorage = .folder, key source: MasterKeySource? = nil) async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-test-\(UUID().uuidString)")
        if case .key(let given)? = source { key = given } else { key = try MasterKey.generate() }
        keySource = source ?? .key(key)
        self.configuration = configuration
        memory = storage == .memory ? MemoryEngine() : nil
        opener = nil
        do {
            current = Locked(try await Self.open(folder: folder, memory: memory, opener: nil, key: keySource, configuration: configuration))
        } catch {
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
    }

    /// A temporary store that `opener` opens (and opens again at
    /// ``reopen(configuration:)``): this package's suites over engines the
    /// testing product does not depend on. Its folder is never created.
    package init(configuration: Configuration, opener: @escaping Opener) async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-test-\(UUID().uuidString)")
        key = try MasterKey.generate()
        keySource = .key(key)
        self.configuration = configuration
        memory = nil
        self.opener = opener
        current = Locked(try await opener(key, configuration))
    }

    deinit { removeFolder() }

    /// Deletes the folder and everything in it.
    func removeFolder() { try? FileManager.default.removeItem(at: folder) }

    /// Closes the store and deletes its folder, for a test that made this
    /// store itself (an XCTest case's `tearDown`, which may outlive the
    /// test: the folder goes now, not when the last reference does). The
    /// folder is deleted even if closing throws.
    public func closeAndRemove() async throws(PatientVaultError) {
        defer { removeFolder() }
        try await close()
    }

    /// The open store (the newest, after ``reopen(configuration:)``).
    public var store: VaultStore { current.withLock { $0 } }

    /// Closes the store and opens its folder again, with `configuration`
    /// (by default the one it was opened with); the new store becomes
    /// ``store``. What recovery does at open is what a restart does.
    /// - Throws: the `PatientVaultError` of closing (see ``close()``) or
    ///   opening.
    @discardableResult
    public func reopen(configuration: Configuration? = nil) async throws(PatientVaultError) -> VaultStore {
        try await close()
        let reopened = try await Self.open(
            folder: folder, memory: memory, opener: opener, key: keySource, configuration: configuration ?? self.configuration)
        current.withLock { $0 = reopened }
        return reopened
    }

    private static func open(
        folder: URL, memory: MemoryEngine?, opener: Opener?, key source: MasterKeySource, configuration: Configuration
    ) async throws(PatientVaultError) -> VaultStore {
        if memory != nil || opener != nil {
            guard case .key(let key) = source else {
                throw PatientVaultError(.invalidArgument, "a store without a header (in memory) opens with a raw master key only")
            }
            if let opener { return try await opener(key, configuration) }
            if let memory { return try await VaultStore.openInMemory(memory, key: key, configuration: configuration) }
        }
        return try await VaultStore.open(at: folder, key: source, configuration: configuration)
    }

    /// Closes the store. A failure is reported where it happened: once a
    /// call of the test has been told `durabilityLost` (a test of a failed
    /// sync, say), closing does not throw it again; a loss no call was told
    /// of (a relaxed write whose background sync failed) is thrown here.
    public func close() async throws(PatientVaultError) {
        let store = self.store
        // Read before: this close's own error counts as told once thrown.
        let told = store.hasReportedDurabilityLoss
        do {
            try await store.close()
        } catch where error.code == .durabilityLost && told {
            // Already reported to the call that met it.
        }
    }
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
