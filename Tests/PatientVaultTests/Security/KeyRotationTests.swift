import Foundation
import Synchronization
import PatientVaultTesting
import Testing
@testable import PatientVault
@testable import VaultStorage
@testable import VaultSync
import VaultCrypto

/// Master keys: a raw key, a passphrase or a key provider wraps the
/// store's root key; rotation rewrites the header alone, atomically; the
/// old key then opens nothing.
@Suite struct KeyRotationTests {
    let alice = Fixtures.alice
    let dpo = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    func configuration() -> Configuration {
        var c = Fixtures.configuration().withInsecureKeyDerivationForTests()
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        return c
    }

    /// Raw key → passphrase → provider → raw key: after each rotation the
    /// new source opens the store with everything in it, every older one
    /// is `wrongMasterKey`, and a non-reviewer cannot rotate.
    @Test func eachRotationLeavesExactlyTheNewKeyOpeningTheStore() async throws {
        let folder = TestFolder()
        let first = try MasterKey.generate()
        let hsm = try TestKeyProvider()
        let last = try MasterKey.generate()
        var store = try await VaultStore.open(at: folder.url, key: .key(first), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await store.deposit(Fixtures.draft(), content: Data("kept".utf8), for: alice, as: Fixtures.doctor)
        let verifierKey = store.checkpointVerifierKey
        #expect(await code { try await store.rotateMasterKey(to: .key(last), as: .patient(self.alice)) } == .accessDenied)
        let sources: [MasterKeySource] = [.key(first), .passphrase("correct horse battery staple"), .provider(hsm), .key(last)]
        for (i, next) in sources.enumerated().dropFirst() {
            try await store.rotateMasterKey(to: next, as: dpo)
            // The open store goes on; a reopen takes the new key only.
            _ = try await store.deposit(Fixtures.draft("after \(i)"), content: Data([UInt8(i)]), for: alice, as: Fixtures.doctor)
            try await store.close()
            for old in sources[..<i] {
                let refused = await code { _ = try await VaultStore.open(at: folder.url, key: old, configuration: self.configuration()) }
                #expect(refused == .wrongMasterKey, "source \(i) opened with an older one: \(String(describing: refused))")
            }
            store = try await VaultStore.open(at: folder.url, key: next, configuration: configuration())
            #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == Data("kept".utf8))
            #expect(store.checkpointVerifierKey == verifierKey, "the keys under the root do not change")
        }
        // One wrap, its trial unwrap, and the reopen's unwrap.
        #expect(hsm.calls.wraps == 1 && hsm.calls.unwraps == 2)
        _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        try await store.close()
    }

    /// A creation cut between linking its header into place and removing
    /// its temporary name leaves that name: a second link to the header the
    /// old key opens. A rotation removes it, so the old key opens nothing
    /// in the folder (before, that file still held the old wrap).
    @Test func aRotationLeavesNoOtherNameOfTheOldHeader() async throws {
        let folder = TestFolder()
        let old = try MasterKey.generate()
        var store = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        try await store.close()
        let header = folder.url.appendingPathComponent("store.header")
        let stray = folder.url.appendingPathComponent("store.header.new.0a1b2c3d")
        try FileManager.default.linkItem(at: header, to: stray)
        store = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        try await store.rotateMasterKey(to: .key(try MasterKey.generate()), as: dpo)
        try await store.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.url.path)
        #expect(!names.contains { $0.hasPrefix("store.header.new.") })
    }

