#if Postgres
import Foundation
import Logging
import NIOCore
import NIOSSL
import PatientVault
import PostgresNIO
import VaultCrypto
import VaultStorage
import VaultSync

/// The first 16 bytes of a stream id: the distribution column of every
/// table (a vault's records, its trail and its activity copies share it).
struct ShardKey: Hashable, Sendable {
    let w0: UInt64, w1: UInt64

    init(_ stream: StreamID) { (w0, w1) = (stream.w0, stream.w1) }
    init(w0: UInt64, w1: UInt64) { (self.w0, self.w1) = (w0, w1) }

    /// A key of its own for the records of a group with no stream (chunks
    /// of content written ahead of the version that names them).
    static func random() throws -> ShardKey {
        try ShardKey(bytes: try SecureRandom.bytes(16))
    }

    var bytes: [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.write(w0)
        w.write(w1)
        return w.bytes
    }

    init(bytes: [UInt8]) throws {
        guard bytes.count == 16 else { throw StorageError(.corrupted, "a shard key is not 16 bytes") }
        (w0, w1) = try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return (try r.read(), try r.read())
        }
    }
}

/// The storage engine on PostgreSQL (see `Documentation/Postgres.md`).
///
/// - One schema per store: `records` (keyed by shard key and position),
///   `key_slots`, `streams` (each shard key's stream and next position),
///   `commits` (one row per committed batch: the idempotent group id that
///   finds a commit's outcome after a lost connection) and `meta`.
/// - One committer, on its own connection, which holds the store's
///   session-level advisory lock (a second open is `locked`): queued groups
///   are committed together, in one statement (one implicit transaction,
///   one round trip, `synchronous_commit` on), and acknowledged in order.
/// - Readers share a pool of connections (`PostgresClient`).
/// - The Merkle tree's leaves are a column of `records`; the tree is
///   rebuilt in memory at open, after every row's MAC is checked.
final class PostgresEngine: StorageEngine, KeySlotStore, Sendable {
    /// What one record of a queued group carries to the committer.
    struct PendingRecord: Sendable {
        var shard: ShardKey
        var position: UInt32
        var stream: StreamID?
        var payload: [UInt8]
        var leaf: [UInt8]
    }

    struct Group: Sendable {
        var records: [PendingRecord]
        var slots: [(KeySlot, [UInt8])]
        var ticket: AppendTicket
    }

    struct ShardInfo: Sendable {
        var stream: StreamID?
        var nextPosition: UInt32
    }

    struct State: Sendable {
        var queue: [Group] = []
        var queuedRecords: UInt64 = 0
        /// Records committed (the last sequence number).
        var committed: UInt64 = 0
        var shards: [ShardKey: ShardInfo] = [:]
        var streams: Set<StreamID> = []
        var nextSlot: UInt64 = 1
        var nextBatch: Int64 = 1
        var failure: StorageError?
        var closed = false
        var committing = false
    }

    /// The tables' format. A store on PostgreSQL has no `store.header`, so
    /// this also gates the domain's record formats: 2 since record headers
    /// hide their document (store format 9); tables of format 1 are refused
    /// (`unsupportedFormat`), there is no migration before 1.0.
    static let formatVersion: Int64 = 2
    /// Rows a reader fetches per round trip.
    static let pageSize = 256
    /// The most a committer takes in one statement.
    static let batchBytes = 8 << 20

    let storage: PostgresStorage
    let logger: Logger
    let client: PostgresClient
    let clientRun: Task<Void, Never>
    /// The committer's connection (the advisory lock's holder).
    let writer: Locked<PostgresConnection>
    let state: Locked<State>
    let merkle = MerkleLog(empty: MerkleHashArray())
    let options = Locked<StorageOptions?>(nil)
    /// Rows read at connect, checked at ``start(_:)`` (when the MAC key
    /// is known) and dropped: (seq, shard, position, leaf, tag).
    let unchecked = Locked<[(UInt64, ShardKey, UInt32, [UInt8], [UInt8], [UInt8]?)]>([])
    private let wake: AsyncStream<Void>.Continuation
    private let committer = Locked<Task<Void, Never>?>(nil)
    private let wakeups: Locked<AsyncStream<Void>?>

    var table: String { "\"\(storage.schema)\"" }

    private init(storage: PostgresStorage, logger: Logger, writer: PostgresConnection, client: PostgresClient, clientRun: Task<Void, Never>) {
        self.storage = storage
        self.logger = logger
        self.writer = Locked(writer)
        self.client = client
        self.clientRun = clientRun
        self.state = Locked(State())
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = continuation
        self.wakeups = Locked(stream)
    }

    // MARK: - Connecting

    /// Connects, checks the server's durability settings, takes the store's
    /// lock, creates the schema if it is new and loads the index.
    static func connect(_ storage: PostgresStorage, logger host: Logger) async throws -> PostgresEngine {
        // postgres-nio at debug and trace logs the protocol's messages (the
        // rows: sealed records, wrapped keys, stream ids; the server's
        // error texts): everything it and this engine log is info or above.
        var logger = host
        if logger.logLevel < .info { logger.logLevel = .info }
        let writer: PostgresConnection
        do {
            writer = try await connection(storage, logger: logger)
        } catch {
            throw translate(error, "connecting")
        }
        do {
            try await checkDurability(writer, logger: logger)
            try await lock(writer, storage: storage, logger: logger, wait: false)
            let client = PostgresClient(configuration: try clientConfiguration(storage), backgroundLogger: logger)
            let run = Task { await client.run() }
            let engine = PostgresEngine(storage: storage, logger: logger, writer: writer, client: client, clientRun: run)
            do {
                try await engine.createSchema()
                try await engine.load()
            } catch {
                run.cancel()
                throw error
            }
            return engine
        } catch {
            try? await writer.close()
            throw translate(error, "opening the store")
        }
    }

    static func tlsContext(_ storage: PostgresStorage) throws -> TLSConfiguration? {
        guard case .verifyFull(let caFile) = storage.tls else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(caFile)
        tls.certificateVerification = .fullVerification
        return tls
    }

    static func startupParameters(_ storage: PostgresStorage) -> [(String, String)] {
        let ms = storage.statementTimeout.components.seconds * 1000 + storage.statementTimeout.components.attoseconds / 1_000_000_000_000_000
        return [("statement_timeout", "\(ms)"), ("application_name", "patientvault")]
    }

