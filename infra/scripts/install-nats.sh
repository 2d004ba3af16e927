#!/usr/bin/env bash
# Makes sure the project's nats-server is available under the project-local tools dir.
#
# The pinned version is Debian's nats-server 2.15.1 package, from Debian's testing
# suite (forky; sid as a fallback): a Go binary that runs on bookworm. Bookworm's own
# 2.9.10 silently ignores consumer fields we rely on and cannot serve async-nats KV
# creation; 2.10 works but re-stages message ids for proposals a leader change drops
# (nats-server#6415/#6486) and reads subject-filtered backlogs slowly, so 2.10 stays
# the minimum the binaries accept and 2.15.1 is what the project installs and tests.
# We fetch the .deb with `apt-get download` from a private sources list whose mirror
# URI is read from this machine's own apt config (never hard-coded), and unpack it
# with `dpkg -x`. If the pinned version is gone from the mirror, the suite's current
# package is taken when it is at least 2.11, with a warning. Prints the binary's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${IMGCRAWL_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin/nats-server"

pinned="2.15.1"

version_of() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1; }

# at_least BIN MINOR: BIN runs and reports 2.MINOR or newer
at_least() {
  local v major minor
  v="$(version_of "$1")" || return 1
  [ -n "$v" ] || return 1
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge "$2" ]; }
}

# Installed for this pin already: the pinned version, or the fallback this installer
# took when the pin was gone from the mirror (so that is not downloaded on every run).
stamp="$bin.pin"
if [ -x "$bin" ] && { [ "$(version_of "$bin")" = "$pinned" ] \
     || { [ "$(cat "$stamp" 2>/dev/null)" = "$pinned" ] && at_least "$bin" 11; }; }; then
  echo "$bin"; exit 0
fi

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

list="$tools/apt/newer.list"
printf 'deb [trusted=yes] %s forky main\ndeb [trusted=yes] %s sid main\n' "$uri" "$uri" > "$list"
opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=-"
      -o "Dir::State::Lists=$tools/apt/lists" -o "Dir::Cache=$tools/apt/cache"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
apt-get "${opts[@]}" -qq update >&2
work="$(mktemp -d)"; chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get "${opts[@]}" -qq download "nats-server=$pinned-*" >&2 2>/dev/null); then
  echo "install-nats: nats-server $pinned is no longer on the mirror; taking the current package" >&2
  (cd "$work" && apt-get "${opts[@]}" -qq download nats-server >&2)
fi
deb="$(ls "$work"/nats-server_*.deb | head -1)"
dpkg -x "$deb" "$work/x"
src="$(find "$work/x" -type f -name nats-server | head -1)"
"$src" --version >/dev/null 2>&1 || { echo "install-nats: the unpacked nats-server does not run here" >&2; exit 1; }
at_least "$src" 11 || { echo "install-nats: the unpacked nats-server $(version_of "$src") is older than 2.11" >&2; exit 1; }
[ "$(version_of "$src")" = "$pinned" ] || echo "install-nats: installed nats-server $(version_of "$src"), not the pinned $pinned" >&2
install -m 0755 "$src" "$bin"
echo "$pinned" > "$stamp"
echo "$bin"
