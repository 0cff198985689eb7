#!/bin/sh
# Builds Tests/Interop/tlogcheck (a Go verifier for PatientVault's
# transparency-log output) into the given path, offline, in GOPATH mode,
# against Debian's packaged golang.org/x/mod.
#
#   Tests/Interop/build.sh OUTPUT_PATH
#
# Needs: apt-get install golang-go golang-golang-x-mod-dev
# Override the GOPATH holding golang.org/x/mod with TLOGCHECK_GOPATH
# (default /usr/share/gocode, where golang-golang-x-mod-dev installs it).
set -eu

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTPUT_PATH" >&2
    exit 2
fi
out=$1
case $out in
    /*) ;;
    *) out=$(pwd)/$out ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
src=$here/tlogcheck

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' is not on PATH; install it with: apt-get install golang-go golang-golang-x-mod-dev" >&2
    exit 1
fi

gopath=${TLOGCHECK_GOPATH:-/usr/share/gocode}
for pkg in note tlog; do
    if [ ! -d "$gopath/src/golang.org/x/mod/sumdb/$pkg" ]; then
        echo "build.sh: $gopath/src/golang.org/x/mod/sumdb/$pkg is missing; install it with: apt-get install golang-golang-x-mod-dev (or set TLOGCHECK_GOPATH)" >&2
        exit 1
    fi
done

# A build cache the current user can write to.
cache=${GOCACHE:-}
if [ -z "$cache" ]; then
    cache=$(go env GOCACHE 2>/dev/null || true)
fi
if [ -z "$cache" ] || [ "$cache" = off ] || ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    cache=${TMPDIR:-/tmp}/tlogcheck-gocache
    mkdir -p "$cache"
fi

mkdir -p "$(dirname "$out")"
cd "$src"
# GOPATH mode: no go.mod, no module proxy, no toolchain download.
env GO111MODULE=off GOPATH="$gopath" GOCACHE="$cache" GOFLAGS= \
    GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -o "$out" .
echo "built $out ($(go version))"
