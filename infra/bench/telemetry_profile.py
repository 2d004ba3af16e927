#!/usr/bin/env python3
"""`just bench-telemetry`: what metrics, delivery spans and JSON logs cost, by profile.

The end-to-end comparison (`bench.py --crawlers telemetry-off,telemetry-on`) compares
two noisy CPU totals: on this shared 2-core machine one mode's runs spread by more
than the 3 % it has to resolve. This measures the cost inside one run instead: it runs
the crawl benchmark in each mode with the bench's own profiler on (`BENCH_PERF`:
`perf record`, DWARF call graphs, on the worker during the measured window), and counts the CPU samples spent in telemetry code: any frame in
`tracing`/`tracing_subscriber`/`tracing_core`, the span slab, `prometheus_client`'s
encoding, or imgcrawl-telemetry's log, OTLP and HTTP modules, plus the time a
span-instrumented future spends entering and leaving its span. The counters
themselves (atomic adds, in both modes) are not telemetry-only work and are not
counted. It then relates that to all the run's CPU (worker, nats-server,
PostgreSQL) from bench.py's own accounting:

    telemetry share of all CPU = telemetry samples / worker samples
                                 x worker CPU / all CPU

and prints both modes and their difference (the cost of turning telemetry on).

    python3 infra/bench/telemetry_profile.py [--runs 1] [--binary target/release/imgcrawl]

Needs `perf` (Debian's linux-perf; installed if missing) and root or
perf_event_paranoid <= 1.
"""

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A frame of telemetry-only work.
TELEMETRY = re.compile(
    r"tracing_core::|tracing_subscriber::|tracing::span::|drop_in_place<tracing::span|"
    r"sharded_slab::|prometheus_client::encoding|imgcrawl_telemetry::(json|otlp|logs|http|server)::|"
    r"opentelemetry"
)
# A span-instrumented future: its own time is entering and leaving the span.
INSTRUMENTED = re.compile(r"tracing::instrument::Instrumented<.*>::poll")


def log(msg):
    print(f"[telemetry] {msg}", file=sys.stderr, flush=True)


def ensure_perf():
    if shutil.which("perf"):
        return
    log("installing linux-perf")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "linux-perf"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def shares(data, top=None):
    """(telemetry samples, all samples) of a perf recording; `top` (a Counter), if
    given, counts each telemetry sample under its outermost telemetry frame."""
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym", "--no-inline"],
                            capture_output=True, text=True, errors="replace").stdout
    total = telemetry = 0
    for sample in script.split("\n\n"):
        frames = [f.strip() for f in sample.strip().splitlines() if f.strip()]
        if not frames:
            continue
        total += 1
        leaf = frames[0]
        hits = [f for f in frames if TELEMETRY.search(f)]
        if INSTRUMENTED.search(leaf) or hits:
            telemetry += 1
            if top is not None:
                if hits:
                    name = hits[-1].split(" ", 1)[-1]
                    while re.search(r"<[^<>]*>", name[1:]):  # generic arguments
                        name = name[0] + re.sub(r"<[^<>]*>", "", name[1:])
                    name = name[:90]
                else:
                    name = "Instrumented::poll (entering and leaving a span)"
                top[name] += 1
    return telemetry, total


def one(mode, binary, work):
    """One bench run of `mode`, profiled by the bench itself (BENCH_PERF: `perf record`
    on the worker during the measured window); its result, and the profile's shares."""
    env = {**os.environ, "BENCH_SETTLE_S": os.environ.get("BENCH_SETTLE_S", "5"),
           "BENCH_PERF": str(work)}
    subprocess.run([sys.executable, str(ROOT / "infra/bench/bench.py"), "--runs", "1",
                    "--crawlers", mode, "--binary", binary],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    run = json.loads((ROOT / "bench-results/bench.json").read_text())["runs"][mode][0]
    if "error" in run:
        raise SystemExit(f"{mode}: the bench run failed: {run['error']}")
    data = work / f"{mode}-home-imgcrawl.data"
    top = collections.Counter()
    tel, total = shares(data, top)
    data.unlink()
    return run, tel, total, top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="alternating runs of each mode")
    ap.add_argument("--binary", default="target/release/imgcrawl")
    args = ap.parse_args()
    ensure_perf()
    rows = {"telemetry-off": [], "telemetry-on": []}
    tops = {m: collections.Counter() for m in rows}
    with tempfile.TemporaryDirectory(prefix="imgcrawl-telemetry-") as tmp:
        work = Path(tmp)
        for i in range(args.runs):
            for mode in (["telemetry-off", "telemetry-on"] if i % 2 == 0
                         else ["telemetry-on", "telemetry-off"]):
                log(f"round {i + 1}/{args.runs}: {mode}")
                run, tel, total, top = one(mode, args.binary, work)
                tops[mode].update(top)
                worker_cpu = run["cpu_by_process_s"]["imgcrawl"]
                share = tel / total * (worker_cpu / run["cpu_s"]) if total and run["cpu_s"] else 0
                rows[mode].append({"samples": total, "telemetry_samples": tel,
                                   "in_worker": tel / total if total else 0,
                                   "of_all_cpu": share,
                                   "cpu_ms_per_image": run["cpu_s_per_image"] * 1000,
                                   "worker_cpu_s": worker_cpu, "cpu_s": run["cpu_s"]})
    print(f"{'mode':<15} {'samples':>8} {'telemetry':>10} {'of worker':>10} {'of all CPU':>11} {'CPU ms/img':>11}")
    med = {}
    for mode, rs in rows.items():
        for r in rs:
            print(f"{mode:<15} {r['samples']:>8} {r['telemetry_samples']:>10} "
                  f"{r['in_worker'] * 100:>9.2f}% {r['of_all_cpu'] * 100:>10.2f}% "
                  f"{r['cpu_ms_per_image']:>11.2f}")
        med[mode] = statistics.median(r["of_all_cpu"] for r in rs)
    for mode, top in tops.items():
        n = sum(top.values()) or 1
        print(f"{mode}: where the telemetry samples are (outermost telemetry frame)")
        for name, k in top.most_common(8):
            print(f"  {k / n * 100:5.1f} %  {name}")
    cost = med["telemetry-on"] - med["telemetry-off"]
    print(f"median telemetry share of all CPU: off {med['telemetry-off'] * 100:.2f} %, "
          f"on {med['telemetry-on'] * 100:.2f} %; cost of turning it on: {cost * 100:.2f} % "
          f"(target <= 3 %)")
    out = ROOT / "bench-results/telemetry-profile.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": rows, "cost": cost}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if cost <= 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
