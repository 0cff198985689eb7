import Foundation
import Testing
@testable import PatientVault
import VaultStorage
import VaultSync

/// Opening and closing a store: keys, headers, the folder, the engine seam (`VaultStore`).
@Suite struct StoreTests {
    /// The storage engine comes from the configuration's factory (here a
    /// `LogEngine` too, counted): the domain layer builds none itself.
    @Test func theStorageEngineIsInjected() async throws {
        let made = Locked(0)
        var c = Fixtures.configuration()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patientvault-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        c.engineFactory = { options in
            made.withLock { $0 += 1 }
            var configuration = LogEngineConfiguration()
            configuration.reserve = options.reserve
            configuration.maximumRecordSize = options.maximumRecordSize
            configuration.authenticator = options.authenticator
            return try LogEngine.open(directory: folder.path + "-engine", configuration: configuration)
        }
        defer { try? FileManager.default.removeItem(atPath: folder.path + "-engine") }
        let t = try await TestStore(configuration: c, storage: .folder)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        #expect(made.withLock { $0 } == 1)
        try await t.store.close()
    }

    @Test func wrongMasterKeyIsATypedErrorAndWritesNothing() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        try await t.store.close()
        let before = try filesAndBytes(in: t.folder)
        let c = await code { _ = try await VaultStore.open(at: t.folder, key: .key(try MasterKey.generate()), configuration: Fixtures.configuration()) }
        #expect(c == .wrongMasterKey)
        let after = try filesAndBytes(in: t.folder)
        #expect(before.map(\.0) == after.map(\.0))
        #expect(before.map(\.1) == after.map(\.1))
        // The right key still opens it.
        let reopened = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
        #expect(try await reopened.vaultInfo(for: Fixtures.alice, as: .patient(Fixtures.alice)).channel == .patientOnline)
        try await reopened.close()
    }

    @Test func passphraseStoreStoresItsSaltAndRefusesAnotherPassphrase() async throws {
        let folder = TestFolder()
        let weak = weakPassphraseConfiguration()
        let store = try await VaultStore.open(
            at: folder.url, key: .passphrase("correct horse battery staple"), configuration: weak)
        try await store.createVault(for: Fixtures.bob, as: Fixtures.pharmacist, channel: .pharmacy)
        try await store.close()
        let wrong = await code {
            _ = try await VaultStore.open(at: folder.url, key: .passphrase("wrong horse"), configuration: weak)
        }
        #expect(wrong == .wrongMasterKey)
        let asKey = await code {
            _ = try await VaultStore.open(at: folder.url, key: .key(try MasterKey.generate()), configuration: weak)
        }
        #expect(asKey == .wrongMasterKey)
        // A production configuration refuses the weak cost (no real store has it).
        let production = await code {
            _ = try await VaultStore.open(at: folder.url, key: .passphrase("correct horse battery staple"), configuration: Fixtures.configuration())
        }
        #expect(production == .invalidArgument)
        let again = try await VaultStore.open(
            at: folder.url, key: .passphrase("correct horse battery staple"), configuration: weak)
        #expect(try await again.vaultInfo(for: Fixtures.bob, as: .patient(Fixtures.bob)).createdBy == Fixtures.pharmacist)
        try await again.close()
        let empty = await code {
            _ = try await VaultStore.open(at: TestFolder().url, key: .passphrase(""), configuration: Fixtures.configuration())
        }
        #expect(empty == .invalidArgument)
    }

    @Test func secondOpenOfTheSameStoreIsRefused() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let c = await code { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) }
        #expect(c == .storeLocked)
        // `LOCK` deleted while the store is open: the folder stays locked.
        try FileManager.default.removeItem(at: t.folder.appendingPathComponent("LOCK"))
        let again = await code { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) }
        #expect(again == .storeLocked)
        try await t.store.close()
        // Closed: it opens (a new `LOCK` is made).
        try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()).close()
    }

    @Test func closedStoreRefusesWrites() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.close()
        let c = await code { try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline) }
        #expect(c == .closed)
    }

    /// Two damaged bytes of `store.header`: `corrupted`, not
    /// `wrongMasterKey`. One flipped byte anywhere (magic, fields, the
    /// wrapped root key, its CRC) is restored: the one repair the CRC's
    /// algebra lists that the master key opens (the wrap authenticates the
    /// header), written back whole. With another key, a flipped byte is
    /// `corrupted` (no repair opens).
    @Test func damagedHeaderIsCorruptionNotWrongKey() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.createVault(for: Fixtures.alice, as: .patient(Fixtures.alice), channel: .patientOnline)
        try await t.store.close()
        let path = t.folder.appendingPathComponent("store.header")
        let original = try Data(contentsOf: path)
        for position in [0, 8, 12, 20, 60, 90, original.count - 20, original.count - 1] {
            var once = original
            once[position] ^= 0xFF
            try once.write(to: path)
            let store = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration())
            #expect(store.vaultCount == 1, "byte \(position)")
            try await store.close()
            #expect(try Data(contentsOf: path) == original, "byte \(position) written back")
        }
        var once = original
        once[20] ^= 0xFF
        try once.write(to: path)
        #expect(await code { _ = try await VaultStore.open(at: t.folder, key: .key(try MasterKey.generate()), configuration: Fixtures.configuration()) } == .corrupted)
        var twice = original
        twice[20] ^= 0xFF
        twice[30] ^= 0x01
        try twice.write(to: path)
        let c = await code { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) }
        #expect(c == .corrupted)
    }

    /// A store of another format version (the header's, its CRC intact)
    /// is refused with `unsupportedFormat` naming both versions; nothing is
    /// written. There is no migration before 1.0.
    @Test func aStoreOfAnotherFormatVersionIsRefusedNamingBoth() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        try await t.store.close()
        let path = t.folder.appendingPathComponent("store.header")
        var bytes = [UInt8](try Data(contentsOf: path))
        bytes.replaceSubrange(8..<12, with: [1, 0, 0, 0])
        let crc = CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)]))
        withUnsafeBytes(of: crc.littleEndian) { for j in 0..<4 { bytes[bytes.count - 4 + j] = $0[j] } }
        try Data(bytes).write(to: path)
        let before = try filesAndBytes(in: t.folder).map(\.1)
        let e = await error { _ = try await VaultStore.open(at: t.folder, key: .key(t.key), configuration: Fixtures.configuration()) }
        #expect(e?.code == .unsupportedFormat)
        #expect(e?.message.contains("version 1") == true && e?.message.contains("version \(StoreHeader.version)") == true)
        #expect(try filesAndBytes(in: t.folder).map(\.1) == before)
    }

    @Test func badConfigurationIsRefused() async throws {
        var c = Fixtures.configuration()
        c.contentChunkSize = 10
        let configuration = c
        let result = await code { _ = try await VaultStore.open(at: TestFolder().url, key: .key(try MasterKey.generate()), configuration: configuration) }
        #expect(result == .invalidArgument)
        #expect(throws: PatientVaultError.self) { try MasterKey(bytes: [1, 2, 3]) }
    }
}
