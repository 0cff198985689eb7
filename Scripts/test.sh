#!/usr/bin/env bash
# Runs the whole test suite (Swift Testing), failing on any failure or
# warning: over the folder's log engine, the memory engine and the
# PostgreSQL engine (a throwaway cluster, Scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
# With the package trait Postgres: PatientVaultPostgres and its tests.
swift build --build-tests --traits Postgres -Xswiftc -warnings-as-errors
swift test --skip-build
# The behaviour suite again over the memory engine and over PostgreSQL
# (tests of what only files have keep their folder): one seam, three engines.
behaviour_only='CrashTests|PowerLossTests|CorruptionSweepTests|FullDiskTests|VaultStorageTests|VaultCryptoTests'
PV_TEST_STORAGE=memory swift test --skip-build --skip "$behaviour_only"
pg_env=$(./Scripts/postgres.sh start)
eval "$pg_env"
trap './Scripts/postgres.sh stop "$PV_TEST_POSTGRES_DIR"' EXIT
PV_TEST_STORAGE=postgres swift test --skip-build --skip "$behaviour_only|MemoryEngineTests"
# The README's usage example and the "Getting started" article, compiled
# above, run too.
swift run --skip-build PatientVaultREADMEExample
swift run --skip-build PatientVaultGettingStarted
