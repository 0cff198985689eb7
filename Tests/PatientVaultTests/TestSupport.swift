import Foundation
import PatientVaultTesting
import VaultSync
@testable import PatientVault
import PatientVaultPostgres
@testable import VaultStorage

/// The testing product's clock (the suite uses what downstream tests use).
typealias ManualClock = PatientVaultTesting.ManualClock

/// A fresh folder per test, removed afterwards.
final class TestFolder: Sendable {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("pv-test-\(UUID().uuidString)")
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    /// Every file of the folder, by name (for byte searches).
    func allBytes() throws -> [(String, Data)] { try filesAndBytes(in: url) }
}

/// Every file of `folder`, by name, with its bytes (for byte searches).
func filesAndBytes(in folder: URL) throws -> [(String, Data)] {
    try FileManager.default.contentsOfDirectory(atPath: folder.path).map { name in
        (name, try Data(contentsOf: folder.appendingPathComponent(name)))
    }
}

enum Fixtures {
    static func ins(_ nir: String) -> INS {
        let key = INS.key(forNIR: nir)!
        return try! INS(nir + (key < 10 ? "0" : "") + String(key))
    }

    static let alice = ins("2840775123456")
    static let bob = ins("1750133012345")
    static let doctor = Principal.professional(HealthProfessional(rpps: try! RPPSNumber("10101234567"), profession: .doctor))
    static let otherDoctor = Principal.professional(HealthProfessional(rpps: try! RPPSNumber("10107654321"), profession: .doctor))
    static let pharmacist = Principal.professional(HealthProfessional(rpps: try! RPPSNumber("10003456789"), profession: .pharmacist))
    static let hospital = Principal.organisation(Organisation(finess: try! FINESSNumber("750712184"), kind: .hospital))
    static let pharmacy = Principal.organisation(Organisation(finess: try! FINESSNumber("920000650"), kind: .pharmacy))
    static let insurer = Principal.insurer(try! SystemPrincipal("cnam"))

    static func draft(
        _ title: String = "Compte rendu de consultation", category: DocumentCategory = .report,
        type: DocumentTypeCode = .consultationNote, createdAt: Date = Date(timeIntervalSince1970: 1_690_000_000),
        flags: ConfidentialityFlags = []
    ) -> DocumentDraft {
        DocumentDraft(typeCode: type, category: category, title: title, createdAt: createdAt, mimeType: "text/plain", confidentiality: flags)
    }

    static func content(_ marker: String, size: Int = 3000) -> Data {
        var d = Data(marker.utf8)
        var x: UInt32 = 2_463_534_242
        while d.count < size {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            d.append(UInt8(truncatingIfNeeded: x))
        }
        return d.prefix(size)
    }

    static func configuration(clock: ManualClock = ManualClock()) -> Configuration {
        var c = Configuration()
        c.clock = clock
        c.segmentSize = 32 << 20
        c.contentChunkSize = 64 << 10
        c.inlineContentLimit = 16 << 10
        return c
    }

    /// The suite's configuration keeping at most `limit` vaults in memory
    /// (the others are evicted and read again from the log).
    static func evicting(after limit: Int) -> Configuration {
        var c = configuration()
        c.loadedVaultLimit = limit
        return c
    }

    /// `count` distinct valid INS, of NIRs `1` followed by `first`,
    /// `first + step`, … on 12 digits.
    static func patients(_ count: Int, from first: Int, step: Int) -> [INS] {
        (0..<count).map { ins("1" + String(format: "%012d", first + $0 * step)) }
    }

    /// The suite's configuration with `faults` injected, segments of
    /// `segmentSize` and, if given, an audit reserve of `auditReserve`.
    static func injecting(_ faults: FaultInjection, segmentSize: UInt64, auditReserve: UInt64? = nil) -> Configuration {
        var c = configuration()
        c.segmentSize = segmentSize
        c.auditReserve = auditReserve
        c.faults = faults
        return c
    }

    /// `c` with the engine's replay of a log without its checkpoint, for
    /// tests that delete the checkpoint to reach what lies behind it (in
    /// production a missing checkpoint is damage).
    /// A store in a folder with Alice's vault and `count` documents of the
    /// same `size` bytes (several 64 KiB chunks each), and that content.
    static func storeWithChunkedDocuments(
        _ count: Int, size: Int = 200_000
    ) async throws -> (TestStore, [DocumentMetadata], Data) {
        let t = try await TestStore(configuration: configuration(), storage: .folder)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let content = Fixtures.content("CHUNKED", size: size)
        var documents: [DocumentMetadata] = []
        for _ in 0..<count { documents.append(try await t.store.deposit(draft(), content: content, for: alice, as: doctor)) }
        return (t, documents, content)
    }

    static func replaying(_ c: Configuration = configuration()) -> Configuration {
        var c = c
        c.tuneEngineForTesting = { $0.replaysWithoutCheckpoint = true }
        return c
    }
}

/// The suite's temporary store is the testing product's, as downstream
/// tests use it: `TemporaryStore` (store, folder, key, reopen).
typealias TestStore = TemporaryStore

/// Where a behaviour test's store keeps its records: the engines the
/// suite runs over (`.ci/run` runs it over each).
enum SuiteStorage: Sendable {
    /// A folder: the log engine.
    case folder
    /// `PatientVaultTesting`'s `MemoryEngine`.
    case memory
    /// A new schema on the PostgreSQL server of `PV_TEST_POSTGRES_URL`
    /// (built with the package trait `Postgres`).
    case postgres
}

