#!/usr/bin/env bash
# Crash test: kills the writer process with SIGKILL at random moments and
# checks every acknowledged operation after each reopen
# (Tests/PatientVaultTests/Reliability/CrashTests.swift), on a folder, then
# on PostgreSQL (a throwaway cluster, Scripts/postgres.sh; an eighth of the
# kills). Prints the figures.
#
#   ./Scripts/crash-test.sh          # 200 kills (and 25 on PostgreSQL), as .ci/run does
#   ./Scripts/crash-test.sh 5000     # the long mode
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-200}
./Scripts/long-test.sh CrashTests "PV_CRASH_KILLS=$kills" "crash test:"
pg_env=$(./Scripts/postgres.sh start)
eval "$pg_env"
trap './Scripts/postgres.sh stop "$PV_TEST_POSTGRES_DIR"' EXIT
PV_TEST_STORAGE=postgres ./Scripts/long-test.sh CrashTests "PV_CRASH_KILLS=$(( (kills + 7) / 8 ))" "crash test:"
