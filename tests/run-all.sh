#!/usr/bin/env bash
# Runs every test MsiProxy has, after installing what they need (idempotent; apt and the Docker engine only as root):
#   1. prerequisites — Debian packages (docker.io, iptables, yamllint, busybox-static, debootstrap), pwsh + Pester,
#      the Node SDK client's packages, helm (from npm), and a running dockerd for the end-to-end tests;
#   2. dotnet test on MsiProxy.sln (unit, integration, real-SDK and real-Docker tests);
#   3. the Pester tests of the PowerShell wiring scripts;
#   4. the deployment checks (Dockerfile/YAML lint, chart schema, image build and run);
#   5. a bounded fuzzing run of the request parsers (tools/fuzz/smoke.sh; skipped where AFL++ cannot be installed).
# Ends with one line "N passed, N failed, N skipped" summed over all of them, and fails when any test failed or none ran.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$repo/artifacts/test-results"
cd "$repo"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NO_PROXY="127.0.0.1,localhost,${NO_PROXY:-}"
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy

log() { printf '\n==> %s\n' "$*" >&2; }

install_prerequisites() {
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    local wanted=(docker.io iptables iproute2 util-linux curl yamllint busybox-static debootstrap)
    local missing=()
    for p in "${wanted[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if ((${#missing[@]})); then
      log "installing Debian packages: ${missing[*]}"
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
      log "starting dockerd"
      (dockerd >/tmp/msiproxy-dockerd.log 2>&1 &)
      for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    fi
  else
    log "not root: skipping Debian packages and the Docker engine (the Docker tests will report as skipped)"
  fi

  # The PowerShell client tests run pwsh inside the isolated dotnet test run, where it cannot be installed.
  if ! command -v pwsh >/dev/null && [[ ! -x "$HOME/.dotnet/tools/pwsh" ]]; then
    log "installing PowerShell 7.6.9 (dotnet global tool)"
    dotnet tool install --global PowerShell --version 7.6.9 >&2 || log "pwsh not installed: the PowerShell client tests will fail"
  fi

  if [[ -f tests/clients/js/package-lock.json && ! -d tests/clients/js/node_modules ]]; then
    log "installing the Node SDK client (npm ci)"
    npm ci --prefix tests/clients/js --no-audit --no-fund >&2 || log "npm ci failed: the Node SDK tests will fail"
  fi

  log "installing helm for the chart tests (tests/deploy/install-helm.sh)"
  bash tests/deploy/install-helm.sh >&2 || log "helm not installed: the chart tests will fail"
}

# Everything the tests restore later is fetched now, while the package registry is reachable: the tests themselves run
# in a network namespace with only loopback (below). That is the runtime packs for the win-x64/linux-x64 publish checks
# and the Aspire Dashboard (the OTLP receiver of the export test).
prefetch_packages() {
  log "restoring packages the tests publish or download"
  for rid in linux-x64 win-x64; do
    # -p:RuntimeIdentifier as `dotnet publish -r` sets it: `dotnet restore -r` sets RuntimeIdentifiers instead, so
    # publish.props saw no runtime, chose ReadyToRun over Native AOT and the ILCompiler packages were never fetched.
    dotnet restore src/MsiProxy/MsiProxy.csproj -p:RuntimeIdentifier="$rid" -p:CustomBeforeMicrosoftCommonProps="$repo/docker/publish.props" >&2 || true
  done
  dotnet restore src/MsiProxy/MsiProxy.csproj >&2 || true # put the plain restore back for the build below
  local scratch
  scratch="$(mktemp -d)"
  for f in Directory.Build.props Directory.Build.targets Directory.Packages.props; do echo '<Project />' >"$scratch/$f"; done
  cat >"$scratch/download.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Aspire.Dashboard.Sdk.linux-x64" Version="[13.6.5]" /></ItemGroup>
</Project>
XML
  dotnet restore "$scratch/download.csproj" >&2 || log "Aspire Dashboard not restored: the OTLP export test will be skipped"
  rm -rf "$scratch"
}

