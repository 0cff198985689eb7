#!/usr/bin/env bash
# The regression gate: runs the hot-path benchmarks marked [gate] and checks
# their allocation counts against the thresholds committed in
# Benchmarks/Thresholds/ (wall time is never gated: machines are noisy).
# Exits non-zero on a regression.
#
#   ./Scripts/check-thresholds.sh            # check
#   ./Scripts/check-thresholds.sh --update   # record new thresholds
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh --benchmarks
cd Benchmarks
if [ "${1:-}" = "--update" ]; then
    swift package --allow-writing-to-package-directory benchmark thresholds update \
        --filter '.*\[gate\]' --metric mallocCountTotal --path Thresholds --no-progress
    exit 0
fi
# `thresholds update` writes "Target.Group_name_with_underscores.p90.json"
# but `thresholds check` (benchmark 1.38) looks for the raw benchmark name
# ("Target.Group/name with spaces.p90.json"): lay the committed files out
# under the raw names. Benchmark names here contain no underscores.
layout=$(mktemp -d)
trap 'rm -rf "$layout"' EXIT
for f in Thresholds/*.p90.json; do
    base=$(basename "$f")
    target=${base%%.*}
    rest=${base#*.}
    group=${rest%%_*}
    name=${rest#*_}
    mkdir -p "$layout/$target.$group"
    cp "$f" "$layout/$target.$group/${name//_/ }"
done
set +e
swift package benchmark thresholds check --filter '.*\[gate\]' --metric mallocCountTotal --path "$layout" --no-progress
status=$?
set -e
# 0: as recorded; 4: only improvements. Anything else is a regression or an error.
if [ $status -ne 0 ] && [ $status -ne 4 ]; then
    echo "allocation thresholds: regression or error (exit $status)" >&2
    exit 1
fi
echo "allocation thresholds: ok"
