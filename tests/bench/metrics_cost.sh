#!/usr/bin/env bash
# What counting metrics costs per query, in instructions (valgrind callgrind), which unlike CPU
# time is stable on a shared machine: the same sysbench point-select run through a normal sluice
# and through one built with -DSLUICE_METRICS=OFF, instructions per query compared.
#
# Usage: tests/bench/metrics_cost.sh  (QUERIES=20000; builds into build-bench and
# build-bench-nometrics unless SLUICE_BIN / SLUICE_NOMETRICS_BIN are given)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QUERIES=${QUERIES:-20000}
log() { echo "[metrics-cost] $*" >&2; }
for tool in valgrind sysbench mariadbd mariadb-install-db; do
  command -v "$tool" >/dev/null || { log "$tool not found"; exit 1; }
done
build() { # build DIR METRICS
  cmake -S "$ROOT" -B "$1" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_METRICS="$2" >/dev/null
  cmake --build "$1" --target sluice -j"$(nproc)" >/dev/null
}
if [[ -z "${SLUICE_BIN:-}" ]]; then build "$ROOT/build-bench" ON; SLUICE_BIN=$ROOT/build-bench/proxy/sluice; fi
if [[ -z "${SLUICE_NOMETRICS_BIN:-}" ]]; then
  build "$ROOT/build-bench-nometrics" OFF; SLUICE_NOMETRICS_BIN=$ROOT/build-bench-nometrics/proxy/sluice
fi
WORK=$(mktemp -d /tmp/sluice-metrics-cost.XXXXXX)
cleanup() { kill "$(cat "$WORK/db.pid" 2>/dev/null)" 2>/dev/null || true; sleep 1; rm -rf "$WORK"; }
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/scratch_db.sh"
start_scratch_db

measure() { # measure BINARY -> instructions per query
  local port mport out
  port=$(free_port); mport=$(free_port); out="$WORK/cg.$RANDOM"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --config "$ROOT/conf/sluice.yaml" \
    --set workers=1 --set log.level=warn --set "metrics.listen=127.0.0.1:$mport" \
    --set "listeners.0.listen=127.0.0.1:$port" --set "listeners.0.upstreams=[127.0.0.1:$DB_PORT]" \
    2>"$out.log" &
  local pid=$!
  for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.2; done
  "${SB[@]}" --mysql-port="$port" --threads=1 --events="$QUERIES" --time=0 run >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  local total
  total=$(grep -m1 '^summary:' "$out" | awk '{print $2}')
  echo $((total / QUERIES))
}
on=$(measure "$SLUICE_BIN")
off=$(measure "$SLUICE_NOMETRICS_BIN")
log "instructions per query: metrics on $on, off $off"
/usr/bin/python3 -c "print(f'metrics cost: {($on - $off) / $off * 100:.2f}% instructions per query ({$on} vs {$off}, $QUERIES point selects, 1 thread)')"
