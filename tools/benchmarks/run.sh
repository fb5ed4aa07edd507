#!/usr/bin/env bash
# MsiProxy benchmark harness — method and results in docs/benchmarks.md.
#
#   bash tools/benchmarks/run.sh            full run: 5 rounds × 10 s, results written to docs/benchmarks/
#   bash tools/benchmarks/run.sh --smoke    ~1 minute of measuring (1 round, short durations, 1,000 clients at scale), results in $BENCH_WORK/results
#
# Everything listens on 127.0.0.1 (callers 127.0.0.1–127.0.0.64): the IMDS emulator, MsiProxy (the Release build,
# run as a real process), nginx from Debian's package with a config written here, a bare Kestrel endpoint and a bare
# .NET forwarder (the ceilings for a cached hit and a miss).
# Each comparison alternates the systems inside every round; the report takes medians of per-round ratios.
# Needs: dotnet SDK, wrk and nginx (`apt-get install -y wrk nginx-light`), curl. Environment knobs: BENCH_ROUNDS,
# BENCH_DURATION, BENCH_CONNECTIONS, BENCH_PORT_BASE, BENCH_WORK (scratch dir), BENCH_OUT, BENCH_SKIP_PUBLISH=1,
# BENCH_SKIP_MICRO=1, BENCH_FLOOD_RATE (scenario 7's neighbour, requests/s), BENCH_NGINX_CACHE (where nginx's caches go, a tmpfs).
set -euo pipefail

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tools/benchmarks"
WORK="${BENCH_WORK:-/tmp/msiproxy-bench}"
if [[ $SMOKE == 1 ]]; then
  ROUNDS="${BENCH_ROUNDS:-1}"; DURATION="${BENCH_DURATION:-3}"; MISS_DURATION=3; OUT="${BENCH_OUT:-$WORK/results}"
  AMP_CLIENTS=20; AMP_REQUESTS=5; AMP_KEYS=5; POPULATE_CLIENTS=1000; POPULATE_TOKENS=1000; VICTIM_DURATION=1; PACED_DURATION=1; MODE=smoke
else
  ROUNDS="${BENCH_ROUNDS:-5}"; DURATION="${BENCH_DURATION:-10}"; MISS_DURATION="${BENCH_DURATION:-10}"; OUT="${BENCH_OUT:-$ROOT/docs/benchmarks}"
  AMP_CLIENTS=50; AMP_REQUESTS=20; AMP_KEYS=10; POPULATE_CLIENTS=10000; POPULATE_TOKENS=10000; VICTIM_DURATION="${BENCH_DURATION:-10}"; PACED_DURATION=6; MODE=full
fi
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
MISS_CONNECTIONS=1
BASE="${BENCH_PORT_BASE:-18000}"
EMU=$((BASE + 80)); EMU_CONTROL=$((BASE + 81)); PROXY=$((BASE + 100)); PROXY_MGMT=$((BASE + 101))
NGINX=$((BASE + 200)); KESTREL=$((BASE + 300)); FORWARDER=$((BASE + 301)); START_PROXY=$((BASE + 400)); START_MGMT=$((BASE + 401))
POP_PROXY=$((BASE + 500)); POP_MGMT=$((BASE + 501))
LIMITED_EMU=$((BASE + 82)); LIMITED_CONTROL=$((BASE + 83)); VICTIM_PROXY=$((BASE + 120)); VICTIM_MGMT=$((BASE + 121)); VICTIM_NGINX=$((BASE + 220))
FLOOD_RATE="${BENCH_FLOOD_RATE:-200}"
TOKEN_PATH="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
RAW="$WORK/raw.jsonl"
# nginx's token caches live in memory, as MsiProxy's does (and as a careful platform team would keep tokens: not on
# disk). On this machine's disk nginx's miss p50 followed the disk — 0.45 ms one moment, 1.8–3.8 ms a few minutes
# later while other writes were flushed — against 0.34–0.36 ms from tmpfs in the same rotation.
NGINX_CACHE="${BENCH_NGINX_CACHE:-/dev/shm}/msiproxy-bench-nginx-$BASE" # a folder of the run's own: removed on exit

for tool in wrk nginx curl dotnet; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is missing (apt-get install -y wrk nginx-light curl)" >&2; exit 2; }
done
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NO_PROXY=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy

