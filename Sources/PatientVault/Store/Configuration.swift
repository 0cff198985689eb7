import Foundation
import PatientVaultProof
import CoreMetrics
import Logging
import VaultStorage

/// A source of the current time. The store reads it for deposit times and,
/// later, for time-bound rules; tests supply their own.
public protocol VaultClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// The system's clock.
public struct SystemClock: VaultClock {
    /// Creates the system clock.
    public init() {}
    /// `Date()`.
    public func now() -> Date { Date() }
}

/// How the store acknowledges writes.
public enum DurabilityMode: Sendable, Hashable {
    /// The default: a write returns once `fdatasync` made it durable; group
    /// commit lets concurrent writers share one sync. Survives power loss.
    case synchronous
    /// Opt-in and weaker: a write returns once handed to the operating
    /// system. Survives a crash of the process, not of the machine; the
    /// data becomes durable at the next synchronous write, segment switch,
    /// or ``VaultStore/close()``.
    case relaxed
}

/// When a read's audit entry is made durable.
public enum AuditMode: Sendable, Hashable {
    /// The default: no content or metadata is returned before the audit
    /// entry of that read is durable (reads share group commits). Under
    /// ``DurabilityMode/relaxed``, which weakens every write, "durable"
    /// means handed to the operating system.
    case durable
    /// Weaker, opt-in: a read returns once its entry is queued (in order,
    /// behind every earlier write); the committer writes it at once and a
    /// background flush makes it durable within `maxDelay`. A crash can
    /// lose the last `maxDelay` of read entries (never a write's entry:
    /// writes and their entries share one durable commit in every mode).
    /// `maxDelay` is one millisecond to one hour (checked when the store
    /// opens: `invalidArgument`).
    case batched(maxDelay: Duration)
}

