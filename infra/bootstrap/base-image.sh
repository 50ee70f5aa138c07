#!/usr/bin/env bash
# Make the local base image (Debian bookworm + python3) when it is missing. Idempotent.
# No registry can be reached here, so we bootstrap a root fs and `docker import` it.
# Users with a registry skip this: set BASE_IMAGE=python:3.11-slim (or the vLLM image).
set -euo pipefail

IMAGE="${CANARYFLOW_BASE_IMAGE:-canaryflow/base:bookworm}"
STATE="${CANARYFLOW_STATE:-/var/lib/canaryflow}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: $IMAGE present"; exit 0
fi
if docker pull "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: pulled $IMAGE"; exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: install debootstrap (apt-get install -y debootstrap)" >&2; exit 1; }

# The mirror this machine's apt already trusts.
MIRROR="${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
  /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS="$(mktemp -d "$STATE/rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
echo "base-image: debootstrap bookworm from $MIRROR (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,curl \
  bookworm "$ROOTFS" "$MIRROR" >"$STATE/log/debootstrap.log" 2>&1 \
  || { tail -n 20 "$STATE/log/debootstrap.log" >&2; exit 1; }
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE"
