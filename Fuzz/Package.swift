// swift-tools-version:6.1
//
// libFuzzer targets for PatientVault's decoders: the storage engine's
// frame, segment and key-file headers, key slots and checkpoint, the
// domain's record header and bodies, audit entries and anchors, the store
// header, and the identifier parsers.
//
// A separate package, like `Benchmarks/`: the library's own Package.swift
// gains no fuzz-only code. The decoders are internal, so the one target
// reaches them with `@testable import`, which needs the library built for
// testing (a debug build: SwiftPM passes `-enable-testing` there).
//
//   ./Scripts/fuzz.sh          # 60 s, as .ci/run does
//   ./Scripts/fuzz.sh 3600     # the long mode

import PackageDescription

let package = Package(
    name: "PatientVaultFuzz",
    dependencies: [
        .package(name: "PatientVault", path: ".."),
    ],
    targets: [
        // libFuzzer's driver, declared for Swift (defined by its runtime).
        .target(name: "CLibFuzzer"),
        // Built with `-sanitize=fuzzer,address` (Scripts/fuzz.sh); its
        // `main` hands libFuzzer the one entry point, whose first input
        // byte chooses the decoder.
        .executableTarget(
            name: "PatientVaultFuzz",
            dependencies: [
                "CLibFuzzer", .product(name: "PatientVault", package: "PatientVault"),
                .product(name: "PatientVaultProof", package: "PatientVault"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
