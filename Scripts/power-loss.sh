#!/usr/bin/env bash
# Power loss at every sync boundary of a workload (150 operations over three
# vaults: deposits, audited reads, grants, with segment growth and switch,
# key-file growth and checkpoints): the store's files rebuilt as a power
# loss leaves them, keeping only what was synced, then that plus a random
# subset of what was not, and each folder opened and checked.
#
#   ./Scripts/power-loss.sh        # every crash point (stride 1), as in CI
#   ./Scripts/power-loss.sh 16     # every 16th (the default of the suite)
set -euo pipefail
exec "$(dirname "$0")/long-test.sh" PowerLossTests "PV_POWERLOSS_STRIDE=${1:-1}" "power loss:"
