// swift-tools-version:6.1
//
// PatientVault: an embedded, append-only, libsodium-encrypted store of one
// document vault per patient.
//
// Layers, each a module, with one direction of dependency:
//
//   CSodium  <-  VaultCrypto  <-------------+
//                     ^                     +--  PatientVault  <-  PatientVaultDemo
//                     +------  VaultStorage <-+
//   (VaultSync, the lock type, under all three; CCRC32C, the CRC
//   instruction, and CPosix, `fallocate`'s hole punching, under
//   VaultStorage)
//
// `VaultStorage` is bytes in, bytes out: it knows nothing of patients or of
// the master key. Its one key of its own, the key-slot journal's, exists
// to be destroyed (VaultCrypto seals the journal's copies of key slots).
// `VaultCrypto` wraps libsodium and never exposes its C types.
// Only `PatientVault` (and `PatientVaultTesting`, for downstream tests) has
// public API; the lower layers use `package` access.
//
// Linux only (glibc): the storage layer calls Glibc directly, so no other
// platform is declared.

import PackageDescription

let package = Package(
    name: "PatientVault",
    products: [
        .library(name: "PatientVault", targets: ["PatientVault"]),
        // For the tests of services built on PatientVault: temporary stores,
        // a manual clock, valid identifiers, storage faults on demand.
        .library(name: "PatientVaultTesting", targets: ["PatientVaultTesting"]),
        // For auditors and services that check a store's checkpoints and
        // proofs without a store: it links libsodium and nothing else of
        // PatientVault.
        .library(name: "PatientVaultProof", targets: ["PatientVaultProof"]),
        // FHIR R4 resources of the store's values (AuditEvent,
        // DocumentReference, Bundle, OperationOutcome), for services that
        // speak FHIR; the core product does not carry them.
        .library(name: "PatientVaultFHIR", targets: ["PatientVaultFHIR"]),
        .executable(name: "patientvault-demo", targets: ["PatientVaultDemo"]),
        // Operating a store from a shell: vaults, documents, the trail,
        // checkpoints and keys, through the same decisions and audit.
        .executable(name: "vaultctl", targets: ["vaultctl"]),
        // The storage engine on PostgreSQL (and what speaks its protocol:
        // Citus, YugabyteDB, CockroachDB), for stores that outgrow one
        // machine. Its code and its dependency on postgres-nio exist only
        // with the package trait `Postgres`, so that the core library and
        // its users who keep a local store build nothing of SwiftNIO.
        .library(name: "PatientVaultPostgres", targets: ["PatientVaultPostgres"]),
    ],
    traits: [
        .trait(
            name: "Postgres",
            description: "Builds PatientVaultPostgres, the storage engine on PostgreSQL (depends on postgres-nio)."
        )
    ],
    dependencies: [
        // The ecosystem's logging API: the host chooses the backend; we log at
        // debug/trace only and never patient data.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        // The ecosystem's documentation builder (DocC catalogs of the products).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // The ecosystem's metrics API: the host chooses the backend
        // (Prometheus, StatsD...); the store counts and times operations.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        // The ecosystem's command-line parser (vaultctl's subcommands, help
        // and usage errors).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The ecosystem's PostgreSQL client (SwiftNIO: async, pooled, TLS),
        // and the TLS configuration it takes; only with the trait `Postgres`.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.25.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        // The one lock type, over pthread mutexes (ThreadSanitizer sees them).
        .target(name: "VaultSync"),
        // CRC-32C with the processor's instruction, chosen at run time.
        .target(name: "CCRC32C"),
        // `fallocate`, which the Glibc module does not export (compaction's
        // hole punching).
        .target(name: "CPosix"),
        .target(
            name: "VaultCrypto",
            dependencies: ["CSodium", "VaultSync"]
        ),
        .target(
            name: "VaultStorage",
            dependencies: ["VaultSync", "VaultCrypto", "CCRC32C", "CPosix", .product(name: "Logging", package: "swift-log")]
        ),
        // Signed checkpoints, inclusion and consistency proofs in the
        // transparency-log formats (C2SP tlog-checkpoint, tlog-proof,
        // tlog-cosignature), and their verifier.
        .target(name: "PatientVaultProof", dependencies: ["VaultCrypto"]),
        .target(
            name: "PatientVault",
            dependencies: [
                "VaultSync",
                "VaultCrypto",
                "VaultStorage",
                "PatientVaultProof",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "PatientVaultFHIR",
            dependencies: ["PatientVault"]
        ),
        .target(
            name: "PatientVaultPostgres",
            dependencies: [
                "PatientVault", "VaultCrypto", "VaultStorage", "VaultSync",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["Postgres"])),
            ]
        ),
        .target(
            name: "PatientVaultTesting",
            dependencies: ["PatientVault", "VaultCrypto", "VaultStorage", "VaultSync"]
        ),
        // The demo's tour, shared by `patientvault-demo` and `vaultctl demo`.
        .target(
            name: "PatientVaultTour",
            dependencies: ["PatientVault", "PatientVaultFHIR"]
        ),
        .executableTarget(
            name: "PatientVaultDemo",
            dependencies: ["PatientVaultTour"]
        ),
        // The README's usage example, compiled and run by Scripts/test.sh.
        .executableTarget(
            name: "PatientVaultREADMEExample",
            dependencies: ["PatientVault", "PatientVaultFHIR"]
        ),
        // The DocC article "Getting started", compiled and run by Scripts/test.sh.
        .executableTarget(
            name: "PatientVaultGettingStarted",
            dependencies: ["PatientVault"]
        ),
        .executableTarget(
            name: "vaultctl",
            dependencies: ["PatientVault", "PatientVaultProof", "PatientVaultTour", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Group commit on PostgreSQL measured against the folder's, in one
        // run (Scripts/postgres-load.sh); not a product.
        .executableTarget(
            name: "PatientVaultPostgresLoad",
            dependencies: ["PatientVault", "PatientVaultPostgres"]
        ),
        // The writer that crash tests kill (public API only); not a product.
        .executableTarget(
            name: "PatientVaultCrashWriter",
            dependencies: ["PatientVault", "PatientVaultProof", "PatientVaultPostgres"]
        ),
        .testTarget(name: "VaultCryptoTests", dependencies: ["VaultCrypto"]),
        .testTarget(name: "VaultStorageTests", dependencies: ["VaultStorage"]),
        .testTarget(
            name: "PatientVaultTests",
            dependencies: [
                "PatientVault", "PatientVaultFHIR", "PatientVaultTesting", "PatientVaultProof", "VaultCrypto", "VaultStorage",
                "VaultSync", "PatientVaultPostgres", "PatientVaultTour", .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        // A downstream service's view: the public API and the testing product only.
        .testTarget(
            name: "PatientVaultTestingTests", dependencies: ["PatientVault", "PatientVaultFHIR", "PatientVaultTesting", "PatientVaultProof"]),
    ],
    swiftLanguageModes: [.v6]
)
