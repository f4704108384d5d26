#!/usr/bin/env bash
# Benchmark: direct MariaDB vs HAProxy (TCP mode) vs a bare forwarder vs sluice, one command.
#
#   tests/bench/run.sh                 (`make bench`)
#
# Builds sluice (Release, in build-bench/ unless SLUICE_BIN is set), the framer
# micro-benchmark, ../shared/bench/floorproxy.c and its io_uring twin uring_floor.c, starts a
# scratch MariaDB on a free loopback port, prepares sysbench tables, starts HAProxy, the bare
# forwarder ("floor"), the same on io_uring ("floor-uring") and sluice (one instance per
# workers count) in front of it, then runs interleaved rounds
# (every target once per round per workload, order rotated) of:
#   ps1   sysbench oltp_point_select, 1 thread        ps16  the same, 16 threads
#   rw8   sysbench oltp_read_write, 8 threads          blob  64 MiB INSERT + SELECT (blob_client.c,
#                                                            Connector/C, bytes compared)
# measuring QPS, p95 latency, the proxy's CPU per query (utime+stime from /proc/PID/stat
# over the run ÷ queries), per blob CPU and peak RSS; then the idle-sessions memory test
# (IDLE_N sessions held open through each proxy) and the framer micro-benchmark.
# Prints a markdown table (medians over rounds, ratios vs direct / HAProxy / floor, the
# issue-6 targets met or missed) and writes it to tests/bench/results/latest.md (+ .json
# with every raw run). Everything started is stopped and the datadir removed on exit,
# including Ctrl-C. Exit status: 0 ok, 1 a step failed (the report says which), 130 interrupted.
#
# Knobs (environment):
#   BENCH_SECONDS=15      seconds per sysbench run
#   ROUNDS=3              interleaved rounds
#   SLUICE_WORKERS="1 2"  one sluice target per value (sluice-w1, sluice-w2)
#   TARGETS="direct haproxy floor floor-uring sluice-w1 sluice-w2 sluice-nometrics-w1"
#                         (default derived from SLUICE_WORKERS; floor-uring needs liburing-dev)
#   WORKLOADS="ps1 ps16 rw8 blob"
#   PARTS="micro sysbench blob idle counters"   which parts run (e.g. PARTS=micro for the framer
#                         only; counters = tests/bench/cpu_counters.sh, cycles and instructions
#                         per query from perf stat, appended to the results file; needs linux-perf)
#   TABLES=4 TABLE_SIZE=10000          sysbench data set
#   BLOB_MB=64 BLOB_REPEAT=3           blob size and inserts+selects per run
#   IDLE_N=9000 IDLE_TARGETS="sluice-w1 haproxy floor" IDLE_THREADS=8  idle-sessions test
#   IDLE_FRESH=1          restart each proxy just before its idle test (0: measure as is)
#   MICRO_MIN_TIME=0.5    Google Benchmark min time per micro-benchmark (seconds)
#   SLUICE_BIN=path       benchmark this sluice binary instead of building one
#   SLUICE_NOMETRICS_BIN=path  the -DSLUICE_METRICS=OFF build for target sluice-nometrics-wN
#                         (default: built in BUILD_DIR-nometrics); it shows what counting costs
#   BUILD_DIR=build-bench build tree (relative to the repo root)
#   RESULTS=path          markdown output (default tests/bench/results/latest.md)
#   KEEP_WORKDIR=1        keep the scratch dir (logs, configs) for a post-mortem
#
# Duration with the defaults: ~20 min (5 targets x 4 workloads x 3 rounds, ~17 s each, plus
# build, idle test and micro-benchmark). CPU is read at ns resolution from
# /proc/PID/task/*/schedstat (the same utime+stime, not rounded to 10 ms ticks). The scratch
# server runs with innodb_flush_log_at_trx_commit=2 and no doublewrite/binlog: durability work
# is the same for every target and only adds noise. Needs: cmake, cc, /usr/bin/python3 with
# python3-pymysql, mariadb-server, libmariadb-dev, sysbench, haproxy, libbenchmark-dev.
#
# Quick smoke run: BENCH_SECONDS=5 ROUNDS=1 IDLE_N=500 tests/bench/run.sh   (~2.5 min)
# Idle-sessions test alone: tests/bench/idle_sessions.sh [N]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
SHARED=${SHARED:-$ROOT/../shared}
BUILD_DIR=${BUILD_DIR:-build-bench}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
PY=/usr/bin/python3 # Debian's python, where python3-pymysql lives
PARTS=${PARTS:-micro sysbench blob idle counters}
export PARTS

