#!/usr/bin/env bash
# Starts (or stops) a throwaway MariaDB on a free loopback port, for `make run` and the benchmark.
#
#   scripts/scratch-mariadb.sh start [--dir DIR] [--port N] [--set key=value ...] [--cnf FILE]
#       Creates DIR (default: a new mktemp dir), runs mariadb-install-db into DIR/data,
#       starts mariadbd in the background, waits until it accepts connections and
#       prints the port on stdout (everything else goes to stderr). Extra my.cnf
#       settings: --set key=value (repeatable, e.g. --set max_allowed_packet=64M)
#       and/or --cnf FILE (appended to the generated my.cnf).
#   scripts/scratch-mariadb.sh stop DIR
#       Stops the server started in DIR and removes DIR.
#
# Connect with: mariadb -h 127.0.0.1 -P PORT -u root   (no password)
# or over the socket DIR/mysqld.sock. The port is chosen below the kernel's
# ephemeral range so an outgoing connection cannot already hold it.
set -euo pipefail

log() { echo "scratch-mariadb: $*" >&2; }
die() {
  log "$*"
  exit 1
}

free_port() {
  local low _high port
  read -r low _high </proc/sys/net/ipv4/ip_local_port_range
  ((low > 11000)) || low=32768
  for _ in $(seq 1 200); do
    port=$((10000 + RANDOM % (low - 10000)))
    # Free when no socket at all (listening or connected) has it as its local port.
    # (ss comes with iproute2, which mariadb-server depends on.)
    if ! ss -Htan "sport = :$port" | grep . >/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

wait_ready() {
  local dir=$1 pid=$2
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/mysqld.err" >&2 || true
      die "mariadbd exited during start-up (log: $dir/mysqld.err)"
    fi
    if mariadb --no-defaults --protocol=socket -S "$dir/mysqld.sock" -u root \
      -e 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  die "mariadbd did not accept connections within 60 s (log: $dir/mysqld.err)"
}

start() {
  local dir="" port="" cnf_extra="" sets=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --set) sets+=("$2"); shift 2 ;;
      --cnf) cnf_extra=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ -n "$dir" ]] || dir=$(mktemp -d /tmp/sluice-mariadb.XXXXXX)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ ! -e "$dir/data" ]] || die "$dir/data already exists; stop that server first"
  [[ -n "$port" ]] || port=$(free_port)

  local user_opt=()
  [[ "$(id -u)" -ne 0 ]] || user_opt=(--user=root)

  {
    echo "[mysqld]"
    echo "datadir=$dir/data"
    echo "port=$port"
    echo "bind-address=127.0.0.1"
    echo "socket=$dir/mysqld.sock"
    echo "pid-file=$dir/mysqld.pid"
    echo "log-error=$dir/mysqld.err"
    echo "innodb-log-file-size=64M"
    echo "local-infile=1"
    for setting in "${sets[@]}"; do echo "$setting"; done
    [[ -z "$cnf_extra" ]] || cat "$cnf_extra"
  } >"$dir/my.cnf"

  log "initialising $dir/data"
  mariadb-install-db --defaults-file="$dir/my.cnf" "${user_opt[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
    {
      tail -n 30 "$dir/install.log" >&2
      die "mariadb-install-db failed (log: $dir/install.log)"
    }

  log "starting mariadbd on 127.0.0.1:$port"
  # setsid: Ctrl-C in the calling terminal must reach our trap, not kill the server
  # behind its back; the caller stops it explicitly with `stop`.
  setsid mariadbd --defaults-file="$dir/my.cnf" "${user_opt[@]}" </dev/null >>"$dir/mysqld.err" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/mariadbd.launcher.pid"
  wait_ready "$dir" "$pid"
  echo "$port" >"$dir/port"
  log "ready: mariadb -h 127.0.0.1 -P $port -u root   (dir: $dir)"
  echo "$port"
}

stop() {
  [[ $# -eq 1 ]] || die "usage: $0 stop DIR"
  local dir=$1 pid=""
  [[ -d "$dir" ]] || return 0
  if [[ -s "$dir/mysqld.pid" ]]; then
    pid=$(cat "$dir/mysqld.pid")
  elif [[ -s "$dir/mariadbd.launcher.pid" ]]; then
    pid=$(cat "$dir/mariadbd.launcher.pid")
  fi
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Only remove what this script created: a dir holding our marker files.
  if [[ -f "$dir/my.cnf" ]]; then
    rm -rf "$dir"
    log "stopped and removed $dir"
  else
    die "$dir does not look like a scratch MariaDB dir; not removing it"
  fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *)
    echo "usage: $0 start [--dir DIR] [--port N] [--set key=value ...] [--cnf FILE]" >&2
    echo "       $0 stop DIR" >&2
    exit 2
    ;;
esac
