#!/usr/bin/env bash
# Registration and configuration at scale (docs/benchmarks.md): for each size, every system in turn (order rotated
# each round), measures
#   scale-config  process start → first token with SIZE clients in appsettings.json (MsiProxy:Clients)
#   scale-admin   SIZE clients registered through the admin API, ms per 1,000 (flat = linear)
#
#   bash tools/benchmarks/scale.sh LABEL=PUBLISH_DIR [LABEL=PUBLISH_DIR…]
#       e.g. main=/tmp/main-publish branch=/tmp/branch-publish (each a `dotnet publish -c Release` of src/MsiProxy:
#       MsiProxy.dll, or a Native AOT MsiProxy executable)
#
# Loopback only: the emulator on 127.0.0.1 is every proxy's upstream; registered addresses are 10.x entries nobody
# calls from. Environment: SCALE_SIZES ("1000 10000 50000"), SCALE_ROUNDS (3), SCALE_TIMEOUT (s per measurement, 300),
# SCALE_CONCURRENCY (8), SCALE_STATE_FILE (1: the admin runs keep a state file, as the images do), BENCH_PORT_BASE,
# BENCH_WORK, SCALE_RAW (JSON lines appended here), SCALE_BENCH (the published benchmark tool's dir; published here
# when unset), SCALE_EMULATOR (the published emulator's dir).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${BENCH_WORK:-/tmp/msiproxy-bench}/scale"
SIZES="${SCALE_SIZES:-1000 10000 50000}"
ROUNDS="${SCALE_ROUNDS:-3}"
TIMEOUT="${SCALE_TIMEOUT:-300}"
CONCURRENCY="${SCALE_CONCURRENCY:-8}"
BASE="${BENCH_PORT_BASE:-18000}"
EMU=$((BASE + 680)); EMU_CONTROL=$((BASE + 681)); PROXY=$((BASE + 600)); MGMT=$((BASE + 601))
RAW="${SCALE_RAW:-$WORK/raw.jsonl}"
TOKEN_PATH="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
(($# > 0)) || { sed -n 2,9p "$0" >&2; exit 64; }
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NO_PROXY=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy
mkdir -p "$WORK"
log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

declare -a PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
msiproxy() { # publish dir → the command that runs it
  if [[ -f "$1/MsiProxy.dll" ]]; then echo dotnet "$1/MsiProxy.dll"; else echo "$1/MsiProxy"; fi
}

BENCH_DIR="${SCALE_BENCH:-$WORK/bench}"; EMU_DIR="${SCALE_EMULATOR:-$WORK/emulator}"
[[ -f "$BENCH_DIR/MsiProxy.Benchmarks.dll" ]] || dotnet publish "$ROOT/tools/benchmarks/MsiProxy.Benchmarks.csproj" -c Release -o "$BENCH_DIR" -v q -nologo >&2
[[ -f "$EMU_DIR/MsiProxy.ImdsEmulator.dll" ]] || dotnet publish "$ROOT/src/MsiProxy.ImdsEmulator/MsiProxy.ImdsEmulator.csproj" -c Release -o "$EMU_DIR" -v q -nologo >&2
BENCH=(dotnet "$BENCH_DIR/MsiProxy.Benchmarks.dll")

dotnet "$EMU_DIR/MsiProxy.ImdsEmulator.dll" --urls "http://127.0.0.1:$EMU" \
  --Emulator:Control:Urls="http://127.0.0.1:$EMU_CONTROL" --Emulator:Limits:Enabled=false \
  --Logging:LogLevel:Default=Warning > "$WORK/emulator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$EMU_CONTROL/emulator/counters" 2>/dev/null && break; sleep 0.1; done

KEY="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" # a throwaway admin key for this run's proxies
proxy_args() {
  echo --urls "http://127.0.0.1:$PROXY" --MsiProxy:Management:Urls="http://127.0.0.1:$MGMT" \
    --MsiProxy:Upstreams:0="http://127.0.0.1:$EMU" --MsiProxy:Management:ApiKey="$KEY" \
    --Serilog:MinimumLevel:Default=Warning
}
clients_file() { # size → dir with appsettings.json: client 0 is 127.0.0.1 (the timer's caller), the rest 10.x
  local dir="$WORK/config-$1"
  [[ -f "$dir/appsettings.json" ]] && { echo "$dir"; return; }
  mkdir -p "$dir"
  awk -v n="$1" 'BEGIN {
    printf "{\"MsiProxy\":{\"Clients\":["
    for (i = 0; i < n; i++) {
      address = i == 0 ? "127.0.0.1" : sprintf("10.%d.%d.%d", int(i / 65536) % 256, int(i / 256) % 256, i % 256)
      printf "%s{\"Name\":\"client-%d\",\"Address\":\"%s\",\"Identities\":[\"*\"]}", (i ? "," : ""), i, address
    }
    print "]}}"
  }' > "$dir/appsettings.json"
  echo "$dir"
}
rotate() { local n=$1; shift; local a=("$@"); local k=$((n % ${#a[@]})); echo "${a[@]:k}" "${a[@]:0:k}"; }

declare -A DIR=()
LABELS=()
for pair in "$@"; do DIR[${pair%%=*}]="${pair#*=}"; LABELS+=("${pair%%=*}"); done

port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }
for size in $SIZES; do
  config="$(clients_file "$size")"
  for ((round = 1; round <= ROUNDS; round++)); do
    for system in $(rotate "$round" "${LABELS[@]}"); do
      # A proxy left over on these ports would answer for the one being measured.
      port_free "$PROXY" && port_free "$MGMT" || { echo "scale.sh: 127.0.0.1:$PROXY or :$MGMT is in use" >&2; exit 1; }
      # shellcheck disable=SC2046
      if result=$("${BENCH[@]}" startup --timeout "$TIMEOUT" --url "http://127.0.0.1:$PROXY$TOKEN_PATH" \
          -- $(msiproxy "${DIR[$system]}") --contentRoot "$config" $(proxy_args)); then
        echo "{\"scenario\":\"scale-config\",\"system\":\"$system\",\"clients\":$size,\"round\":$round,${result#\{}" >> "$RAW"
      else
        result="timed out after ${TIMEOUT}s"
        echo "{\"scenario\":\"scale-config\",\"system\":\"$system\",\"clients\":$size,\"round\":$round,\"first_token_ms\":null,\"timeout_s\":$TIMEOUT}" >> "$RAW"
      fi
      log "scale-config $size clients, round $round, $system: $result"

      state=()
      if [[ "${SCALE_STATE_FILE:-0}" == 1 ]]; then # as the images ship: every admin write is on disk before it answers
        rm -f "$WORK/state.json" "$WORK/state.json.journal"; state=(--MsiProxy:StateFile="$WORK/state.json") # and its journal (issue 17)
      fi
      # shellcheck disable=SC2046
      $(msiproxy "${DIR[$system]}") --contentRoot "$WORK" $(proxy_args) "${state[@]}" > "$WORK/proxy.log" 2>&1 &
      proxy=$!; PIDS+=($proxy)
      for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$MGMT/healthz" 2>/dev/null && break; sleep 0.1; done
      if result=$(timeout "$TIMEOUT" "${BENCH[@]}" scale-admin --admin "http://127.0.0.1:$MGMT" --key "$KEY" --count "$size" \
          --concurrency "$CONCURRENCY"); then
        echo "{\"scenario\":\"scale-admin\",\"system\":\"$system\",\"clients\":$size,\"round\":$round,${result#\{}" >> "$RAW"
      else
        result="timed out after ${TIMEOUT}s"
        echo "{\"scenario\":\"scale-admin\",\"system\":\"$system\",\"clients\":$size,\"round\":$round,\"total_ms\":null,\"timeout_s\":$TIMEOUT}" >> "$RAW"
      fi
      kill "$proxy" 2>/dev/null || true; wait "$proxy" 2>/dev/null || true
      log "scale-admin $size clients, round $round, $system: $result"
    done
  done
done