log() { echo "[bench] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for tool in cmake cc "$PY" mariadbd mariadb-install-db sysbench haproxy timeout; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install cmake gcc python3 python3-pymysql mariadb-server libmariadb-dev sysbench haproxy libbenchmark-dev)"
done
"$PY" -c 'import pymysql' 2>/dev/null || die "PyMySQL missing for $PY (apt-get install python3-pymysql)"
[[ -f "$SHARED/bench/floorproxy.c" ]] || die "no $SHARED/bench/floorproxy.c (set SHARED=dir holding bench/floorproxy.c)"

# Proxies need two fds per session: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || log "warning: could not raise the fd limit ($(ulimit -n))"

# ---- build
mkdir -p "$BUILD_DIR"
configure() { # configure FLAGS...: quiet unless it fails
  timeout 600 cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >"$BUILD_DIR/bench-configure.log" 2>&1
}
targets=()
if [[ -z "${SLUICE_BIN:-}" ]]; then targets+=(sluice); fi
if [[ " $PARTS " == *" micro "* ]]; then
  # framer_bench lives under tests/, so the tests tree must configure too; if it does not (a
  # test being edited), the proxy benchmark still runs, without the micro-benchmark.
  if configure -DSLUICE_TESTS=ON -DSLUICE_BENCH=ON; then
    targets+=(framer_bench)
  else
    tail -n 15 "$BUILD_DIR/bench-configure.log" >&2
    log "warning: configuring with -DSLUICE_TESTS=ON -DSLUICE_BENCH=ON failed; skipping the framer micro-benchmark"
    PARTS=${PARTS//micro/}
  fi
fi
if ((${#targets[@]})); then
  [[ " ${targets[*]} " == *" framer_bench "* ]] || configure -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF ||
    { tail -n 30 "$BUILD_DIR/bench-configure.log" >&2; die "cmake configure failed (log: $BUILD_DIR/bench-configure.log)"; }
  log "building ${targets[*]} in $BUILD_DIR"
  timeout 1800 cmake --build "$BUILD_DIR" --target "${targets[@]}" -j"$(nproc)" >&2 ||
    die "build failed"
fi
SLUICE_BIN=${SLUICE_BIN:-$BUILD_DIR/proxy/sluice}
# The same proxy with metric counting compiled out, to measure what counting costs.
NOMETRICS_DIR="$BUILD_DIR-nometrics"
if [[ -z "${SLUICE_NOMETRICS_BIN:-}" ]]; then
  log "building sluice with -DSLUICE_METRICS=OFF in $NOMETRICS_DIR"
  timeout 600 cmake -S "$ROOT" -B "$NOMETRICS_DIR" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF \
    -DSLUICE_METRICS=OFF >"$BUILD_DIR/bench-configure-nometrics.log" 2>&1 &&
    timeout 1800 cmake --build "$NOMETRICS_DIR" --target sluice -j"$(nproc)" >&2 ||
    die "build of the metrics-off sluice failed (log: $BUILD_DIR/bench-configure-nometrics.log)"
fi
SLUICE_NOMETRICS_BIN=$(realpath "${SLUICE_NOMETRICS_BIN:-$NOMETRICS_DIR/proxy/sluice}")
[[ -x "$SLUICE_BIN" ]] || die "no sluice binary at $SLUICE_BIN"
SLUICE_BIN=$(realpath "$SLUICE_BIN")
mkdir -p "$BUILD_DIR"
cc -O2 -o "$BUILD_DIR/floorproxy" "$SHARED/bench/floorproxy.c" || die "cannot build floorproxy"
# What batching system calls through io_uring would buy a forwarder (not sluice's I/O model).
URING_FLOOR=""
if cc -O2 -Wall -o "$BUILD_DIR/uring_floor" "$HERE/uring_floor.c" -luring 2>"$BUILD_DIR/uring_floor.log"; then
  URING_FLOOR=$BUILD_DIR/uring_floor
else
  log "warning: cannot build uring_floor.c (apt-get install liburing-dev); no floor-uring target"
fi
export URING_FLOOR
command -v mariadb_config >/dev/null || die "mariadb_config not found (apt-get install libmariadb-dev)"
# shellcheck disable=SC2046 # word splitting of the flags is intended
cc -O2 -Wall -o "$BUILD_DIR/blob_client" "$HERE/blob_client.c" $(mariadb_config --cflags --libs) ||
  die "cannot build blob_client"

# ---- run (the driver owns every process it starts; this shell owns the work dir)
WORKDIR=$(mktemp -d /tmp/sluice-bench.XXXXXX)
driver=""
# shellcheck disable=SC2317 # reached through the trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$driver" 2>/dev/null || break; sleep 0.3; done
    kill -KILL "$driver" 2>/dev/null || true
  fi
  if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then
    log "work dir kept: $WORKDIR"
  else
    rm -rf "$WORKDIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Background + wait, so a TERM to this shell reaches the trap (and the driver) at once.
"$PY" "$HERE/bench.py" --workdir "$WORKDIR" --repo "$ROOT" --sluice "$SLUICE_BIN" \
  --sluice-nometrics "$SLUICE_NOMETRICS_BIN" \
  --floor "$BUILD_DIR/floorproxy" --floor-uring "$URING_FLOOR" --framer-bench "$BUILD_DIR/tests/bench/framer_bench" \
  --blob-client "$BUILD_DIR/blob_client" \
  --results "${RESULTS:-$HERE/results/latest.md}" &
driver=$!
set +e
wait "$driver"
rc=$?
set -e
driver=""
if ((rc == 0)) && [[ " $PARTS " == *" counters "* ]]; then
  if command -v perf >/dev/null; then
    log "hardware counters (tests/bench/cpu_counters.sh)"
    { echo; SLUICE_BIN="$SLUICE_BIN" SHARED="$SHARED" "$HERE/cpu_counters.sh" | sed 's/^# /## /'; } |
      tee -a "${RESULTS:-$HERE/results/latest.md}" || log "warning: cpu_counters.sh failed"
  else
    log "perf not found: hardware counters skipped (apt-get install linux-perf)"
  fi
fi
exit "$rc"
