#!/usr/bin/env bash
# `make run`: installs, builds, and runs sluice in front of a scratch MariaDB (or the user's config).
#
#   scripts/run.sh                 scratch MariaDB on a free loopback port + sluice with
#                                  conf/sluice.yaml, upstream pointed at the scratch server
#   scripts/run.sh --config PATH   just sluice with the user's own config (no scratch DB)
#
# Ctrl-C stops sluice (it drains and exits) and the scratch server, and removes
# the scratch datadir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SLUICE=$BUILD_DIR/proxy/sluice
DEFAULT_CONFIG=$ROOT/conf/sluice.yaml

log() { echo "run: $*" >&2; }
die() {
  log "$*"
  exit 1
}

user_config=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) user_config=${2:-}; shift 2 ;;
    *) die "unknown option $1 (usage: $0 [--config PATH])" ;;
  esac
done

"$ROOT/scripts/deps.sh" run
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" --target sluice -j"$(nproc)"

if [[ -n "$user_config" ]]; then
  [[ -f "$user_config" ]] || die "no such config: $user_config"
  exec "$SLUICE" --config "$user_config"
fi

[[ -f "$DEFAULT_CONFIG" ]] || die "missing $DEFAULT_CONFIG"

# host:port of the first `listen:` under a top-level section of conf/sluice.yaml
# (a line-based read is enough for our own example file).
listen_of() {
  awk -v section="$1" '
    /^[A-Za-z_]/ { in_section = ($0 ~ "^" section ":") }
    in_section && /listen:/ {
      sub(/.*listen:[[:space:]]*/, ""); sub(/[[:space:]]*(#.*)?$/, ""); gsub(/["'\'']/, "")
      print; exit
    }' "$DEFAULT_CONFIG"
}
listen=$(listen_of listeners)
metrics_listen=$(listen_of metrics)
metrics_path=$(awk '/^metrics:/ {m=1; next} /^[A-Za-z_]/ {m=0} m && /path:/ {print $2; exit}' \
  "$DEFAULT_CONFIG")
listen=${listen:-127.0.0.1:6033}
metrics_listen=${metrics_listen:-127.0.0.1:9104}
metrics_path=${metrics_path:-/metrics}
listen_host=${listen%:*}
listen_port=${listen##*:}

scratch_dir=$(mktemp -d /tmp/sluice-run.XXXXXX)
sluice_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [[ -n "$sluice_pid" ]] && kill -0 "$sluice_pid" 2>/dev/null; then
    kill -TERM "$sluice_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$sluice_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$sluice_pid" 2>/dev/null || true
  fi
  "$ROOT/scripts/scratch-mariadb.sh" stop "$scratch_dir" || true
  # The dir is our own mktemp dir, so whatever a failed start left in it goes too.
  rm -rf "$scratch_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

db_port=$("$ROOT/scripts/scratch-mariadb.sh" start --dir "$scratch_dir" \
  --set max_allowed_packet=64M)

"$SLUICE" --config "$DEFAULT_CONFIG" --set "listeners.0.upstreams=[127.0.0.1:$db_port]" &
sluice_pid=$!

# Wait for the listening socket without connecting to it (a probe connection
# would show up in sluice's log and metrics as a session).
for _ in $(seq 1 100); do
  kill -0 "$sluice_pid" 2>/dev/null || die "sluice exited during start-up (see its log above)"
  if ss -Htln "sport = :$listen_port" 2>/dev/null | grep . >/dev/null; then break; fi
  sleep 0.1
done

cat >&2 <<EOF

  sluice is proxying a scratch MariaDB (127.0.0.1:$db_port, datadir $scratch_dir/data).

    mariadb -h $listen_host -P $listen_port -u root

  metrics: http://$metrics_listen$metrics_path

  Ctrl-C stops sluice and the scratch server and removes the datadir.

EOF

# `wait` returns early when a trapped signal arrives; the trap then exits and
# the EXIT trap cleans up.
set +e
wait "$sluice_pid"
status=$?
sluice_pid=""
exit "$status"
