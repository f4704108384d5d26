#!/usr/bin/env bash
# CPU cycles and instructions per query, user and kernel apart, from the hardware counters
# (perf stat): sluice vs the bare forwarder vs HAProxy on the same sysbench point selects,
# interleaved, medians over rounds. Cycle counts of a process do not include time spent waiting
# for the CPU, so on a shared machine they vary far less than utime+stime per query does; they
# show where a proxy's cost is (user space vs the kernel's TCP work).
#
# Usage: tests/bench/cpu_counters.sh   (ROUNDS=5 QUERIES=30000 THREADS="1 16"; builds into
# build-bench unless SLUICE_BIN is given; WORKERS=1). Needs linux-perf, and
# kernel.perf_event_paranoid <= 1 for kernel counts (set for the run when root, restored after).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
ROUNDS=${ROUNDS:-5}
QUERIES=${QUERIES:-30000}
THREADS=${THREADS:-1 16}
WORKERS=${WORKERS:-1}
log() { echo "[cpu-counters] $*" >&2; }
for tool in perf sysbench haproxy mariadbd mariadb-install-db cc; do
  command -v "$tool" >/dev/null || { log "$tool not found (apt-get install linux-perf sysbench haproxy mariadb-server gcc)"; exit 1; }
done
# A VM without a virtual PMU has no hardware counters: perf stat says "<not supported>".
if perf stat -x, -e cycles:u,instructions:u true 2>&1 >/dev/null | grep -q "not supported"; then
  log "no hardware counters on this machine (perf stat: cycles and instructions not supported)"
  echo "# CPU counters per point select: not measured"
  echo
  echo "This machine has no hardware performance counters (perf stat reports cycles and"
  echo "instructions as not supported, as in a VM without a virtual PMU): the CPU targets"
  echo "rest on the utime+stime figures above."
  exit 0
fi
if [[ -z "${SLUICE_BIN:-}" ]]; then
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-bench" --target sluice -j"$(nproc)" >/dev/null
  SLUICE_BIN=$ROOT/build-bench/proxy/sluice
fi

WORK=$(mktemp -d /tmp/sluice-cpu-counters.XXXXXX)
PARANOID=$(cat /proc/sys/kernel/perf_event_paranoid)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$(cat "$WORK/db.pid" 2>/dev/null)" 2>/dev/null || true
  [[ "$(cat /proc/sys/kernel/perf_event_paranoid)" == "$PARANOID" ]] ||
    echo "$PARANOID" >/proc/sys/kernel/perf_event_paranoid 2>/dev/null || true
  sleep 1
  [[ -n "${KEEP:-}" ]] && cp "$WORK/runs" /tmp/cpu_counters.runs; rm -rf "$WORK"
}
trap cleanup EXIT
EVENTS=instructions:u,cycles:u,instructions:k,cycles:k
if ((PARANOID > 1)); then
  if ! echo 1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null; then
    log "kernel.perf_event_paranoid is $PARANOID and cannot be lowered: user-space counts only"
    EVENTS=instructions:u,cycles:u
  fi
fi

wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# ---- a scratch MariaDB with sysbench's table
. "$(dirname "${BASH_SOURCE[0]}")/scratch_db.sh"
start_scratch_db --max-connections=200

# ---- the three proxies
declare -A PORT PID
cc -O2 -o "$WORK/floorproxy" "$SHARED/bench/floorproxy.c"
PORT[sluice]=$(free_port)
"$SLUICE_BIN" --config "$ROOT/conf/sluice.yaml" --set workers="$WORKERS" --set log.level=warn \
  --set metrics.listen=127.0.0.1:0 --set "listeners.0.listen=127.0.0.1:${PORT[sluice]}" \
  --set "listeners.0.upstreams=[127.0.0.1:$DB_PORT]" 2>"$WORK/sluice.log" &
PID[sluice]=$!
PORT[floor]=$(free_port)
"$WORK/floorproxy" "${PORT[floor]}" "$DB_PORT" &
PID[floor]=$!
PORT[haproxy]=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen db
  bind 127.0.0.1:${PORT[haproxy]}
  server s1 127.0.0.1:$DB_PORT
