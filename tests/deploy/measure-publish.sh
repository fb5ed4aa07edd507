#!/usr/bin/env bash
# Measures publish output size for linux-x64 and win-x64, framework-dependent with and without ReadyToRun
# (the numbers in docs/deploy.md). Not part of run.sh: it publishes four times (about 2 minutes on 2 cores).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$REPO_ROOT/artifacts/deploy/measure}"
mkdir -p "$OUT"
printf '%-10s %-6s %10s %6s\n' rid r2r bytes files
for rid in linux-x64 win-x64; do
  for r2r in false true; do
    dir="$OUT/$rid-r2r-$r2r"
    rm -rf "$dir"
    dotnet publish "$REPO_ROOT/src/MsiProxy/MsiProxy.csproj" -c Release -r "$rid" -nologo -v q \
      -p:CustomBeforeMicrosoftCommonProps="$REPO_ROOT/docker/publish.props" -p:PublishReadyToRun=$r2r -o "$dir" >"$dir.log" 2>&1 \
      || { tail -20 "$dir.log" >&2; exit 1; }
    printf '%-10s %-6s %10s %6s\n' "$rid" "$r2r" "$(du -sb "$dir" | cut -f1)" "$(find "$dir" -type f | wc -l)"
  done
done
