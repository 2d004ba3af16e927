#!/usr/bin/env bash
# Builds a Debian base image from Debian's packages with debootstrap and imports it
# into Podman (or Docker) as `imgcrawl-debian-base:<suite>`, for machines that reach
# no image registry. The mirror is the one apt already uses (read from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list), never a fixed host.
#
#   infra/docker/debian-base.sh [SUITE] [EXTRA_PACKAGES...]
#
# The tag is `imgcrawl-debian-base:<suite>`, or `IMGCRAWL_BASE_TAG` when set (give
# one per package set).
# Then build with `--build-arg BASE=localhost/imgcrawl-debian-base:bookworm`
# (see docs/deployment.md). Idempotent: an existing image of that name is kept.
set -euo pipefail
suite="${1:-bookworm}"
shift || true
extra="$(IFS=,; echo "$*")"
engine="${CONTAINER_ENGINE:-$(command -v podman || command -v docker)}"
tag="${IMGCRAWL_BASE_TAG:-imgcrawl-debian-base:${suite}}"

if "$engine" image exists "$tag" 2>/dev/null || "$engine" image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  # the URIs of the stanza whose Suites start with the plain suite name
  mirror="$(awk -v s="$suite" '
    /^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i==s) {print u; exit}}
    /^$/ {u=""}' "$f")"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
  mirror="$(awk -v s="$suite" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list)"
fi
[ -n "$mirror" ] || { echo "debian-base: no apt source for suite $suite" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase ${extra:+--include="$extra"} "$suite" "$root" "$mirror" >&2
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | "$engine" import - "$tag" >&2
echo "$tag"
