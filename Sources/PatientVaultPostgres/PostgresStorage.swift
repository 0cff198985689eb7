#if Postgres
import Foundation
import PatientVault

/// Where a store on PostgreSQL keeps its records: the server, the account,
/// the schema that holds the store's tables, and how the connection is
/// secured.
///
/// Only sealed bytes reach the server: keyed stream pseudonyms, positions,
/// lengths, ciphertext, hashes, MACs and wrapped keys; never an INS, a
/// title, a reason or a key. The password never appears in a description
/// or a log line.
///
/// ```swift
/// let storage = try PostgresStorage(
///     url: "postgres://vault@db.example:5432/records?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
///     password: secret)
/// let store = try await VaultStore.open(postgres: storage, key: key)
/// ```
public struct PostgresStorage: Sendable, CustomStringConvertible {
    /// How the connection to the server is secured.
    public enum TLS: Sendable, Hashable {
        /// No TLS (a server on the same host, or a test). The password is
        /// still never sent in clear with SCRAM authentication.
        case disable
        /// libpq's `sslmode=verify-full`: TLS required, the server's
        /// certificate chain checked against the PEM certificates of
        /// `caFile`, and its name against ``PostgresStorage/host``.
        case verifyFull(caFile: String)
    }

    /// The server's host name (checked against its certificate with
    /// ``TLS/verifyFull(caFile:)``).
    public let host: String
    /// The server's TCP port.
    public let port: Int
    /// The role the store logs in as.
    public let username: String
    /// The role's password, if the server asks for one.
    public let password: String?
    /// The database.
    public let database: String
    /// The schema that holds this store's tables (created at first open):
    /// one store per schema, so one database can hold several.
    public let schema: String
    /// How the connection is secured.
    public let tls: TLS
    /// The most connections the store's readers open (the committer has
    /// its own). 8 by default; 1 to 100.
    public var maximumConnections: Int = 8 {
        didSet { maximumConnections = min(max(maximumConnections, 1), 100) }
    }
    /// How long connecting may take, and how long the committer tries to
    /// reconnect after a lost connection before the outcome of its commit
    /// is reported unknown (`durabilityLost`). 10 seconds by default;
    /// 100 milliseconds to 10 minutes.
    public var connectTimeout: Duration = .seconds(10) {
        didSet { connectTimeout = min(max(connectTimeout, .milliseconds(100)), .seconds(600)) }
    }
    /// How long an open waits for the schema's lock before it is
    /// `storeLocked`: the session of a process that just died may take a
    /// moment to end on the server. 5 seconds by default; 0 to 10 minutes.
    public var lockWait: Duration = .seconds(5) {
        didSet { lockWait = min(max(lockWait, .zero), .seconds(600)) }
    }
    /// The longest one statement may run on the server (`statement_timeout`).
    /// 30 seconds by default; 1 second to 1 hour.
    public var statementTimeout: Duration = .seconds(30) {
        didSet { statementTimeout = min(max(statementTimeout, .seconds(1)), .seconds(3600)) }
    }

    /// Storage on the server `host`.
    /// - Parameters:
    ///   - host: the server's host name, 1 to 253 characters.
    ///   - port: its port (5432 by default).
    ///   - username: the role, 1 to 63 characters.
    ///   - password: its password, if any.
    ///   - database: the database, 1 to 63 characters.
    ///   - schema: the store's schema: 1 to 63 lowercase letters, digits
    ///     and underscores, not starting with a digit; `patientvault` by
    ///     default.
    ///   - tls: how the connection is secured.
    /// - Throws: `PatientVaultError` `invalidArgument` for a value out of
    ///   these bounds.
    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String,
        schema: String = "patientvault", tls: TLS
    ) throws(PatientVaultError) {
        func name(_ value: String, _ what: String, limit: Int) throws(PatientVaultError) -> String {
            guard !value.isEmpty, value.utf8.count <= limit, !value.utf8.contains(0) else {
                throw PatientVaultError(.invalidArgument, "the PostgreSQL \(what) must be 1 to \(limit) bytes")
            }
            return value
        }
        self.host = try name(host, "host", limit: 253)
        self.username = try name(username, "user name", limit: 63)
        self.database = try name(database, "database name", limit: 63)
        guard (1...65_535).contains(port) else { throw PatientVaultError(.invalidArgument, "the PostgreSQL port must be 1 to 65535") }
        self.port = port
        guard Self.isValidSchema(schema) else {
            throw PatientVaultError(
                .invalidArgument, "the schema must be 1 to 63 lowercase letters, digits and underscores, not starting with a digit")
        }
        self.schema = schema
        if let password, password.utf8.contains(0) || password.utf8.count > 1024 {
            throw PatientVaultError(.invalidArgument, "the PostgreSQL password must be at most 1024 bytes, without NUL")
        }
        self.password = password
        if case .verifyFull(let caFile) = tls, caFile.isEmpty {
            throw PatientVaultError(.invalidArgument, "verify-full needs the CA certificates' file")
        }
        self.tls = tls
    }

    /// Storage described by a libpq-style URL:
    /// `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…&schema=…]`.
    ///
    /// `sslmode` is `disable` or `verify-full` (which needs `sslrootcert`);
    /// the modes that accept a server they cannot authenticate (`prefer`,
    /// `require`, `verify-ca`) are refused.
    /// - Parameters:
    ///   - url: the URL.
    ///   - password: the password, if not in the URL (preferred: a URL is
    ///     easily logged).
    /// - Throws: `PatientVaultError` `invalidArgument` for a URL that is
    ///   not of that form.
    public init(url: String, password: String? = nil) throws(PatientVaultError) {
        guard url.utf8.count <= 4096, let parts = URLComponents(string: url),
            parts.scheme == "postgres" || parts.scheme == "postgresql", let host = parts.host, let user = parts.user
        else {
            throw PatientVaultError(.invalidArgument, "not a postgres:// URL with a user and a host")
        }
        let database = String(parts.path.drop(while: { $0 == "/" }))
        var query: [String: String] = [:]
        for item in parts.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let tls: TLS
        switch query["sslmode"] ?? "verify-full" {
        case "disable": tls = .disable
        case "verify-full":
            guard let ca = query["sslrootcert"] else {
                throw PatientVaultError(.invalidArgument, "sslmode=verify-full needs sslrootcert")
            }
            tls = .verifyFull(caFile: ca)
        default:
            throw PatientVaultError(.invalidArgument, "sslmode must be disable or verify-full")
        }
        try self.init(
            host: host, port: parts.port ?? 5432, username: user, password: password ?? parts.password,
            database: database.isEmpty ? user : database, schema: query["schema"] ?? "patientvault", tls: tls)
    }

    static func isValidSchema(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard (1...63).contains(bytes.count), !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }

    /// The store's location as a store reports it: no password.
    public var location: URL {
        var parts = URLComponents()
        parts.scheme = "postgres"
        parts.user = username
        parts.host = host
        parts.port = port
        parts.path = "/" + database
        parts.queryItems = [URLQueryItem(name: "schema", value: schema)]
        return parts.url ?? URL(string: "postgres://localhost")!
    }

    /// The location, without the password.
    public var description: String { location.absoluteString }
}

extension PostgresStorage: CustomReflectable {
    /// The location alone: `dump` and reflecting loggers never see the
    /// password.
    public var customMirror: Mirror { Mirror(self, children: ["location": description]) }
}
#endif