    /// A rotation, a second one waiting behind it, and `close()` at the
    /// same time: close waits for the rotations that began, one that had
    /// not yet entered finds the store closed, and the key the header ends
    /// with opens the store and its data. Before, `close()` wiped the root
    /// key under the waiting rotation, which then wrapped zeros into the
    /// header: no key opened the store again.
    /// A provider that keeps what it hands out and is handed (a cache of
    /// its KMS's answers) gets back, after the store's `close()`, keys the
    /// store did not wipe: the store wipes copies of its own. The second
    /// open, in the same process, opens the store (it derived every key
    /// from zeros before, and answered `corrupted`).
    @Test func aProviderThatKeepsItsKeysIsNotWipedByClose() async throws {
        final class CachingProvider: KeyProvider {
            let inner: TestKeyProvider
            let cache = Locked<[[UInt8]: MasterKey]>([:])
            let given = Locked<[MasterKey]>([])
            init() throws { inner = try TestKeyProvider() }
            var keyID: String { inner.keyID }
            func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] {
                given.withLock { $0.append(key) }
                return try await inner.wrap(key, context: context)
            }
            func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
                if let kept = cache.withLock({ $0[wrapped] }) { return kept }
                let key = try await inner.unwrap(wrapped, context: context)
                cache.withLock { $0[wrapped] = key }
                return key
            }
        }
        let folder = TestFolder()
        let provider = try CachingProvider()
        var store = try await VaultStore.open(at: folder.url, key: .provider(provider), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await store.deposit(Fixtures.draft(), content: Data("kept".utf8), for: alice, as: Fixtures.doctor)
        try await store.close()
        for _ in 0..<2 {
            store = try await VaultStore.open(at: folder.url, key: .provider(provider), configuration: configuration())
            #expect(try await store.content(of: doc.id, for: alice, as: .patient(alice)) == Data("kept".utf8))
            try await store.close()
        }
        // What the provider was handed to wrap is not zeroed by close either.
        let handed = try #require(provider.given.withLock { $0.first })
        #expect(handed.key.withUnsafeBytes { $0.contains { $0 != 0 } })
    }

    /// A provider that gives back another key without an error (a bug, a
    /// key service answering for another key) is refused by the header's
    /// root check with `wrongMasterKey`, before anything is read or
    /// written: not `corrupted` from the first record that fails its MAC.
    @Test func aProviderThatGivesBackAnotherKeyIsTheWrongKey() async throws {
        final class LyingProvider: KeyProvider {
            let inner: TestKeyProvider
            let lies = Locked(false)
            init() throws { inner = try TestKeyProvider() }
            var keyID: String { inner.keyID }
            func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] { try await inner.wrap(key, context: context) }
            func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
                if lies.withLock({ $0 }) { return try MasterKey.generate() }
                return try await inner.unwrap(wrapped, context: context)
            }
        }
        let folder = TestFolder()
        let provider = try LyingProvider()
        let store = try await VaultStore.open(at: folder.url, key: .provider(provider), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await store.close()
        let before = try filesAndBytes(in: folder.url)
        provider.lies.withLock { $0 = true }
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .provider(provider), configuration: self.configuration()) } == .wrongMasterKey)
        #expect(try filesAndBytes(in: folder.url).map(\.1) == before.map(\.1))
        provider.lies.withLock { $0 = false }
        let reopened = try await VaultStore.open(at: folder.url, key: .provider(provider), configuration: configuration())
        #expect(reopened.vaultCount == 1)
        try await reopened.close()
    }

    @Test func aRotationRacingCloseNeverWrapsAWipedRootKey() async throws {
        let folder = TestFolder()
        let first = try MasterKey.generate()
        let paused = PausingKeyProvider(try TestKeyProvider(keyID: "test-hsm/paused"))
        let second = try TestKeyProvider(keyID: "test-hsm/second")
        let store = try await VaultStore.open(at: folder.url, key: .key(first), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await store.deposit(Fixtures.draft(), content: Data("kept".utf8), for: alice, as: Fixtures.doctor)
        let dpo = self.dpo
        let a = Task { try await store.rotateMasterKey(to: .provider(paused), as: dpo) }
        await paused.entered()
        let b = Task { try await store.rotateMasterKey(to: .provider(second), as: dpo) }
        while store.keyGate.waiting < 1 { try await Task.sleep(for: .milliseconds(1)) }
        let closing = Task { try await store.close() }
        while !store.lifecycle.isClosed { try await Task.sleep(for: .milliseconds(1)) }
        // close() now waits its turn at the gate (the code before wiped
        // the root key here, under the waiting rotation).
        while store.keyGate.waiting < 2 { try await Task.sleep(for: .milliseconds(1)) }
        paused.release()
        _ = await a.result
        _ = await b.result
        try await closing.value
        var opened = 0
        for source in [MasterKeySource.key(first), .provider(paused), .provider(second)] {
            guard let reopened = try? await VaultStore.open(at: folder.url, key: source, configuration: configuration()) else { continue }
            opened += 1
            #expect(try await reopened.content(of: doc.id, for: alice, as: .patient(alice)) == Data("kept".utf8))
            try await reopened.close()
        }
        #expect(opened == 1)
    }

    /// A provider's outage is `io` at open, not a wrong key; another
    /// provider key, or a header altered, does not open.
    @Test func aProvidersOutageAndAnotherProviderKeyAreRefused() async throws {
        let folder = TestFolder()
        let hsm = try TestKeyProvider(keyID: "test-hsm/ward-7")
        let store = try await VaultStore.open(at: folder.url, key: .provider(hsm), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await store.close()
        hsm.isAvailable = false
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .provider(hsm), configuration: self.configuration()) } == .io)
        hsm.isAvailable = true
        let other = try TestKeyProvider(keyID: "test-hsm/ward-7")
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .provider(other), configuration: self.configuration()) } == .wrongMasterKey)
        let renamed = try TestKeyProvider(keyID: "test-hsm/ward-8")
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .provider(renamed), configuration: self.configuration()) } == .wrongMasterKey)
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .key(try MasterKey.generate()), configuration: self.configuration()) } == .wrongMasterKey)
        let reopened = try await VaultStore.open(at: folder.url, key: .provider(hsm), configuration: configuration())
        #expect(try await reopened.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0)
        try await reopened.close()
    }

    /// A provider whose `keyID` is computed and changes after its first
    /// reads (valid, then 300 bytes): the header is made from the value
    /// checked, or refused, never from an unchecked later read (a header
    /// the store could not decode again, after a rotation had replaced the
    /// old one). A rotation reads it twice before the header is made, a
    /// new store once.
    @Test func aProvidersKeyIDIsCheckedAsItIsWritten() async throws {
        let folder = TestFolder()
        let key = try MasterKey.generate()
        let store = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let shifting = ShiftingKeyIDProvider(try TestKeyProvider(keyID: "test-hsm/shifting"), validReads: 2)
        #expect(await code { try await store.rotateMasterKey(to: .provider(shifting), as: self.dpo) }
            == .invalidArgument)
        try await store.close()
        // The old header still opens the store.
        let reopened = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration())
        #expect(try await reopened.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0)
        try await reopened.close()
        // A new store with it: refused, nothing made.
        let fresh = TestFolder()
        let again = ShiftingKeyIDProvider(try TestKeyProvider(keyID: "test-hsm/shifting"), validReads: 1)
        #expect(await code { _ = try await VaultStore.open(at: fresh.url, key: .provider(again), configuration: self.configuration()) }
            == .invalidArgument)
    }

    /// A rotation cut short before its rename (the temporary header
    /// written, the store killed) leaves the old key opening the store; the
    /// next rotation completes. A store in memory has no master key to
    /// rotate (refused, recorded).
    @Test func aRotationCutShortLeavesTheOldKeyAndResumes() async throws {
        let folder = TestFolder()
        let old = try MasterKey.generate()
        let new = try MasterKey.generate()
        var store = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        // What a rotation to `new` writes, left in the temporary file only.
        let header = try #require(try StoreHeader.read(directory: folder.url.path))
        let root = try await RootKeyWrapping.unwrapRoot(.key(old), header: header, allowsWeakCost: false)
        let next = try await RootKeyWrapping.header(wrapping: root, with: .key(new), storeID: header.storeID, weakCost: false)
        try Data(next.encoded()).write(to: folder.url.appendingPathComponent(StoreFolder.headerFileName + ".tmp"))
        try await store.close()
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .key(new), configuration: self.configuration()) } == .wrongMasterKey)
        store = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        try await store.rotateMasterKey(to: .key(new), as: dpo)
        try await store.close()
        #expect(await code { _ = try await VaultStore.open(at: folder.url, key: .key(old), configuration: self.configuration()) } == .wrongMasterKey)
        store = try await VaultStore.open(at: folder.url, key: .key(new), configuration: configuration())
        #expect(try await store.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0)
        try await store.close()

        let memory = try await VaultStore.openInMemory(MemoryEngine(), key: try MasterKey.generate(), configuration: configuration())
        #expect(await code { try await memory.rotateMasterKey(to: .key(new), as: self.dpo) } == .invalidArgument)
        try await memory.close()
    }

    /// Two openers of an empty folder at once: one header wins (created
    /// only if absent), the other opener uses its root key; the store that
    /// results opens again and holds what was written.
    @Test func twoOpenersOfAnEmptyFolderAgreeOnOneRootKey() async throws {
        for round in 0..<8 {
            let folder = TestFolder()
            let key = try MasterKey.generate()
            let configuration = configuration()
            async let first: VaultStore? = try? await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration)
            async let second: VaultStore? = try? await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration)
            let opened = await [first, second].compactMap { $0 }
            #expect(opened.count >= 1, "round \(round)")
            for store in opened {
                _ = try? await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
                try await store.close()
            }
            let again = try await VaultStore.open(at: folder.url, key: .key(key), configuration: configuration)
            #expect(try await again.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0, "round \(round)")
            try await again.close()
        }
    }

    /// A vault-key rotation: documents deposited afterwards have their keys
    /// wrapped under the new wrapping key (their record header says which),
    /// older ones read as before, before and after a reopen; only the
    /// holder or a configured reviewer rotates; a destruction destroys
    /// every wrapping key's slot with the vault key's.
    @Test(arguments: suiteEngines)
    func aVaultKeyRotationWrapsNewDocumentsUnderTheNewKey(storage: SuiteStorage) async throws {
        let clock = ManualClock()
        var c = Fixtures.configuration(clock: clock)
        c.auditReviewers = [try SystemPrincipal("dpo")]
        let t = try await TestStore(configuration: c, engine: storage)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let old = try await t.store.deposit(Fixtures.draft("Old"), content: Fixtures.content("OLD", size: 150_000), for: alice, as: Fixtures.doctor)
        #expect(await code { try await t.store.rotateVaultKey(for: alice, as: Fixtures.doctor) } == .accessDenied)
        #expect(try await t.store.rotateVaultKey(for: alice, as: .patient(alice)) == 1)
        #expect(try await t.store.rotateVaultKey(for: alice, as: dpo) == 2)
        let new = try await t.store.deposit(Fixtures.draft("New"), content: Data("new".utf8), for: alice, as: Fixtures.doctor)
        let replaced = try await t.store.replace(old.id, with: Fixtures.draft("Old v2"), content: Data("old v2".utf8), for: alice, as: Fixtures.doctor)
        for round in 0..<2 {
            let store = round == 0 ? t.store : try await t.reopen()
            let versions = try await store.withVault(alice) { v in
                (v.documents[old.id]!.map(\.keyVersion), v.documents[new.id]!.map(\.keyVersion), v.currentKeyVersion)
            }
            #expect(versions.0 == [0, 2] && versions.1 == [2] && versions.2 == 2)
            #expect(try await store.content(of: old.id, version: 1, includingDeprecated: true, for: alice, as: .patient(alice))
                == Fixtures.content("OLD", size: 150_000))
            #expect(try await store.content(of: replaced.id, for: alice, as: .patient(alice)) == Data("old v2".utf8))
            #expect(try await store.content(of: new.id, for: alice, as: .patient(alice)) == Data("new".utf8))
            _ = try await store.verifyAuditTrail(for: alice, as: .patient(alice))
        }
        // The record header names the wrapping key's version (bound as
        // associated data: a record claiming another fails to open).
        let reference = try #require(try await t.store.withVault(alice) { $0.documents[new.id]!.last!.reference })
        #expect(try RecordHeader.decode(try await t.store.engine.read(reference).payload, mask: t.store.keys.headerMask).keyVersion == 2)
        // Destroyed: the vault key's slot and both wrapping keys' go.
        let slots = try await t.store.withVault(alice) { $0.vaultKeySlots }
        #expect(slots.count == 3)
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        clock.set(clock.now().addingTimeInterval(11 * 366 * 86_400))
        #expect(try await t.store.destroyExpiredVaults(at: clock.now()).count == 1)
        for slot in slots {
            await #expect { _ = try await t.store.engine.keySlots.readKeySlot(slot) } throws: {
                ($0 as? StorageError)?.code == .keySlotDestroyed
            }
        }
        try await t.close()
    }

    /// A vault's key is rotated at most `Limits.vaultKeyRotations` times:
    /// one more is `invalidArgument`, recorded; the vault still closes and
    /// is destroyed with every rotated key (its destruction's record lists
    /// them all). Before, rotations were unbounded, and past a few
    /// thousand the destruction's record no longer fitted a record.
    @Test func aVaultKeyIsRotatedAtMostTheLimit() async throws {
        let clock = ManualClock()
        let t = try await TestStore(configuration: Fixtures.configuration(clock: clock), engine: .memory)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        for _ in 0..<Limits.vaultKeyRotations { try await t.store.rotateVaultKey(for: alice, as: .patient(alice)) }
        let refused = await error { try await t.store.rotateVaultKey(for: alice, as: .patient(alice)) }
        #expect(refused?.code == .invalidArgument)
        // Recorded: the one rotation not allowed, among the newest entries.
        let newest = try await t.store.auditTrail(for: alice, matching: AuditQuery(limit: 3), as: .patient(alice))
        #expect(newest.filter { $0.action == .rotateVaultKey && $0.outcome != .allowed }.count == 1)
        let slots = try await t.store.withVault(alice) { $0.vaultKeySlots }
        #expect(slots.count == Limits.vaultKeyRotations + 1)
        try await t.store.closeVault(for: alice, reason: .patientRequest, as: .patient(alice))
        clock.set(clock.now().addingTimeInterval(11 * 366 * 86_400))
        #expect(try await t.store.destroyExpiredVaults(at: clock.now()).count == 1)
        for slot in [slots.first!, slots.last!] {
            await #expect { _ = try await t.store.engine.keySlots.readKeySlot(slot) } throws: {
                ($0 as? StorageError)?.code == .keySlotDestroyed
            }
        }
        try await t.close()
    }

    /// A provider whose unwrap refuses its own wrap, or gives back other
    /// bytes: the store is not created (no header: it would open from the
    /// root key in memory and never again after close), and a rotation to
    /// it leaves the old header, so the old key still opens the store.
    @Test(arguments: UnfaithfulProvider.Fault.allCases)
    func aProviderThatCannotUnwrapItsOwnWrapIsRefused(fault: UnfaithfulProvider.Fault) async throws {
        let bad = try UnfaithfulProvider(fault)
        // A provider that throws may be failing (an outage): `io`, as a
        // failed wrap; one that gives back another key is wrong.
        let expected: PatientVaultError.Code = fault == .refuses ? .io : .invalidArgument
        let fresh = TestFolder()
        #expect(await code { _ = try await VaultStore.open(at: fresh.url, key: .provider(bad), configuration: self.configuration()) } == expected)
        #expect(!FileManager.default.fileExists(atPath: fresh.url.appendingPathComponent(StoreFolder.headerFileName).path), "no store was made")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: fresh.url.path)) ?? []).isEmpty)

        let folder = TestFolder()
        let old = try MasterKey.generate()
        let store = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let doc = try await store.deposit(Fixtures.draft(), content: Data("kept".utf8), for: alice, as: Fixtures.doctor)
        let header = try Data(contentsOf: folder.url.appendingPathComponent(StoreFolder.headerFileName))
        #expect(await code { try await store.rotateMasterKey(to: .provider(bad), as: self.dpo) } == expected)
        #expect(try Data(contentsOf: folder.url.appendingPathComponent(StoreFolder.headerFileName)) == header, "the old header stays")
        try await store.close()
        let reopened = try await VaultStore.open(at: folder.url, key: .key(old), configuration: configuration())
        #expect(try await reopened.content(of: doc.id, for: alice, as: .patient(alice)) == Data("kept".utf8))
        try await reopened.close()
    }

    /// A bad source (an empty passphrase, a provider's malformed keyID) is
    /// refused before anything is written, and its review entry says so:
    /// denied, rule `invalidRequest` (before, it was recorded as an allowed
    /// rotation, then refused).
    @Test func aBadSourceIsRecordedAsAnInvalidRequestNotAsAllowed() async throws {
        let folder = TestFolder()
        let store = try await VaultStore.open(at: folder.url, key: .key(try MasterKey.generate()), configuration: configuration())
        let badID = try TestKeyProvider(keyID: "bad\u{0}id")
        #expect(await code { try await store.rotateMasterKey(to: .passphrase(""), as: self.dpo) } == .invalidArgument)
        #expect(await code { try await store.rotateMasterKey(to: .provider(badID), as: self.dpo) } == .invalidArgument)
        try await store.auditWriter.flushActivity()
        let stream = store.keys.reviewerStream(of: try SystemPrincipal("dpo"))
        var outcomes: [(AuditOutcome, AccessRule)] = []
        try await store.loader.walkBack(stream, broken: PatientVaultError(.corrupted, "")) { r in
            let plain = try RecordCodec.openStoreRecord(
                r, kind: .activityEntry, key: store.keys.activity, stream: stream, broken: PatientVaultError(.corrupted, ""))
            for copy in try ActivityBatch.decode(plain).copies {
                let e = try AuditEntry.decode(copy.entry)
                if e.action == .rotateMasterKey { outcomes.append((e.outcome, e.rule)) }
            }
            return true
        }
        #expect(outcomes.count == 2)
        #expect(outcomes.allSatisfy { $0.0 != .allowed && $0.1 == .invalidRequest }, "\(outcomes)")
        try await store.close()
    }
}

