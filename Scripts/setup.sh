#!/usr/bin/env bash
# Installs libsodium's development files and pkg-config when missing
# (Debian/Ubuntu). Safe to run repeatedly.
set -euo pipefail
if pkg-config --exists libsodium 2>/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq libsodium-dev pkg-config >/dev/null
pkg-config --exists libsodium