mkdir -p "$WORK" "$OUT" "$NGINX_CACHE"
# Scenario 2 leaves ~125,000 tokens in nginx's cache (~0.5 GB on tmpfs); Docker's default /dev/shm is 64 MB.
if (( $(df -Pk "$NGINX_CACHE" | awk 'NR == 2 {print $4}') < (SMOKE ? 65536 : 1048576) )); then
  echo "run.sh: $NGINX_CACHE has less than $((SMOKE ? 64 : 1024)) MB free for nginx's caches (BENCH_NGINX_CACHE names another tmpfs)" >&2; exit 2
fi
LOADAVG_START="$(cut -d" " -f1-3 /proc/loadavg)"
: > "$RAW"
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f "$WORK/nginx/nginx.pid" ]] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  [[ -f "$WORK/nginx-logged/nginx.pid" ]] && kill "$(cat "$WORK/nginx-logged/nginx.pid")" 2>/dev/null || true
  [[ -f "$WORK/nginx-victim/nginx.pid" ]] && kill "$(cat "$WORK/nginx-victim/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  for _ in $(seq 1 50); do [[ -f "$WORK/nginx/nginx.pid" || -f "$WORK/nginx-logged/nginx.pid" || -f "$WORK/nginx-victim/nginx.pid" ]] || break; sleep 0.1; done
  rm -rf "${NGINX_CACHE:?}" # nginx daemonises, so not before its pid files are gone
}
trap cleanup EXIT

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
record() { echo "$1" >> "$RAW"; }

wait_for() { # url [header [tries]]
  for _ in $(seq 1 "${3:-600}"); do
    curl -fsS -o /dev/null ${2:+-H "$2"} "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not come up" >&2; return 1
}

rss_mb() { # pid… → summed VmRSS in MB
  local total=0 kb
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  awk -v kb="$total" 'BEGIN { printf "%.1f", kb / 1024 }'
}

nginx_pids() { pgrep -P "$(cat "$WORK/nginx/nginx.pid")" | tr '\n' ' '; cat "$WORK/nginx/nginx.pid"; }

# ---------------------------------------------------------------- build
if [[ "${BENCH_SKIP_PUBLISH:-0}" != 1 || ! -f "$WORK/jit/MsiProxy.dll" || ! -x "$WORK/aot/MsiProxy" ]]; then
  log "publishing (Release): MsiProxy JIT, ReadyToRun and Native AOT (the Linux image's build), emulator, benchmark tools"
  dotnet publish "$ROOT/src/MsiProxy/MsiProxy.csproj" -c Release -o "$WORK/jit" -v q -nologo >&2
  # The two image builds, from docker/publish.props: Native AOT (Linux) and ReadyToRun (Windows; Linux with PublishAot=false).
  dotnet publish "$ROOT/src/MsiProxy/MsiProxy.csproj" -c Release -r linux-x64 -p:CustomBeforeMicrosoftCommonProps="$ROOT/docker/publish.props" \
    -p:PublishAot=false -o "$WORK/r2r" -v q -nologo >&2
  dotnet publish "$ROOT/src/MsiProxy/MsiProxy.csproj" -c Release -r linux-x64 -p:CustomBeforeMicrosoftCommonProps="$ROOT/docker/publish.props" \
    -o "$WORK/aot" -v q -nologo >&2
  dotnet publish "$ROOT/src/MsiProxy.ImdsEmulator/MsiProxy.ImdsEmulator.csproj" -c Release -o "$WORK/emulator" -v q -nologo >&2
  dotnet publish "$ROOT/tools/benchmarks/MsiProxy.Benchmarks.csproj" -c Release -o "$WORK/bench" -v q -nologo >&2
fi
# MsiProxy as the Linux image ships it (Native AOT) in every scenario but start-up, which compares the builds.
# BENCH_BUILD=jit or r2r measures another build instead.
SHIPPED="${BENCH_BUILD:-aot}"
msiproxy() { # build → the command that runs it
  if [[ -f "$WORK/$1/MsiProxy.dll" ]]; then echo dotnet "$WORK/$1/MsiProxy.dll"; else echo "$WORK/$1/MsiProxy"; fi
}
BENCH=(dotnet "$WORK/bench/MsiProxy.Benchmarks.dll")

# ---------------------------------------------------------------- emulator (limits off: we measure the proxies, not IMDS's 20/s)
dotnet "$WORK/emulator/MsiProxy.ImdsEmulator.dll" --urls "http://127.0.0.1:$EMU" \
  --Emulator:Control:Urls="http://127.0.0.1:$EMU_CONTROL" --Emulator:Limits:Enabled=false \
  --Logging:LogLevel:Default=Warning > "$WORK/emulator.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$EMU_CONTROL/emulator/counters"