EOF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PID[haproxy]=$!
PIDS=("${PID[@]}")
for t in sluice floor haproxy; do wait_port "${PORT[$t]}" || { log "$t did not start"; exit 1; }; done

# ---- interleaved rounds; one line per run: threads target cycles_u cycles_k insn_u insn_k (per query)
for threads in $THREADS; do
  q=$QUERIES
  ((threads > 1)) && q=$((QUERIES * 3))
  for r in $(seq "$ROUNDS"); do
    # Each target takes each place in the order in turn: on this VM the run
    # that comes first in a round has been seen to get the host's slow mode
    # (kernel cycles doubled) more often than the others.
    order=(sluice floor haproxy)
    shift_by=$((r % 3))
    for t in "${order[@]:shift_by}" "${order[@]:0:shift_by}"; do
      perf stat -x, -e "$EVENTS" -p "${PID[$t]}" -o "$WORK/stat" &
      ps=$!
      sleep 0.2
      "${SB[@]}" --mysql-port="${PORT[$t]}" --threads="$threads" --events="$q" --time=0 run >/dev/null
      kill -INT "$ps"
      wait "$ps" || true
      awk -F, -v t="$t" -v q="$q" -v th="$threads" '
        /instructions:u/ {iu=$1} /instructions:k/ {ik=$1} /cycles:u/ {cu=$1} /cycles:k/ {ck=$1}
        END {printf "%s %s %d %d %d %d\n", th, t, cu/q, ck/q, iu/q, ik/q}' "$WORK/stat" >>"$WORK/runs"
    done
    log "threads $threads round $r done"
  done
done

/usr/bin/python3 - "$WORK/runs" "$SLUICE_BIN" "$EVENTS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
kernel = ":k" in sys.argv[3]
verdicts = []
print(f"# CPU counters per point select ({sys.argv[2]}; medians of interleaved runs)\n")
print("| threads | target | cycles | user | kernel | ÷ floor | ÷ HAProxy | instructions | user | kernel |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for th in sorted({r[0] for r in rows}, key=int):
    med = {}
    for t in ("sluice", "floor", "haproxy"):
        runs = [list(map(int, r[2:])) for r in rows if r[0] == th and r[1] == t]
        med[t] = [statistics.median(col) for col in zip(*runs)]
    for t in ("sluice", "floor", "haproxy"):
        cu, ck, iu, ik = med[t]
        total = lambda m: m[0] + (m[1] if kernel else 0)
        itotal = iu + (ik if kernel else 0)
        k = lambda v: f"{v:,.0f}" if kernel else "–"
        print(f"| {th} | {t} | {total(med[t]):,.0f} | {cu:,.0f} | {k(ck)} | {total(med[t]) / total(med['floor']):.2f} | "
              f"{total(med[t]) / total(med['haproxy']):.2f} | {itotal:,.0f} | {iu:,.0f} | {k(ik)} |")
    least = {t: min(int(r[2]) + int(r[3]) for r in rows if r[0] == th and r[1] == t) for t in med}
    verdicts.append((th, med, least))
if kernel:
    # The issue's CPU targets, judged on cycles: a process's cycle count leaves out the time it
    # waited for the CPU, which is what makes utime+stime per query swing between runs here.
    # Other tenants still add cycles (this VM's kernel cycles per query double for seconds at a
    # time, instruction counts unchanged), and only ever add: the verdict takes each target's
    # least-disturbed run, its fewest cycles; the medians' ratio is beside it.
    print("\n## CPU targets on cycles per query\n")
    print("| threads | check | fewest cycles | verdict | medians |")
    print("|---:|---|---:|---|---:|")
    for th, med, least in verdicts:
        cycles = {t: med[t][0] + med[t][1] for t in med}
        for label, ref, limit in (("sluice ≤ 1.05 × floor", "floor", 1.05),
                                  ("sluice ≤ 0.85 × HAProxy", "haproxy", 0.85)):
            r = least["sluice"] / least[ref]
            print(f"| {th} | {label} | {r:.3f}× | {'met' if r <= limit else '**missed**'} | "
                  f"{cycles['sluice'] / cycles[ref]:.3f}× |")
EOF
