// The limits and the peer, measured in the same run as PatientVault:
// raw libsodium, raw write + fdatasync, and SQLite (WAL, synchronous=FULL)
// storing the same libsodium-sealed documents. Benchmark-only code: none
// of it is in the library.

import CBenchSodium
import CBenchSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure of a baseline's C call.
public struct BaselineError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// XChaCha20-Poly1305 (IETF) straight from libsodium, with a fixed key.
public final class RawCipher: @unchecked Sendable {
    private var key = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES))
    public static let overhead = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES) + Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)

    public init() throws {
        guard sodium_init() >= 0 else { throw BaselineError("sodium_init failed") }
        crypto_aead_xchacha20poly1305_ietf_keygen(&key)
    }

    /// nonce || ciphertext || tag.
    public func seal(_ plaintext: [UInt8], into out: inout [UInt8]) {
        let nonceBytes = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: nonceBytes + plaintext.count + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)))
        out.withUnsafeMutableBufferPointer { o in
            randombytes_buf(o.baseAddress!, nonceBytes)
            var written: UInt64 = 0
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                o.baseAddress! + nonceBytes, &written, plaintext, UInt64(plaintext.count), nil, 0, nil, o.baseAddress!, key)
        }
    }

    public func open(_ sealed: [UInt8], into out: inout [UInt8]) throws {
        let nonceBytes = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
        let count = sealed.count - RawCipher.overhead
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: count))
        let rc = out.withUnsafeMutableBufferPointer { o in
            sealed.withUnsafeBufferPointer { s in
                var read: UInt64 = 0
                return crypto_aead_xchacha20poly1305_ietf_decrypt(
                    o.baseAddress!, &read, nil, s.baseAddress! + nonceBytes, UInt64(sealed.count - nonceBytes), nil, 0, s.baseAddress!, key)
            }
        }
        guard rc == 0 else { throw BaselineError("authentication failed") }
    }
}

/// Appends to a file with `write` and makes each append durable with
/// `fdatasync`: the physical limit of one durable commit.
public final class RawDurableFile: @unchecked Sendable {
    private let fd: Int32
    public let path: String

    public init(directory: String) throws {
        path = directory + "/raw-\(UUID().uuidString).bin"
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw BaselineError("open failed") }
    }

    deinit {
        Glibc.close(fd)
        unlink(path)
    }

    public func writeDurably(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw BaselineError("write failed") }
            done += n
        }
        guard fdatasync(fd) == 0 else { throw BaselineError("fdatasync failed") }
    }

    /// Buffered writes of `total` bytes in `chunk`-sized pieces, then one
    /// `fdatasync`: the disk's sequential bandwidth.
    public func writeSequentially(total: Int, chunk: [UInt8]) throws {
        var written = 0
        while written < total {
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, min(chunk.count, total - written)) }
            guard n > 0 else { throw BaselineError("write failed") }
            written += n
        }
        guard fdatasync(fd) == 0 else { throw BaselineError("fdatasync failed") }
        guard ftruncate(fd, 0) == 0 else { throw BaselineError("ftruncate failed") }
    }
}

/// One SQLite connection that seals each blob it inserts and opens each
/// blob it reads (XChaCha20-Poly1305), with its buffers: what both peers
/// do around their own statements. Its owner finalizes its statements (in
/// its `deinit`) before this closes the database.
final class SealedSQLite {
    private(set) var db: OpaquePointer?
    private let cipher: RawCipher
    private var sealed: [UInt8] = []
    private var opened: [UInt8] = []