curl -fsS -H 'Metadata: true' "http://127.0.0.1:$EMU$TOKEN_PATH" > "$WORK/token.json"

# ---------------------------------------------------------------- MsiProxy (request and audit logging off, like nginx's access_log off)
# The proxy's IMDS protections (upstream 20/s and 5 concurrent, shared fairly between clients) exist to keep a real
# IMDS from throttling; the emulator's limits are off, so they are raised here to measure the proxy path itself. The
# token cache's bound (10,000) is raised like nginx's (nginx.conf.template): scenario 2 caches up to ~75,000 tokens, and a
# node's cache never reaches its bound.
proxy_args() { # port mgmt-port
  echo --urls "http://127.0.0.1:$1" --MsiProxy:Management:Urls="http://127.0.0.1:$2" \
    --MsiProxy:Upstreams:0="http://127.0.0.1:$EMU" \
    --MsiProxy:Resilience:MaxConcurrency=256 --MsiProxy:Resilience:RequestsPerSecond=1000000 --MsiProxy:Cache:MaxEntries=1000000 \
    --Serilog:MinimumLevel:Override:MsiProxy.Requests=Warning --Serilog:MinimumLevel:Override:MsiProxy.Audit=Warning
}
client_args() { # first-index count first-last-octet  → 127.0.0.x clients with identity *
  local i
  for ((i = 0; i < $2; i++)); do
    echo "--MsiProxy:Clients:$(($1 + i)):Name=bench-$(($3 + i)) --MsiProxy:Clients:$(($1 + i)):Address=127.0.0.$(($3 + i)) --MsiProxy:Clients:$(($1 + i)):Identities:0=*"
  done
}
# shellcheck disable=SC2046
$(msiproxy "$SHIPPED") $(proxy_args $PROXY $PROXY_MGMT) $(client_args 0 64 1) > "$WORK/msiproxy.log" 2>&1 &
MSIPROXY_PID=$!; PIDS+=($MSIPROXY_PID)

# ---------------------------------------------------------------- bare Kestrel: the same token bytes, nothing else
"${BENCH[@]}" bare --urls "http://127.0.0.1:$KESTREL" --body "$WORK/token.json" > "$WORK/kestrel.log" 2>&1 &
KESTREL_PID=$!; PIDS+=($KESTREL_PID)
# ... and a bare forwarder for scenario 2: Kestrel + one HttpClient to the emulator, nothing else
"${BENCH[@]}" forward --urls "http://127.0.0.1:$FORWARDER" --upstream "http://127.0.0.1:$EMU" > "$WORK/forwarder.log" 2>&1 &
PIDS+=($!)

# ---------------------------------------------------------------- nginx: what a platform team would write instead
mkdir -p "$NGINX_CACHE/nginx" "$WORK/nginx/tmp"
rm -rf "${NGINX_CACHE:?}/nginx/"*
sed -e "s#@WORK@#$WORK/nginx#g" -e "s#@CACHE@#$NGINX_CACHE/nginx#g" -e "s#@PORT@#$NGINX#g" -e "s#@EMU@#$EMU#g" "$HERE/nginx.conf.template" > "$WORK/nginx/nginx.conf"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/error.log"
for _ in $(seq 1 50); do [[ -s "$WORK/nginx/nginx.pid" ]] && break; sleep 0.1; done

# ---------------------------------------------------------------- scenario 7's systems, started now so their start-up overlaps the others'
# (idle until scenario 7: a second emulator with IMDS's limits on and 50 ms per token, MsiProxy with its defaults, nginx)
dotnet "$WORK/emulator/MsiProxy.ImdsEmulator.dll" --urls "http://127.0.0.1:$LIMITED_EMU" \
  --Emulator:Control:Urls="http://127.0.0.1:$LIMITED_CONTROL" --Emulator:Limits:Enabled=true \
  --Emulator:Faults:0:PathPrefix=/metadata/identity --Emulator:Faults:0:Delay=00:00:00.050 --Emulator:Faults:0:Times=0 \
  --Logging:LogLevel:Default=Warning > "$WORK/emulator-limited.log" 2>&1 &
