#!/usr/bin/env bash
# Builds the CI base image (Debian bookworm minbase + ICU/OpenSSL + curl + this machine's ASP.NET runtime) without
# any container registry: debootstrap from the machine's own apt mirror, then `docker import`.
# Why: CI reaches Debian's archive but not mcr.microsoft.com, so the official aspnet image cannot be pulled.
# The rootfs tarball is cached (MSIPROXY_DEPLOY_CACHE, default <repo>/.tools/deploy, git-ignored) so reruns take seconds.
# Usage: base-image.sh [IMAGE_TAG]   (prints the tag on success)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CACHE="${MSIPROXY_DEPLOY_CACHE:-$REPO_ROOT/.tools/deploy}"
TAG="${1:-msiproxy-ci/aspnet-base:10.0}"
DOTNET_ROOT_HOST="${DOTNET_ROOT:-/usr/share/dotnet}"
RUNTIME_VERSION="$(ls "$DOTNET_ROOT_HOST/shared/Microsoft.AspNetCore.App" | sort -V | tail -1)"
TARBALL="$CACHE/rootfs-bookworm-aspnet-$RUNTIME_VERSION.tar"

log() { echo "base-image: $*" >&2; }

# The Debian mirror this machine already uses (never hard-code a host).
debian_mirror() {
  local uri
  uri="$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)"
  [ -n "$uri" ] || uri="$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)"
  [ -n "$uri" ] || { log "no Debian mirror found in /etc/apt"; return 1; }
  echo "$uri"
}

# An existing image built from the same runtime version is reused.
if [ "$(docker image inspect -f '{{ index .Config.Labels "msiproxy.runtime" }}' "$TAG" 2>/dev/null || true)" = "$RUNTIME_VERSION" ]; then
  echo "$TAG"; exit 0
fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install -y debootstrap)"; exit 2; }
  mkdir -p "$CACHE"
  ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'umount "$ROOTFS/proc" 2>/dev/null || true; rm -rf "$ROOTFS"' EXIT
  MIRROR="$(debian_mirror)"
  log "debootstrap bookworm into $ROOTFS (about 40 s)"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  # libicu72/libssl3: the .NET runtime's native dependencies; curl: HEALTHCHECK and the in-network test client.
  chroot "$ROOTFS" apt-get update -qq >"$CACHE/chroot-apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" apt-get install -y -qq --no-install-recommends \
    libicu72 libssl3 ca-certificates curl >>"$CACHE/chroot-apt.log" 2>&1 || { tail -20 "$CACHE/chroot-apt.log" >&2; exit 1; }
  chroot "$ROOTFS" apt-get clean
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS/etc/resolv.conf"
  # The runtime only (host, NETCore.App, AspNetCore.App): the SDK would add 400 MB for nothing.
  mkdir -p "$ROOTFS/usr/share/dotnet"
  cp -a "$DOTNET_ROOT_HOST"/{dotnet,host,LICENSE.txt} "$ROOTFS/usr/share/dotnet/"
  mkdir -p "$ROOTFS/usr/share/dotnet/shared"
  cp -a "$DOTNET_ROOT_HOST/shared/Microsoft.NETCore.App" "$DOTNET_ROOT_HOST/shared/Microsoft.AspNetCore.App" "$ROOTFS/usr/share/dotnet/shared/"
  ln -sf /usr/share/dotnet/dotnet "$ROOTFS/usr/bin/dotnet"
  # The same non-root user the official images have (APP_UID=1654), so Dockerfile.ci can say USER $APP_UID.
  chroot "$ROOTFS" groupadd --system --gid 1654 app
  chroot "$ROOTFS" useradd --system --uid 1654 --gid 1654 --no-create-home --home-dir /app --shell /usr/sbin/nologin app
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi

log "importing $TARBALL as $TAG"
docker import \
  -c 'ENV DOTNET_ROOT=/usr/share/dotnet' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV APP_UID=1654' \
  -c 'ENV DOTNET_RUNNING_IN_CONTAINER=true' \
  -c "LABEL msiproxy.runtime=$RUNTIME_VERSION" \
  -c 'CMD ["/bin/bash"]' \
  "$TARBALL" "$TAG" >/dev/null
echo "$TAG"