/// Settings of a ``VaultStore``, with defaults fit for production.
public struct Configuration: Sendable {
    /// Durability of acknowledged writes. Default ``DurabilityMode/synchronous``.
    public var durability: DurabilityMode = .synchronous
    /// Where the store logs: debug and trace, and a warning for a store
    /// released without `VaultStore.close()`; never patient data or
    /// key bytes. A no-op logger by default; the host bootstraps logging.
    public var logger: Logger = Logger(label: "patientvault", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where the store's metrics go (operations per action and outcome,
    /// their durations, durability losses, checkpoints): this factory, or,
    /// if nil (the default), the one the host bootstrapped with
    /// swift-metrics' `MetricsSystem` (none: nothing is kept). Dimensions
    /// carry action and outcome names only, never patient data.
    public var metricsFactory: (any MetricsFactory)?
    /// The clock of deposit times, audit entries and time-bound rules
    /// (grant expiry, hidden documents). A reading outside the dates
    /// records hold (0001-01-01T00:00:00Z to 10¹¹ s after 1970) is taken
    /// as the nearest bound.
    public var clock: any VaultClock = SystemClock()
    /// Size of the plaintext chunks large content is cut into.
    public var contentChunkSize: Int = 1 << 20
    /// Content up to this size is stored inside its document record.
    public var inlineContentLimit: Int = 64 << 10
    /// The largest size of a log segment file: at least 1 MiB and four
    /// content chunks, a multiple of 4 KiB. A segment's file starts at 1 MiB (or this size if
    /// smaller) and grows by doubling, preallocated, so a small store
    /// holds little disk.
    public var segmentSize: UInt64 = 64 << 20
    /// Log space kept for audit entries when the disk is full: every other
    /// write leaves this many preallocated bytes ahead of it, which only
    /// the entries of reads, listings and refusals (and their activity
    /// copies) may use. With the disk full, deposits fail with
    /// ``PatientVaultError/Code/diskFull`` while reads go on for about
    /// `auditReserve / 1,300` calls (an entry and its activity copy take
    /// about 1.3 KB); once the reserve is used up, reads fail with
    /// `diskFull` too. 64 KiB to a quarter of ``segmentSize``; nil (the
    /// default) is an eighth of ``segmentSize``, at most 512 KiB.
    public var auditReserve: UInt64?

    /// The audit reserve in force: ``auditReserve`` or its default.
    var effectiveAuditReserve: UInt64 { auditReserve ?? min(512 << 10, segmentSize / 8) }
    /// How many vaults stay decrypted in memory at once. Beyond it, the
    /// least recently used idle vaults are dropped (their keys wiped) and
    /// reloaded on next use. Each loaded vault holds four keys in guarded
    /// memory, which the system limits (memory maps), so keep it in the
    /// low thousands.
    public var loadedVaultLimit: Int = 2048
    /// How long a closed vault is kept, read-only, before it may be
    /// destroyed: this many calendar years from its closure (Gregorian,
    /// UTC, to the second). 10 by default (CSP L1111-18); 10 to 100: the
    /// value is read at each destruction pass, for every vault closed, so a
    /// store opened with a shorter one would destroy vaults the law keeps.
    public var closedVaultRetentionYears: Int = 10
    /// How many unwrapped document keys stay in memory for documents read
    /// again (least recently used first out; 0 turns the cache off). Each
    /// costs a 512-byte slot of guarded memory and saves a key-slot read
    /// and an unwrapping per read of its version. Default 256.
    public var documentKeyCacheLimit: Int = 256
    /// The profession × category matrix in force. Default ``AccessMatrix/default2023``.
    public var accessMatrix: AccessMatrix = .default2023
    /// When read entries of the audit trail become durable. Default ``AuditMode/durable``.
    public var auditMode: AuditMode = .durable
    /// Reviewers allowed to read what one professional did across vaults
    /// (`VaultStore.activity(of:matching:as:)`), by system principal.
    public var auditReviewers: Set<SystemPrincipal> = []
    /// The origin line of the store's signed checkpoints, which is also
    /// the name of its signing key (``VaultStore/checkpointVerifierKey``):
    /// 1 to 256 bytes, no spaces, no `+`, no control characters, and
    /// neither a first scalar that joins the character before it (a
    /// combining mark) nor a last one that joins the one after (a prepended
    /// mark), which would not parse in a note's signature line; a
    /// schema-less URL such as `"dmp.example.fr/vault-3"` is the custom.
    /// nil (the default): `patientvault.local/` and the first 16
    /// hexadecimal digits of the SHA-256 of the store's public signing key.
    public var checkpointOrigin: String?
    /// A checkpoint the host kept (``VaultStore/checkpoint()``): the store
    /// opens only if its log extends it (``VaultStore/verify(against:)``),
    /// so a folder rolled back or cut is refused at open with
    /// `checkpointNotExtended`. nil (the default): no check.
    public var trustedCheckpoint: SignedCheckpoint?
    /// Where the store hands the checkpoints it makes by itself: one at
    /// ``VaultStore/close()`` (once no call can write any more: it covers
    /// every call acknowledged, those racing the close included), and one on
    /// ``checkpointCadence``. The host publishes them (a file elsewhere, a
    /// web page, a witness); called on a task of the store, it must not
    /// block. nil (the default): none is made.
    public var checkpointPublisher: (@Sendable (SignedCheckpoint) -> Void)?
    /// How often the store makes a checkpoint for ``checkpointPublisher``
    /// while it runs: once `records` more records are durable, or once
    /// `interval` has passed with new records, whichever comes first.
    /// nil (the default): at close only.
    public var checkpointCadence: CheckpointCadence?
    /// Simulated storage failures, for tests.
    package var faults: FaultInjection?
    /// The storage engine of the store's folder; nil for ``LogEngine`` (the
    /// log of segments). Injected by tests, or by another backend behind
    /// the `StorageEngine` protocol; it gets the options every engine takes
    /// (reserve, record size limit, authenticator, logger).
    package var engineFactory: StorageEngineFactory?
    /// For tests only: changes to the engine's settings (smaller steps of
    /// preallocation, frequent checkpoints) applied after the store's own.
    package var tuneEngineForTesting: (@Sendable (inout LogEngineConfiguration) -> Void)?
    /// For tests only, never public (set by `PatientVaultTesting`'s
    /// `withInsecureKeyDerivationForTests()`, an explicit opt-in): a new
    /// passphrase store uses libsodium's smallest Argon2id cost, and opening
    /// accepts it. Without it, that cost is refused with a message naming
    /// the opt-in.
    package var allowsWeakPassphraseCostForTesting = false
    /// Set by a restore for its own check of the copy: the open lets the
    /// folder's ``VaultStore/restoreMarkerFileName`` be (any other open
    /// refuses a folder that holds it).
    var checksARestore = false

    /// Default settings.
    public init() {}

    /// The clock's reading, to the millisecond below: every date the store
    /// records (deposit times, audit entries, vault creation) is a whole
    /// number of milliseconds, so it survives its JSON and FHIR forms,
    /// which carry milliseconds.
    /// A reading outside the dates records can hold (year 1 to 10¹¹ s
    /// after 1970, not a number) is taken as the nearest bound: a broken
    /// clock cannot make the store trap or write a date it cannot read
    /// back.
    func currentTime() -> Date {
        let t = clock.now().timeIntervalSince1970
        let bounded = t.isNaN ? 0 : min(max(t, Limits.dateSeconds.lowerBound), Limits.dateSeconds.upperBound)
        return Date(timeIntervalSince1970: (bounded * 1000).rounded(.down) / 1000)
    }

    /// Checks every field against its bounds; the error names the field,
    /// the value and the bound.
    func validate() throws(PatientVaultError) {
        func bad(_ field: String, _ value: Any, _ bound: String) -> PatientVaultError {
            PatientVaultError(.invalidArgument, "Configuration.\(field) is \(value); it must be \(bound)")
        }
        if let origin = checkpointOrigin, (try? NoteVerifierKey(name: origin, algorithm: .ed25519, publicKey: [UInt8](repeating: 0, count: 32))) == nil {
            throw bad("checkpointOrigin", "not a key name", "1 to 256 bytes without spaces, '+' or control characters, not starting with a combining mark")
        }
        if let cadence = checkpointCadence {
            if let records = cadence.records, records < 1 { throw bad("checkpointCadence.records", records, "at least 1") }
            // A floor, not only a sign: the cadence's loop sleeps for the
            // interval (up to a second), and a nanosecond would spin it.
            if let interval = cadence.interval, interval < .milliseconds(1) {
                throw bad("checkpointCadence.interval", interval, "at least one millisecond")
            }
        }
        guard (4096...(4 << 20)).contains(contentChunkSize) else {
            throw bad("contentChunkSize", contentChunkSize, "4,096 to 4,194,304 bytes")
        }
        guard (0...contentChunkSize).contains(inlineContentLimit) else {
            throw bad("inlineContentLimit", inlineContentLimit, "0 to contentChunkSize (\(contentChunkSize))")
        }
        let minimumSegment = max(UInt64(1 << 20), 4 * UInt64(contentChunkSize + Limits.recordOverhead))
        guard (minimumSegment...(1 << 36)).contains(segmentSize), segmentSize % 4096 == 0 else {
            throw bad(
                "segmentSize", segmentSize, "a multiple of 4,096 from \(minimumSegment) (1 MiB and four chunks with their records) to 2^36 bytes")
        }
        if let auditReserve, !((64 << 10)...(segmentSize / 4)).contains(auditReserve) {
            throw bad("auditReserve", auditReserve, "65,536 to a quarter of segmentSize (\(segmentSize / 4)) bytes")
        }
        guard (10...100).contains(closedVaultRetentionYears) else {
            throw bad("closedVaultRetentionYears", closedVaultRetentionYears, "10 (the law's) to 100")
        }
        guard (1...1_000_000).contains(loadedVaultLimit) else {
            throw bad("loadedVaultLimit", loadedVaultLimit, "1 to 1,000,000")
        }
        guard (0...65_536).contains(documentKeyCacheLimit) else {
            throw bad("documentKeyCacheLimit", documentKeyCacheLimit, "0 to 65,536")
        }
        // The flusher sleeps `delay` between syncs: below a millisecond it
        // would spin a core.
        if case .batched(let delay) = auditMode, !(delay >= .milliseconds(1) && delay <= .seconds(3600)) {
            throw bad("auditMode.batched(maxDelay:)", delay, "one millisecond to one hour")
        }
    }
}

/// Cost of turning a passphrase into the master key with Argon2id.
public enum PassphraseStrength: Sendable, Hashable {
    /// 64 MiB, 2 passes: for interactive logins.
    case interactive
    /// 256 MiB, 3 passes (about a second): the default for a store.
    case moderate
}

/// Where the store's master key comes from.
public enum MasterKeySource: Sendable {
    /// A 32-byte key held by the host (from a KMS or HSM).
    case key(MasterKey)
    /// A passphrase, stretched with Argon2id. The salt and cost are chosen
    /// when the store is created and stored in its header; `strength` is
    /// ignored when opening an existing store.
    case passphrase(String, strength: PassphraseStrength = .moderate)
    /// A key manager that wraps the store's root key and never hands out
    /// its own key (a KMS, an HSM).
    case provider(any KeyProvider)
}

/// When a store makes checkpoints by itself (``Configuration/checkpointCadence``).
/// A count is at least 1 and an interval at least one millisecond
/// (checked when the store opens: `invalidArgument`).
public struct CheckpointCadence: Sendable, Hashable {
    /// Once this many more records are durable (nil: not by count).
    public var records: UInt64?
    /// Once this much time has passed with new records (nil: not by time).
    public var interval: Duration?

    /// A cadence by count, by time, or both (whichever comes first).
    public init(records: UInt64? = nil, interval: Duration? = nil) {
        self.records = records
        self.interval = interval
    }
}
