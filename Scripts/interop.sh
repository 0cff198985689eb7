#!/usr/bin/env bash
# Interop: Go's reference code (golang.org/x/mod/sumdb/note and tlog, from
# Debian's packages) checks a store's signed checkpoints, receipts
# (tlog-proof@v1) and consistency proofs. Installs Go when missing.
#
#   ./Scripts/interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
Tests/Interop/build.sh "$work/tlogcheck"
PV_INTEROP_OUT="$work/input.json" swift test --skip-build --filter InteropExportTests >"$work/test.log" 2>&1 || {
    cat "$work/test.log" >&2
    exit 1
}
"$work/tlogcheck" "$work/input.json" >"$work/check.log"
echo "interop: $(grep -c '^ok' "$work/check.log") checks by Go's note and tlog passed"
