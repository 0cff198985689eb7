#!/usr/bin/env bash
# Runs every benchmark (release build, package-benchmark), with the
# baselines and the SQLite peer in the same run.
#
#   ./Scripts/benchmarks.sh                 # everything
#   ./Scripts/benchmarks.sh --filter 'SQLite.*'
#
# The "open a store of 1M vaults" benchmark needs its fixture, built once
# outside the repository: (cd Benchmarks && swift run -c release pv-fixture)
# (about 7 minutes; $PV_FIXTURE, default /work/pv-fixture-1m). The seeds'
# week replays 240,090 vault creations ($PV_REPLAY_SCALE=0.1 for a tenth).
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh --benchmarks
cd Benchmarks
swift package benchmark --no-progress "$@"
