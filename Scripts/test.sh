#!/usr/bin/env bash
# Runs the whole test suite (Swift Testing), failing on any failure or warning.
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build --build-tests -Xswiftc -warnings-as-errors
swift test --skip-build
# The behaviour suite again over the memory engine (tests of what only
# files have keep their folder): one seam, two engines.
PV_TEST_STORAGE=memory swift test --skip-build --skip 'CrashTests|PowerLossTests|CorruptionSweepTests|FullDiskTests|VaultStorageTests|VaultCryptoTests'
# The README's usage example and the "Getting started" article, compiled
# above, run too.
swift run --skip-build PatientVaultREADMEExample
swift run --skip-build PatientVaultGettingStarted