LIMITED_PID=$!; PIDS+=($LIMITED_PID)
# shellcheck disable=SC2046
$(msiproxy "$SHIPPED") --urls "http://127.0.0.1:$VICTIM_PROXY" --MsiProxy:Management:Urls="http://127.0.0.1:$VICTIM_MGMT" \
  --MsiProxy:Upstreams:0="http://127.0.0.1:$LIMITED_EMU" --MsiProxy:Shutdown:ReadinessDelay=00:00:00 \
  --Serilog:MinimumLevel:Override:MsiProxy.Requests=Warning --Serilog:MinimumLevel:Override:MsiProxy.Audit=Warning \
  $(client_args 0 64 1) > "$WORK/msiproxy-victim.log" 2>&1 &
VICTIM_PID=$!; PIDS+=($VICTIM_PID)
mkdir -p "$NGINX_CACHE/nginx-victim" "$WORK/nginx-victim/tmp"
rm -rf "${NGINX_CACHE:?}/nginx-victim/"*
sed -e "s#@WORK@#$WORK/nginx-victim#g" -e "s#@CACHE@#$NGINX_CACHE/nginx-victim#g" -e "s#@PORT@#$VICTIM_NGINX#g" -e "s#@EMU@#$LIMITED_EMU#g" "$HERE/nginx.conf.template" > "$WORK/nginx-victim/nginx.conf"
nginx -c "$WORK/nginx-victim/nginx.conf" -p "$WORK/nginx-victim" -e "$WORK/nginx-victim/error.log"
wait_for "http://127.0.0.1:$PROXY_MGMT/healthz"
wait_for "http://127.0.0.1:$PROXY$TOKEN_PATH" "Metadata: true"
wait_for "http://127.0.0.1:$NGINX$TOKEN_PATH" "Metadata: true"
wait_for "http://127.0.0.1:$KESTREL$TOKEN_PATH"
wait_for "http://127.0.0.1:$FORWARDER$TOKEN_PATH"

sleep 2
record "{\"scenario\":\"memory\",\"system\":\"msiproxy\",\"phase\":\"idle\",\"round\":0,\"rss_mb\":$(rss_mb $MSIPROXY_PID)}"
record "{\"scenario\":\"memory\",\"system\":\"kestrel\",\"phase\":\"idle\",\"round\":0,\"rss_mb\":$(rss_mb $KESTREL_PID)}"
# shellcheck disable=SC2046
record "{\"scenario\":\"memory\",\"system\":\"nginx\",\"phase\":\"idle\",\"round\":0,\"rss_mb\":$(rss_mb $(nginx_pids))}"

url_of() { case $1 in msiproxy) echo "http://127.0.0.1:$PROXY" ;; nginx) echo "http://127.0.0.1:$NGINX" ;;
  kestrel) echo "http://127.0.0.1:$KESTREL" ;; forwarder) echo "http://127.0.0.1:$FORWARDER" ;; direct) echo "http://127.0.0.1:$EMU" ;; esac; }
pids_of() { case $1 in msiproxy) echo $MSIPROXY_PID ;; kestrel) echo $KESTREL_PID ;; nginx) nginx_pids ;; esac; }

