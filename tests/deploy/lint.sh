#!/usr/bin/env bash
# Lints the Dockerfiles (npm dockerfilelint@1.8.0, installed into tests/deploy/.tools, git-ignored) and the YAML
# (Debian yamllint: compose files, Chart.yaml, values.yaml and the ci/ values files; config in .yamllint).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

TOOLS="$HERE/.tools"
if [ ! -x "$TOOLS/node_modules/.bin/dockerfilelint" ]; then
  if command -v npm >/dev/null; then
    mkdir -p "$TOOLS" && npm install --prefix "$TOOLS" --no-audit --no-fund --silent dockerfilelint@1.8.0 >/dev/null 2>&1
  fi
fi
if [ -x "$TOOLS/node_modules/.bin/dockerfilelint" ]; then
  for f in "$REPO_ROOT"/docker/linux/Dockerfile* "$REPO_ROOT"/docker/windows/Dockerfile*; do
    check "lint: dockerfilelint ${f#"$REPO_ROOT"/}" bash -c "cd '$REPO_ROOT' && '$TOOLS/node_modules/.bin/dockerfilelint' '${f#"$REPO_ROOT"/}'"
  done
else
  skip "lint: dockerfilelint (npm install dockerfilelint@1.8.0 failed or npm missing)"
fi

if command -v yamllint >/dev/null; then
  for f in "$REPO_ROOT"/docker/compose/*/compose.yaml "$REPO_ROOT"/charts/*/Chart.yaml "$REPO_ROOT"/charts/*/values.yaml "$REPO_ROOT"/charts/*/ci/*.yaml "$REPO_ROOT/.yamllint"; do
    check "lint: yamllint ${f#"$REPO_ROOT"/}" yamllint -s -c "$REPO_ROOT/.yamllint" "$f"
  done
else
  skip "lint: yamllint (apt-get install -y yamllint)"
fi
exit 0