    static func connection(_ storage: PostgresStorage, logger: Logger) async throws -> PostgresConnection {
        let tls: PostgresConnection.Configuration.TLS
        if let context = try tlsContext(storage) {
            tls = .require(try NIOSSLContext(configuration: context))
        } else {
            tls = .disable
        }
        var c = PostgresConnection.Configuration(
            host: storage.host, port: storage.port, username: storage.username, password: storage.password,
            database: storage.database, tls: tls)
        let timeout = storage.connectTimeout.components
        c.options.connectTimeout = .nanoseconds(timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000)
        c.options.additionalStartupParameters = startupParameters(storage)
        return try await PostgresConnection.connect(configuration: c, id: 0, logger: logger)
    }

    static func clientConfiguration(_ storage: PostgresStorage) throws -> PostgresClient.Configuration {
        var c = PostgresClient.Configuration(
            host: storage.host, port: storage.port, username: storage.username, password: storage.password,
            database: storage.database, tls: try tlsContext(storage).map { .require($0) } ?? .disable)
        c.options.maximumConnections = storage.maximumConnections
        c.options.connectTimeout = storage.connectTimeout
        c.options.additionalStartupParameters = startupParameters(storage)
        return c
    }

    /// "Acknowledged means durable" holds only if the server syncs its
    /// write-ahead log before it answers a commit: `fsync` on and
    /// `synchronous_commit` not `off` (checked at connect, refused
    /// otherwise).
    static func checkDurability(_ connection: PostgresConnection, logger: Logger) async throws {
        for (setting, refused) in [("fsync", "off"), ("synchronous_commit", "off")] {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: "SHOW \(setting)"), logger: logger)
            for try await value in rows.decode(String.self) where value == refused {
                throw StorageError(
                    .unsupportedFormat,
                    "the PostgreSQL server has \(setting) = \(refused): an acknowledged write would not survive a crash of the server")
            }
        }
    }

    /// Takes the store's session-level advisory lock on `connection`:
    /// within `lockWait` or `locked` (at open), or waiting up to the connect timeout
    /// for a lost session to end (at reconnect: its transaction is then
    /// settled, committed or not).
    static func lock(_ connection: PostgresConnection, storage: PostgresStorage, logger: Logger, wait: Bool) async throws {
        let key = "patientvault:" + storage.schema
        if wait {
            let ms = storage.connectTimeout.components.seconds * 1000
            _ = try await connection.query(PostgresQuery(unsafeSQL: "SET lock_timeout = \(max(ms, 1))"), logger: logger)
            let rows = try await connection.query("SELECT pg_advisory_lock(hashtextextended(\(key), 0))", logger: logger)
            for try await _ in rows {}
            return
        }
        let deadline = ContinuousClock.now + storage.lockWait
        while true {
            var locked = false
            let rows = try await connection.query("SELECT pg_try_advisory_lock(hashtextextended(\(key), 0))", logger: logger)
            for try await granted in rows.decode(Bool.self) { locked = granted }
            if locked { return }
            guard ContinuousClock.now < deadline else { throw StorageError(.locked, "another process has this store open") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func createSchema() async throws {
        let t = table
        let statements = [
            "CREATE SCHEMA IF NOT EXISTS \(t)",
            """
            CREATE TABLE IF NOT EXISTS \(t).meta (name text PRIMARY KEY, value bigint NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t).records (
                shard bytea NOT NULL, position bigint NOT NULL, seq bigint NOT NULL,
                stream bytea NOT NULL, payload bytea NOT NULL, leaf bytea NOT NULL, tag bytea NOT NULL,
                PRIMARY KEY (shard, position))
            """,
            "CREATE UNIQUE INDEX IF NOT EXISTS records_seq ON \(t).records (seq)",
            """
            CREATE TABLE IF NOT EXISTS \(t).streams (
                shard bytea PRIMARY KEY, stream bytea NOT NULL, next_position bigint NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t).key_slots (
                slot bigint PRIMARY KEY, value bytea NOT NULL, destroyed boolean NOT NULL DEFAULT false)
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t).commits (
                batch bigint PRIMARY KEY, first_seq bigint NOT NULL, record_count bigint NOT NULL)
            """,
            "INSERT INTO \(t).meta (name, value) VALUES ('format', \(Self.formatVersion)) ON CONFLICT (name) DO NOTHING",
        ]
        let connection = writer.withLock { $0 }
        for sql in statements {
            _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
        let rows = try await connection.query(PostgresQuery(unsafeSQL: "SELECT value FROM \(t).meta WHERE name = 'format'"), logger: logger)
        for try await version in rows.decode(Int64.self) where version != Self.formatVersion {
            throw StorageError(.unsupportedFormat, "the store's tables are of format \(version), this library reads \(Self.formatVersion)")
        }
    }

    /// Loads the shard keys and streams, the key-slot and batch counters,
    /// and every record's leaf (checked at ``start(_:)``).
    func load() async throws {
        let connection = writer.withLock { $0 }
        let t = table
        var shards: [ShardKey: ShardInfo] = [:]
        var streams: Set<StreamID> = []
        let streamRows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT shard, stream, next_position FROM \(t).streams"), logger: logger)
        for try await (shard, stream, next) in streamRows.decode((ByteBuffer, ByteBuffer, Int64).self) {
            let key = try ShardKey(bytes: Array(buffer: shard))
            let id = try Self.stream(stream)
            guard next >= 1, next <= Int64(UInt32.max) else { throw StorageError(.corrupted, "a stream's next position is out of range") }
            if let id {
                guard ShardKey(id) == key else { throw StorageError(.corrupted, "a stream is filed under another shard key") }
                streams.insert(id)
            }
            shards[key] = ShardInfo(stream: id, nextPosition: UInt32(next))
        }
        var counters: (Int64, Int64, Int64) = (0, 0, 0)
        let counterRows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT (SELECT coalesce(max(slot), 0) FROM \(t).key_slots),
                           (SELECT coalesce(max(batch), 0) FROM \(t).commits),
                           (SELECT coalesce(sum(record_count), 0)::bigint FROM \(t).commits)
                    """), logger: logger)
        for try await row in counterRows.decode((Int64, Int64, Int64).self) { counters = row }
        var rows: [(UInt64, ShardKey, UInt32, [UInt8], [UInt8], [UInt8]?)] = []
        // The server's count, bounded: a table edited to claim billions of
        // records is found `corrupted` below, not an allocation that fails.
        // Neither counter at its largest value: the next slot and batch
        // numbers must fit the columns too.
        guard counters.2 >= 0, (0..<Int64.max).contains(counters.0), (0..<Int64.max).contains(counters.1) else {
            throw StorageError(.corrupted, "the store's counters are out of range")
        }
        rows.reserveCapacity(Int(min(counters.2, 1 << 20)))
        let leafRows = try await connection.query(
            // A compacted row's payload (88 bytes) comes with it: its MAC
            // covers its kept header. No other record is that small.
            PostgresQuery(unsafeSQL: """
                SELECT seq, shard, position, leaf, tag, CASE WHEN octet_length(payload) <= \(Self.compactedRowLimit) THEN payload END
                FROM \(t).records ORDER BY seq
                """), logger: logger)
        for try await (seq, shard, position, leaf, tag, small) in leafRows.decode(
            (Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer, ByteBuffer?).self)
        {
            guard seq == Int64(rows.count) + 1 else {
                throw StorageError(.corrupted, "the store's records are not numbered 1, 2, 3… (\(seq) after \(rows.count))")
            }
            // No more rows than the commits name, found as they come: a
            // table edited to hold more is not read whole first.
            guard seq <= counters.2 else {
                throw StorageError(.corrupted, "the store holds more records than its commits name (\(counters.2))")
            }
            // A row's MAC is 16 bytes (a log tag), its leaf 32.
            guard (1...Int64(UInt32.max)).contains(position), leaf.readableBytes == MerkleTree.hashSize, tag.readableBytes == 16 else {
                throw StorageError(.corrupted, "record \(seq) is malformed")
            }
            rows.append((
                UInt64(seq), try ShardKey(bytes: Array(buffer: shard)), UInt32(position), Array(buffer: leaf), Array(buffer: tag),
                small.map { Array(buffer: $0) }))
        }
        guard Int64(rows.count) == counters.2 else {
            throw StorageError(.corrupted, "the store holds \(rows.count) records, its commits name \(counters.2)")
        }
        // Every record's shard has its row in `streams`, past the record's
        // position: `streams` is what tells which vaults exist and where
        // the next record goes, and the rows' MACs do not cover it (a row
        // deleted would hide a vault, whose next creation would then
        // collide with its records and stop the store).
        let orphanRows = try await connection.query(
            PostgresQuery(unsafeSQL: """
                SELECT count(*) FROM \(t).records r WHERE NOT EXISTS (
                    SELECT 1 FROM \(t).streams s WHERE s.shard = r.shard AND s.next_position > r.position)
                """), logger: logger)
        for try await orphans in orphanRows.decode(Int64.self) where orphans != 0 {
            throw StorageError(.corrupted, "\(orphans) records lie outside their stream's positions")
        }
        unchecked.withLock { $0 = rows }
        state.withLock { s in
            s.shards = shards
            s.streams = streams
            s.nextSlot = UInt64(counters.0) + 1
            s.nextBatch = counters.1 + 1
            s.committed = UInt64(rows.count)
        }
    }

    /// Checks every record's MAC with the store's key (in `options`),
    /// rebuilds the Merkle tree and starts the committer: what the store's
    /// engine factory returns.
    func start(_ options: StorageOptions) throws -> any StorageEngine {
        let rows = unchecked.withLock { rows in
            defer { rows = [] }
            return rows
        }
        var leaves: [UInt8] = []
        leaves.reserveCapacity(min(rows.count, 1 << 16) * MerkleTree.hashSize)
        var authenticated = 0
        var firstFailure: UInt64?
        for (seq, shard, position, leaf, tag, small) in rows {
            if let authenticator = options.authenticator {
                let compacted = small.flatMap { s in s.withUnsafeBytes { Self.compactedBody($0) } }
                if Self.verify(tag, authenticator: authenticator, seq: seq, shard: shard, position: position, leaf: leaf)
                    || compacted.map({
                        $0.leaf == leaf
                            && Self.verify(tag, authenticator: authenticator, seq: seq, shard: shard, position: position, leaf: leaf, compactedPrefix: $0.prefix)
                    }) == true
                {
                    authenticated += 1
                } else if firstFailure == nil {
                    firstFailure = seq
                }
            }
            leaves += leaf
            if leaves.count >= (1 << 16) * MerkleTree.hashSize {
                try merkle.append(leafHashes: leaves)
                leaves.removeAll(keepingCapacity: true)
            }
        }
        if let firstFailure {
            // Records that fail among others that pass are damage; all of
            // them failing is another key.
            throw authenticated == 0
                ? StorageError(.wrongKey, "the master key does not open this store")
                : StorageError(.corrupted, "record \(firstFailure) fails authentication (altered, moved or of another store)")
        }
        if !leaves.isEmpty { try merkle.append(leafHashes: leaves) }
        self.options.withLock { $0 = options }
        let stream = wakeups.withLock { s in
            defer { s = nil }
            return s
        }
        if let stream {
            committer.withLock { $0 = Task { [weak self] in await self?.runCommitter(stream) } }
        }
        return self
    }

    // MARK: - Row authentication

    /// `"PVPG" version(4) seq(8) shard(16) position(4) leaf(32)`: the MAC
    /// binds a row's bytes (through the leaf) to its place, so no row can
    /// be moved, swapped or renumbered without the key.
    /// A compacted row's MAC has version 2 and covers its kept prefix too
    /// (its payload is a compacted body: `keep(4) reserved(4) leaf(32)
    /// prefix`), so that only the holder of the key can turn a row into
    /// its compacted form or change what it keeps.
    static func tagMessage(seq: UInt64, shard: ShardKey, position: UInt32, leaf: [UInt8], compactedPrefix: [UInt8]? = nil) -> [UInt8] {
        var w = ByteWriter(capacity: 68 + (compactedPrefix?.count ?? 0))
        w.write(UInt32(0x4750_5650))  // "PVPG"
        w.write(UInt32(compactedPrefix == nil ? 1 : 2))
        w.write(seq)
        w.write(shard.w0)
        w.write(shard.w1)
        w.write(position)
        w.write(bytes: leaf)
        if let compactedPrefix { w.write(bytes: compactedPrefix) }
        return w.bytes
    }

    /// The largest payload of a compacted row (its header, and a prefix of
    /// at most 64 bytes): what the open reads of small rows.
    static let compactedRowLimit = 40 + 64

    static func tag(
        _ authenticator: (any LogAuthenticator)?, seq: UInt64, shard: ShardKey, position: UInt32, leaf: [UInt8],
        compactedPrefix: [UInt8]? = nil
    ) -> [UInt8] {
        guard let authenticator else { return [UInt8](repeating: 0, count: 16) }
        return tagMessage(seq: seq, shard: shard, position: position, leaf: leaf, compactedPrefix: compactedPrefix)
            .withUnsafeBytes { authenticator.tag($0) }
    }

    static func verify(
        _ stored: [UInt8], authenticator: any LogAuthenticator, seq: UInt64, shard: ShardKey, position: UInt32, leaf: [UInt8],
        compactedPrefix: [UInt8]? = nil
    ) -> Bool {
        let expected = tag(authenticator, seq: seq, shard: shard, position: position, leaf: leaf, compactedPrefix: compactedPrefix)
        guard stored.count == expected.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<expected.count { difference |= expected[i] ^ stored[i] }
        return difference == 0
    }

    /// A destroyed key slot's value: the MAC of `"PVPX" slot(8)`, so that
    /// a slot marked destroyed by someone without the key is `corrupted`.
    static func tombstone(_ authenticator: (any LogAuthenticator)?, slot: UInt64) -> [UInt8] {
        guard let authenticator else { return [UInt8](repeating: 0, count: 16) }
        var w = ByteWriter(capacity: 12)
        w.write(UInt32(0x5850_5650))  // "PVPX"
        w.write(slot)
        return w.bytes.withUnsafeBytes { authenticator.tag($0) }
    }

    static func stream(_ buffer: ByteBuffer) throws -> StreamID? {
        switch buffer.readableBytes {
        case 0: return nil
        case StreamID.byteCount: return StreamID(bytes: Array(buffer: buffer))
        default: throw StorageError(.corrupted, "a stored stream id is malformed")
        }
    }

    // MARK: - Errors

    /// A failure of the server or the network as a `StorageError`: the
    /// SQLSTATE only (a server message may quote values).
    static func translate(_ error: any Error, _ doing: String) -> StorageError {
        switch error {
        case let e as StorageError: return e
        case let e as PSQLError:
            if let state = e.serverInfo?[.sqlState] {
                if state == "53100" { return StorageError(.diskFull, "the PostgreSQL server's disk is full (\(doing))") }
                // Connection exceptions, refused authorisation, no such
                // database, the server shutting down: not reachable.
                if ["08", "28", "3D", "57"].contains(String(state.prefix(2))) {
                    return StorageError(.unavailable, "PostgreSQL refused the connection (\(doing); SQLSTATE \(state))")
                }
                return StorageError(.io, "PostgreSQL refused \(doing) (SQLSTATE \(state))")
            }
            return StorageError(.unavailable, "the PostgreSQL server could not be reached (\(doing); \(e.code))")
        case is CancellationError: return StorageError(.closed, "cancelled")
        default: return StorageError(.unavailable, "the PostgreSQL server could not be reached (\(doing); \(type(of: error)))")
        }
    }

    private func usable() throws {
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            if let failure = s.failure { throw failure }
        }
    }

    // MARK: - Appending

    func append(
        _ records: [EngineRecord], keySlotWrites: [(KeySlot, [UInt8])], durability: Durability, mayUseReserve: Bool
    ) throws -> AppendTicket {
        guard let options = options.withLock({ $0 }) else { throw StorageError(.closed, "the engine was not started") }
        var pending: [PendingRecord] = []
        pending.reserveCapacity(records.count)
        for r in records {
            guard r.payload.count <= options.maximumRecordSize else {
                throw StorageError(.tooLarge, "record of \(r.payload.count) bytes exceeds the maximum")
            }
            let leaf = MerkleLog.leafHash(stream: r.stream, digest: r.digest)
            pending.append(PendingRecord(shard: ShardKey(w0: 0, w1: 0), position: 0, stream: r.stream, payload: r.payload, leaf: leaf))
        }
        // Records without a stream live with the group's first stream (a
        // version's inline chunks with its vault), or, in a group of none,
        // under a shard key of their own.
        let home = try records.first(where: { $0.stream != nil }).map { ShardKey($0.stream!) } ?? ShardKey.random()
        let ticket = AppendTicket()
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            if let failure = s.failure { throw failure }
            for (slot, _) in keySlotWrites where slot.number < 1 || slot.number >= s.nextSlot {
                throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
            }
            for i in pending.indices {
                let shard = pending[i].stream.map(ShardKey.init) ?? home
                var info = s.shards[shard] ?? ShardInfo(stream: pending[i].stream, nextPosition: 1)
                if info.stream == nil, let stream = pending[i].stream, shard == home { info.stream = stream }
                if let stream = pending[i].stream, info.stream != stream {
                    throw StorageError(.io, "two streams share a shard key")
                }
                guard info.nextPosition < UInt32.max else { throw StorageError(.tooLarge, "a stream holds 2^32 records") }
                pending[i].shard = shard
                pending[i].position = info.nextPosition
                info.nextPosition += 1
                s.shards[shard] = info
            }
            s.queue.append(Group(records: pending, slots: keySlotWrites, ticket: ticket))
            s.queuedRecords += UInt64(pending.count)
        }
        wake.yield()
        return ticket
    }

    private func runCommitter(_ wakeups: AsyncStream<Void>) async {
        for await _ in wakeups {
            while true {
                let batch: [Group] = state.withLock { s in
                    guard s.failure == nil, !s.queue.isEmpty else { return [] }
                    var bytes = 0
                    var n = 0
                    while n < s.queue.count, n == 0 || bytes < Self.batchBytes {
                        bytes += s.queue[n].records.reduce(0) { $0 + $1.payload.count }
                        n += 1
                    }
                    let taken = Array(s.queue.prefix(n))
                    s.queue.removeFirst(n)
                    s.committing = true
                    return taken
                }
                if batch.isEmpty {
                    state.withLock { $0.committing = false }
                    break
                }
                await commit(batch)
            }
        }
    }

    /// The batch's rows, numbered from `first`, as one statement.
    private func statement(_ batch: [Group], first: UInt64, id: Int64, authenticator: (any LogAuthenticator)?) -> PostgresQuery {
        var shards: [ByteBuffer] = [], positions: [Int64] = [], seqs: [Int64] = []
        var streams: [ByteBuffer] = [], payloads: [ByteBuffer] = [], leaves: [ByteBuffer] = [], tags: [ByteBuffer] = []
        var slots: [Int64] = [], values: [ByteBuffer] = []
        var next: [ShardKey: (StreamID?, UInt32)] = [:]
        var seq = first
        for group in batch {
            for r in group.records {
                shards.append(ByteBuffer(bytes: r.shard.bytes))
                positions.append(Int64(r.position))
                seqs.append(Int64(seq))
                streams.append(ByteBuffer(bytes: r.stream?.bytes ?? []))
                payloads.append(ByteBuffer(bytes: r.payload))
                leaves.append(ByteBuffer(bytes: r.leaf))
                tags.append(ByteBuffer(bytes: Self.tag(authenticator, seq: seq, shard: r.shard, position: r.position, leaf: r.leaf)))
                let known = next[r.shard]
                next[r.shard] = (known?.0 ?? r.stream, max(known?.1 ?? 0, r.position + 1))
                seq += 1
            }
            for (slot, value) in group.slots {
                slots.append(Int64(slot.number))
                values.append(ByteBuffer(bytes: value))
            }
        }
        let streamShards = next.keys.map { ByteBuffer(bytes: $0.bytes) }
        let streamIDs = next.values.map { ByteBuffer(bytes: $0.0?.bytes ?? []) }
        let nextPositions = next.values.map { Int64($0.1) }
        let count = Int64(seq - first)
        let t = table
        var b = PostgresBindings(capacity: 15)
        b.append(shards)
        b.append(positions)
        b.append(seqs)
        b.append(streams)
        b.append(payloads)
        b.append(leaves)
        b.append(tags)
        b.append(slots)
        b.append(values)
        b.append(streamShards)
        b.append(streamIDs)
        b.append(nextPositions)
        b.append(id)
        b.append(Int64(first))
        b.append(count)
        return PostgresQuery(
            unsafeSQL: """
                WITH r AS (INSERT INTO \(t).records (shard, position, seq, stream, payload, leaf, tag)
                           SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[])),
                     k AS (INSERT INTO \(t).key_slots (slot, value) SELECT * FROM unnest($8::int8[], $9::bytea[])),
                     s AS (INSERT INTO \(t).streams (shard, stream, next_position)
                           SELECT * FROM unnest($10::bytea[], $11::bytea[], $12::int8[])
                           ON CONFLICT (shard) DO UPDATE SET next_position = GREATEST(\(t).streams.next_position, EXCLUDED.next_position))
                INSERT INTO \(t).commits (batch, first_seq, record_count) VALUES ($13, $14, $15)
                """,
            binds: b)
    }

    private enum Outcome {
        case committed
        case notCommitted(StorageError)
        case unknown(StorageError)
    }

    /// What tells this engine's batch from another writer's of the same
    /// number, when its outcome is looked up.
    private struct OwnBatch: Sendable {
        var first: UInt64
        var count: UInt64
        var firstPayload: [UInt8]?
    }

    /// Commits `batch` as one statement, finds its outcome if the
    /// connection is lost, and acknowledges or fails its groups.
    private func commit(_ batch: [Group]) async {
        let (first, id) = state.withLock { ($0.committed + 1, $0.nextBatch) }
        // The batch after this one must be numbered too: the last number
        // is never used (a table edited to its end stops the store here).
        guard id < Int64.max else {
            fail(batch, StorageError(.durabilityLost, "the store's batch numbers are used up"))
            return
        }
        let authenticator = options.withLock { $0?.authenticator }
        let query = statement(batch, first: first, id: id, authenticator: authenticator)
        // What only this batch's commit holds: its first record's sealed
        // bytes (random nonces: no other writer's record has them).
        let mine = OwnBatch(
            first: first, count: UInt64(batch.reduce(0) { $0 + $1.records.count }),
            firstPayload: batch.lazy.flatMap(\.records).first?.payload)
        var outcome = await execute(query, batch: id, after: first - 1, mine: mine)
        if case .notCommitted(let error) = outcome, error.code == .unavailable {
            // The connection was lost and the server dropped the
            // statement: the new connection commits it again.
            outcome = await execute(query, batch: id, after: first - 1, mine: mine)
        }
        switch outcome {
        case .committed:
            var leaves: [UInt8] = []
            for group in batch { for r in group.records { leaves += r.leaf } }
            do {
                try merkle.append(leafHashes: leaves)
            } catch {
                fail(batch, StorageError(.durabilityLost, "the Merkle tree could not be extended"))
                return
            }
            let count = UInt64(leaves.count / MerkleTree.hashSize)
            state.withLock { s in
                s.committed += count
                s.queuedRecords -= count
                s.nextBatch += 1
                for group in batch { for r in group.records { if let stream = r.stream { s.streams.insert(stream) } } }
            }
            for group in batch {
                group.ticket.complete(
                    .success(group.records.map { RecordReference(w0: $0.shard.w0, w1: $0.shard.w1, w2: $0.position) }))
            }
        case .notCommitted(let error):
            // Later groups were numbered after this one: the engine stops,
            // and a reopen starts again from what the server holds.
            fail(batch, error)
        case .unknown(let error):
            fail(batch, error)
        }
    }

    private func fail(_ batch: [Group], _ error: StorageError) {
        logger.error("patientvault: PostgreSQL commit failed; the store stops", metadata: ["error": "\(error.code)"])
        let queued: [Group] = state.withLock { s in
            let stopping = StorageError(.durabilityLost, "an earlier commit failed: reopen the store")
            if s.failure == nil { s.failure = stopping }
            defer { s.queue = [] }
            return s.queue
        }
        for group in batch { group.ticket.complete(.failure(error)) }
        let stopped = StorageError(.durabilityLost, "an earlier commit failed: reopen the store")
        for group in queued { group.ticket.complete(.failure(stopped)) }
    }

    /// Runs the commit statement; on any error, finds out from the
    /// `commits` table whether the batch is there: on the same connection
    /// if it is alive, else on a new one that first takes the store's lock
    /// (granted only once the lost session has ended, its transaction
    /// settled). Never guessed: if no connection can be made, the outcome
    /// is `unknown` (`durabilityLost`: reopen and look).
    /// On a new session it also checks, before anything else, that the
    /// server still has the durability settings the open checked and every
    /// batch acknowledged before this one (`acknowledged` records in
    /// batches 1 to `id - 1`): a failover to a standby that lagged, or a
    /// restore to an earlier point, loses commits this engine acknowledged,
    /// and its Merkle tree and checkpoints still cover them. Then nothing
    /// more is acknowledged (`durabilityLost`).
    /// A batch of that number is this engine's only if it starts at the
    /// same sequence number, holds as many records and its first record is
    /// this batch's (`mine`): a session the server ended released the
    /// store's lock, another process may have taken it and committed
    /// batches meanwhile, and taking one of those for this batch would
    /// acknowledge records never written. Another writer's batch there
    /// stops the store (`durabilityLost`).
    private func execute(_ query: PostgresQuery, batch id: Int64, after acknowledged: UInt64, mine: OwnBatch) async -> Outcome {
        let connection = writer.withLock { $0 }
        do {
            guard !connection.isClosed else { throw StorageError(.unavailable, "the committer's connection is closed") }
            let logger = self.logger
            try await Self.withDeadline(storage.statementTimeout + storage.connectTimeout) {
                let rows = try await connection.query(query, logger: logger)
                for try await _ in rows {}
            }
            return .committed
        } catch {
            let failure = Self.translate(error, "a commit")
            var checking = connection
            // A statement the server refused on a live session (disk full,
            // a constraint) is looked up on that session; anything else
            // (a lost or terminated session) on a new one.
            let sessionLost = failure.code == .unavailable || connection.isClosed
            if sessionLost {
                _ = try? await Self.withDeadline(.seconds(5)) { try await connection.close() }
                do {
                    checking = try await Self.connection(storage, logger: logger)
                    try await Self.lock(checking, storage: storage, logger: logger, wait: true)
                    let fresh = checking
                    writer.withLock { $0 = fresh }
                } catch {
                    return .unknown(
                        StorageError(.durabilityLost, "the connection to PostgreSQL was lost during a commit and could not be made again: its outcome is unknown"))
                }
                do {
                    let (table, logger, session) = (self.table, self.logger, checking)
                    try await Self.withDeadline(storage.statementTimeout + storage.connectTimeout) {
                        try await Self.checkDurability(session, logger: logger)
                        let rows = try await session.query(
                            "SELECT coalesce(max(batch), 0), coalesce(sum(record_count), 0)::bigint FROM \(unescaped: table).commits WHERE batch < \(id)",
                            logger: logger)
                        for try await (batches, records) in rows.decode((Int64, Int64).self) {
                            guard batches == id - 1, records >= 0, UInt64(records) == acknowledged else {
                                throw StorageError(
                                    .durabilityLost,
                                    "the PostgreSQL server no longer holds commits it acknowledged (a failover to a standby that lagged, or a restore): nothing more is acknowledged")
                            }
                        }
                    }
                } catch {
                    let lost = (error as? StorageError).flatMap { $0.code == .durabilityLost || $0.code == .unsupportedFormat ? $0 : nil }
                    return .unknown(lost.map { StorageError(.durabilityLost, $0.message) }
                        ?? StorageError(.durabilityLost, "the PostgreSQL server could not be checked after a lost connection"))
                }
            }
            do {
                let (table, logger, session) = (self.table, self.logger, checking)
                let found = try await Self.withDeadline(storage.statementTimeout + storage.connectTimeout) { () async throws -> Bool? in
                    var found: Bool? = false
                    let rows = try await session.query(
                        "SELECT first_seq, record_count FROM \(unescaped: table).commits WHERE batch = \(id)", logger: logger)
                    for try await (first, count) in rows.decode((Int64, Int64).self) {
                        found = first >= 0 && count >= 0 && UInt64(first) == mine.first && UInt64(count) == mine.count ? true : nil
                    }
                    guard found == true, let payload = mine.firstPayload else { return found }
                    let stored = try await session.query(
                        "SELECT payload FROM \(unescaped: table).records WHERE seq = \(Int64(mine.first))", logger: logger)
                    found = nil
                    for try await bytes in stored.decode(ByteBuffer.self) {
                        found = Array(buffer: bytes) == payload ? true : nil
                    }
                    return found
                }
                guard let found else {
                    return .unknown(StorageError(
                        .durabilityLost,
                        "another process committed this batch's number: the store was opened elsewhere while this one ran; nothing more is acknowledged"))
                }
                if found { return .committed }
                return .notCommitted(sessionLost ? StorageError(.unavailable, "the connection was lost before the commit") : failure)
            } catch {
                return .unknown(StorageError(.durabilityLost, "the outcome of a commit to PostgreSQL could not be found"))
            }
        }
    }

    /// Runs `body`, or throws `unavailable` once `limit` has passed,
    /// without waiting for `body` (a session the server ended can leave a
    /// query waiting for ever: the outcome is then looked up on a new
    /// session, and the old one is closed).
    static func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let finished = Locked(false)
        let timer = Locked<Task<Void, Never>?>(nil)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            @Sendable func finish(_ result: Result<T, any Error>) {
                let first = finished.withLock { done in
                    defer { done = true }
                    return !done
                }
                guard first else { return }
                timer.withLock { $0?.cancel() }
                continuation.resume(with: result)
            }
            let work = Task {
                do { finish(.success(try await body())) } catch { finish(.failure(error)) }
            }
            timer.withLock {
                $0 = Task {
                    do { try await Task.sleep(for: limit) } catch { return }
                    work.cancel()
                    finish(.failure(StorageError(.unavailable, "PostgreSQL did not answer in time")))
                }
            }
            if finished.withLock({ $0 }) { timer.withLock { $0?.cancel() } }
        }
    }

    // MARK: - Reading

    private func checked(
        seq: Int64, shard: ShardKey, position: Int64, stream: ByteBuffer, payload: ByteBuffer, leaf: ByteBuffer, tag: ByteBuffer
    ) throws -> StoredRecord {
        guard seq >= 1, (1...Int64(UInt32.max)).contains(position) else { throw StorageError(.corrupted, "a record's place is malformed") }
        let id = try Self.stream(stream)
        if let id, ShardKey(id) != shard { throw StorageError(.corrupted, "a record is filed under another stream's shard key") }
        let bytes = Array(buffer: payload)
        let stored = Array(buffer: leaf)
        let authenticator = options.withLock({ $0?.authenticator })
        let reference = RecordReference(w0: shard.w0, w1: shard.w1, w2: UInt32(position))
        let computed = bytes.withUnsafeBytes { MerkleLog.leafHash(stream: id, payload: $0) }
        if computed != stored, let body = bytes.withUnsafeBytes({ Self.compactedBody($0) }), body.leaf == stored {
            // A compacted row: it keeps its leaf hash, and its MAC
            // (version 2) says the key's holder compacted it.
            if let authenticator {
                guard Self.verify(
                    Array(buffer: tag), authenticator: authenticator, seq: UInt64(seq), shard: shard, position: UInt32(position),
                    leaf: stored, compactedPrefix: body.prefix)
                else { throw StorageError(.corrupted, "record \(seq) fails authentication (altered, moved or of another store)") }
            }
            return StoredRecord(reference: reference, sequence: UInt64(seq), stream: id, payload: body.prefix, compactedLeaf: body.leaf)
        }
        guard computed == stored else {
            throw StorageError(.corrupted, "record \(seq) does not match its hash (\(bytes.count) bytes, stream \(id != nil))")
        }
        if let authenticator {
            guard Self.verify(Array(buffer: tag), authenticator: authenticator, seq: UInt64(seq), shard: shard, position: UInt32(position), leaf: computed)
            else { throw StorageError(.corrupted, "record \(seq) fails authentication (altered, moved or of another store)") }
        }
        return StoredRecord(reference: reference, sequence: UInt64(seq), stream: id, payload: bytes)
    }

    /// A compacted row's payload: `keep(4) reserved(4) leaf(32)
    /// prefix(keep)`, nothing after; nil for anything else.
    static func compactedBody(_ raw: UnsafeRawBufferPointer) -> (leaf: [UInt8], prefix: [UInt8])? {
        guard raw.count >= 40 else { return nil }
        let keep = Int(raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian)
        guard raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == 0, keep == raw.count - 40 else { return nil }
        return (Array(raw[8..<40]), Array(raw[40...]))
    }

    // MARK: - Compaction

    /// Each row's payload is replaced by its compacted body (its leaf hash
    /// and the kept prefix)
    /// and its MAC by the compacted form's, in one `UPDATE` per record.
    /// What PostgreSQL keeps of the old row version (until `VACUUM`
    /// reclaims it, in WAL and in backups) is the server's: see
    /// Postgres.md.
    func compact(_ references: [RecordReference], keepingPrefix keep: Int) async throws -> CompactionResult {
        try usable()
        let durable = durableRecordCount
        let authenticator = options.withLock { $0?.authenticator }
        var result = CompactionResult()
        for reference in references {
            let record = try await read(reference)
            guard record.sequence <= durable else { throw StorageError(.invalidLocation, "record \(record.sequence) is not durable yet") }
            if record.isCompacted {
                result.alreadyCompacted += 1
                continue
            }
            guard record.payload.count >= 40 + keep, keep <= Self.compactedRowLimit - 40 else {
                result.tooSmall += 1
                continue
            }
            let leaf = record.leafHash
            var w = ByteWriter(capacity: 40 + keep)
            w.write(UInt32(keep))
            w.write(UInt32(0))
            w.write(bytes: leaf)
            w.write(bytes: Array(record.payload.prefix(keep)))
            let shard = ShardKey(w0: reference.w0, w1: reference.w1)
            let tag = Self.tag(
                authenticator, seq: record.sequence, shard: shard, position: reference.w2, leaf: leaf, compactedPrefix: Array(record.payload.prefix(keep)))
            let updated = try await fetch(
                """
                UPDATE \(unescaped: table).records SET payload = \(ByteBuffer(bytes: w.bytes)), tag = \(ByteBuffer(bytes: tag))
                WHERE shard = \(ByteBuffer(bytes: shard.bytes)) AND position = \(Int64(reference.w2)) AND seq = \(Int64(record.sequence))
                RETURNING seq
                """, "a compaction"
            ) { row in try row.decode(Int64.self) }
            guard updated.count == 1 else { throw StorageError(.corrupted, "record \(record.sequence) changed under its compaction") }
            result.compacted += 1
            result.bytesRemoved += UInt64(record.payload.count - keep)
        }
        return result
    }

    /// Runs `q` on a pooled connection and returns its rows, each decoded
    /// by `decode`, within `statementTimeout` + `connectTimeout` (a server
    /// that cannot be reached is `unavailable`, never a wait for ever).
    private func fetch<T: Sendable>(
        _ q: PostgresQuery, _ doing: String, _ decode: @escaping @Sendable (PostgresRow) throws -> T
    ) async throws -> [T] {
        let client = self.client, logger = self.logger
        do {
            return try await Self.withDeadline(storage.statementTimeout + storage.connectTimeout) {
                var rows: [T] = []
                for try await row in try await client.query(q, logger: logger) { rows.append(try decode(row)) }
                return rows
            }
        } catch {
            throw Self.translate(error, doing)
        }
    }

    func read(_ reference: RecordReference) async throws -> StoredRecord {
        try usable()
        let shard = ShardKey(w0: reference.w0, w1: reference.w1)
        guard reference.w2 >= 1 else { throw StorageError(.invalidLocation, "no such record") }
        let position = Int64(reference.w2)
        let records = try await fetch(
            "SELECT seq, stream, payload, leaf, tag FROM \(unescaped: table).records WHERE shard = \(ByteBuffer(bytes: shard.bytes)) AND position = \(position)",
            "a read"
        ) { [self] row in
            let (seq, stream, payload, leaf, tag) = try row.decode((Int64, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer).self)
            return try checked(seq: seq, shard: shard, position: position, stream: stream, payload: payload, leaf: leaf, tag: tag)
        }
        guard let record = records.first else { throw StorageError(.invalidLocation, "no such record") }
        return record
    }

    func contains(_ stream: StreamID) -> Bool { state.withLock { $0.streams.contains(stream) } }

    func visitNewestFirst(_ stream: StreamID, _ visit: (StoredRecord) throws -> Bool) async throws {
        try usable()
        let shard = ShardKey(stream)
        let key = ByteBuffer(bytes: shard.bytes), id = ByteBuffer(bytes: stream.bytes)
        var below = Int64(UInt32.max) + 1
        while true {
            let page = try await fetch(
                """
                SELECT seq, position, stream, payload, leaf, tag FROM \(unescaped: table).records
                WHERE shard = \(key) AND stream = \(id) AND position < \(below) ORDER BY position DESC LIMIT \(Int64(Self.pageSize))
                """, "a read"
            ) { [self] row in
                let (seq, position, s, payload, leaf, tag) = try row.decode((Int64, Int64, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer).self)
                return try checked(seq: seq, shard: shard, position: position, stream: s, payload: payload, leaf: leaf, tag: tag)
            }
            for r in page {
                if let last = page.first, r.sequence > last.sequence { throw StorageError(.corrupted, "a stream's order is broken") }
                if try !visit(r) { return }
            }
            guard page.count == Self.pageSize, let last = page.last else { return }
            below = Int64(last.reference.w2)
        }
    }

    var streamCount: Int { state.withLock { $0.streams.count } }

    func forEachStream(_ body: (StreamID) -> Void) {
        state.withLock { s in for stream in s.streams { body(stream) } }
    }

    var endCursor: LogCursor { state.withLock { LogCursor(w0: $0.committed + $0.queuedRecords, w1: 0) } }
    var merkleTree: MerkleLog { merkle }
    var durableRecordCount: UInt64 { state.withLock { $0.committed } }

    func scan(from cursor: LogCursor?, only wanted: (StreamID?) -> Bool, _ visit: (StoredRecord) throws -> Bool) async throws {
        try usable()
        var after = Int64(cursor?.w0 ?? 0)
        let end = Int64(durableRecordCount)
        while after < end {
            let page = try await fetch(
                """
                SELECT seq, shard, position, stream, payload, leaf, tag FROM \(unescaped: table).records
                WHERE seq > \(after) AND seq <= \(end) ORDER BY seq LIMIT \(Int64(Self.pageSize))
                """, "a scan"
            ) { [self] row in
                let (seq, shard, position, stream, payload, leaf, tag) = try row.decode(
                    (Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer).self)
                return try checked(
                    seq: seq, shard: try ShardKey(bytes: Array(buffer: shard)), position: position, stream: stream, payload: payload,
                    leaf: leaf, tag: tag)
            }
            for (i, r) in page.enumerated() where r.sequence != UInt64(after) + UInt64(i) + 1 {
                throw StorageError(.corrupted, "the store's records are not numbered 1, 2, 3…")
            }
            guard !page.isEmpty else { throw StorageError(.corrupted, "records the store acknowledged are missing") }
            for r in page where wanted(r.stream) {
                if try !visit(r) { return }
            }
            after += Int64(page.count)
        }
    }

    func visitEveryRecord(_ visit: (StoredRecord) throws -> Bool) async throws {
        try await scan(from: nil, only: { _ in true }, visit)
    }

    // MARK: - Key slots

    var keySlots: any KeySlotStore { self }

    func reserveKeySlot() throws -> KeySlot {
        try state.withLock { s in
            if s.closed { throw StorageError(.closed, "the store is closed") }
            // Every slot number fits the table's bigint column.
            guard s.nextSlot <= UInt64(Int64.max) else { throw StorageError(.tooLarge, "no key slot numbers are left") }
            defer { s.nextSlot += 1 }
            return KeySlot(s.nextSlot)
        }
    }

    func readKeySlot(_ slot: KeySlot) async throws -> [UInt8] {
        try usable()
        let values = try await fetch(
            "SELECT value, destroyed FROM \(unescaped: table).key_slots WHERE slot = \(Int64(clamping: slot.number))", "a key read"
        ) { row in
            let (value, destroyed) = try row.decode((ByteBuffer, Bool).self)
            return (Array(buffer: value), destroyed)
        }
        if let (value, destroyed) = values.first {
            guard destroyed else { return value }
            let authenticator = options.withLock { $0?.authenticator }
            guard value == Self.tombstone(authenticator, slot: slot.number) else {
                throw StorageError(.corrupted, "key slot \(slot.number) is marked destroyed without the store's key")
            }
            throw StorageError(.keySlotDestroyed, "key slot \(slot.number) was destroyed")
        }
        throw StorageError(.keySlotEmpty, "key slot \(slot.number) is empty")
    }

    /// Replaces the slot's value with its tombstone in one committed
    /// statement. The old value stays in a dead row version until
    /// `VACUUM` (autovacuum) reclaims it, in the write-ahead log until it
    /// is recycled, and in every backup taken before (see
    /// `Documentation/Postgres.md`).
    func destroyKeySlot(_ slot: KeySlot) async throws {
        try usable()
        guard slot.number >= 1, slot.number < state.withLock({ $0.nextSlot }) else {
            throw StorageError(.invalidLocation, "key slot \(slot.number) was not reserved")
        }
        let tombstone = ByteBuffer(bytes: Self.tombstone(options.withLock { $0?.authenticator }, slot: slot.number))
        do {
            _ = try await fetch(
                """
                INSERT INTO \(unescaped: table).key_slots (slot, value, destroyed) VALUES (\(Int64(slot.number)), \(tombstone), true)
                ON CONFLICT (slot) DO UPDATE SET value = EXCLUDED.value, destroyed = true
                """, "a key destruction"
            ) { _ in () }
        } catch {
            // Whether the statement committed is unknown (a timeout, a lost
            // session): the store stops, as after a failed commit, and the
            // caller is told `durabilityLost`.
            let code = (error as? StorageError).map { "\($0.code)" } ?? "unknown"
            logger.error("patientvault: PostgreSQL key destruction failed; the store stops", metadata: ["error": "\(code)"])
            let stopped = StorageError(.durabilityLost, "a key destruction failed: reopen the store")
            state.withLock { s in if s.failure == nil { s.failure = stopped } }
            throw stopped
        }
    }

    // MARK: - Closing

    func close() async throws {
        let first = state.withLock { s in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        // Queued groups are committed before the committer stops.
        while state.withLock({ !$0.queue.isEmpty || $0.committing }) && state.withLock({ $0.failure == nil }) {
            wake.yield()
            // A cancelled task's sleep returns at once: it would spin.
            do { try await Task.sleep(for: .milliseconds(1)) } catch { usleep(1000) }
        }
        wake.finish()
        await committer.withLock { $0 }?.value
        clientRun.cancel()
        let connection = writer.withLock { $0 }
        do { try await connection.close() } catch { logger.debug("patientvault: closing the PostgreSQL connection failed") }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// Releases the connections of an engine that was never started (the
    /// store's open failed before its factory ran).
    func abandon() async {
        if options.withLock({ $0 }) == nil {
            state.withLock { $0.closed = true }
            wake.finish()
            clientRun.cancel()
            try? await writer.withLock { $0 }.close()
        }
    }
}

extension VaultStore {
    /// Opens (or creates) the store in `storage`'s schema on a PostgreSQL
    /// server (see `PostgresStorage`).
    ///
    /// The store's keys derive from `key` (as a store in memory: the
    /// schema holds no header); a wrong key finds no signing key it can
    /// open: `wrongMasterKey`. One process at a time: a second open of the
    /// same schema is `storeLocked` while the first holds the schema's
    /// advisory lock.
    /// - Parameters:
    ///   - storage: the server, account and schema.
    ///   - key: the master key; the same for every open of one schema.
    ///   - configuration: the store's settings (its file settings change
    ///     nothing here).
    /// - Throws: `PatientVaultError` `unavailable` (server unreachable, TLS
    ///   or authentication refused), `storeLocked`, `unsupportedFormat` (a
    ///   server whose `fsync` or `synchronous_commit` is off, or tables of
    ///   another format), `corrupted`, `wrongMasterKey`; `invalidArgument`
    ///   for a configuration with storage faults injected (they act on a
    ///   store's files, which a store on PostgreSQL has none of: a test
    ///   that injects them would pass without testing anything).
    public static func open(
        postgres storage: PostgresStorage, key: MasterKey, configuration: Configuration = Configuration()
    ) async throws(PatientVaultError) -> VaultStore {
        guard configuration.faults == nil else {
            throw PatientVaultError(.invalidArgument, "storage faults act on a store's files: a store on PostgreSQL takes none")
        }
        let engine: PostgresEngine
        do {
            engine = try await PostgresEngine.connect(storage, logger: configuration.logger)
        } catch {
            throw PatientVaultError.wrapping(error)
        }
        do {
            return try await open(engine: { try engine.start($0) }, key: key, location: storage.location, configuration: configuration)
        } catch {
            await engine.abandon()
            throw error
        }
    }
}
#endif
