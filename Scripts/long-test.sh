#!/usr/bin/env bash
# Runs one long test suite with a setting from the environment and prints
# its figures: the shared body of crash-test.sh and corruption-sweep.sh.
#
#   ./Scripts/long-test.sh <suite filter> <VARIABLE=value> <line to print>
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
# The same flags as Scripts/test.sh, so that after it this build is a no-op.
swift build --build-tests --traits Postgres -Xswiftc -warnings-as-errors
log=$(mktemp)
trap 'rm -f "$log"' EXIT
env "$2" swift test --skip-build --filter "$1" >"$log" 2>&1 || { cat "$log"; exit 1; }
grep "$3" "$log"
