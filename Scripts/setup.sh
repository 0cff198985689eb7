#!/usr/bin/env bash
# Installs libsodium's development files and pkg-config when missing
# (Debian/Ubuntu), PostgreSQL 15 and openssl (the suite's run over the
# PostgreSQL engine, Scripts/postgres.sh), and with `--benchmarks` SQLite's
# too (the benchmarks' peer). Safe to run repeatedly.
set -euo pipefail
packages=()
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
pkg-config --exists libsodium 2>/dev/null || packages+=(libsodium-dev)
# The documentation-coverage check reads symbol graphs with python3.
command -v python3 >/dev/null 2>&1 || packages+=(python3)
[ -x /usr/lib/postgresql/15/bin/initdb ] || packages+=(postgresql-15)
command -v psql >/dev/null 2>&1 || packages+=(postgresql-client-15)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
if [ "${1:-}" = "--benchmarks" ]; then
    pkg-config --exists sqlite3 2>/dev/null || packages+=(libsqlite3-dev)
fi
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
pkg-config --exists libsodium
