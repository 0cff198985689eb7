#if Postgres
import Foundation
import PatientVaultPostgres
import PatientVaultTesting
import Testing
@testable import PatientVault
import VaultStorage

/// What only the PostgreSQL engine has (the behaviour suite runs over it
/// with `PV_TEST_STORAGE=postgres`): TLS verification, the schema's
/// advisory lock, rows forged on the server, the durability check at
/// connect, a connection lost mid-commit. Needs the server of
/// `PV_TEST_POSTGRES_URL` (`Scripts/postgres.sh start`).
/// Storage faults act on a store's files: a store on PostgreSQL refuses
/// them (before, it ignored them, and a downstream test that injected a
/// full disk passed without testing anything). Refused before any
/// connection: no server needed.
@Test func aStoreOnPostgresRefusesStorageFaults() async throws {
    let storage = try PostgresStorage(url: "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
    let faults = StoreFaults()
    faults.diskFull = true
    #expect(await code {
        _ = try await VaultStore.open(postgres: storage, key: try MasterKey.generate(), configuration: Configuration.testing.injecting(faults))
    } == .invalidArgument)
}

@Suite(.enabled(if: ProcessInfo.processInfo.environment["PV_TEST_POSTGRES_URL"] != nil))
struct PostgresEngineTests {
    let alice = Fixtures.alice
    let doctor = Fixtures.doctor

    /// Runs `sql` on the test server with `psql`, as the suite's role;
    /// returns what it prints (unaligned, tuples only).
    @discardableResult
    func psql(_ sql: String) throws -> String {
        let url = ProcessInfo.processInfo.environment["PV_TEST_POSTGRES_URL"]!
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = [url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "psql failed: \(sql)")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aSecondOpenOfTheSameSchemaIsLockedUntilTheFirstCloses() async throws {
        var storage = try PostgresStorage.forTests()
        storage.lockWait = .milliseconds(200)
        let key = try MasterKey.generate()
        let first = try await VaultStore.open(postgres: storage, key: key, configuration: Fixtures.configuration())
        #expect(await code { _ = try await VaultStore.open(postgres: storage, key: key, configuration: Fixtures.configuration()) } == .storeLocked)
        try await first.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        try await first.close()
        let second = try await VaultStore.open(postgres: storage, key: key, configuration: Fixtures.configuration())
        #expect(try await second.vaultInfo(for: alice, as: .patient(alice)).documentCount == 0)
        // Another key finds no signing key it can open.
        try await second.close()
        #expect(
            await code { _ = try await VaultStore.open(postgres: storage, key: try MasterKey.generate(), configuration: Fixtures.configuration()) }
                == .wrongMasterKey)
    }

    @Test func verifyFullRefusesAServerItsCADidNotSign() async throws {
        let base = try PostgresStorage.forTests()
        let folder = TestFolder()
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let ca = folder.url.appendingPathComponent("other-ca.crt").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Another CA",
            "-keyout", folder.url.appendingPathComponent("other-ca.key").path, "-out", ca,
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        let other = try PostgresStorage(
            host: base.host, port: base.port, username: base.username, password: base.password, database: base.database,
            schema: base.schema, tls: .verifyFull(caFile: ca))
        #expect(await code { _ = try await VaultStore.open(postgres: other, key: try MasterKey.generate()) } == .unavailable)
        // The right CA but another name than the certificate's.
        guard case .verifyFull(let rightCA) = base.tls else { Issue.record("the test server is not verify-full"); return }
        let wrongName = try PostgresStorage(
            host: "127.0.0.2", port: base.port, username: base.username, password: base.password, database: base.database,
            schema: base.schema, tls: .verifyFull(caFile: rightCA))
        #expect(await code { _ = try await VaultStore.open(postgres: wrongName, key: try MasterKey.generate()) } == .unavailable)
        // A wrong password.
        let wrongPassword = try PostgresStorage(
            host: base.host, port: base.port, username: base.username, password: "not the password", database: base.database,
            schema: base.schema, tls: base.tls)
        #expect(await code { _ = try await VaultStore.open(postgres: wrongPassword, key: try MasterKey.generate()) } == .unavailable)
    }

    /// The README's snippet, verbatim: a server that cannot be reached (no
    /// network here, no such CA file) is `unavailable`.
    @Test func theReadmeSnippetCompilesAndAnUnreachableServerIsUnavailable() async throws {
        let secret = "not a real password"
        let masterKey = try MasterKey.generate()
        #expect(await code { try await readmePostgresSnippet(secret: secret, masterKey: masterKey) } == .unavailable)
    }

