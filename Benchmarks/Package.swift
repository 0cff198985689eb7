// swift-tools-version:6.1
//
// Benchmarks of PatientVault's hot paths, side by side with their limits
// (raw libsodium, raw write + fdatasync) and with the peer a user would
// pick instead (SQLite + libsodium), all measured in the same run.
//
// A separate package, like swift-nio's `Benchmarks/`: the library's own
// Package.swift gains no benchmark dependency.
//
//   swift package benchmark                     # everything
//   swift package benchmark thresholds check    # the allocation gate CI runs

import PackageDescription

let package = Package(
    name: "PatientVaultBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "PatientVault", path: ".."),
        // Exact: Scripts/check-thresholds.sh relies on how 1.38.1 names threshold files.
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
        // A log handler and a metrics backend of the benchmarks' own, to
        // measure what logging and metrics add to a deposit.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
    ],
    targets: [
        // The baselines' own C libraries: the library's modules are not
        // visible outside its package, and baselines stay out of it anyway.
        .systemLibrary(name: "CBenchSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CBenchSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Baselines", dependencies: ["CBenchSodium", "CBenchSQLite"]),
        .target(name: "Workload", dependencies: [
            .product(name: "PatientVault", package: "PatientVault"),
            // The clock and identities of downstream tests, not a copy of them.
            .product(name: "PatientVaultTesting", package: "PatientVault"),
        ]),
        .executableTarget(
            name: "PatientVaultBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "PatientVault", package: "PatientVault"),
                .product(name: "PatientVaultProof", package: "PatientVault"),
                .product(name: "PatientVaultTesting", package: "PatientVault"),
                "Baselines",
                "Workload",
            ],
            path: "Benchmarks/PatientVaultBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "pv-replay",
            dependencies: [
                .product(name: "PatientVault", package: "PatientVault"),
                .product(name: "PatientVaultTesting", package: "PatientVault"), "Workload",
            ]
        ),
        .executableTarget(
            name: "pv-fixture",
            dependencies: [
                .product(name: "PatientVault", package: "PatientVault"),
                .product(name: "PatientVaultTesting", package: "PatientVault"), "Workload",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
