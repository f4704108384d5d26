#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs to build (build), for `make run` (run), for its tests (test), or all;
# optional sets: docker (`make docker-test`), package (`make package`), package-test.
#
# Only what is missing is installed, so a machine that already has everything
# never touches the network; `apt-get update` runs only when something is missing.
set -euo pipefail

readonly BUILD_PACKAGES=(
  cmake g++ make pkg-config
  libuv1-dev libyaml-cpp-dev prometheus-cpp-dev doctest-dev zlib1g-dev
)
# clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes for `make fuzz`
# (Debian's clang package alone does not ship libclang_rt.fuzzer).
readonly TEST_PACKAGES=(
  mariadb-server mariadb-client libmariadb-dev mariadb-test sysbench
  prometheus openssl python3-pymysql
  clang libclang-rt-14-dev haproxy libbenchmark-dev procps
  liburing-dev # make bench's io_uring reference forwarder (tests/bench/uring_floor.c)
)

# `make run` needs a server to put sluice in front of, but none of the test tools.
readonly RUN_PACKAGES=(mariadb-server mariadb-client)

# `make docker-test` (optional, not in `all`): a debootstrap'ed base imported into podman,
# the image built with podman/buildah (chroot isolation, no Docker engine), compose
# validated with docker-compose, the image run in front of a scratch MariaDB.
# uidmap, fuse-overlayfs and slirp4netns are what podman needs when not run as root.
readonly DOCKER_PACKAGES=(
  debootstrap podman buildah docker-compose uidmap fuse-overlayfs slirp4netns
  jq curl mariadb-server mariadb-client
)
# `make package` (optional, not in `all`): CPack's DEB generator needs dpkg-shlibdeps
# (dpkg-dev) for Depends. `make package-test` also installs the package into a debootstrap
# root and boots it with systemd-nspawn (systemd-container), a scratch MariaDB behind it.
readonly PACKAGE_PACKAGES=(dpkg-dev)
readonly PACKAGE_TEST_PACKAGES=(
  dpkg-dev debootstrap systemd-container curl mariadb-server mariadb-client
)

usage() {
  echo "usage: $0 build|run|test|all|docker|package|package-test" >&2
  exit 2
}

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
}

[[ $# -eq 1 ]] || usage
case "$1" in
  build) wanted=("${BUILD_PACKAGES[@]}") ;;
  run) wanted=("${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}") ;;
  test) wanted=("${TEST_PACKAGES[@]}") ;;
  all) wanted=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  docker) wanted=("${DOCKER_PACKAGES[@]}") ;;
  package) wanted=("${BUILD_PACKAGES[@]}" "${PACKAGE_PACKAGES[@]}") ;;
  package-test) wanted=("${PACKAGE_TEST_PACKAGES[@]}") ;;
  *) usage ;;
esac

missing=()
for package in "${wanted[@]}"; do
  is_installed "$package" || missing+=("$package")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps.sh: nothing to install for '$1'"
  exit 0
fi

echo "deps.sh: installing ${missing[*]}"
# Packages like mariadb-server and prometheus start their service from postinst.
# Nothing here uses those services (tests start their own servers on free
# ports), so while installing, a policy-rc.d that refuses service starts is put
# in place (only if the machine has none) and removed afterwards.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap 'as_root rm -f "$policy"' EXIT
fi
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
# No recommends: everything needed is named above, and the tests start their
# own mariadbd, so the packaged service is never relied on.
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "${missing[@]}"
