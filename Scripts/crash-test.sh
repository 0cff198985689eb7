#!/usr/bin/env bash
# Crash test: kills the writer process with SIGKILL at random moments and
# checks every acknowledged operation after each reopen
# (Tests/PatientVaultTests/Reliability/CrashTests.swift). Prints the figures.
#
#   ./Scripts/crash-test.sh          # 200 kills, as .ci/run does
#   ./Scripts/crash-test.sh 5000     # the long mode
exec "$(dirname "$0")/long-test.sh" CrashTests "PV_CRASH_KILLS=${1:-200}" "crash test:"
