import Benchmark
import CoreMetrics
import Foundation
import Logging
import PatientVault
import PatientVaultTesting
import Synchronization
import Workload

/// State a benchmark's setup builds and its body uses.
final class Shared<Value>: @unchecked Sendable {
    // @unchecked: written once by setup, before the measured closure runs,
    // and cleared by teardown after it; package-benchmark runs them in order.
    var value: Value?
    func get() -> Value { value! }
}

/// A store in a fresh temporary folder, removed at teardown.
final class TemporaryStore: @unchecked Sendable {
    let folder: URL
    let store: VaultStore
    let key: MasterKey
    let clock: ManualClock

    static let root = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PV_BENCH_DIR"] ?? NSTemporaryDirectory())

    init(
        auditMode: AuditMode = .durable, durability: DurabilityMode = .synchronous, loadedVaultLimit: Int = 2048, observed: Bool = false
    ) async throws {
        folder = Self.root.appendingPathComponent("pv-bench-\(UUID().uuidString)")
        key = try MasterKey.generate()
        clock = ManualClock(Date(timeIntervalSince1970: 1_700_000_000))
        var configuration = Self.configuration(auditMode, durability, loadedVaultLimit, clock)
        if observed {
            // As a host runs it: a logger at the default level (info),
            // each line formatted, and a metrics backend that keeps every
            // value it is given (sums and counts).
            configuration.logger = Logger(label: "patientvault") { _ in FormattingLogHandler() }
            configuration.metricsFactory = AggregatingMetrics()
        }
        store = try await VaultStore.open(at: folder, key: .key(key), configuration: configuration)
    }

    static func configuration(_ auditMode: AuditMode, _ durability: DurabilityMode, _ limit: Int, _ clock: ManualClock) -> Configuration {
        var c = Configuration()
        c.auditMode = auditMode
        c.durability = durability
        c.loadedVaultLimit = limit
        c.clock = clock
        c.auditReviewers = [benchmarkReviewer]
        return c
    }

    private init(folder: URL, key: MasterKey, clock: ManualClock, store: VaultStore) {
        self.folder = folder
        self.key = key
        self.clock = clock
        self.store = store
    }

    /// Closes this store and opens it again with the default (synchronous)
    /// durability: fixtures built fast, measured as shipped.
    func reopened(auditMode: AuditMode = .durable) async throws -> TemporaryStore {
        try await store.close()
        let again = try await VaultStore.open(
            at: folder, key: .key(key), configuration: Self.configuration(auditMode, .synchronous, 2048, clock))
        return TemporaryStore(folder: folder, key: key, clock: clock, store: again)
    }

    func close() async throws {
        try await store.close()
        try? FileManager.default.removeItem(at: folder)
    }
}

enum People {
    static let doctor = Principal.doctor(1)
    static let reader = Principal.doctor(2)
    static let hospital = Principal.hospital(1)
    static func patient(_ i: Int) -> INS { INS.example(i) }
}

func draft(_ size: Int, category: DocumentCategory = .report) -> DocumentDraft {
    DocumentDraft(typeCode: .consultationNote, category: category, title: "Compte rendu \(size)", createdAt: Date(), mimeType: "application/pdf")
}

func content(_ size: Int) -> Data {
    var g = SeededGenerator(seed: UInt64(size))
    return Data((0..<size).map { _ in UInt8(truncatingIfNeeded: g.next()) })
}

/// Content delivered in 256 KiB pieces, generated on the fly: memory stays
/// flat whatever the total.
struct GeneratedChunks: AsyncSequence, Sendable {
    typealias Element = Data
    let total: Int
    let piece: Data

    init(total: Int, pieceSize: Int = 256 << 10) {
        self.total = total
        piece = content(pieceSize)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: Int
        let piece: Data
        mutating func next() async -> Data? {
            guard remaining > 0 else { return nil }
            let n = Swift.min(remaining, piece.count)
            remaining -= n
            return n == piece.count ? piece : piece.prefix(n)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: total, piece: piece) }
}

/// Runs `count` operations split evenly across `workers` concurrent tasks;
/// `operation` gets the worker's number.
func perWorker(_ count: Int, workers: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<workers {
            let share = count / workers + (w < count % workers ? 1 : 0)
            group.addTask {
                for _ in 0..<share { try await operation(w) }
            }
        }
        try await group.waitForAll()
    }
}

/// Runs `count` operations split across `workers` concurrent tasks.
func concurrently(_ count: Int, workers: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws {
    let next = Counter()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<workers {
            group.addTask {
                while true {
                    let i = next.value.add(1, ordering: .relaxed).oldValue
                    guard i < count else { return }
                    try await operation(i)
                }
            }
        }
        try await group.waitForAll()
    }
}

/// Bytes per second, as a custom metric (KiB/s, so that slow durable
/// writes of small documents keep their precision).
let kibibytesPerSecond = BenchmarkMetric.custom("KiB/s", polarity: .prefersLarger, useScalingFactor: false)

func measureBandwidth(_ benchmark: Benchmark, bytes: Int, since start: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    benchmark.measurement(kibibytesPerSecond, Int(Double(bytes) / seconds / 1024))
}

/// Resident memory of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// A log handler at `info` that formats every line it is given (level,
/// metadata, message) and drops it: a host's handler, without the I/O.
struct FormattingLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        blackHole("\(event.level) \(merged.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")) \(event.message)")
    }
}

/// A metrics backend that keeps a sum and a count per metric (and per
/// dimension set), as an aggregating client (Prometheus, StatsD) does.
final class AggregatingMetrics: MetricsFactory, Sendable {
    final class Cell: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let sum = Atomic<Int64>(0)
        let count = Atomic<Int64>(0)
        func increment(by amount: Int64) { sum.add(amount, ordering: .relaxed) }
        func reset() { sum.store(0, ordering: .relaxed) }
        func record(_ value: Int64) {
            sum.add(value, ordering: .relaxed)
            count.add(1, ordering: .relaxed)
        }
        func record(_ value: Double) { record(Int64(value)) }
        func recordNanoseconds(_ duration: Int64) { record(duration) }
    }

    private let cells = Mutex<[String: Cell]>([:])

    private func cell(_ label: String, _ dimensions: [(String, String)]) -> Cell {
        let key = ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
        return cells.withLock { cells in
            if let cell = cells[key] { return cell }
            let cell = Cell()
            cells[key] = cell
            return cell
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { cell(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { cell(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { cell(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