    init(path: String) throws {
        cipher = try RawCipher()
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw BaselineError("sqlite3_open failed") }
    }

    deinit { close() }

    /// Closes the database (its owner's statements finalized first).
    func close() {
        sqlite3_close(db)
        db = nil
    }

    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw BaselineError("sqlite: " + String(cString: sqlite3_errmsg(db)))
        }
    }

    /// A prepared statement.
    func prepare(_ sql: String) throws -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw BaselineError("prepare failed")
        }
        return statement
    }

    /// Seals `plaintext` and runs `statement` (reset, its two parameters
    /// unbound) with `vault` and the sealed bytes.
    func insertSealed(_ plaintext: [UInt8], vault: [UInt8], with statement: OpaquePointer) throws {
        cipher.seal(plaintext, into: &sealed)
        // SQLITE_TRANSIENT: SQLite copies the bytes (the pointers do not outlive the closures).
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        _ = vault.withUnsafeBytes { sqlite3_bind_blob(statement, 1, $0.baseAddress, Int32(vault.count), transient) }
        _ = sealed.withUnsafeBytes { sqlite3_bind_blob(statement, 2, $0.baseAddress, Int32(sealed.count), transient) }
        guard sqlite3_step(statement) == SQLITE_DONE else { throw BaselineError("insert failed") }
    }

    /// Runs `statement` (reset, bound to `id`), opens the sealed blob of
    /// its row's first column and returns the plaintext's size. The
    /// statement is left on its row.
    func openRow(_ statement: OpaquePointer, id: Int64) throws -> Int {
        sqlite3_bind_int64(statement, 1, id)
        guard sqlite3_step(statement) == SQLITE_ROW else { throw BaselineError("no row") }
        let n = Int(sqlite3_column_bytes(statement, 0))
        let p = sqlite3_column_blob(statement, 0)!
        sealed.removeAll(keepingCapacity: true)
        sealed.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n))
        try cipher.open(sealed, into: &opened)
        return opened.count
    }
}

/// The peer of PERFORMANCE.md: SQLite in WAL mode with synchronous=FULL,
/// `documents(id INTEGER PRIMARY KEY, vault BLOB, body BLOB)` indexed on
/// vault, each document sealed with XChaCha20-Poly1305 before insert.
public final class SQLitePeer: @unchecked Sendable {
    private let connection: SealedSQLite
    private let insert: OpaquePointer
    private let select: OpaquePointer
    public let path: String
    public private(set) var lastID: Int64 = 0

    public init(directory: String) throws {
        path = directory + "/peer-\(UUID().uuidString).sqlite"
        connection = try SealedSQLite(path: path)
        try connection.exec("PRAGMA journal_mode=WAL")
        try connection.exec("PRAGMA synchronous=FULL")
        try connection.exec("CREATE TABLE documents(id INTEGER PRIMARY KEY, vault BLOB, body BLOB)")
        try connection.exec("CREATE INDEX documents_vault ON documents(vault)")
        insert = try connection.prepare("INSERT INTO documents(vault, body) VALUES (?, ?)")
        select = try connection.prepare("SELECT body FROM documents WHERE id = ?")
    }

    deinit {
        sqlite3_finalize(insert)
        sqlite3_finalize(select)
        connection.close()
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }

    public func exec(_ sql: String) throws { try connection.exec(sql) }

    /// Seals and inserts `count` documents in one transaction (durable at commit).
    public func insert(_ document: [UInt8], vault: [UInt8], count: Int = 1) throws {
        try exec("BEGIN")
        for _ in 0..<count {
            sqlite3_reset(insert)
            try connection.insertSealed(document, vault: vault, with: insert)
            lastID = sqlite3_last_insert_rowid(connection.db)
        }
        try exec("COMMIT")
    }

    /// Reads one document by id and opens it; returns its size.
    @discardableResult
    public func read(id: Int64) throws -> Int {
        sqlite3_reset(select)
        return try connection.openRow(select, id: id)
    }
}

/// The peer with the same guarantees as PatientVault: SQLite (WAL,
/// synchronous=FULL) writing, in the same transaction as each deposit and
/// each read, a sealed audit row (512 bytes of entry, sealed, as
/// PatientVault pads its entries). Threads share one connection behind a
/// lock, as an application does with SQLite's single writer (GRDB's
/// writer queue): each transaction is still durable on its own.
public final class SQLiteAuditedPeer: @unchecked Sendable {
    public let path: String