# rotate a list by the round number, so no system always goes first
rotate() { local n=$1; shift; local a=("$@"); local k=$((n % ${#a[@]})); echo "${a[@]:k}" "${a[@]:0:k}"; }

wrk_result() { grep '^RESULT ' | tail -1 | cut -d' ' -f2-; }

# ---------------------------------------------------------------- scenario 1 (+ memory under load)
log "scenario 1: cached hits, $CONNECTIONS connections, ${DURATION}s × $ROUNDS rounds"
for system in msiproxy nginx kestrel; do  # warm-up: JIT, connection pools, caches
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$HERE/hits.lua" "$(url_of $system)$TOKEN_PATH" > /dev/null
done
for ((round = 1; round <= ROUNDS; round++)); do
  for system in $(rotate "$round" msiproxy nginx kestrel); do
    # shellcheck disable=SC2046
    (peak=0; while sleep 0.5; do now=$(rss_mb $(pids_of $system)); peak=$(awk -v a="$now" -v b="$peak" 'BEGIN{print (a>b)?a:b}'); echo "$peak" > "$WORK/peak.tmp" && mv "$WORK/peak.tmp" "$WORK/peak"; done) &
    sampler=$!
    rm -f "$WORK/peak"
    result=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/hits.lua" "$(url_of $system)$TOKEN_PATH" | wrk_result)
    kill $sampler 2>/dev/null; wait $sampler 2>/dev/null || true
    record "{\"scenario\":\"hits\",\"system\":\"$system\",\"round\":$round,${result#\{}"
    record "{\"scenario\":\"memory\",\"system\":\"$system\",\"phase\":\"load\",\"round\":$round,\"rss_mb\":$(cat "$WORK/peak" 2>/dev/null || echo null)}"
    log "  round $round $system $result"
  done
done

# ---------------------------------------------------------------- scenario 1b: as shipped — logging on, both sides
# MsiProxy with its request line and audit event per request (the default; console to a file here) against nginx with
# access_log on (its default combined format, to a file). Issue 17: MsiProxy ≥ 1.0× nginx. Raw lines: "hits_logged".
# Logging's cost is measured on the same process in the same rounds ("msiproxy_warning"): its two levels come from a
# configuration file the proxy reloads, so the only difference between the two is the logging — not the process's
# seat (a second process measured in alternation with the first is not an equal one: docs/benchmarks.md).
LOGGED_PROXY=$((BASE + 110)); LOGGED_MGMT=$((BASE + 111)); LOGGED_NGINX=$((BASE + 210))
mkdir -p "$WORK/logged"
log_levels() { # level → both per-request events at that level, written as one rename so no reload reads half a file
  printf '{"Serilog":{"MinimumLevel":{"Override":{"MsiProxy.Requests":"%s","MsiProxy.Audit":"%s"}}}}\n' "$1" "$1" > "$WORK/logged/appsettings.tmp"
  mv "$WORK/logged/appsettings.tmp" "$WORK/logged/appsettings.json"
}
log_levels Information # the defaults, stated: the override keys must be there at start-up to follow a reload
logging_is() { # on|off → waits until two requests in a row do (or no longer do) write to the log
  local before agreed=0
  for _ in $(seq 1 100); do
    before=$(stat -c %s "$WORK/msiproxy-logged.log")
    curl -fsS -o /dev/null -H 'Metadata: true' "http://127.0.0.1:$LOGGED_PROXY$TOKEN_PATH"
    sleep 0.1 # the log writer gathers events for up to 10 ms
    if [[ $(stat -c %s "$WORK/msiproxy-logged.log") != "$before" ]]; then [[ $1 == on ]]; else [[ $1 == off ]]; fi && agreed=$((agreed + 1)) || agreed=0
    (( agreed < 2 )) || return 0
  done
  echo "run.sh: the logged proxy's logging did not turn $1" >&2; return 1
}
# shellcheck disable=SC2046
$(msiproxy "$SHIPPED") --contentRoot "$WORK/logged" $(proxy_args $LOGGED_PROXY $LOGGED_MGMT | sed 's/--Serilog:[^ ]*//g') $(client_args 0 64 1) \
  > "$WORK/msiproxy-logged.log" 2>&1 &
LOGGED_PID=$!; PIDS+=($LOGGED_PID)
mkdir -p "$NGINX_CACHE/nginx-logged" "$WORK/nginx-logged/tmp"
rm -rf "${NGINX_CACHE:?}/nginx-logged/"* "$WORK/nginx-logged/access.log"
sed -e "s#@WORK@#$WORK/nginx-logged#g" -e "s#@CACHE@#$NGINX_CACHE/nginx-logged#g" -e "s#@PORT@#$LOGGED_NGINX#g" -e "s#@EMU@#$EMU#g" \
  -e "s#access_log off;#access_log $WORK/nginx-logged/access.log;#" "$HERE/nginx.conf.template" > "$WORK/nginx-logged/nginx.conf"
nginx -c "$WORK/nginx-logged/nginx.conf" -p "$WORK/nginx-logged" -e "$WORK/nginx-logged/error.log"
wait_for "http://127.0.0.1:$LOGGED_PROXY$TOKEN_PATH" "Metadata: true"
wait_for "http://127.0.0.1:$LOGGED_NGINX$TOKEN_PATH" "Metadata: true"
log "scenario 1b: cached hits with request logging on, $CONNECTIONS connections, ${DURATION}s × $ROUNDS rounds"
for target in "msiproxy $LOGGED_PROXY" "nginx $LOGGED_NGINX"; do
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$HERE/hits.lua" "http://127.0.0.1:${target#* }$TOKEN_PATH" > /dev/null
done
for ((round = 1; round <= ROUNDS; round++)); do
  # the pair whose ratio is logging's cost takes turns going first (3 of 5 rounds and 2 of 5)
  for system in $( ((round % 2)) && rotate "$round" msiproxy nginx msiproxy_warning || rotate "$round" msiproxy_warning nginx msiproxy); do
    case $system in
      msiproxy) port=$LOGGED_PROXY; log_levels Information; logging_is on ;;
      msiproxy_warning) port=$LOGGED_PROXY; log_levels Warning; logging_is off ;;
      nginx) port=$LOGGED_NGINX ;;
    esac
    result=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/hits.lua" "http://127.0.0.1:$port$TOKEN_PATH" | wrk_result)
    record "{\"scenario\":\"hits_logged\",\"system\":\"$system\",\"round\":$round,${result#\{}"
    log "  round $round $system (logging $([[ $system == msiproxy_warning ]] && echo 'at Warning' || echo on)) $result"
  done
done
log_levels Information; logging_is on # scenario 8 measures this proxy as shipped
log "  msiproxy log queue: $(curl -fsS "http://127.0.0.1:$LOGGED_MGMT/metrics" | grep '^msiproxy_log_dropped_total' | tr '\n' ' ')"

# ---------------------------------------------------------------- scenario 8: a node's load — CPU per request at a light, steady rate
# The same two systems as 1b (as shipped, and nginx with access_log on) and bare Kestrel, at the rates a node's agent
# sees: cached hits at 50/s on one connection and 400/s on four, each system's CPU (utime + stime) per request.
log "scenario 8: a node's load, cached hits at 50/s and 400/s, ${PACED_DURATION}s × $ROUNDS rounds"
for ((round = 1; round <= ROUNDS; round++)); do
  for load in "50 1" "400 4"; do
    for system in $(rotate "$round" msiproxy nginx kestrel); do
      case $system in
        msiproxy) port=$LOGGED_PROXY; pids=$LOGGED_PID ;;
        nginx) port=$LOGGED_NGINX; pids="$(cat "$WORK/nginx-logged/nginx.pid"),$(pgrep -d, -P "$(cat "$WORK/nginx-logged/nginx.pid")")" ;;
        kestrel) port=$KESTREL; pids=$KESTREL_PID ;;
      esac
      result=$("${BENCH[@]}" paced --target "http://127.0.0.1:$port$TOKEN_PATH" --rate "${load% *}" --connections "${load#* }" \
        --duration "$PACED_DURATION" --pids "$pids")
      record "{\"scenario\":\"paced\",\"system\":\"$system\",\"phase\":\"${load% *}/s\",\"round\":$round,${result#\{}"
      log "  round $round $system ${load% *}/s: $result"
    done
  done
