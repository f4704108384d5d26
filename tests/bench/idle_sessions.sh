#!/usr/bin/env bash
# Idle-sessions memory test alone: N concurrent idle sessions through sluice, HAProxy and the
# bare forwarder; reports each proxy's RSS in MiB and KiB per session.
#
#   tests/bench/idle_sessions.sh [N]      (default N: $IDLE_N or 9000)
#
# Same machinery and knobs as run.sh (IDLE_TARGETS, IDLE_THREADS, SLUICE_BIN, ...); writes
# tests/bench/results/idle.md unless RESULTS is set. A process here is capped at 20,000 fds
# and a proxy needs two per session, so N can go up to about 9,900.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export IDLE_N=${1:-${IDLE_N:-9000}}
export PARTS=idle
export SLUICE_WORKERS=${SLUICE_WORKERS:-1}
export RESULTS=${RESULTS:-$HERE/results/idle.md}
exec "$HERE/run.sh"
