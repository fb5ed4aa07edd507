#!/usr/bin/env bash
# Bounded fuzzing of the request parsers (canonical path, query, token request), for CI and by hand:
#   1. replays the committed seed corpus through the oracle (no fuzzer needed);
#   2. instruments the parsers with SharpFuzz and runs afl-fuzz on them for FUZZ_SECONDS (default 60), then replays
#      every crash and hang it saved outside the fuzzer: one that reproduces is a failure, kept under
#      artifacts/fuzz/reproducers/. Skipped, with the reason, when AFL++ is not installed and cannot be installed.
# Ends with one line "N passed, N failed, N skipped" (tests/run-all.sh sums it). See tools/fuzz/README.md.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fuzz="$repo/tools/fuzz"
work="$repo/artifacts/fuzz"
seconds="${FUZZ_SECONDS:-60}"
passed=0 failed=0 skipped=0
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

summary() { echo "$passed passed, $failed failed, $skipped skipped"; exit $((failed > 0)); }

# Prints an input with its control and non-ASCII bytes escaped (findings are arbitrary bytes).
show() { python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read())[2:-1])' "$1"; }

rm -rf "$work/bin" "$work/bin-afl" "$work/findings" "$work/reproducers"
mkdir -p "$work"
echo "==> building the harness"
if ! dotnet publish "$fuzz/Harness/MsiProxy.Fuzz.csproj" -c Release -o "$work/bin" >"$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log"
  echo "FAIL: the harness does not build"
  failed=$((failed + 1))
  summary
fi

echo "==> replaying the seed corpus ($(find "$fuzz/corpus" -type f | wc -l) inputs)"
if dotnet "$work/bin/MsiProxy.Fuzz.dll" --check "$fuzz/corpus"; then
  passed=$((passed + 1))
else
  echo "FAIL: seed inputs break the invariants"
  failed=$((failed + 1))
fi

skip() { echo "SKIP: fuzzing: $1"; skipped=$((skipped + 1)); summary; }

if ! command -v afl-fuzz >/dev/null && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
  echo "==> installing AFL++ (Debian package afl++)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends afl++ >"$work/apt.log" 2>&1 \
    || { apt-get update -qq >>"$work/apt.log" 2>&1 && apt-get install -y -qq --no-install-recommends afl++ >>"$work/apt.log" 2>&1; }
fi
command -v afl-fuzz >/dev/null || skip "AFL++ is not installed and could not be installed here (needs root and the Debian package afl++)"

sharpfuzz="$work/tools/sharpfuzz"
if [[ ! -x "$sharpfuzz" ]]; then
  echo "==> installing the SharpFuzz.CommandLine 2.3.0 tool into $work/tools"
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$work/tools" >"$work/tool.log" 2>&1 \
    || { tail -n 5 "$work/tool.log"; skip "the SharpFuzz.CommandLine tool could not be installed (is the NuGet feed reachable?)"; }
fi

# Instrument a copy: the plain build stays as it is, to replay findings outside the fuzzer.
cp -r "$work/bin" "$work/bin-afl"
if ! "$sharpfuzz" "$work/bin-afl/MsiProxy.Fuzz.Target.dll" >"$work/instrument.log" 2>&1; then
  cat "$work/instrument.log"
  echo "FAIL: SharpFuzz could not instrument the parsers"
  failed=$((failed + 1))
  summary
fi

echo "==> afl-fuzz for $seconds s"
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_FORKSRV_INIT_TMOUT=60000
timeout $((seconds + 300)) afl-fuzz -i "$fuzz/corpus" -o "$work/findings" -x "$fuzz/imds.dict" -t 5000 -m none -V "$seconds" \
  -- "$(command -v dotnet)" "$work/bin-afl/MsiProxy.Fuzz.dll" >"$work/afl.log" 2>&1
rc=$?
stats="$work/findings/default/fuzzer_stats"
if ((rc != 0)) || [[ ! -f "$stats" ]]; then
  grep -v 'Fuzzing test case' "$work/afl.log" | tail -n 30
  echo "FAIL: afl-fuzz did not run (exit $rc)"
  failed=$((failed + 1))
  summary
fi

stat() { awk -F' *: *' -v key="$1" '$1 == key { print $2 }' "$stats"; }
echo "fuzzing: $(stat execs_done) executions in $(stat run_time) s ($(stat execs_per_sec)/s), corpus $(stat corpus_count)" \
  "inputs, stability $(stat stability), $(stat saved_crashes) crashes, $(stat saved_hangs) hangs saved"

reproduced=0
for finding in "$work"/findings/default/crashes/id:* "$work"/findings/default/hangs/id:*; do
  [[ -f "$finding" ]] || continue
  if timeout 10 dotnet "$work/bin/MsiProxy.Fuzz.dll" --check "$finding"; then
    echo "not reproduced outside the fuzzer: $(basename "$(dirname "$finding")")/$(basename "$finding")"
  else
    reproduced=$((reproduced + 1))
    mkdir -p "$work/reproducers"
    cp "$finding" "$work/reproducers/$(basename "$(dirname "$finding")")-$reproduced"
    echo "REPRODUCED ($work/reproducers/$(basename "$(dirname "$finding")")-$reproduced): $(show "$finding")"
  fi
done

if ((reproduced > 0)); then
  echo "FAIL: fuzzing found $reproduced input(s) that break the parsers' invariants"
  failed=$((failed + 1))
elif [[ "$(stat execs_done)" == "0" ]]; then
  echo "FAIL: afl-fuzz ran no input"
  failed=$((failed + 1))
else
  passed=$((passed + 1))
fi
summary
