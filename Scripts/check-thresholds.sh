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
# Every [gate] benchmark has a committed threshold, and no threshold is stale.
listing=$(mktemp)
# A benchmark package that does not build lists nothing: say why.
if ! swift package benchmark list --filter '.*\[gate\]' >"$listing" 2>&1; then
    cat "$listing" >&2
    echo "allocation thresholds: the benchmarks do not build" >&2
    exit 1
fi
gates=$(grep -c '\[gate\]' "$listing" || true)
rm -f "$listing"
files=$(ls Thresholds/*.p90.json | wc -l)
if [ "$gates" -ne "$files" ]; then
    echo "allocation thresholds: $gates [gate] benchmarks but $files threshold files" >&2
    exit 1
fi
# The plugin's exit status is 1 for a regression and for an error alike, and
# improvements are not always reported as 4: read the verdict it prints.
output=$(mktemp)
set +e
swift package benchmark thresholds check --filter '.*\[gate\]' --metric mallocCountTotal --path "$layout" --no-progress 2>&1 | tee "$output"
set -e
checked=$(grep -c "is EQUAL to\|is BETTER than\|is WORSE than" "$output" || true)
if grep -q "is WORSE than" "$output"; then
    echo "allocation thresholds: regression" >&2
    exit 1
fi
if [ "$checked" -eq 0 ]; then
    echo "allocation thresholds: the check did not run" >&2
    exit 1
fi
echo "allocation thresholds: ok"
