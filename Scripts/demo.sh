#!/usr/bin/env bash
# Runs the demo: a store in a temporary folder, a vault, documents (one of
# 8 MiB, streamed), reads, listing, replacement, then a byte search of every
# file for the plaintexts written.
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift run -c release patientvault-demo