    @Test func urlsAndBoundsAreChecked() throws {
        #expect(throws: PatientVaultError.self) { try PostgresStorage(url: "postgres://u@h/db?sslmode=require") }
        #expect(throws: PatientVaultError.self) { try PostgresStorage(url: "postgres://u@h/db") }  // verify-full needs a CA
        #expect(throws: PatientVaultError.self) { try PostgresStorage(url: "http://u@h/db?sslmode=disable") }
        #expect(throws: PatientVaultError.self) { try PostgresStorage(url: "postgres://u@h/db?sslmode=disable&schema=Robert;DROP") }
        #expect(throws: PatientVaultError.self) {
            try PostgresStorage(host: "h", port: 70_000, username: "u", password: nil, database: "d", tls: .disable)
        }
        let s = try PostgresStorage(url: "postgres://vault:s3cret@db.example:6543/records?sslmode=verify-full&sslrootcert=/ca.pem&schema=pv_a")
        #expect(s.host == "db.example" && s.port == 6543 && s.database == "records" && s.schema == "pv_a")
        #expect(s.password == "s3cret" && s.tls == .verifyFull(caFile: "/ca.pem"))
        #expect(!s.description.contains("s3cret") && !s.location.absoluteString.contains("s3cret"))
        // Settings are kept within their bounds where they are set.
        var bounded = s
        bounded.maximumConnections = 0
        bounded.connectTimeout = .seconds(-1)
        bounded.statementTimeout = .seconds(86_400)
        bounded.lockWait = .seconds(-5)
        #expect(bounded.maximumConnections == 1 && bounded.connectTimeout == .milliseconds(100))
        #expect(bounded.statementTimeout == .seconds(3600) && bounded.lockWait == .zero)
    }

    /// Tables of another format (1: record headers that named their
    /// document in clear) are refused at open, naming both formats, never
    /// read as damage; set back, the store opens.
    @Test func tablesOfAnotherFormatAreRefused() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: .postgres)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let schema = "\"\(t.store.location.query!.replacingOccurrences(of: "schema=", with: ""))\""
        try await t.store.close()
        try psql("UPDATE \(schema).meta SET value = 1 WHERE name = 'format'")
        #expect(await code { try await t.reopen() } == .unsupportedFormat)
        try psql("UPDATE \(schema).meta SET value = 2 WHERE name = 'format'")
        try await t.reopen().close()
    }

    @Test func rowsForgedOnTheServerAreCorruptedNeverTrusted() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: .postgres)
        try await t.store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let document = try await t.store.deposit(Fixtures.draft(), content: Data("a report".utf8), for: alice, as: doctor)
        let other = try await t.store.deposit(Fixtures.draft("Other"), content: Data("another".utf8), for: alice, as: doctor)
        let schema = "\"\(t.store.location.query!.replacingOccurrences(of: "schema=", with: ""))\""
        try await t.store.close()
        // Nothing readable on the server: neither the content nor the title.
        for plaintext in ["a report", "Compte rendu"] {
            let hits = try psql("SELECT count(*) FROM \(schema).records WHERE position(convert_to('\(plaintext)', 'UTF8') in payload) > 0")
            #expect(hits == "0")
        }

        // Two rows' sequence numbers swapped: every row's MAC binds its place.
        try psql(
            """
            BEGIN; UPDATE \(schema).records SET seq = -seq WHERE seq IN (1, 2);
            UPDATE \(schema).records SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq < 0; COMMIT;
            """)
        #expect(await code { try await t.reopen() } == .corrupted)
        try psql(
            """
            BEGIN; UPDATE \(schema).records SET seq = -seq WHERE seq IN (1, 2);
            UPDATE \(schema).records SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq < 0; COMMIT;
            """)
        let store = try await t.reopen()
        #expect(try await store.content(of: document.id, for: alice, as: doctor) == Data("a report".utf8))
        try await store.close()

        // The vault's row of `streams` deleted (no MAC covers that table):
        // its records lie outside any stream, so the open refuses the
        // store, instead of a vault that vanished and whose next creation
        // would collide with its records.
        let row = try psql(
            "SELECT encode(shard, 'hex') || ',' || encode(stream, 'hex') || ',' || next_position FROM \(schema).streams WHERE stream <> ''::bytea ORDER BY next_position DESC LIMIT 1"
        ).split(separator: ",").map(String.init)
        try #require(row.count == 3)
        try psql("DELETE FROM \(schema).streams WHERE shard = '\\x\(row[0])'")
        #expect(await code { try await t.reopen() } == .corrupted)
        try psql("INSERT INTO \(schema).streams VALUES ('\\x\(row[0])', '\\x\(row[1])', \(row[2]))")
        try await t.reopen().close()

        // A payload byte flipped: refused at the open that reads it, or at
        // the next verification (the open checks leaves and MACs, not
        // every payload).
        let last = try psql("SELECT max(seq) FROM \(schema).records")
        try psql(
            "UPDATE \(schema).records SET payload = set_byte(payload, 40, 255 - get_byte(payload, 40)) WHERE seq = \(last)")
        #expect(
            await code {
                let reopened = try await t.reopen()
                try await reopened.verify(against: try await reopened.checkpoint())
            } == .corrupted)
        try psql(
            "UPDATE \(schema).records SET payload = set_byte(payload, 40, 255 - get_byte(payload, 40)) WHERE seq = \(last)")

        // A row turned into its compacted form (its leaf hash and its
        // header) by someone without the key: its MAC is not a compacted
        // row's.
        let original = try psql("SELECT encode(payload, 'hex') FROM \(schema).records WHERE seq = \(last)")
        let payload: [UInt8] = stride(from: 0, to: original.count, by: 2).map {
            let start = original.index(original.startIndex, offsetBy: $0)
            return UInt8(original[start..<original.index(start, offsetBy: 2)], radix: 16)!
        }
        var body: [UInt8] = [48, 0, 0, 0, 0, 0, 0, 0]
        let leaf = try psql("SELECT encode(leaf, 'hex') FROM \(schema).records WHERE seq = \(last)")
        body += stride(from: 0, to: leaf.count, by: 2).map {
            let start = leaf.index(leaf.startIndex, offsetBy: $0)
            return UInt8(leaf[start..<leaf.index(start, offsetBy: 2)], radix: 16)!
        } + payload.prefix(48)
        try psql("UPDATE \(schema).records SET payload = '\\x\(hexEncoded(body))' WHERE seq = \(last)")
        #expect(
            await code {
                let reopened = try await t.reopen()
                try await reopened.verify(against: try await reopened.checkpoint())
            } == .corrupted)
        try psql("UPDATE \(schema).records SET payload = '\\x\(original)' WHERE seq = \(last)")

        // A key slot marked destroyed by someone without the key (the
        // newest document's): damage, never an erasure.
        try psql("UPDATE \(schema).key_slots SET destroyed = true, value = '\\x00' WHERE slot = (SELECT max(slot) FROM \(schema).key_slots)")
        #expect(
            await code {
                let forged = try await t.reopen()
                _ = try await forged.documents(for: alice, as: doctor)
                _ = try await forged.content(of: other.id, for: alice, as: doctor)
            } == .corrupted)
        try await t.close()
    }

    @Test func aServerThatDoesNotSyncCommitsIsRefused() async throws {
        let base = try PostgresStorage.forTests()
        let role = "pv_nosync_" + UUID().uuidString.prefix(8).lowercased()
        try psql("CREATE ROLE \(role) LOGIN PASSWORD '\(base.password ?? "")'; ALTER ROLE \(role) SET synchronous_commit = off")
        try psql("GRANT CREATE ON DATABASE \"\(base.database)\" TO \(role)")
        let storage = try PostgresStorage(
            host: base.host, port: base.port, username: role, password: base.password, database: base.database, schema: base.schema,
            tls: base.tls)
        #expect(await code { _ = try await VaultStore.open(postgres: storage, key: try MasterKey.generate()) } == .unsupportedFormat)
    }

    @Test func aConnectionLostMidCommitIsFoundAgainNeverGuessed() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), engine: .postgres)
        let store = t.store
        try await store.createVault(for: alice, as: .patient(alice), channel: .patientOnline)
        let schema = t.store.location.query!.replacingOccurrences(of: "schema=", with: "")
        var deposited: [DocumentMetadata] = []
        // A deposit whose commit the lost session did not make is refused
        // (`unavailable`: nothing of it acknowledged, nothing of it kept);
        // the ones acknowledged are all there, once.
        func depositOnce(_ title: String) async throws -> DocumentMetadata? {
            do {
                return try await store.deposit(
                    Fixtures.draft(title), content: Data("content \(title.dropFirst(6))".utf8), for: alice, as: doctor)
            } catch {
                if error.code == .unavailable { return nil }
                throw error
            }
        }
        for round in 0..<3 {
            // One deposit acknowledged first: the committer's session (the
            // holder of the schema's lock) is connected again.
            var first: DocumentMetadata?
            for _ in 0..<50 where first == nil {
                first = try await depositOnce("Round \(round) first")
                if first == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            deposited.append(try #require(first, "no deposit was acknowledged after the session was lost"))
            // That session is terminated by the server while deposits are
            // under way.
            async let kill: String = psql(
                """
                SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted
                  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('patientvault:\(schema)', 0)
                """)
            for i in 0..<5 {
                if let d = try await depositOnce("Round \(round) \(i)") { deposited.append(d) }
            }
            #expect(try await kill == "1")
        }
        // Every acknowledged deposit is there, once, after a reopen too.
        for round in 0..<2 {
            let s = round == 0 ? store : try await t.reopen()
            let listed = try await s.documents(for: alice, as: doctor)
            #expect(Set(listed.map(\.id)) == Set(deposited.map(\.id)))
            #expect(listed.count == deposited.count)
            for d in deposited {
                #expect(try await s.content(of: d.id, for: alice, as: doctor) == Data("content \(d.title.dropFirst(6))".utf8))
            }
        }
        try await t.close()
    }
}
/// The README's snippet, verbatim (unindented, so that the documentation
/// test finds it word for word).
func readmePostgresSnippet(secret: String, masterKey: MasterKey) async throws {
let storage = try PostgresStorage(
    url: "postgres://vault@db.example/records?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem", password: secret)
let store = try await VaultStore.open(postgres: storage, key: masterKey)
try await store.close()
}
#endif