done
kill $LOGGED_PID; wait $LOGGED_PID 2>/dev/null || true
kill "$(cat "$WORK/nginx-logged/nginx.pid")" 2>/dev/null || true

# ---------------------------------------------------------------- scenario 2: misses, added latency over the emulator
log "scenario 2: cache misses (unique resources), $MISS_CONNECTIONS connection, ${MISS_DURATION}s × $ROUNDS rounds"
for system in direct msiproxy nginx forwarder; do
  BENCH_TAG="warm-$system" wrk -t1 -c1 -d1s -s "$HERE/miss.lua" "$(url_of $system)" > /dev/null
done
for ((round = 1; round <= ROUNDS; round++)); do
  for system in $(rotate "$round" direct msiproxy nginx forwarder); do
    result=$(BENCH_TAG="miss-$system-$round-$RANDOM" wrk -t1 -c"$MISS_CONNECTIONS" -d"${MISS_DURATION}s" --latency -s "$HERE/miss.lua" "$(url_of $system)" | wrk_result)
    record "{\"scenario\":\"miss\",\"system\":\"$system\",\"round\":$round,${result#\{}"
    log "  round $round $system $result"
  done
done

# ---------------------------------------------------------------- scenario 3: upstream amplification (50 ms upstream latency)
log "scenario 3: $AMP_CLIENTS clients × $AMP_REQUESTS requests over $AMP_KEYS cold keys"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$EMU_CONTROL/emulator/faults" -H 'Content-Type: application/json' \
  -d '{"pathPrefix":"/metadata/identity","delay":"00:00:00.050","times":0}'
for ((round = 1; round <= ROUNDS; round++)); do
  for system in $(rotate "$round" msiproxy nginx); do
    result=$("${BENCH[@]}" amplify --target "$(url_of $system)" --counters "http://127.0.0.1:$EMU_CONTROL/emulator/counters" \
      --clients "$AMP_CLIENTS" --requests "$AMP_REQUESTS" --keys "$AMP_KEYS" --tag "amp-$system-$round-$RANDOM")
    record "{\"scenario\":\"amplify\",\"system\":\"$system\",\"round\":$round,${result#\{}"
    log "  round $round $system $result"
  done
