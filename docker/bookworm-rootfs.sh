#!/usr/bin/env bash
# Makes (once) a minimal Debian 12 root filesystem with debootstrap, cached between runs,
# for `make docker-test` (imported into podman as the image's base) and
# `make package-test` (a clean system to install the .deb into).
#
#   docker/bookworm-rootfs.sh [DIR]      prints DIR (default: <repo>/.cache/bookworm-rootfs)
#
# DIR is only ever used read-only afterwards (copied, imported, or as an overlay's lower
# layer), so one download serves every later run. REFRESH=1 rebuilds it;
# DEBIAN_MIRROR=URL picks the mirror (default: this machine's bookworm mirror).
# Its apt sources match the debian:bookworm-slim image: bookworm, bookworm-updates and
# bookworm-security.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.cache/bookworm-rootfs}
STAMP=$DIR/.sluice-rootfs-complete

log() { echo "bookworm-rootfs: $*" >&2; }
die() {
  log "$*"
  exit 1
}

[[ "$(id -u)" -eq 0 ]] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap missing: scripts/deps.sh docker"

# The mirror this machine's own apt uses for bookworm (deb822 or one-line format).
host_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u != "" {print u; exit}' "$f")
    [[ -z "$uri" ]] || break
  done
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9  # two make targets may want it at once: the second waits, then reuses it

if [[ -f "$STAMP" && "${REFRESH:-0}" != 1 ]]; then
  echo "$DIR"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-$(host_mirror)}
security=${DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}
tmp=$DIR.new
rm -rf "$tmp"
log "debootstrap --variant=minbase bookworm from $mirror (once; cached in $DIR)"
start=$SECONDS
debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$tmp.log" 2>&1 || {
  tail -n 30 "$tmp.log" >&2
  die "debootstrap failed (log: $tmp.log)"
}
rm -f "$tmp/etc/apt/sources.list"
cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/log/*.log "$tmp"/var/cache/debconf/*-old
date -u +%Y%m%dT%H%M%SZ >"$tmp/.sluice-rootfs-complete"
rm -rf "$DIR"
mv "$tmp" "$DIR"
rm -f "$tmp.log"
log "done in $((SECONDS - start)) s: $DIR ($(du -sh "$DIR" | cut -f1))"
echo "$DIR"
