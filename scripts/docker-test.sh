#!/usr/bin/env bash
# `make docker-test`: proves docker/ on a machine without a Docker engine.
#
#   1. validates docker/compose.yaml with Debian's docker-compose (and the Prometheus and
#      Grafana files it mounts);
#   2. debootstraps a minimal bookworm once (cached in .cache/bookworm-rootfs) and
#      `podman import`s it as the base image;
#   3. `podman build --network=host --isolation=chroot` docker/Dockerfile against it
#      (layers cached between runs) and checks the image's metadata and contents;
#   4. runs the image's entrypoint + command with `buildah run --isolation chroot` (host
#      network shared; `podman run` needs cgroups this machine does not give it) in front
#      of a scratch MariaDB, with --set overrides of the upstream and of both ports, runs
#      queries through it, scrapes /metrics from the host, runs the image's HEALTHCHECK,
#      reloads with SIGHUP and drains with SIGTERM (exit status 0);
#   5. removes the container and the scratch MariaDB (the images stay, as the cache).
#
# Run as root (debootstrap, podman). Environment: REFRESH=1 re-debootstraps the base;
# NO_CACHE=1 builds without podman's layer cache; IMAGE=name:tag (default
# localhost/sluice:docker-test).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
IMAGE=${IMAGE:-localhost/sluice:docker-test}
BASE_IMAGE=localhost/sluice-bookworm-base:latest
EXPECTED_UID=10001

