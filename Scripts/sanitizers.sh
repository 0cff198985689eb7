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
run() {
    local sanitizer=$1
    echo "== $sanitizer sanitizer"
    swift build --build-tests --scratch-path ".build-$sanitizer" -Xswiftc "-sanitize=$sanitizer" -Xswiftc -warnings-as-errors
    LSAN_OPTIONS="suppressions=$here/Scripts/sanitizers/lsan.supp:print_suppressions=0" \
    ASAN_OPTIONS="suppressions=$here/Scripts/sanitizers/asan.supp:detect_leaks=1:halt_on_error=1" \
    TSAN_OPTIONS="suppressions=$here/Scripts/sanitizers/tsan.supp:halt_on_error=1:report_signal_unsafe=0" \
    PV_SWEEP_STRIDE=${PV_SWEEP_STRIDE:-149} PV_POWERLOSS_STRIDE=${PV_POWERLOSS_STRIDE:-64} \
        swift test --skip-build --scratch-path ".build-$sanitizer" --skip CrashTests $(skipped "$sanitizer")
}
skipped() { [ "$1" = thread ] && echo "--skip CorruptionSweepTests --skip PowerLossTests" || true; }
for s in "${@:-address thread}"; do
    for one in $s; do run "$one"; done
done
