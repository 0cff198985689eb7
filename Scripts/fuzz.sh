#!/usr/bin/env bash
# Fuzzes the decoders with libFuzzer for a bounded time: the Fuzz/ package
# (one binary; an input's first byte picks the decoder, see
# Fuzz/Sources/PatientVaultFuzz/FuzzTargets.swift), built with
# `-sanitize=fuzzer,address` in .build-fuzz, run over a copy of the
# committed corpus (Fuzz/Corpus/ does not grow). Prints the executions;
# fails on a crash (a trap, a memory error, an untyped error or a value that
# does not survive re-encoding), printing the input. First it checks that the
# committed corpus decodes as its file names say (PV_FUZZ_CHECK_CORPUS).
#
#   ./Scripts/fuzz.sh          # 60 s, as .ci/run does
#   ./Scripts/fuzz.sh 3600     # the long mode
#
# A crash input goes to .build-fuzz/artifacts/; replay it with
#   .build-fuzz/debug/PatientVaultFuzz <file>
# then commit it as Fuzz/Corpus/<selector>-<target>-crash-<n> with its
# regression test (Tests/PatientVaultTests/Reliability/FuzzRegressionTests.swift).
# The seeds are written by the binary itself:
#   PV_FUZZ_WRITE_SEEDS=Fuzz/Corpus .build-fuzz/debug/PatientVaultFuzz
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
./Scripts/setup.sh

build_log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$build_log" "$work"' EXIT
# ld.gold warns once per ASan helper it cannot export: only errors matter.
if ! swift build --package-path Fuzz --scratch-path .build-fuzz -c debug \
    -Xswiftc -sanitize=fuzzer,address >"$build_log" 2>&1; then
    grep -v "Cannot export local symbol" "$build_log" >&2
    exit 1
fi
binary=.build-fuzz/debug/PatientVaultFuzz
# The committed corpus first: every file decodes as its name says.
if ! PV_FUZZ_CHECK_CORPUS=Fuzz/Corpus SWIFT_BACKTRACE=enable=no "$binary" >"$build_log" 2>&1; then
    cat "$build_log" >&2
    echo "fuzzing: the committed corpus does not decode as its names say" >&2
    exit 1
fi

artifacts=.build-fuzz/artifacts
mkdir -p "$work/corpus" "$artifacts"
cp Fuzz/Corpus/* "$work/corpus/"
log="$work/fuzz.log"
status=0
# The Swift runtime's own backtracer is off: libFuzzer prints the stack.
SWIFT_BACKTRACE=enable=no "$binary" "$work/corpus" \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
if [ "$status" -ne 0 ] || grep -q "ERROR: libFuzzer\|ERROR: AddressSanitizer" "$log"; then
    # From the first report on: the error, its stack, the input.
    awk '/Fatal error|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|==ERROR/ { on = 1 } on' "$log" | grep -v "^#[0-9]" >&2
    echo "fuzzing: crash after ${runs:-?} executions (exit $status); input in $artifacts/" >&2
    exit 1
fi
if [ -z "$runs" ] || [ "$runs" -eq 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzzing: no execution" >&2
    exit 1
fi
echo "fuzzing: $runs executions in ${seconds} s ($rate/s), coverage ${coverage#cov: }, $(ls Fuzz/Corpus | wc -l) seeds, no crash"