    public init(directory: String) throws {
        path = directory + "/audited-peer-\(UUID().uuidString).sqlite"
        let setup = try Connection(path: path)
        try setup.exec("PRAGMA journal_mode=WAL")
        try setup.exec("CREATE TABLE documents(id INTEGER PRIMARY KEY, vault BLOB, body BLOB)")
        try setup.exec("CREATE INDEX documents_vault ON documents(vault)")
        try setup.exec("CREATE TABLE audit(id INTEGER PRIMARY KEY, vault BLOB, entry BLOB)")
        try setup.exec("CREATE INDEX audit_vault ON audit(vault)")
    }

    deinit {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }

    /// A connection (one per benchmark; shared by its threads).
    public func connect() throws -> Connection { try Connection(path: path) }

    /// One thread's connection with its statements and buffers.
    public final class Connection: @unchecked Sendable {
        private let connection: SealedSQLite
        private var insertDocument: OpaquePointer?
        private var insertAudit: OpaquePointer?
        private var select: OpaquePointer?
        private let entry = [UInt8](repeating: 0x41, count: 512)
        /// Serialises the threads that share the connection.
        private let lock = NSLock()

        init(path: String) throws {
            connection = try SealedSQLite(path: path)
            try exec("PRAGMA synchronous=FULL")
            try exec("PRAGMA busy_timeout=60000")
        }

        deinit {
            sqlite3_finalize(insertDocument)
            sqlite3_finalize(insertAudit)
            sqlite3_finalize(select)
        }

        public func exec(_ sql: String) throws { try connection.exec(sql) }

        /// `statement`, prepared from `sql` on first use, reset.
        private func prepare(_ statement: inout OpaquePointer?, _ sql: String) throws -> OpaquePointer {
            let prepared = try statement ?? connection.prepare(sql)
            statement = prepared
            sqlite3_reset(prepared)
            return prepared
        }

        private func audit(vault: [UInt8]) throws {
            try connection.insertSealed(entry, vault: vault, with: try prepare(&insertAudit, "INSERT INTO audit(vault, entry) VALUES (?, ?)"))
        }

        /// Seals and inserts `count` documents, each with its sealed audit
        /// row, in one transaction (durable at commit). Returns the last id.
        @discardableResult
        public func deposit(_ document: [UInt8], vault: [UInt8], count: Int = 1) throws -> Int64 {
            lock.lock()
            defer { lock.unlock() }
            try exec("BEGIN IMMEDIATE")
            for _ in 0..<count {
                try connection.insertSealed(
                    document, vault: vault, with: try prepare(&insertDocument, "INSERT INTO documents(vault, body) VALUES (?, ?)"))
                try audit(vault: vault)
            }
            let id = sqlite3_last_insert_rowid(connection.db)
            try exec("COMMIT")
            return id
        }

        /// Reads one document by id and opens it, with its sealed audit row
        /// written and durable in the same transaction; returns its size.
        @discardableResult
        public func read(id: Int64, vault: [UInt8]) throws -> Int {
            lock.lock()
            defer { lock.unlock() }
            try exec("BEGIN IMMEDIATE")
            let statement = try prepare(&select, "SELECT body FROM documents WHERE id = ?")
            let size = try connection.openRow(statement, id: id)
            sqlite3_reset(statement)
            try audit(vault: vault)
            try exec("COMMIT")
            return size
        }
    }
}

/// The next operation's index and the first failure, under a lock.
final class ThreadProgress: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var failure: (any Error)?
}

/// Runs `count` operations over `threads` system threads (not tasks: the
/// peer's calls block), each thread with its own state from `make`.
public func onThreads<State>(
    _ count: Int, threads: Int, make: @escaping @Sendable () throws -> State, _ operation: @escaping @Sendable (State, Int) throws -> Void
) throws {
    let progress = ThreadProgress()
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            do {
                let state = try make()
                while true {
                    let i: Int = progress.lock.withLock {
                        defer { progress.next += 1 }
                        return progress.failure == nil ? progress.next : count
                    }
                    guard i < count else { return }
                    try operation(state, i)
                }
            } catch {
                progress.lock.withLock { if progress.failure == nil { progress.failure = error } }
            }
        }
        thread.start()
    }
    group.wait()
    if let failure = progress.lock.withLock({ progress.failure }) { throw failure }
}