/// Where the behaviour tests' stores keep their records: in a folder, with
/// `PV_TEST_STORAGE=memory` in a `MemoryEngine`, with
/// `PV_TEST_STORAGE=postgres` on PostgreSQL. Tests of what only files have
/// (crashes, power loss, damaged or forged files, the header) ask for
/// `.folder` themselves.
let testStorage: SuiteStorage =
    switch ProcessInfo.processInfo.environment["PV_TEST_STORAGE"] {
    case "memory": .memory
    case "postgres": .postgres
    default: .folder
    }

/// The engines a test that compares them runs over: the folder and memory,
/// or PostgreSQL alone in the suite's run over PostgreSQL.
let suiteEngines: [SuiteStorage] = testStorage == .postgres ? [.postgres] : [.folder, .memory]

extension TemporaryStore {
    /// A store with the suite's configuration (``Fixtures/configuration(clock:)``),
    /// on ``testStorage``.
    convenience init() async throws {
        try await self.init(configuration: Fixtures.configuration(), engine: testStorage)
    }

    /// A store on `engine`.
    convenience init(configuration: Configuration, engine: SuiteStorage) async throws {
        switch engine {
        case .folder: try await self.init(configuration: configuration, storage: TemporaryStorage.folder)
        case .memory: try await self.init(configuration: configuration, storage: TemporaryStorage.memory)
        case .postgres:
            #if Postgres
            let storage = try PostgresStorage.forTests()
            try await self.init(configuration: configuration) { key, configuration throws(PatientVaultError) in
                try await VaultStore.open(postgres: storage, key: key, configuration: configuration)
            }
            #else
            throw PatientVaultError(.unavailable, "PV_TEST_STORAGE=postgres needs a build with the trait Postgres (swift build --traits Postgres)")
            #endif
        }
    }

    /// The store's log MAC, derived again from its root key, which the
    /// master key unwraps from the header (the store's own copy is wiped at
    /// close); a store in memory derives its keys from the master key.
    func logMAC() throws -> LogMAC {
        guard memory == nil, let header = try StoreHeader.read(directory: folder.path) else {
            return LogMAC(key: try StoreKeys(master: key.key).log)
        }
        return LogMAC(key: try StoreKeys(master: try header.unwrapRoot(with: key.key)).log)
    }

    /// Flips one bit of the byte in the middle of `frame`'s payload in its
    /// segment file (the store must be closed), its CRC left as it was:
    /// damage only a reader of that record meets.
    func flipMiddleByte(of frame: LogFrame, bit: UInt8 = 0x01) throws {
        let handle = try FileHandle(forUpdating: folder.appendingPathComponent(LogFormat.segmentFileName(frame.location.segment)))
        defer { try? handle.close() }
        let at = frame.location.offset + UInt64(LogFormat.frameHeaderSize + frame.payload.count / 2)
        try handle.seek(toOffset: at)
        guard let old = try handle.read(upToCount: 1)?.first else { throw CocoaError(.fileReadUnknown) }
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: Data([old ^ bit]))
    }

    /// The first content chunk of more than 30,000 bytes in the store's
    /// log (the store must be closed).
    func firstLargeChunk() async throws -> LogFrame {
        let engine = try rawEngine()
        var chunk: LogFrame?
        try engine.scanFrames(from: LogPosition(segment: 0, offset: 0), only: { $0 == nil }) { frame in
            if frame.payload.count > 30_000 { chunk = frame }
            return chunk == nil
        }
        try await engine.close()
        guard let chunk else { throw CocoaError(.fileReadUnknown) }
        return chunk
    }

    /// The store's engine opened directly (the store must be closed), with
    /// its log MAC, for tests that look at or forge records.
    func rawEngine() throws -> LogEngine {
        var c = LogEngineConfiguration()
        c.authenticator = try logMAC()
        return try LogEngine.open(directory: folder.path, configuration: c)
    }
}

func chunks(of data: Data, size: Int) -> AsyncStream<Data> {
    AsyncStream { c in
        var i = data.startIndex
        while i < data.endIndex {
            let end = data.index(i, offsetBy: size, limitedBy: data.endIndex) ?? data.endIndex
            c.yield(data[i..<end])
            i = end
        }
        c.finish()
    }
}

/// Asserts the code of a thrown PatientVaultError.
func code(_ body: () async throws -> Void) async -> PatientVaultError.Code? {
    do {
        try await body()
        return nil
    } catch let e as PatientVaultError {
        return e.code
    } catch {
        return nil
    }
}

/// The PatientVaultError thrown, if any.
func error(_ body: () async throws -> Void) async -> PatientVaultError? {
    do {
        try await body()
        return nil
    } catch let e as PatientVaultError {
        return e
    } catch {
        return nil
    }
}

#if Postgres
extension PostgresStorage {
    /// A new schema on the server of `PV_TEST_POSTGRES_URL` (see
    /// `Scripts/postgres.sh`): one store per test.
    static func forTests() throws -> PostgresStorage {
        guard let url = ProcessInfo.processInfo.environment["PV_TEST_POSTGRES_URL"] else {
            throw PatientVaultError(.unavailable, "PV_TEST_POSTGRES_URL is not set (Scripts/postgres.sh start)")
        }
        let base = try PostgresStorage(url: url)
        var storage = try PostgresStorage(
            host: base.host, port: base.port, username: base.username, password: base.password, database: base.database,
            schema: "pvtest_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""), tls: base.tls)
        storage.maximumConnections = 4
        return storage
    }
}
#endif
