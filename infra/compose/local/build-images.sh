#!/usr/bin/env bash
# Builds, without any image registry, the images the compose stack runs on this
# machine (docs/deployment.md, "What ran for real"):
#
#   imgcrawl:dev            infra/docker/Dockerfile's runtime stage, on a Debian base made
#                           by debootstrap, with the host-built release binary
#   imgcrawl-local/nats     the nats-server of ./.tools/bin (install-nats.sh)
#   imgcrawl-local/postgres Debian's PostgreSQL with an entrypoint reading
#                           POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE
#   imgcrawl-local/s3       s3s-fs (./.tools/bin, install-s3.sh) standing in for MinIO
#   imgcrawl-local/prometheus, imgcrawl-local/alertmanager   Debian's packages
#
# Grafana, MinIO and the NATS exporter have no Debian package: the local run leaves
# them out. Uses podman (CONTAINERS_CONF may point at local engine settings).
#
#   infra/compose/local/build-images.sh [path/to/imgcrawl]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
engine="${CONTAINER_ENGINE:-podman}"
bin="${1:-${CARGO_TARGET_DIR:-target}/release/imgcrawl}"
[ -x "$bin" ] || { echo "build-images: no $bin (cargo build --release -p imgcrawl)" >&2; exit 1; }

min="$(IMGCRAWL_BASE_TAG=imgcrawl-debian-base:min bash infra/docker/debian-base.sh bookworm ca-certificates)"
infra="$(IMGCRAWL_BASE_TAG=imgcrawl-debian-infra:bookworm bash infra/docker/debian-base.sh bookworm \
  ca-certificates postgresql prometheus prometheus-alertmanager procps)"
[[ "$min" == */* ]] || min="localhost/$min"
[[ "$infra" == */* ]] || infra="localhost/$infra"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/imgcrawl"
strip "$ctx/imgcrawl" 2>/dev/null || true
cp .tools/bin/nats-server .tools/bin/s3s-fs "$ctx/"
cp infra/compose/local/pg-entrypoint.sh infra/compose/local/s3-entrypoint.sh "$ctx/"

build() { # build TAG: the Containerfile on stdin
  "$engine" build -q --ulimit nofile=20000:20000 -t "$1" -f - "$ctx" >/dev/null
  echo "built $1" >&2
}

"$engine" build -q --ulimit nofile=20000:20000 -f infra/docker/Dockerfile \
  --build-arg BIN_FROM=prebuilt --build-arg BASE="$min" -t imgcrawl:dev "$ctx" >/dev/null
echo "built imgcrawl:dev" >&2

build imgcrawl-local/nats <<EOT
FROM $infra
COPY nats-server /usr/local/bin/nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/usr/local/bin/nats-server"]
EOT

build imgcrawl-local/postgres <<EOT
FROM $infra
COPY pg-entrypoint.sh /usr/local/bin/pg-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 5432
ENTRYPOINT ["bash", "/usr/local/bin/pg-entrypoint.sh"]
EOT

build imgcrawl-local/s3 <<EOT
FROM $min
COPY s3s-fs /usr/local/bin/s3s-fs
COPY s3-entrypoint.sh /usr/local/bin/s3-entrypoint.sh
EXPOSE 9000
ENTRYPOINT ["bash", "/usr/local/bin/s3-entrypoint.sh"]
EOT

build imgcrawl-local/prometheus <<EOT
FROM $infra
ENTRYPOINT ["/usr/bin/prometheus"]
EOT

build imgcrawl-local/alertmanager <<EOT
FROM $infra
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
EOT

"$engine" image inspect imgcrawl:dev --format '{{.Size}}' | awk '{printf "imgcrawl:dev %.1f MB\n", $1/1e6}'