rm -rf "$results" && mkdir -p "$results"
install_prerequisites
prefetch_packages

status=0
log "dotnet build"
dotnet build MsiProxy.sln -c Release >&2 || status=1

# The tests run in a network namespace of their own with only loopback (when root): whatever a test does, it cannot
# send a packet off this machine. The Docker engine is still reachable through its unix socket.
isolate=()
if [[ "$(id -u)" == "0" ]] && unshare -n true 2>/dev/null; then
  isolate=(unshare -n sh -c 'ip link set lo up && exec "$@"' isolated)
else
  log "not root (or no unshare): the tests run in this machine's network namespace"
fi
log "dotnet test"
# One test assembly at a time (-m:1): several tests bound their waits in wall-clock time, and the deployment tests
# publish for two runtimes meanwhile; on a 2-core machine running them side by side only invites flakiness.
"${isolate[@]}" dotnet test MsiProxy.sln -c Release --no-build -m:1 --logger "trx" --results-directory "$results/dotnet" \
  -- RunConfiguration.TestSessionTimeout=1500000 >&2 || status=1

# Runs a suite that ends with its own "N passed, N failed[, N skipped]" line; echoes that line.
# (A failing exit code is reported as "exit N: <line>", so a suite that fails without counting a failure still fails.)
run_suite() {
  local output="$results/$1.log" rc=0
  bash "$2" >"$output" 2>&1 || rc=$?
  cat "$output" >&2
  if ((rc)); then echo "exit $rc: $(tail -n 1 "$output")"; else tail -n 1 "$output"; fi
}

pester_line=""
if [[ -f tests/scripts/run-pester.sh ]]; then
  log "Pester"
  pester_line="$(run_suite pester tests/scripts/run-pester.sh)"
fi

deploy_line=""
if [[ -f tests/deploy/run.sh ]]; then
  log "deployment checks"
  deploy_line="$(run_suite deploy tests/deploy/run.sh)"
fi

fuzz_line=""
if [[ -f tools/fuzz/smoke.sh ]]; then
  log "fuzzing smoke run (tools/fuzz/smoke.sh)"
  fuzz_line="$(run_suite fuzz tools/fuzz/smoke.sh)"
fi

python3 - "$results/dotnet" "$pester_line" "$deploy_line" "$fuzz_line" "$status" <<'PY'
import glob, re, sys, xml.etree.ElementTree as ET
folder, pester, deploy, fuzz, status = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
passed = failed = skipped = 0
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
failures = []
for trx in glob.glob(folder + "/**/*.trx", recursive=True):
    root = ET.parse(trx).getroot()
    # CI shows only the tail of this output, so the failed tests are named here, next to the totals.
    for result in root.iterfind(".//t:UnitTestResult", ns):
        if result.get("outcome") not in ("Passed", "NotExecuted", "Inconclusive"):
            message = result.findtext("t:Output/t:ErrorInfo/t:Message", default="", namespaces=ns).strip()
            first = message.splitlines()[0][:300] if message else ""
            failures.append(f"FAILED {result.get('testName')} ({result.get('duration')}): {first}")
    counters = root.find("t:ResultSummary/t:Counters", ns)
    if counters is None:
        continue
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)) + int(counters.get("aborted", 0))
    skipped += int(counters.get("notExecuted", 0)) + int(counters.get("inconclusive", 0))
for line in (pester, deploy, fuzz):
    if not line:
        continue
    m = re.search(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2)); skipped += int(m.group(3) or 0)
    if not m or (line.startswith("exit ") and int(m.group(2)) == 0):
        print(f"a suite failed without counting a failure: {line!r}", file=sys.stderr)
        failed += 1
if status and not failed:
    # e.g. a test project that does not compile: its tests never ran, so no result file counts them.
    print("the .NET build or test run failed without a failing test result: see its errors above", file=sys.stderr)
    failed += 1
for line in failures:
    print(line, file=sys.stderr)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or status or passed == 0 else 0)
PY
