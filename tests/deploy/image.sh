#!/usr/bin/env bash
# Builds the Linux MsiProxy and emulator images for real (docker/linux/Dockerfile*.ci on a locally made base image)
# and runs them on an --internal Docker network this script creates: emulator as the upstream, the proxy, and two
# client containers (one registered, one not). Every request is made from a container on that network (docker exec);
# nothing is sent from the host to a container address, and nothing can leave the internal network.
# Cleans up its containers, network and images on any exit. Skips (with the reason) without root or a docker engine.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

if [ "$(id -u)" != 0 ]; then skip "image: needs root (debootstrap/chroot for the base image)"; exit 0; fi
if ! docker info >/dev/null 2>&1; then skip "image: no docker engine (apt-get install -y docker.io; dockerd &)"; exit 0; fi
if ! command -v debootstrap >/dev/null && ! docker image inspect msiproxy-ci/aspnet-base:10.0 >/dev/null 2>&1; then
  skip "image: debootstrap missing (apt-get install -y debootstrap)"; exit 0
fi

RUN="msiproxy-ci-$$"
NET="$RUN-net"
WORK="$(mktemp -d)"
CONTAINERS=()
cleanup() {
  for c in "${CONTAINERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
  docker network rm "$NET" >/dev/null 2>&1
  docker image rm -f "$RUN/proxy:test" "$RUN/emulator:test" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

BASE="$(bash "$HERE/lib/base-image.sh")" || { fail "image: base image (debootstrap + runtime) could not be built"; exit 0; }
pass "image: base image $BASE"

publish() { # project output
  dotnet publish "$REPO_ROOT/$1" -c Release -r linux-x64 -nologo -v q \
    -p:CustomBeforeMicrosoftCommonProps="$REPO_ROOT/docker/publish.props" -o "$2"
}
check "image: dotnet publish linux-x64 (proxy, Native AOT)" publish src/MsiProxy/MsiProxy.csproj "$WORK/proxy"
check "image: the proxy's publish output is one native executable (no .dll, no .dbg)" \
  bash -c "[ -x '$WORK/proxy/MsiProxy' ] && [ \"\$(head -c 4 '$WORK/proxy/MsiProxy' | od -An -c | tr -d ' ')\" = '177ELF' ] \
    && ! compgen -G '$WORK/proxy/*.dll' && ! compgen -G '$WORK/proxy/*.dbg'"
# The emulator is the demo's (src/MsiProxy.Demo), never the product's: not in the proxy's output, nor compiled into it.
check "image: the proxy's publish output has no emulator assembly" \
  bash -c "grep -q MsiProxy.Pipeline '$WORK/proxy/MsiProxy' && ! compgen -G '$WORK/proxy/MsiProxy.ImdsEmulator*' && ! grep -q MsiProxy.ImdsEmulator '$WORK/proxy/MsiProxy'"
check "image: dotnet publish linux-x64 (emulator)" publish src/MsiProxy.ImdsEmulator/MsiProxy.ImdsEmulator.csproj "$WORK/emulator"
check "image: docker build proxy (Dockerfile.ci)" \
  docker build -q --build-arg BASE_IMAGE="${BASE%:*}" --build-arg BASE_TAG="${BASE##*:}" -f "$REPO_ROOT/docker/linux/Dockerfile.ci" -t "$RUN/proxy:test" "$WORK/proxy"
check "image: docker build emulator (Dockerfile.emulator.ci)" \
  docker build -q --build-arg BASE_IMAGE="${BASE%:*}" --build-arg BASE_TAG="${BASE##*:}" -f "$REPO_ROOT/docker/linux/Dockerfile.emulator.ci" -t "$RUN/emulator:test" "$WORK/emulator"
docker image inspect "$RUN/proxy:test" >/dev/null 2>&1 && docker image inspect "$RUN/emulator:test" >/dev/null 2>&1 || exit 0

check "image: proxy image runs as the non-root app user" \
  bash -c "[ \"\$(docker image inspect -f '{{.Config.User}}' $RUN/proxy:test)\" = 1654 ]"

# An internal network with our own /24 (fixed client addresses need a user-configured subnet); retried on overlap.
PREFIX=""
for attempt in 0 1 2 3 4 5 6 7; do
  candidate="10.231.$(( ($$ + attempt * 37) % 250 ))"
  if docker network create --internal --subnet "$candidate.0/24" "$NET" >/dev/null 2>&1; then PREFIX="$candidate"; break; fi
done
[ -n "$PREFIX" ] || { fail "image: create internal network"; exit 0; }
CLIENT_IP="$PREFIX.200"
STRANGER_IP="$PREFIX.201"

run() {
  local name="$1"; shift; CONTAINERS+=("$name")
  docker run -d --name "$name" --network "$NET" "$@" >/dev/null || fail "image: docker run $name"
}

run "$RUN-imds" --network-alias imds "$RUN/emulator:test"
# The upstream must be up before the proxy's first health probe, or the proxy starts with it marked unhealthy.
docker exec "$RUN-imds" bash -c 'for i in $(seq 1 600); do
    curl -fs -o /dev/null -H "Metadata: true" "http://localhost:80/metadata/instance?api-version=2021-02-01" && exit 0; sleep 0.05; done; exit 1' \
  || fail "image: emulator never answered within 30 s"
# The upstream is the emulator on the internal network: the product default (169.254.169.254) is never used.
ADMIN_KEY="ci-admin-key-$$-0123456789"
run "$RUN-proxy" --network-alias proxy \
  -e MsiProxy__Upstreams__0=http://imds:80 \
  -e MsiProxy__Management__ApiKey="$ADMIN_KEY" \
  -e MsiProxy__Clients__0__Name=ci-client \
  -e MsiProxy__Clients__0__Address="$CLIENT_IP" \
  -e MsiProxy__Clients__0__Identities__0='*' \
  "$RUN/proxy:test"
run "$RUN-client" --ip "$CLIENT_IP" --entrypoint sleep "$BASE" 300
run "$RUN-stranger" --ip "$STRANGER_IP" --entrypoint sleep "$BASE" 300

# Start-up time: from the container's process start (State.StartedAt) to the first /readyz 200, polled in the proxy's
# own network namespace every 20 ms.
READY_AT="$(docker exec "$RUN-proxy" bash -c 'for i in $(seq 1 1500); do
    if curl -fs -o /dev/null http://localhost:8081/readyz; then date +%s.%N; exit 0; fi; sleep 0.02; done; exit 1')"
if [ -n "$READY_AT" ]; then
  STARTED="$(date -d "$(docker inspect -f '{{.State.StartedAt}}' "$RUN-proxy")" +%s.%N)"
  pass "image: /readyz 200 $(awk -v a="$READY_AT" -v b="$STARTED" 'BEGIN{printf "%.0f", (a-b)*1000}') ms after process start"
else
  fail "image: /readyz never answered 200 within 30 s"; docker logs "$RUN-proxy" 2>&1 | tail -30 | sed 's/^/    /'
fi

check "image: the proxy runs as Native AOT with the measured GC (its start-up line)" \
  bash -c "docker logs $RUN-proxy 2>&1 | grep '\"Compilation\":\"Native AOT\"' | grep '\"GcMode\":\"server\"' | grep -q '\"BackgroundGc\":false'"

# HEALTHCHECK from the Dockerfile reaches "healthy" (interval 2 s in the CI image).
health=""
for _ in $(seq 1 30); do
  health="$(docker inspect -f '{{.State.Health.Status}}' "$RUN-proxy" 2>/dev/null)"
  [ "$health" = healthy ] && break; sleep 1
done
if [ "$health" = healthy ]; then pass "image: docker HEALTHCHECK reports healthy"; else fail "image: docker HEALTHCHECK is '$health'"; fi

in_client() { docker exec "$1" curl -s -o /dev/stderr -w '%{http_code}' --max-time 20 "${@:2}" 2>"$WORK/body"; }
expect() { # name container expected-status grep-pattern curl-args...
  local name="$1" container="$2" want="$3" pattern="$4"; shift 4
  local got; got="$(in_client "$container" "$@")"
  if [ "$got" = "$want" ] && grep -q -- "$pattern" "$WORK/body"; then pass "$name"
  else fail "$name (status $got, body: $(head -c 300 "$WORK/body"))"; fi
}
TOKEN_URL='http://proxy:80/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/'
expect "image: /healthz on the management port from another container" "$RUN-client" 200 '"Healthy"' http://proxy:8081/healthz
expect "image: registered client gets a token through the proxy" "$RUN-client" 200 '"access_token"' -H 'Metadata: true' "$TOKEN_URL"
expect "image: a request without Metadata: true is refused" "$RUN-client" 400 '"error"' "$TOKEN_URL"
expect "image: an unregistered container is denied" "$RUN-stranger" 403 '"error"' -H 'Metadata: true' "$TOKEN_URL"
expect "image: management endpoints are not on the client port" "$RUN-client" 404 '' http://proxy:80/healthz

# The state file (MsiProxy:StateFile, which the image points into /var/lib/msi-proxy): what the admin API registers is
# still there when the container comes back, so the non-root app user can write that folder. docker stop is the orderly
# stop: SIGTERM, /readyz fails, requests in flight finish, exit code 0.
expect "image: the admin API registers the stranger" "$RUN-client" 201 '"source":"admin"' -X PUT -H "Authorization: Bearer $ADMIN_KEY" \
  -H 'Content-Type: application/json' -d "{\"address\":\"$STRANGER_IP\",\"identities\":[\"*\"]}" http://proxy:8081/admin/clients/late
check "image: docker stop is an orderly stop (exit code 0)" \
  bash -c "docker stop -t 30 $RUN-proxy >/dev/null && [ \"\$(docker inspect -f '{{.State.ExitCode}}' $RUN-proxy)\" = 0 ]"
check "image: the proxy starts again and is ready" bash -c "docker start $RUN-proxy >/dev/null && docker exec $RUN-proxy bash -c \
  'for i in \$(seq 1 1500); do curl -fs -o /dev/null http://localhost:8081/readyz && exit 0; sleep 0.02; done; exit 1'"
expect "image: after the restart the client the admin API registered gets a token" "$RUN-stranger" 200 '"access_token"' -H 'Metadata: true' "$TOKEN_URL"

# The Docker monitor, in the Native AOT binary (Docker.DotNet's JSON and the engine's event stream): a proxy container
# watching the engine through its socket, mounted read-only as compose does, registers the container labelled
# msi-proxy.client=true that starts on the internal network after it; the unlabelled stranger stays unknown to it.
# Wiring=None: the clients here call the proxy by name; the interception itself is the E2E tests' business.
SOCKET="$(docker context inspect -f '{{.Endpoints.docker.Host}}' 2>/dev/null | sed 's#^unix://##')"
[ -S "$SOCKET" ] || SOCKET=/var/run/docker.sock
LABELLED_IP="$PREFIX.202"
run "$RUN-watcher" --network-alias watcher --user 0 -v "$SOCKET:/var/run/docker.sock:ro" \
  -e MsiProxy__Upstreams__0=http://imds:80 \
  -e MsiProxy__Docker__Endpoint=unix:///var/run/docker.sock \
  -e MsiProxy__Docker__Network="$NET" \
  -e MsiProxy__Docker__Wiring=None \
  "$RUN/proxy:test"
docker exec "$RUN-watcher" bash -c 'for i in $(seq 1 1500); do curl -fs -o /dev/null http://localhost:8081/readyz && exit 0; sleep 0.02; done; exit 1' \
  || fail "image: the monitoring proxy never became ready"
run "$RUN-labelled" --ip "$LABELLED_IP" --label msi-proxy.client=true --label 'msi-proxy.identities=*' --entrypoint sleep "$BASE" 300
WATCHED_URL="${TOKEN_URL/proxy:80/watcher:80}"
got=""
for _ in $(seq 1 60); do
  got="$(in_client "$RUN-labelled" -H 'Metadata: true' "$WATCHED_URL")"; [ "$got" = 200 ] && break; sleep 0.5
done
if [ "$got" = 200 ] && grep -q '"access_token"' "$WORK/body"; then pass "image: the Docker monitor (Native AOT) registers a labelled container, which gets a token"
else fail "image: the labelled container got no token from the monitoring proxy (status $got, body: $(head -c 300 "$WORK/body"))"
  docker logs "$RUN-watcher" 2>&1 | tail -30 | sed 's/^/    /'; fi
expect "image: the monitoring proxy denies the unlabelled container" "$RUN-stranger" 403 '"error"' -H 'Metadata: true' "$WATCHED_URL"

if grep -q '^FAIL image' "$DEPLOY_RESULTS"; then
  echo "--- proxy logs"; docker logs "$RUN-proxy" 2>&1 | tail -40 | sed 's/^/    /'
fi
exit 0
