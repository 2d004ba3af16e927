#!/usr/bin/env bash
# Makes sure a real S3-compatible server is available for the integration tests: the
# `s3s-fs` binary (an S3 server over a local directory, from the `s3s` project on
# crates.io), installed under the project-local tools dir. Prints the binary's path.
#
# Idempotent: installs only if missing. The first install compiles it from source
# (a few minutes on two cores); concurrent callers wait for one install (flock).
#
#   IMGCRAWL_S3_SERVER      use this binary instead (nothing is installed)
#   IMGCRAWL_TOOLS_DIR      tools dir (default: <workspace>/.tools)
#   IMGCRAWL_S3S_FS_VERSION version to install (default below: the newest whose
#                           rust-version our toolchain meets; 0.15+ need rustc 1.96)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${IMGCRAWL_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin/s3s-fs"
version="${IMGCRAWL_S3S_FS_VERSION:-0.14.1}"

works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if [ -n "${IMGCRAWL_S3_SERVER:-}" ]; then
  works "$IMGCRAWL_S3_SERVER" || { echo "install-s3: IMGCRAWL_S3_SERVER=$IMGCRAWL_S3_SERVER does not run" >&2; exit 1; }
  echo "$IMGCRAWL_S3_SERVER"; exit 0
fi
if works "$bin"; then echo "$bin"; exit 0; fi

mkdir -p "$tools/bin"
exec 9>"$tools/.install-s3.lock"
flock 9
# Another caller may have installed it while we waited for the lock.
if works "$bin"; then echo "$bin"; exit 0; fi

echo "install-s3: compiling s3s-fs $version into $tools (first time only)" >&2
start=$SECONDS
# A private target dir: never the workspace's, never shared with a parallel build.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
CARGO_TARGET_DIR="$work/target" cargo install --locked --quiet \
  s3s-fs --version "$version" --features binary --root "$tools" >&2
works "$bin" || { echo "install-s3: $bin was not installed" >&2; exit 1; }
echo "install-s3: s3s-fs $version installed in $((SECONDS - start)) s" >&2
echo "$bin"
