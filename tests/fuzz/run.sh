#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (libfuzzer-sys) with
# LLVM's sancov instrumentation passes, which stable rustc accepts as -C flags (no
# -Z sanitizer, so no nightly). Runs every target (or those named) for SECS seconds,
# keeps in tests/fuzz/corpus/<target>/ the smallest set of inputs that covers what the old
# corpus and the run covered (libFuzzer's set-cover merge), copies crashing inputs into tests/fuzz/regressions/<target>/ and prints executions per target.
# The corpus and regressions are replayed by `cargo test -p imgcrawl-fuzz-targets`.
#
# usage: tests/fuzz/run.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
shift || true
all=(sniff inspect structure svg srcset css extract robots normalize event)
targets=("${@:-${all[@]}}")
[ "${#targets[@]}" -gt 0 ] || targets=("${all[@]}")

host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-target}-fuzz"
export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --quiet --manifest-path tests/fuzz/harness/Cargo.toml \
  --target "$host" --target-dir "$target_dir"
bin="$target_dir/$host/release/imgcrawl-fuzz"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
found=0
printf '%-10s %12s %8s %s\n' target executions corpus findings
for t in "${targets[@]}"; do
  mkdir -p "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" "$work/$t/new" "$work/$t/crashes"
  log="$work/$t/log"
  set +e
  IMGCRAWL_FUZZ_TARGET="$t" "$bin" -max_total_time="$secs" -max_len=4096 \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/$t/crashes/" "$work/$t/new" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  # the committed corpus becomes the smallest set of old and new inputs that covers
  # everything both cover (libFuzzer's set-cover merge)
  mkdir -p "$work/$t/kept"
  if IMGCRAWL_FUZZ_TARGET="$t" "$bin" -set_cover_merge=1 -max_len=4096 \
    "$work/$t/kept" "tests/fuzz/corpus/$t" "$work/$t/new" >"$work/$t/merge.log" 2>&1 &&
    [ -n "$(ls -A "$work/$t/kept")" ]; then
    rm -f "tests/fuzz/corpus/$t"/*
    cp "$work/$t/kept"/* "tests/fuzz/corpus/$t/"
  fi
  crashes=0
  for c in "$work/$t/crashes/"*; do
    [ -f "$c" ] || continue
    cp "$c" "tests/fuzz/regressions/$t/$(sha1sum "$c" | cut -c1-16)"
    crashes=$((crashes + 1))
  done
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "fuzzing $t failed (exit $rc):" >&2
    tail -20 "$log" >&2
    found=1
  fi
  [ "$crashes" -eq 0 ] || { found=1; grep -m3 -E 'panicked|ERROR' "$log" >&2 || true; }
  printf '%-10s %12s %8s %s\n' "$t" "${execs:-?}" "$(ls "tests/fuzz/corpus/$t" | wc -l)" "$crashes"
done
exit "$found"
