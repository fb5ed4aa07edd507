#!/usr/bin/env bash
# Shell-level deployment checks: lint (Dockerfiles, YAML) and the real Linux image run on an internal Docker network.
# Prints one closing line "N passed, N failed, N skipped"; exits non-zero when any check failed or none ran.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY_RESULTS="$(mktemp)"
export DEPLOY_RESULTS
trap 'rm -f "$DEPLOY_RESULTS"' EXIT

bash "$HERE/lint.sh"
bash "$HERE/image.sh"

passed=$(grep -c '^PASS' "$DEPLOY_RESULTS")
failed=$(grep -c '^FAIL' "$DEPLOY_RESULTS")
skipped=$(grep -c '^SKIP' "$DEPLOY_RESULTS")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