done
curl -fsS -o /dev/null -X DELETE "http://127.0.0.1:$EMU_CONTROL/emulator/faults"

# ---------------------------------------------------------------- scenario 7: the victim — a quiet client beside a flooding neighbour
# IMDS's real limits ON (a second emulator: 20/s, 5 concurrent, 50 ms per token) behind MsiProxy with its DEFAULT
# protections (upstream 20/s and 5 concurrent, the fair queue per client) against nginx proxying straight to it (the
# same config as above: no fairness, nothing between the neighbour and IMDS's limits). The neighbour (127.0.0.20)
# sends $FLOOD_RATE new-token requests/s, each a unique resource; the quiet client (127.0.0.21) asks for a new token
# every 200 ms and records each latency and status; the same quiet client alone is the baseline.
log "scenario 7: victim latency, limits on, neighbour flooding at $FLOOD_RATE/s, ${VICTIM_DURATION}s × $ROUNDS rounds"
wait_for "http://127.0.0.1:$VICTIM_PROXY$TOKEN_PATH" "Metadata: true"
wait_for "http://127.0.0.1:$VICTIM_NGINX$TOKEN_PATH" "Metadata: true"
for ((round = 1; round <= ROUNDS; round++)); do
  for system in $(rotate "$round" msiproxy nginx); do
    port=$([[ $system == msiproxy ]] && echo $VICTIM_PROXY || echo $VICTIM_NGINX)
    for rate in 0 "$FLOOD_RATE"; do
      result=$("${BENCH[@]}" victim --target "http://127.0.0.1:$port" --counters "http://127.0.0.1:$LIMITED_CONTROL/emulator/counters" \
        --duration "$VICTIM_DURATION" --flood-rate "$rate" --warmup-ms $([[ $SMOKE == 1 ]] && echo 500 || echo 1000) \
        --flood-address 127.0.0.20 --quiet-address 127.0.0.21 --tag "victim-$system-$round-$RANDOM")
      record "{\"scenario\":\"victim\",\"system\":\"$system\",\"round\":$round,${result#\{}"
      log "  round $round $system flood $rate/s: $(sed 's/,"samples".*//' <<< "$result")}"
    done
  done
done
kill $VICTIM_PID $LIMITED_PID; wait $VICTIM_PID $LIMITED_PID 2>/dev/null || true
kill "$(cat "$WORK/nginx-victim/nginx.pid")" 2>/dev/null || true

