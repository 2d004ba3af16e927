#!/usr/bin/env bash
# Makes sure a nats-server >= 2.10 is available under the project-local tools dir.
#
# Debian bookworm ships nats-server 2.9.10, which silently ignores consumer fields we
# rely on and cannot serve async-nats KV creation. Debian trixie's package is a static
# Go binary that runs on bookworm, so we fetch that .deb with `apt-get download` from a
# private sources list whose mirror URI is read from this machine's own apt config
# (never hard-coded), and unpack it with `dpkg -x`. Prints the binary's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${IMGCRAWL_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin/nats-server"

version_ok() {
  local v
  v="$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" || return 1
  [ -n "$v" ] || return 1
  local major minor
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

if [ -x "$bin" ] && version_ok "$bin"; then echo "$bin"; exit 0; fi
if sys="$(command -v nats-server)" && version_ok "$sys"; then echo "$sys"; exit 0; fi

mkdir -p "$tools/bin" "$tools/apt/lists/partial" "$tools/apt/cache/archives/partial"
# The first non-security Debian mirror URI this machine is configured with.
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  uri="$(awk '/^URIs:/ {for (i=2;i<=NF;i++) print $i}' "$f" | grep -v security | head -1 || true)"
  [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri="$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)"
fi
[ -n "$uri" ] || { echo "install-nats: no debian mirror found in the apt configuration" >&2; exit 1; }

list="$tools/apt/trixie.list"
echo "deb [trusted=yes] $uri trixie main" > "$list"
opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=-"
      -o "Dir::State::Lists=$tools/apt/lists" -o "Dir::Cache=$tools/apt/cache"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
apt-get "${opts[@]}" -qq update >&2
work="$(mktemp -d)"; chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get "${opts[@]}" -qq download nats-server >&2)
deb="$(ls "$work"/nats-server_*.deb | head -1)"
dpkg -x "$deb" "$work/x"
src="$(find "$work/x" -type f -name nats-server | head -1)"
install -m 0755 "$src" "$bin"
version_ok "$bin" || { echo "install-nats: unpacked nats-server is older than 2.10" >&2; exit 1; }
echo "$bin"
