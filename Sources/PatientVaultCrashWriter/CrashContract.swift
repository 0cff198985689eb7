import Foundation
import PatientVault
#if Postgres
import PatientVaultPostgres
#endif

/// What the writer and the test that kills it (`CrashTests`) agree on: the
/// settings the store is opened with on both sides, the professionals the
/// writer's lines name by index, and the content of each operation, which
/// the test recomputes. One file for both targets: the test's
/// `Reliability/CrashContract.swift` is a symbolic link to this one.
enum CrashContract {
    /// Small segments and chunks, so that a run crosses segment boundaries
    /// and writes chunked content.
    static func configuration() -> Configuration {
        var c = Configuration()
        c.segmentSize = 1 << 20
        c.contentChunkSize = 4096
        c.inlineContentLimit = 1024
        c.auditReviewers = [try! SystemPrincipal("dpo")]
        return c
    }

    /// The professionals who deposit, replace and erase; a line names one by
    /// its index here.
    static let professionals: [Principal] = (0..<4).map { i in
        .professional(HealthProfessional(rpps: try! RPPSNumber("1010000000\(i)"), profession: .doctor))
    }

    /// Opens the store at `location`: a folder's path, or (built with the
    /// trait `Postgres`) a `postgres://…?schema=…` URL.
    static func open(_ location: String, key: MasterKey) async throws(PatientVaultError) -> VaultStore {
        #if Postgres
        if isPostgres(location) {
            return try await VaultStore.open(postgres: try PostgresStorage(url: location), key: key, configuration: configuration())
        }
        #endif
        return try await VaultStore.open(at: URL(fileURLWithPath: location), key: .key(key), configuration: configuration())
    }

    /// Whether `location` names a store on PostgreSQL, whose master key
    /// cannot be rotated (no header): the writer rotates only a folder's.
    static func isPostgres(_ location: String) -> Bool { location.hasPrefix("postgres://") }

    /// Content of operation `op`: its id, then a pattern the test recomputes.
    static func content(op: Int, size: Int) -> Data {
        var d = Data("op:\(op);".utf8)
        while d.count < size { d.append(UInt8(truncatingIfNeeded: d.count &* 31 &+ op)) }
        return d.prefix(size)
    }
}
