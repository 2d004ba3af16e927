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

# lints
lint:
    cargo clippy --workspace --all-targets -- -D warnings
    cargo fmt --all --check
