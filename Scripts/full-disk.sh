#!/usr/bin/env bash
# A real full disk: a 48 MiB ext4 image, loop-mounted, that a store fills
# with deposits; reads must then go on from the audit reserve and never stop
# the store (FullDiskTests.readsGoOnWhenARealDiskIsFull). The unit suite
# simulates a full disk through fault injection; this finds what no
# injection site covers. Needs root (mount); says so and skips without it.
#
#   ./Scripts/full-disk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
skip() { echo "full disk: skipped ($1)"; exit 0; }
[ "$(id -u)" = 0 ] || skip "mounting a loop device needs root"
command -v mkfs.ext4 >/dev/null || skip "no mkfs.ext4"
image=$(mktemp /tmp/pv-full-disk.XXXXXX)
mountpoint=$(mktemp -d /tmp/pv-full-disk-mount.XXXXXX)
cleanup() { umount "$mountpoint" 2>/dev/null || true; rm -rf "$mountpoint" "$image"; }
trap cleanup EXIT
truncate -s 48M "$image"
mkfs.ext4 -q -F "$image"
mount -o loop "$image" "$mountpoint" || skip "no loop device"
./Scripts/long-test.sh "readsGoOnWhenARealDiskIsFull" "PV_FULL_DISK_DIR=$mountpoint" "full disk:"
