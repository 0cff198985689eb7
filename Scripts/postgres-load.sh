#!/usr/bin/env bash
# Group commit on PostgreSQL, measured: deposits per second with 1, 8 and
# 32 writers on a throwaway cluster (Scripts/postgres.sh) and, in the same
# run, in a folder. Release build with the trait Postgres.
#
#   ./Scripts/postgres-load.sh [deposits per level]
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build -c release --traits Postgres --product PatientVaultPostgresLoad --scratch-path .build-release-postgres
pg_env=$(./Scripts/postgres.sh start)
eval "$pg_env"
trap './Scripts/postgres.sh stop "$PV_TEST_POSTGRES_DIR"' EXIT
.build-release-postgres/release/PatientVaultPostgresLoad "$PV_TEST_POSTGRES_URL" "${1:-2000}"
