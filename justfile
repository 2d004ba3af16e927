# imgcrawl tasks. `just` lists them. The README's quick start uses `demo` and `test`.
set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @just --list

# build every crate
build:
    cargo build --workspace

# all tests: unit tests and integration tests against a real nats-server, PostgreSQL and HTTP site
test:
    bash infra/scripts/install-nats.sh >/dev/null
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --workspace --no-fail-fast; else cargo test --workspace --no-fail-fast; fi

# bring up the local stack, crawl the built-in demo site end to end, print the summary
demo:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo run -q -p imgcrawl -- demo

# start the local stack (nats-server, PostgreSQL, bucket dir, workers)
up:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo run -q -p imgcrawl -- up

# stop the local stack (data is kept)
down:
    cargo run -q -p imgcrawl -- down

# stack, stream, consumer lag, dead letters and jobs
status:
    cargo run -q -p imgcrawl -- status

# coverage-guided fuzzing on stable (libFuzzer + sancov): every target, or those named, SECS seconds each; merges new coverage into tests/fuzz/corpus, crashes into tests/fuzz/regressions (docs/security.md)
fuzz SECS="60" *TARGETS:
    bash tests/fuzz/run.sh {{SECS}} {{TARGETS}}

# lints
lint:
    cargo clippy --workspace --all-targets -- -D warnings
    cargo fmt --all --check

# p50/p99 latency of GET /api/images (100 per page) over a 20,000-image projection, wrk on loopback
bench-api:
    bash infra/scripts/install-nats.sh >/dev/null
    command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
    cargo test --release -p imgcrawl-tests --test it api_bench:: -- --ignored --nocapture

# replay speed: >= 1M synthetic events into a fresh stream, then PostgreSQL and object replays (medians of 3) against raw puts
bench-replay *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo run --release -q -p imgcrawl-bench --bin bench-replay -- {{ARGS}}

# the restore drill: the replay benchmark's 1M-event history backed up, restored into an empty nats-server and both projections replayed (RTO), then the RPO of the continuous archive with the machine lost mid-crawl
bench-restore *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo run --release -q -p imgcrawl-bench --bin bench-restore -- {{ARGS}}

# imgcrawl against Scrapy on one nginx-served synthetic site: R1 (one process, one per stage) and R3 rows (3-node cluster, default fsync and sync always), the CPU budget per process; prints the tables, writes bench-results/bench.json
bench *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    command -v python3 >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null)
    python3 infra/bench/bench.py {{ARGS}}

# the cost of telemetry (metrics, delivery spans, JSON logs) by profile: the crawl benchmark in each mode with perf attached to the worker; prints the share of all CPU spent in telemetry code, off and on, and fails above 3 %
bench-telemetry *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    command -v python3 >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null)
    python3 infra/bench/telemetry_profile.py {{ARGS}}

# images/s with 1, 2 and 4 download replicas crawling 50 nginx-served loopback hosts (127.0.0.2-51) at a per-host limit, and each host's most requests in flight and shortest interval from nginx's access log; prints the table, writes bench-results/bench-hosts.json, fails if a limit was exceeded
bench-hosts *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    command -v python3 >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null)
    python3 infra/bench/hosts.py {{ARGS}}

# HA failover under a continuously writing crawl: kill -9 of the primary's postmaster; write gap, lost and duplicated rows (seed defaults and 1 s checks)
bench-failover:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo test --release -p imgcrawl-tests --test it ha_bench:: -- --ignored --nocapture

# pages/s and CPU per page of the rendered crawl (headless Chromium) against the static one on a benchmark-shaped site; IMGCRAWL_BENCH_RENDER_PAGES=100 by default
bench-render:
    bash infra/scripts/install-nats.sh >/dev/null
    cargo test --release -p imgcrawl-tests --test it render::bench_render_against_static -- --ignored --nocapture

# the chaos suite: a crawl on a 3-node JetStream cluster (R3) with faults injected (nats nodes and stage processes killed, paused, partitioned; the primary PostgreSQL killed); prints the table. `just chaos --fast`, or name scenarios: no-fault leader-kill stage-kills nats-pause pg-failover partition
chaos *ARGS:
    bash infra/scripts/install-nats.sh >/dev/null
    command -v iptables >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null)
    cargo build --release -q -p imgcrawl -p imgcrawl-tests --bin imgcrawl --bin chaos
    IMGCRAWL_BIN="${CARGO_TARGET_DIR:-target}/release/imgcrawl" "${CARGO_TARGET_DIR:-target}/release/chaos" {{ARGS}}

# the deployment manifests checked offline: kustomize and the Kubernetes schemas, the compose and stack files, and the drift test against the binary (docs/deployment.md)
validate-manifests:
    bash infra/scripts/bootstrap.sh
    cargo build -q -p imgcrawl
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run -p imgcrawl-tests --test it -E 'test(/^deploy::/)'; else cargo test -p imgcrawl-tests --test it deploy:: ; fi

# the compose stack for real with Podman: images from Debian's packages (no registry), a crawl through a kill -9 of the stream leader's nats container (docs/deployment.md)
deploy-run:
    bash infra/scripts/install-nats.sh >/dev/null && bash infra/scripts/install-s3.sh >/dev/null
    command -v podman >/dev/null && command -v debootstrap >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman debootstrap runc uidmap >/dev/null)
    cargo build --release -q -p imgcrawl
    CONTAINERS_CONF="$PWD/infra/compose/local/containers.conf" bash infra/compose/local/build-images.sh "${CARGO_TARGET_DIR:-target}/release/imgcrawl"
    cargo test -q -p imgcrawl-tests --test it deploy_run:: -- --ignored --nocapture
