#!/usr/bin/env bash
# The test suite under AddressSanitizer (with LeakSanitizer) and
# ThreadSanitizer, each in its own build folder. The crash test is left out
# (it kills a child process on purpose; it runs unsanitised in .ci/run).
#
#   ./Scripts/sanitizers.sh            # both
#   ./Scripts/sanitizers.sh address    # one
#
# The corruption sweep and the power-loss test run here with fewer trials
# (every 149th byte, every 64th sync boundary) under AddressSanitizer, and
# not under ThreadSanitizer (one task each: nothing for it to find that the
# rest of the suite does not exercise); .ci/run runs them whole,
# unsanitised, in steps of their own.
#
# Suppressions are scoped, with the reason next to each:
#   Scripts/sanitizers/lsan.supp   leaks inside XCTest and Foundation themselves
#   Scripts/sanitizers/asan.supp   a read past a buffer inside Foundation's
#                                  Process.run (the vaultctl tests' children)
#   Scripts/sanitizers/tsan.supp   none: the project's locks are pthread
#                                  mutexes (VaultSync.Locked), which TSan sees,
#                                  not the uninstrumented Synchronization.Mutex
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
here=$(pwd)
export LSAN_OPTIONS="suppressions=$here/Scripts/sanitizers/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="suppressions=$here/Scripts/sanitizers/asan.supp:detect_leaks=1:halt_on_error=1"
export TSAN_OPTIONS="suppressions=$here/Scripts/sanitizers/tsan.supp:halt_on_error=1:report_signal_unsafe=0"
export PV_SWEEP_STRIDE=${PV_SWEEP_STRIDE:-149} PV_POWERLOSS_STRIDE=${PV_POWERLOSS_STRIDE:-64}
run() {
    local sanitizer=$1
    echo "== $sanitizer sanitizer"
    swift build --build-tests --scratch-path ".build-$sanitizer" -Xswiftc "-sanitize=$sanitizer" -Xswiftc -warnings-as-errors
    if [ "$sanitizer" = thread ]; then
        threadShards
    else
        swift test --skip-build --scratch-path ".build-$sanitizer" --skip CrashTests
    fi
}
# Under ThreadSanitizer, Swift Testing's own parallel run is slower on two
# cores than the same tests one at a time (every test's threads contend in
# the sanitizer's runtime: 372 s against 232 s, 2026-12-06). So two shards,
# each running its tests one at a time, run side by side from the test
# binary (two `swift test` would wait on each other's lock): VaultCtlTests
# alone (it starts dozens of sanitised vaultctl processes: half of the
# time, 85 s of 167 s), and the rest. Races inside each test (callers, the committer thread, the
# concurrent tasks a test starts) are what TSan sees either way.
threadShards() {
    local binary=".build-thread/debug/PatientVaultPackageTests.xctest"
    local skip='CrashTests|CorruptionSweepTests|PowerLossTests'
    local first='[.]VaultCtlTests/'
    local log; log=$(mktemp)
    "$binary" --testing-library swift-testing --no-parallel --skip "$skip" --filter "$first" >"$log" 2>&1 &
    local pid=$!
    local second=0 firstStatus=0
    "$binary" --testing-library swift-testing --no-parallel --skip "$skip|$first" || second=$?
    wait "$pid" || firstStatus=$?
    cat "$log"
    rm -f "$log"
    [ "$firstStatus" -eq 0 ] && [ "$second" -eq 0 ]
}
for s in "${@:-address thread}"; do
    for one in $s; do run "$one"; done
done
