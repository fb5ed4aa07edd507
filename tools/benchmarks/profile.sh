#!/usr/bin/env bash
# Profiles MsiProxy's cached-hit path: starts the emulator and the published proxy (from run.sh's BENCH_WORK), drives
# wrk at 64 connections and records a CPU-sampling trace and a GC/allocation counter summary with the dotnet
# diagnostics tools (`dotnet tool install --global dotnet-trace dotnet-counters`). Output: $BENCH_WORK/profile/.
set -euo pipefail
WORK="${BENCH_WORK:-/tmp/msiproxy-bench}"; OUT="$WORK/profile"; mkdir -p "$OUT"
export PATH="$PATH:$HOME/.dotnet/tools"
EMU=19080; PROXY=19100; DURATION="${PROFILE_DURATION:-15}"
URL="http://127.0.0.1:$PROXY/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
declare -a PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
dotnet "$WORK/emulator/MsiProxy.ImdsEmulator.dll" --urls "http://127.0.0.1:$EMU" --Emulator:Limits:Enabled=false \
  --Logging:LogLevel:Default=Warning > "$OUT/emulator.log" 2>&1 &
PIDS+=($!)
dotnet "$WORK/jit/MsiProxy.dll" --urls "http://127.0.0.1:$PROXY" --MsiProxy:Management:Urls=http://127.0.0.1:$((PROXY + 1)) \
  --MsiProxy:Upstreams:0="http://127.0.0.1:$EMU" --MsiProxy:Clients:0:Name=bench --MsiProxy:Clients:0:Address=127.0.0.1 \
  --MsiProxy:Clients:0:Identities:0='*' --Serilog:MinimumLevel:Override:MsiProxy.Requests=Warning \
  --Serilog:MinimumLevel:Override:MsiProxy.Audit=Warning "$@" > "$OUT/msiproxy.log" 2>&1 &
PROXY_PID=$!; PIDS+=($PROXY_PID)
for _ in $(seq 1 300); do curl -fs -o /dev/null -H 'Metadata: true' "$URL" && break; sleep 0.2; done
wrk -t2 -c64 -d5s -s "$(dirname "$0")/hits.lua" "$URL" | grep RESULT   # warm-up
wrk -t2 -c64 -d"$((DURATION + 4))s" -s "$(dirname "$0")/hits.lua" "$URL" > "$OUT/wrk.txt" &
WRK=$!
sleep 2
dotnet-counters collect -p "$PROXY_PID" --counters System.Runtime --format csv -o "$OUT/counters.csv" --duration "00:00:00:$((DURATION / 2))" > /dev/null 2>&1 || true
dotnet-trace collect -p "$PROXY_PID" --profile dotnet-sampled-thread-time --duration "00:00:00:$((DURATION / 2))" -o "$OUT/cpu.nettrace" > "$OUT/trace.log" 2>&1
wait $WRK
grep RESULT "$OUT/wrk.txt"
dotnet-trace report "$OUT/cpu.nettrace" topN -n 40 --inclusive > "$OUT/top-inclusive.txt" 2>&1 || true
dotnet-trace report "$OUT/cpu.nettrace" topN -n 40 > "$OUT/top-exclusive.txt" 2>&1 || true
# Per request: mean allocation rate and CPU time while wrk ran, divided by wrk's request rate.
RPS=$(sed -n 's/^RESULT .*"rps":\([0-9.]*\).*/\1/p' "$OUT/wrk.txt")
awk -F, -v rps="$RPS" '
  /total_allocated/ { alloc += $5; na++ }
  /cpu.time/ { cpu[$1] += $5 }
  END { for (t in cpu) { c += cpu[t]; nc++ }
        printf "PROFILE rps=%.0f allocated_bytes_per_request=%.0f cpu_us_per_request=%.1f\n", rps, (alloc / na) / rps, (c / nc) * 1e6 / rps }
' "$OUT/counters.csv" | tee "$OUT/per-request.txt"
echo "profile written to $OUT"
