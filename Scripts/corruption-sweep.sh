#!/usr/bin/env bash
# Corruption sweep: flips bytes of a small store's files, one trial per byte,
# with and without the checkpoint; each trial must give the right answer or
# a typed error (Tests/PatientVaultTests/Reliability/CorruptionSweepTests.swift).
#
#   ./Scripts/corruption-sweep.sh       # every byte, as .ci/run does
#   ./Scripts/corruption-sweep.sh 10    # every 10th byte
exec "$(dirname "$0")/long-test.sh" CorruptionSweepTests "PV_SWEEP_STRIDE=${1:-1}" "corruption sweep"