# ---------------------------------------------------------------- scenario 4b: 10,000 clients + 10,000 cache entries
log "scenario 4: MsiProxy with $POPULATE_CLIENTS registered clients and $POPULATE_TOKENS cached tokens"
mkdir -p "$WORK/populated"
awk -v n="$POPULATE_CLIENTS" 'BEGIN {
  printf "{\"MsiProxy\":{\"Clients\":["
  for (i = 0; i < n; i++) {
    address = (i < 64) ? sprintf("127.0.0.%d", i + 1) : sprintf("10.%d.%d.%d", 1 + int(i / 65536), int(i / 256) % 256, i % 256)
    printf "%s{\"Name\":\"client-%d\",\"Address\":\"%s\",\"Identities\":[\"*\"]}", (i ? "," : ""), i, address
  }
  print "]}}"
}' > "$WORK/populated/appsettings.json"
# shellcheck disable=SC2046
POP_STARTED=$(date +%s.%N)
$(msiproxy "$SHIPPED") --contentRoot "$WORK/populated" $(proxy_args $POP_PROXY $POP_MGMT) > "$WORK/populated.log" 2>&1 &
POP_PID=$!; PIDS+=($POP_PID)
wait_for "http://127.0.0.1:$POP_PROXY$TOKEN_PATH" "Metadata: true" 3000
POP_START_S=$(awk -v a="$POP_STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
"${BENCH[@]}" amplify --target "http://127.0.0.1:$POP_PROXY" --counters "http://127.0.0.1:$EMU_CONTROL/emulator/counters" \
  --clients 16 --requests $((POPULATE_TOKENS / 16)) --keys 1 --unique --tag "populate-$RANDOM" > "$WORK/populate.json"
sleep 2
record "{\"scenario\":\"memory\",\"system\":\"msiproxy\",\"phase\":\"populated\",\"round\":0,\"rss_mb\":$(rss_mb $POP_PID),\"clients\":$POPULATE_CLIENTS,\"tokens\":$POPULATE_TOKENS,\"start_to_first_token_s\":$POP_START_S}"
log "  populated: first token after ${POP_START_S}s; $(cat "$WORK/populate.json") rss $(rss_mb $POP_PID) MB"
kill $POP_PID; wait $POP_PID 2>/dev/null || true

# ---------------------------------------------------------------- scenario 5: start-up, JIT vs ReadyToRun vs Native AOT
log "scenario 5: process start → first token, JIT vs ReadyToRun vs Native AOT"
for ((round = 1; round <= ROUNDS; round++)); do
  for system in $(rotate "$round" jit r2r aot); do
    # shellcheck disable=SC2046
    result=$("${BENCH[@]}" startup --url "http://127.0.0.1:$START_PROXY/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://startup-$round-$system.example" \
      -- $(msiproxy "$system") $(proxy_args $START_PROXY $START_MGMT) $(client_args 0 1 1))
    record "{\"scenario\":\"startup\",\"system\":\"$system\",\"round\":$round,${result#\{}"
    log "  round $round $system $result"
  done
done

# ---------------------------------------------------------------- scale-config / scale-admin (tools/benchmarks/scale.sh)
# Start-up with N configured clients and N admin registrations (ms per 1,000). Smoke: 1,000 clients, one round.
# Branch against main: run scale.sh itself with two publishes (docs/benchmarks.md, "Registration and configuration at scale").
log "scale: configured clients and admin registrations"
SCALE_SIZES="${SCALE_SIZES:-$([[ $SMOKE == 1 ]] && echo 1000 || echo "1000 10000 50000")}" SCALE_ROUNDS="${SCALE_ROUNDS:-$([[ $SMOKE == 1 ]] && echo 1 || echo 3)}" \
  SCALE_RAW="$RAW" SCALE_BENCH="$WORK/bench" SCALE_EMULATOR="$WORK/emulator" BENCH_WORK="$WORK" BENCH_PORT_BASE="$BASE" \
  bash "$HERE/scale.sh" msiproxy="$WORK/$SHIPPED"

# ---------------------------------------------------------------- scenario 6: micro-benchmarks
MICRO_DIR="$WORK/micro"
if [[ "${BENCH_SKIP_MICRO:-0}" != 1 ]]; then
  log "scenario 6: BenchmarkDotNet micro-benchmarks"
  rm -rf "$MICRO_DIR"
  (cd "$WORK" && "${BENCH[@]}" micro --artifacts "$MICRO_DIR" $([[ $SMOKE == 1 ]] && echo --smoke) > "$WORK/micro.log" 2>&1) \
    || { tail -30 "$WORK/micro.log" >&2; exit 1; }
  mkdir -p "$OUT/micro"
  [[ $SMOKE == 1 ]] || cp "$MICRO_DIR"/results/*-report-github.md "$OUT/micro/"
fi

# ---------------------------------------------------------------- environment and report
cat > "$WORK/environment.json" <<EOF
{"mode":"$MODE","rounds":$ROUNDS,"duration_s":$DURATION,"connections":$CONNECTIONS,"miss_connections":$MISS_CONNECTIONS,
 "msiproxy_build":"$SHIPPED",
 "request_logging":"off in scenarios 1 to 7 (nginx access_log off; MsiProxy.Requests and MsiProxy.Audit at Warning), on in 1b and 8 (1b also measures the same proxy at Warning)",
 "nproc":$(nproc),"cpu_model":"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)",
 "memory":"$(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo)",
 "kernel":"$(uname -r)","os":"$(. /etc/os-release && echo "$PRETTY_NAME")",
 "dotnet_runtime":"$(dotnet --list-runtimes | awk '/Microsoft.AspNetCore.App/ {v=$2} END {print v}')",
 "nginx":"$(nginx -v 2>&1 | sed 's#.*/##')","wrk":"$(wrk -v 2>&1 | awk 'NR==1 {print $2}')",
 "commit":"$(git -C "$ROOT" rev-parse --short HEAD)",
 "loadavg_start":"$LOADAVG_START","loadavg_end":"$(cut -d' ' -f1-3 /proc/loadavg)"}
EOF
cp "$RAW" "$OUT/raw.jsonl"
"${BENCH[@]}" report --raw "$RAW" --environment "$WORK/environment.json" --micro "$MICRO_DIR/results" --out "$OUT" | tee "$WORK/headline.txt"
log "results: $OUT/results.md, $OUT/results.json, $OUT/chart.png"
