#!/usr/bin/env bash
# `make package-test`: installs the Debian package into a clean bookworm root and checks it.
#
#   scripts/package-test.sh [build-pkg/sluice_*.deb]
#
# The root is the cached debootstrap minbase (docker/bookworm-rootfs.sh) under a
# throw-away overlay, so every run starts from a clean system and the cache is never
# written. In it (chroot, host network shared):
#   - systemd is installed first, as on a real server, then `apt-get install ./sluice_*.deb`
#     must pull every runtime library from Debian by the package's Depends alone;
#   - sluice --version, sluice --check --config /etc/sluice/sluice.yaml (as root and as the
#     service user), the system user, the conffile, the enabled unit;
#   - `systemd-analyze verify` and `systemd-analyze security --offline` of the installed unit;
#   - the installed binary runs as user sluice, serves /metrics, drains on SIGTERM (exit 0);
#   - the root is booted with systemd-nspawn (if installed; NSPAWN=0 skips it): the
#     enabled unit starts at boot with its hardening, proxies a query to a MariaDB in the
#     container's network namespace, reloads on `systemctl reload`, drains on stop;
#   - a local edit of the conffile survives a reinstall; remove keeps it, purge deletes it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { echo "package-test: $*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

[[ "$(id -u)" -eq 0 ]] || die "needs root (chroot, mount)"
if [[ $# -ge 1 ]]; then
  deb=$1
else
  deb=$(ls -1t "$ROOT"/build-pkg/sluice_*.deb 2>/dev/null | head -n 1 || true)
fi
[[ -n "$deb" && -f "$deb" ]] || die "no package given and none in build-pkg/ (run: make package)"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
start=$SECONDS

# ---------------------------------------------------------------- the .deb itself
version=$(dpkg-deb -f "$deb" Version)
depends=$(dpkg-deb -f "$deb" Depends)
log "$(basename "$deb"): Version $version"
log "Depends: $depends"
dep_names=" $(echo "$depends" | tr ',' '\n' | awk '{print $1}' | tr '\n' ' ')"
for lib in libuv1 libyaml-cpp0.7 libprometheus-cpp-pull1.0 zlib1g adduser procps; do
  [[ "$dep_names" == *" $lib "* ]] || die "Depends lacks $lib"
done
dpkg-deb -c "$deb" | awk '{print $NF}' >"${TMPDIR:-/tmp}/sluice-pkg-files.$$"
for f in ./usr/bin/sluice ./etc/sluice/sluice.yaml ./lib/systemd/system/sluice.service; do
  grep -qx "$f" "${TMPDIR:-/tmp}/sluice-pkg-files.$$" || die "package lacks $f"
done
rm -f "${TMPDIR:-/tmp}/sluice-pkg-files.$$"
[[ "$(dpkg-deb -I "$deb" conffiles)" == /etc/sluice/sluice.yaml ]] || die "conffiles is not /etc/sluice/sluice.yaml"
log "package holds /usr/bin/sluice, /etc/sluice/sluice.yaml (conffile), /lib/systemd/system/sluice.service"

# ---------------------------------------------------------------- a clean root
"$ROOT/scripts/deps.sh" package-test >&2
rootfs=$("$ROOT/docker/bookworm-rootfs.sh")
work=$(mktemp -d /tmp/sluice-package-test.XXXXXX)
target=$work/root
mounts=()
sluice_pid=""
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [[ -n "$sluice_pid" ]] && kill -0 "$sluice_pid" 2>/dev/null; then
    kill -KILL "$sluice_pid" 2>/dev/null || true
  fi
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null || true
  done
  if [[ $rc -eq 0 ]]; then
    rm -rf "$work"
  else
    log "logs kept in $work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/upper" "$work/ovl-work" "$target"
if mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/ovl-work" "$target"; then
  mounts+=("$target")
else
  log "overlayfs unavailable; copying the root instead"
  cp -a "$rootfs/." "$target/"
fi
mount -t proc proc "$target/proc" && mounts+=("$target/proc")
mount --bind /dev "$target/dev" && mounts+=("$target/dev")
cp /etc/resolv.conf "$target/etc/resolv.conf"
# Nothing may start services inside the root.
printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
chmod 755 "$target/usr/sbin/policy-rc.d"
in_root() { chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
apt_in_root() {
  in_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

log "clean bookworm root at $target; installing systemd (as on a real server)"
apt_in_root update >"$work/apt-update.log" 2>&1 || { tail "$work/apt-update.log" >&2; die "apt-get update"; }
apt_in_root install systemd >"$work/apt-systemd.log" 2>&1 ||
  { tail -n 20 "$work/apt-systemd.log" >&2; die "installing systemd"; }
in_root dpkg-query -W libuv1 >/dev/null 2>&1 && die "the clean root already has libuv1"

cp "$deb" "$target/tmp/"
log "apt-get install ./$(basename "$deb")"
apt_in_root install "/tmp/$(basename "$deb")" >"$work/apt-sluice.log" 2>&1 ||
  { tail -n 30 "$work/apt-sluice.log" >&2; die "apt-get install of the package"; }
pulled=$(awk '/^The following NEW packages will be installed:/ {on=1; next} on && /^  / {printf "%s", $0; next} on {exit}' \
  "$work/apt-sluice.log" | tr -s ' ')
log "apt pulled:$pulled"
for lib in libuv1 libyaml-cpp0.7 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 libcivetweb1; do
  [[ " $pulled " == *" $lib "* ]] || die "apt did not pull $lib"
done

# ---------------------------------------------------------------- what got installed
got=$(in_root sluice --version)
[[ "$got" == "sluice ${version%-*}" ]] || die "sluice --version printed '$got'"
log "sluice --version: $got"
in_root sluice --check --config /etc/sluice/sluice.yaml >&2 || die "sluice --check as root"
in_root setpriv --reuid=sluice --regid=sluice --init-groups \
  sluice --check --config /etc/sluice/sluice.yaml >&2 || die "sluice --check as user sluice"
log "sluice --check --config /etc/sluice/sluice.yaml: ok as root and as user sluice"

IFS=: read -r _ _ uid gid _ home shell < <(in_root getent passwd sluice) || die "no user sluice"
((uid < 1000)) || die "user sluice has uid $uid, not a system uid"
[[ "$home" == /nonexistent && "$shell" == */nologin ]] || die "user sluice: home $home shell $shell"
log "system user sluice: uid $uid gid $gid home $home shell $shell"
perms=$(in_root stat -c '%U:%G %a' /etc/sluice /etc/sluice/sluice.yaml | tr '\n' ' ')
[[ "$perms" == "root:sluice 750 root:sluice 640 " ]] || die "/etc/sluice permissions: $perms"
log "/etc/sluice root:sluice 750, sluice.yaml root:sluice 640"
conffiles=$(in_root dpkg-query -W -f '${Conffiles}' sluice)
[[ "$conffiles" == *"/etc/sluice/sluice.yaml "* ]] || die "dpkg does not list the conffile: $conffiles"
link=$target/etc/systemd/system/multi-user.target.wants/sluice.service
[[ -L "$link" ]] || die "sluice.service is not enabled (no $link)"
log "conffile registered; sluice.service enabled (multi-user.target.wants)"

if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --root="$target" /lib/systemd/system/sluice.service >&2 ||
    die "systemd-analyze verify sluice.service"
  exposure=$(systemd-analyze security --offline=yes --root="$target" sluice.service 2>/dev/null |
    grep 'Overall exposure level' || true)
  log "systemd-analyze verify: ok; ${exposure#→ }"
else
  log "systemd-analyze not installed on this machine: unit not verified"
fi

# ---------------------------------------------------------------- it runs as its user
free_port() {
  local low _high port
  read -r low _high </proc/sys/net/ipv4/ip_local_port_range
  ((low > 11000)) || low=32768
  for _ in $(seq 1 200); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! ss -Htan "sport = :$port" | grep . >/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}
listen_port=$(free_port)
metrics_port=$(free_port)
[[ "$metrics_port" != "$listen_port" ]] || metrics_port=$(free_port)
# Not through in_root: $! must be sluice itself (chroot, env and setpriv all exec).
chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  setpriv --reuid=sluice --regid=sluice --init-groups --no-new-privs \
  sluice --config /etc/sluice/sluice.yaml --set "listeners.0.listen=127.0.0.1:$listen_port" \
  --set "metrics.listen=127.0.0.1:$metrics_port" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
ok=""
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null | grep -q '^sluice_build_info'; then
    ok=1
    break
  fi
  kill -0 "$sluice_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$ok" ]] || { cat "$work/sluice.log" >&2; die "installed sluice did not serve /metrics"; }
[[ "$(awk '/^Uid:/ {print $2}' /proc/"$sluice_pid"/status)" == "$uid" ]] || die "not running as sluice"
kill -TERM "$sluice_pid"
rc=0
wait "$sluice_pid" || rc=$?
sluice_pid=""
[[ $rc -eq 0 ]] || { cat "$work/sluice.log" >&2; die "SIGTERM: exit status $rc"; }
log "installed sluice ran as user sluice, served /metrics, drained on SIGTERM with exit 0"

# ---------------------------------------------------------------- under systemd
# This machine's PID 1 is not systemd, but systemd-nspawn can boot the root: the unit
# then runs for real, hardening (seccomp, NoNewPrivileges, ...) included, enabled by
# postinst. --private-network: its own loopback, so the default ports cannot collide.
if command -v systemd-nspawn >/dev/null && [[ "${NSPAWN:-1}" != 0 ]]; then
  for ((i = ${#mounts[@]} - 1; i >= 1; i--)); do umount "${mounts[$i]}"; done
  mounts=("${mounts[@]:0:1}")
  rm -f "$target/usr/sbin/policy-rc.d"
  echo sluice-package-test >"$target/etc/hostname"
  log "booting the root with systemd-nspawn"
  systemd-nspawn --register=no --keep-unit --private-network --console=passive -q \
    -D "$target" -b >"$work/nspawn.log" 2>&1 &
  nspawn_pid=$!
  init_pid=""
  for _ in $(seq 1 100); do
    init_pid=$(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null | awk '{print $1}' || true)
    [[ -z "$init_pid" ]] || break
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/nspawn.log" >&2; die "systemd-nspawn exited"; }
    sleep 0.1
  done
  [[ -n "$init_pid" ]] || die "systemd-nspawn started no init"
  in_box() { nsenter -t "$init_pid" -a "$@"; }
  box_db=""
  stop_box() {
    [[ -z "$box_db" ]] || nsenter -t "$init_pid" -n "$ROOT/scripts/scratch-mariadb.sh" stop "$box_db" 2>/dev/null || true
    box_db=""
    kill -TERM "$nspawn_pid" 2>/dev/null || true  # nspawn: SIGTERM = poweroff the container
    for _ in $(seq 1 300); do
      kill -0 "$nspawn_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
  }
  state=""
  for _ in $(seq 1 600); do
    state=$(in_box systemctl is-active sluice.service 2>/dev/null || true)
    [[ "$state" == active || "$state" == failed ]] && break
    sleep 0.1
  done
  if [[ "$state" != active ]]; then
    in_box journalctl -u sluice --no-pager >&2 || true
    stop_box
    die "sluice.service did not start at boot (state: $state)"
  fi
  main_pid=$(in_box systemctl show -P MainPID sluice.service)
  log "sluice.service started at boot (enabled by postinst): $(in_box ps -o user=,pid=,args= -p "$main_pid")"
  seccomp=$(in_box awk '/^(Seccomp|NoNewPrivs):/ {printf "%s%s ", $1, $2}' /proc/"$main_pid"/status)
  log "hardening in effect: $seccomp"
  box_db=$work/box-mariadb
  nsenter -t "$init_pid" -n "$ROOT/scripts/scratch-mariadb.sh" start --dir "$box_db" --port 3306 >/dev/null
  got=$(nsenter -t "$init_pid" -n mariadb --no-defaults -h 127.0.0.1 -P 6033 -u root --batch \
    --skip-column-names -e 'SELECT @@port' || true)
  [[ "$got" == 3306 ]] || { stop_box; die "query through the systemd-run sluice answered '$got'"; }
  log "query through sluice.service (127.0.0.1:6033 -> 127.0.0.1:3306) answered @@port=$got"
  in_box systemctl reload sluice.service
  reloads=""
  for _ in $(seq 1 50); do
    reloads=$(nsenter -t "$init_pid" -n curl -fsS http://127.0.0.1:9104/metrics |
      awk '$1 == "sluice_config_reloads_total{result=\"ok\"}" {print $2}')
    [[ "$reloads" != 1 ]] || break
    sleep 0.1
  done
  [[ "$reloads" == 1 ]] || { stop_box; die "systemctl reload: reloads_total{ok} = '$reloads'"; }
  log "systemctl reload: SIGHUP reloaded (sluice_config_reloads_total{result=\"ok\"} 1)"
  in_box systemctl stop sluice.service
  result=$(in_box systemctl show -P Result sluice.service)
  status=$(in_box systemctl show -P ExecMainStatus sluice.service)
  in_box journalctl -u sluice --no-pager -o cat >"$work/journal.log" 2>&1 || true
  stop_box
  [[ "$result" == success && "$status" == 0 ]] || die "systemctl stop: Result=$result status=$status"
  grep -q ' stopped' "$work/journal.log" || die "systemctl stop: no drain in the journal"
  log "systemctl stop: drained, Result=success, exit status 0"
  mount -t proc proc "$target/proc" && mounts+=("$target/proc")
  mount --bind /dev "$target/dev" && mounts+=("$target/dev")
  printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
  chmod 755 "$target/usr/sbin/policy-rc.d"
else
  log "systemd-nspawn not available (package systemd-container): the unit was not booted"
fi

# ---------------------------------------------------------------- conffile life cycle
echo "# local edit by package-test" >>"$target/etc/sluice/sluice.yaml"
apt_in_root install --reinstall "/tmp/$(basename "$deb")" >"$work/apt-reinstall.log" 2>&1 ||
  { tail -n 20 "$work/apt-reinstall.log" >&2; die "reinstall"; }
grep -q '^# local edit by package-test' "$target/etc/sluice/sluice.yaml" || die "reinstall lost the local edit"
apt_in_root remove sluice >"$work/apt-remove.log" 2>&1 || die "apt-get remove"
[[ ! -e "$target/usr/bin/sluice" && -f "$target/etc/sluice/sluice.yaml" ]] ||
  die "remove: binary should be gone and the conffile kept"
apt_in_root purge sluice >"$work/apt-purge.log" 2>&1 || die "apt-get purge"
[[ ! -e "$target/etc/sluice" ]] || die "purge left /etc/sluice"
[[ ! -e "$link" ]] || die "purge left the unit enabled"
log "local conffile edit survived a reinstall; remove kept it, purge removed /etc/sluice and the unit link"

log "all checks passed in $((SECONDS - start)) s"
echo "package-test: 1 passed, 0 failed"