log() { echo "docker-test: $*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}
phase_start=$SECONDS
timings=()
phase_done() {
  timings+=("$1 $((SECONDS - phase_start))s")
  phase_start=$SECONDS
}

[[ "$(id -u)" -eq 0 ]] || die "needs root (debootstrap, podman, buildah)"
"$ROOT/scripts/deps.sh" docker >&2

work=$(mktemp -d /tmp/sluice-docker-test.XXXXXX)
container=""
sluice_pid=""
runner_pid=""
db_dir=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$sluice_pid" ]] && kill -0 "$sluice_pid" 2>/dev/null; then
    kill -KILL "$sluice_pid" 2>/dev/null || true
  fi
  if [[ -n "$runner_pid" ]]; then wait "$runner_pid" 2>/dev/null || true; fi
  [[ -z "$container" ]] || buildah rm "$container" >/dev/null 2>&1 || true
  [[ -z "$db_dir" ]] || "$ROOT/scripts/scratch-mariadb.sh" stop "$db_dir" 2>/dev/null || true
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

# One run at a time: the image tag and the base image are shared.
mkdir -p "$ROOT/.cache"
exec 8>"$ROOT/.cache/docker-test.lock"
flock 8

# ---------------------------------------------------------------- 1. compose and friends
log "validating docker/compose.yaml with $(docker-compose version --short 2>/dev/null || echo docker-compose)"
docker-compose -f docker/compose.yaml config -q || die "docker-compose config rejected docker/compose.yaml"
services=$(docker-compose -f docker/compose.yaml config --services | sort | tr '\n' ' ')
[[ "$services" == "grafana mariadb prometheus sluice " ]] || die "unexpected services: $services"
for f in docker/prometheus.yml docker/grafana/provisioning/datasources/prometheus.yaml \
  docker/grafana/provisioning/dashboards/sluice.yaml; do
  /usr/bin/python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f" ||
    die "$f is not valid YAML"
done
grep -q '"sluice:9104"' docker/prometheus.yml || die "prometheus.yml does not scrape sluice:9104"
if command -v promtool >/dev/null; then
  promtool check config docker/prometheus.yml >&2 || die "promtool rejected docker/prometheus.yml"
fi
dashboard=docker/grafana/dashboards/sluice.json
if [[ -f "$dashboard" ]]; then
  jq -e '.panels | length > 0' "$dashboard" >/dev/null || die "$dashboard: not a dashboard with panels"
  # Datasource references must be the provisioned uid, a ${variable} or Grafana's own
  # (annotations); a datasource variable must default to the provisioned one.
  bad=$(jq -r '[.. | objects | select(has("datasource")) | .datasource
                | select(type == "object" and .type != "grafana") | .uid // empty
                | select(. != "prometheus" and (startswith("$") | not))] | unique | join(" ")' "$dashboard")
  bad+=$(jq -r '[.templating.list[]? | select(.type == "datasource")
                 | select((.current.value // "prometheus") != "prometheus"
                          and (.query // "") != "prometheus") | .name] | join(" ")' "$dashboard")
  [[ -z "$bad" ]] || die "$dashboard references datasource uid(s) '$bad'; the provisioned one is 'prometheus'"
  log "dashboard $dashboard: valid JSON, datasource references match"
else
  log "note: $dashboard does not exist yet; Grafana will start with no dashboard"
fi
phase_done compose

# ---------------------------------------------------------------- 2. base image
rootfs=$("$ROOT/docker/bookworm-rootfs.sh")
stamp=$(cat "$rootfs/.sluice-rootfs-complete")
phase_done debootstrap
have=$(podman image inspect --format '{{index .Labels "sluice.rootfs"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ "$have" != "$stamp" ]]; then
  log "importing $rootfs as $BASE_IMAGE"
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    --exclude=./.sluice-rootfs-complete -cf - . |
    podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' --change "LABEL sluice.rootfs=$stamp" - "$BASE_IMAGE" >"$work/import.log"
else
  log "base image $BASE_IMAGE is current ($stamp)"
fi
phase_done import

# ---------------------------------------------------------------- 3. build
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log "podman build -f docker/Dockerfile -t $IMAGE (log: $work/build.log)"
build_args=(--network=host --isolation=chroot --format docker --layers
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --ignorefile docker/Dockerfile.dockerignore
  -f docker/Dockerfile -t "$IMAGE")
[[ "${NO_CACHE:-0}" != 1 ]] || build_args+=(--no-cache)
podman build "${build_args[@]}" . >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  die "podman build failed"
}
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
  podman rmi "$old_id" >/dev/null 2>&1 || true  # the previous run's image, now untagged
fi
log "built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) )"
phase_done build

# Image metadata, as Docker will see it (docker format keeps HEALTHCHECK).
buildah inspect --type image "$IMAGE" | jq '.Docker.config' >"$work/config.json"
check_config() {
  local what=$1 filter=$2 want=$3 got
  got=$(jq -c "$filter" "$work/config.json")
  [[ "$got" == "$want" ]] || die "image $what is $got, expected $want"
  log "image $what: $got"
}
check_config entrypoint '.Entrypoint' '["/usr/bin/sluice"]'
check_config cmd '.Cmd' '["--config","/etc/sluice/sluice.yaml"]'
check_config user '.User' "\"$EXPECTED_UID:$EXPECTED_UID\""
check_config ports '.ExposedPorts | keys' '["6033/tcp","9104/tcp"]'
check_config stopsignal '.StopSignal' '"SIGTERM"'
check_config 'healthcheck command' '.Healthcheck.Test[0:3]' '["CMD","bash","-c"]'
mapfile -t entrypoint < <(jq -r '.Entrypoint[]' "$work/config.json")
mapfile -t cmd < <(jq -r '.Cmd[]' "$work/config.json")
health_script=$(jq -r '.Healthcheck.Test[3]' "$work/config.json")

container=$(buildah from --name "sluice-docker-test-$$" "$IMAGE")
in_image() { buildah run --isolation chroot --network host "$container" -- "$@"; }

uid=$(in_image id -u)
[[ "$uid" == "$EXPECTED_UID" ]] || die "runs as uid $uid, expected $EXPECTED_UID"
log "runs as uid $uid ($(in_image id -un))"
dev=$(in_image dpkg-query -W -f '${Package}\n' | grep -E -- '-dev$|^(g\+\+|gcc|cpp|cmake|make)(-[0-9]+)?$' || true)
[[ -z "$dev" ]] || die "runtime image holds build packages: $(echo "$dev" | tr '\n' ' ')"
log "runtime image holds no -dev packages, compiler or cmake"
in_image cat /etc/sluice/sluice.yaml >"$work/image-sluice.yaml"
diff conf/sluice.yaml "$work/image-sluice.yaml" >"$work/config.diff" || true
changed=$(grep -c '^>' "$work/config.diff" || true)
grep -q '^>  *listen: 0\.0\.0\.0:6033' "$work/config.diff" &&
  grep -q '^>  *listen: 0\.0\.0\.0:9104' "$work/config.diff" &&
  grep -q '^>  *upstreams: \[mariadb:3306\]' "$work/config.diff" && [[ "$changed" == 3 ]] ||
  { cat "$work/config.diff" >&2; die "/etc/sluice/sluice.yaml is not conf/sluice.yaml with the 3 container addresses"; }
log "/etc/sluice/sluice.yaml = conf/sluice.yaml with listen 0.0.0.0:6033, metrics 0.0.0.0:9104, upstream mariadb:3306"
in_image "${entrypoint[@]}" "${cmd[@]}" --check >&2 || die "sluice --check failed in the image"
phase_done inspect

# ---------------------------------------------------------------- 4. run it
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
db_dir=$work/mariadb
db_port=$("$ROOT/scripts/scratch-mariadb.sh" start --dir "$db_dir")
listen_port=$(free_port)
metrics_port=$(free_port)
[[ "$metrics_port" != "$listen_port" ]] || metrics_port=$(free_port)
metrics_url=http://127.0.0.1:$metrics_port/metrics

# The image's own entrypoint and command, plus overrides for this host network.
run_cmd=("${entrypoint[@]}" "${cmd[@]}"
  --set "listeners.0.upstreams=[127.0.0.1:$db_port]"
  --set "listeners.0.listen=127.0.0.1:$listen_port"
  --set "metrics.listen=127.0.0.1:$metrics_port")
log "buildah run --isolation chroot: ${run_cmd[*]}"
in_image "${run_cmd[@]}" >"$work/sluice.log" 2>&1 &
runner_pid=$!

# buildah run kills its child on SIGTERM instead of forwarding it, so signals go
# straight to the sluice process, found among the runner's descendants.
descendants() {
  local p
  for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$p"
    descendants "$p"
  done
}
for _ in $(seq 1 100); do
  for p in $(descendants "$runner_pid"); do
    [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == sluice ]] && sluice_pid=$p
  done
  [[ -z "$sluice_pid" ]] || break
  kill -0 "$runner_pid" 2>/dev/null || { cat "$work/sluice.log" >&2; die "sluice exited at start"; }
  sleep 0.1
done
[[ -n "$sluice_pid" ]] || die "sluice process not found under buildah run"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$metrics_url" 2>/dev/null && break
  sleep 0.1
done
log "sluice pid $sluice_pid (uid $(awk '/^Uid:/ {print $2}' /proc/"$sluice_pid"/status)) listening on 127.0.0.1:$listen_port, metrics $metrics_url"

client=(mariadb --no-defaults -h 127.0.0.1 -P "$listen_port" -u root --batch --skip-column-names)
got=$("${client[@]}" -e 'SELECT @@port')
[[ "$got" == "$db_port" ]] || die "query through sluice answered @@port=$got, expected $db_port"
"${client[@]}" -e "CREATE DATABASE IF NOT EXISTS dockertest;
  CREATE TABLE dockertest.t (id INT PRIMARY KEY, v VARCHAR(32));
  INSERT INTO dockertest.t VALUES (1, 'through the image');"
got=$("${client[@]}" -e 'SELECT v FROM dockertest.t WHERE id = 1')
[[ "$got" == "through the image" ]] || die "round trip through sluice returned '$got'"
log "queries through sluice reached MariaDB on port $db_port: '$got'"

curl -fsS "$metrics_url" >"$work/metrics.txt" || die "scraping $metrics_url failed"
metric() { awk -v m="$1" '$1 == m {print $2}' "$work/metrics.txt"; }
build_info=$(metric 'sluice_build_info{version="'"$(in_image sluice --version | awk '{print $2}')"'"}')
queries=$(metric 'sluice_commands_total{listener="main",command="COM_QUERY"}')
accepted=$(metric 'sluice_connections_total{listener="main"}')
[[ "$build_info" == 1 ]] || die "sluice_build_info missing from the scrape"
[[ "${queries:-0}" -ge 5 ]] || die "sluice_commands_total{COM_QUERY} = ${queries:-none}, expected >= 5"
[[ "${accepted:-0}" -ge 3 ]] || die "sluice_connections_total = ${accepted:-none}, expected >= 3"
log "scraped from the host: sluice_build_info 1, COM_QUERY $queries, connections $accepted"

# The image's HEALTHCHECK script, pointed at this run's metrics port.
health=${health_script//9104/$metrics_port}
in_image bash -c "$health" || die "HEALTHCHECK failed against the running sluice"
unused=$(free_port)
if in_image bash -c "${health_script//9104/$unused}" 2>/dev/null; then
  die "HEALTHCHECK passed with nothing listening"
fi
log "HEALTHCHECK passes against sluice, fails with nothing listening"

kill -HUP "$sluice_pid"
for _ in $(seq 1 50); do
  grep -q ' reloaded ' "$work/sluice.log" && break
  sleep 0.1
done
curl -fsS "$metrics_url" | grep -qx 'sluice_config_reloads_total{result="ok"} 1' ||
  die "SIGHUP did not reload (log: $work/sluice.log)"
log "SIGHUP: reloaded"

kill -TERM "$sluice_pid"
rc=0
wait "$runner_pid" || rc=$?
runner_pid=""
sluice_pid=""
grep -q ' stopped' "$work/sluice.log" && [[ $rc -eq 0 ]] ||
  { cat "$work/sluice.log" >&2; die "SIGTERM: exit status $rc, expected a drain and 0"; }
log "SIGTERM: drained and exited 0"
phase_done run

log "timings: ${timings[*]}"
log "all checks passed"
echo "docker-test: 1 passed, 0 failed"