/// A key provider whose unwrap does not give back its wrap: it refuses it,
/// or answers with another key.
final class UnfaithfulProvider: KeyProvider {
    enum Fault: Sendable, CaseIterable { case refuses, otherKey }
    let keyID = "unfaithful/key-1"
    let fault: Fault
    let inner: TestKeyProvider

    init(_ fault: Fault) throws {
        self.fault = fault
        inner = try TestKeyProvider(keyID: keyID)
    }

    func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] {
        try await inner.wrap(key, context: context)
    }

    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
        switch fault {
        case .refuses: throw CancellationError()
        case .otherKey: return try MasterKey.generate()
        }
    }
}

/// A key provider whose first wrap waits until the test releases it.
final class PausingKeyProvider: KeyProvider {
    let inner: TestKeyProvider
    private let state = Mutex<(entered: Bool, released: Bool, waiters: [CheckedContinuation<Void, Never>], held: CheckedContinuation<Void, Never>?)>(
        (false, false, [], nil))
    var keyID: String { inner.keyID }

    init(_ inner: TestKeyProvider) { self.inner = inner }

    /// Returns once a wrap has begun.
    func entered() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.entered { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Lets the held wrap go on.
    func release() {
        let held = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.released = true
            defer { s.held = nil }
            return s.held
        }
        held?.resume()
    }

    func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] {
        await withCheckedContinuation { c in
            let (waiters, go) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Bool) in
                s.entered = true
                defer { s.waiters = [] }
                if s.released { return (s.waiters, true) }
                s.held = c
                return (s.waiters, false)
            }
            for w in waiters { w.resume() }
            if go { c.resume() }
        }
        return try await inner.wrap(key, context: context)
    }

    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
        try await inner.unwrap(wrapped, context: context)
    }
}

/// A provider whose `keyID` is valid on its first `validReads` reads and
/// 300 bytes on every later one.
final class ShiftingKeyIDProvider: KeyProvider {
    let inner: TestKeyProvider
    let validReads: Int
    private let reads = Mutex(0)
    var keyID: String {
        reads.withLock { n in
            n += 1
            return n <= validReads ? inner.keyID : String(repeating: "k", count: 300)
        }
    }

    init(_ inner: TestKeyProvider, validReads: Int) {
        self.inner = inner
        self.validReads = validReads
    }

    func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] { try await inner.wrap(key, context: context) }
    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey { try await inner.unwrap(wrapped, context: context) }
}
