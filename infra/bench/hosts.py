#!/usr/bin/env python3
"""`just bench-hosts`: does images/s scale with download replicas while every host's
limit holds for the whole cluster?

A site of 50 hosts (127.0.0.2 .. 127.0.0.51, one nginx server each; hostsite.py) is
crawled from one seed with 1, 2 and 4 download replicas, each run from a clean state
(a private nats-server and PostgreSQL, runners.stack): one crawl process, one store and
index process, N download processes. The job asks for at most PER_HOST_CONCURRENCY
requests in flight per host and DELAY_MS between request starts; each download
process handles DOWNLOAD_CONCURRENCY images at once, and nginx takes a few hundred
milliseconds per image, so one replica is the bottleneck and the CPU is not.

Per run: images indexed, wall time (request published to `crawl.completed`),
images/s, speed-up against the median 1-replica run, the average number of image
transfers open at nginx, and, from nginx's access log (request starts from a packet
capture on lo when allowed, wire.py), per host the most requests in flight at once,
the shortest interval between request starts and how often the host passed from one
process to another (hostlog.py), with the violations of the limit and the delay.
Prints the table, writes bench-results/bench-hosts.json, exits 1 if a limit was
exceeded, an image is missing or a run failed.

    python3 infra/bench/hosts.py [--runs 1] [--replicas 1,2,4] [--binary PATH]
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import sys
import time
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostlog  # noqa: E402
import hostsite  # noqa: E402
import prepare  # noqa: E402
import procstat  # noqa: E402
import runners  # noqa: E402
import wire  # noqa: E402
from prepare import ROOT, log  # noqa: E402

PER_HOST_CONCURRENCY = 2
DELAY_MS = 200
DOWNLOAD_CONCURRENCY = 4
# A request reaches the host a little after its gate let it go. At the wire, at a
# 200 ms delay, two image requests of one download process were never under 199 ms
# apart, two page requests of the crawl process (which parses pages on the same
# runtime) often 193-198 ms: a gap counts as a violation from 10 ms short.
TOLERANCE_MS = 10


def download_config(i):
    """The config of download process `i`: its concurrency, and a user agent of its
    own (same robots.txt product token) so the access log tells the processes apart.
    Only the download processes get a config file: with one, `imgcrawl run` takes the
    index database and the bucket from it instead of the local stack's."""
    return (f"[download]\nconcurrency = {DOWNLOAD_CONCURRENCY}\n[download.fetch]\n"
            f"user_agent = \"imgcrawl/0.1 (bench-hosts download {i})\"\n")


def client_label(agent):
    """`download N` for a download process's user agent, else `crawl`."""
    return agent[agent.index("download"):].rstrip(")") if "(bench-hosts download" in agent \
        else "crawl"


def request(job, seed):
    """The job: every host in scope, every link followed, the per-host limits."""
    return {
        "job_id": job,
        "url": seed,
        "scope": {"hosts": hostsite.addresses(), "max_depth": 1000},
        "politeness": {"per_host_concurrency": PER_HOST_CONCURRENCY, "delay_ms": DELAY_MS},
        "label": "bench-hosts",
    }


def port_on_every_host():
    """A TCP port free on all 50 addresses (and the proof that they are local)."""
    for _ in range(20):
        port = prepare.free_port()
        try:
            for a in hostsite.addresses():
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError as e:
            if e.errno == 99:  # EADDRNOTAVAIL
                sys.exit(f"{a} is not a local address: lo must hold 127.0.0.0/8 ({e})")
    raise RuntimeError("no port free on every host address after 20 tries")


def extra_checks(env, job):
    """What the index holds for the job beyond runners' checks: image URLs stored and
    rejected, rows in `images`."""
    rows = runners.psql(env, f"select (select count(*) from image_sources where job_id = "
                             f"'{job}' and status = 'stored'), (select count(*) from "
                             f"rejections where job_id = '{job}'), (select count(*) "
                             f"from images)")
    stored, rejected, images = (int(x) for x in rows[0])
    return {"image_sources_stored": stored, "rejections": rejected, "image_rows": images}


def _keep_requests(reqs, keep):
    """Writes the run's requests (start as judged, nginx's start, end, status, bytes,
    uri, client) to `keep`/requests.tsv, beside the run's other logs."""
    cols = ("host", "start", "nginx_start", "end", "status", "bytes", "uri", "client")
    lines = ["\t".join(cols)]
    for r in sorted(reqs, key=lambda r: r["start"]):
        lines.append("\t".join(str(r.get(c, r["start"])) for c in cols))
    (keep / "requests.tsv").write_text("\n".join(lines) + "\n")


def run_once(binary, nginx, capture, workdir, replicas, shas, seed, name):
    """One crawl with `replicas` download processes; its figures. Its logs stay in
    `<workdir>/<name>-home-last-logs`."""
    stages = [["crawl"], ["store", "index"]] + [["download"]] * replicas
    configs = [None, None] + [download_config(i + 1) for i in range(replicas)]
    job = str(uuid.uuid4())
    with runners.stack(binary, workdir, name, stages, configs=configs) as (
            env, home, workers):
        offset = nginx.access_log.stat().st_size
        nginx_cpu0 = procstat.tree_cpu(nginx.proc.pid)
        if capture:
            capture.take()
        r = runners.measure_crawl(env, home, workers, request(job, seed), shas)
        r["nginx_cpu_s"] = procstat.tree_cpu(nginx.proc.pid) - nginx_cpu0
        r["verify"].update(extra_checks(env, job))
    r["replicas"] = replicas
    r["images_per_s"] = r["images"] / r["wall_s"]
    reqs = hostlog.read(nginx.access_log, offset)
    matched = hostlog.with_wire(reqs, capture.take()) if capture else 0
    _keep_requests(reqs, workdir / f"{name}-home-last-logs")
    h = hostlog.summarize(reqs, PER_HOST_CONCURRENCY, DELAY_MS, TOLERANCE_MS)
    h["starts_at_wire"] = matched
    h["images_open_avg"] = h["image_seconds"] / r["wall_s"]
    h["by_client"] = {client_label(c): v for c, v in h["by_client"].items()}
    r["hosts"] = h
    v = r["verify"]
    v["ok"] = (v["ok"] and v["image_sources_stored"] == len(shas) and v["rejections"] == 0
               and v["image_rows"] == len(shas) and h["hosts_seen"] == hostsite.HOSTS)
    r["violations"] = h["over_limit"] + h["too_close"]
    return r


def summary(results):
    """Median images/s per replica count and the speed-up against one replica."""
    med = {n: statistics.median(r["images_per_s"] for r in rs if "error" not in r)
           for n, rs in results.items() if any("error" not in r for r in rs)}
    base = med.get(1)
    return {n: {"images_per_s": m, "speedup": m / base if base else None}
            for n, m in med.items()}


def _row(n, i, r, summ):
    if "error" in r:
        return f"{n:>8} {i:>3} ERROR {r['error']}"
    h = r["hosts"]
    speed = f"{r['images_per_s'] / summ[1]['images_per_s']:.2f}x" if 1 in summ else "-"
    return (f"{n:>8} {i:>3} {r['images']:>6} {r['wall_s']:>7.1f} {r['images_per_s']:>6.1f} "
            f"{speed:>8} {h['images_open_avg']:>5.1f}/{n * DOWNLOAD_CONCURRENCY:<2} "
            f"{h['max_in_flight']:>9} / {PER_HOST_CONCURRENCY} "
            f"{h['min_gap_ms'] or 0:>6} / {DELAY_MS} {r['violations']:>10} "
            f"{h['handovers']:>9} {h['image_gets'] - h['distinct_image_urls']:>7}")


def _host_line(n, i, r):
    h = r["hosts"]
    per = "/".join(str(v["images"]) for c, v in h["by_client"].items() if c != "crawl")
    src = "wire" if h["starts_at_wire"] == h["requests"] else \
        f"wire {h['starts_at_wire']}/{h['requests']}, else nginx"
    kinds = "; ".join(f"{k} {v['count']}: min {v['min_ms']:.0f} / median "
                      f"{v['median_ms']:.0f} ms" for k, v in h["gaps"].items())
    return (f"  {n} replica(s) #{i} (starts: {src}): {h['hosts_at_limit']}/{h['hosts_seen']} "
            f"hosts reached "
            f"{PER_HOST_CONCURRENCY} in flight; shortest gap {h['min_gap_ms']} ms (nginx "
            f"{h['min_gap_ms_nginx']}, median host {h['median_host_min_gap_ms']:.0f}); images by process {per}; two "
            f"processes open at one host {h['two_clients_open']}; image transfer "
            f"{h['image_mean_s']:.2f} s; CPU {r['cpu_s']:.0f} s + nginx {r['nginx_cpu_s']:.1f} s\n"
            f"    gaps to a host's next request: {kinds}")


def table(results, summ):
    """The printed table: one row per run, the medians, then the per-host lines."""
    head = (f"{'replicas':>8} {'run':>3} {'images':>6} {'wall s':>7} {'img/s':>6} "
            f"{'speed-up':>8} {'img open':>8} {'max in flight':>13} {'min gap ms':>12} "
            f"{'violations':>10} {'handovers':>9} {'refetch':>7}")
    lines = [head, "-" * len(head)]
    lines += [_row(n, i, r, summ) for n, rs in results.items() for i, r in enumerate(rs, 1)]
    lines.append("-" * len(head))
    for n, s in summ.items():
        against = f", x{s['speedup']:.2f} against 1" if s["speedup"] else ""
        lines.append(f"{n} replica(s): median {s['images_per_s']:.1f} images/s{against}")
    lines.append(f"\nimg open: image transfers open at nginx on average / download slots "
                 f"({DOWNLOAD_CONCURRENCY} a process); max in flight and min gap: worst "
                 f"host / the job's limit; violations allow {TOLERANCE_MS} ms; handovers: "
                 f"a host's next request from another process")
    lines += [_host_line(n, i, r) for n, rs in results.items() for i, r in enumerate(rs, 1)
              if "error" not in r]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="rounds of every replica count")
    ap.add_argument("--replicas", default="1,2,4", help="download replica counts")
    ap.add_argument("--site", type=Path, default=ROOT / "target/bench-hosts-site")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target/bench-hosts-work")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results/bench-hosts.json")
    ap.add_argument("--binary", type=Path,
                    help="an imgcrawl binary to measure instead of building target/release/imgcrawl")
    ap.add_argument("--sitegen", type=Path,
                    help="a sitegen binary for the image pool instead of building it")
    args = ap.parse_args()
    counts = [int(c) for c in args.replicas.split(",") if c]
    # SIGTERM unwinds like ^C, so every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    nginx_bin = prepare.ensure_nginx()
    pool = hostsite.pool_dir(args.site)
    _, shas = prepare.ensure_site(pool, hostsite.POOL_ARGS, args.sitegen)
    binary = args.binary.resolve() if args.binary else prepare.build_imgcrawl()
    port = port_on_every_host()
    truth = hostsite.write(args.site / "www", pool / "www", port)
    args.workdir.mkdir(parents=True, exist_ok=True)
    runners.empty_trash(args.workdir)
    nginx = prepare.Nginx(nginx_bin, args.site / "www", http=hostsite.nginx_http(),
                          probe=hostsite.address(0), port=port)
    capture = wire.Capture.open(port)
    if not capture:
        log("no packet capture (needs CAP_NET_RAW): request starts from nginx's clock")
    results = {n: [] for n in counts}
    try:
        for i in range(args.runs):
            # Alternate the order so no replica count always runs on a warmer machine.
            for n in counts if i % 2 == 0 else list(reversed(counts)):
                log(f"round {i + 1}/{args.runs}: {n} download replica(s)")
                try:
                    r = run_once(binary, nginx, capture, args.workdir, n, shas,
                                 truth["seed"], f"hosts-{n}-{i + 1}")
                    log(f"{n} replica(s): {r['images']} images in {r['wall_s']:.1f}s, "
                        f"{r['images_per_s']:.1f}/s, violations={r['violations']}, "
                        f"verified={r['verify']['ok']}")
                except Exception as e:  # a failed run is recorded, the others go on
                    traceback.print_exc()
                    r = {"error": f"{type(e).__name__}: {e}"}
                results[n].append(r)
    finally:
        if capture:
            capture.close()
        nginx.stop()
        runners.empty_trash(args.workdir)
    summ = summary(results)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version()},
        "settings": {"per_host_concurrency": PER_HOST_CONCURRENCY, "delay_ms": DELAY_MS,
                     "download_concurrency": DOWNLOAD_CONCURRENCY,
                     "tolerance_ms": TOLERANCE_MS, "limit_rate": hostsite.LIMIT_RATE,
                     "chunk": hostsite.CHUNK},
        "site": truth,
        "runs": {str(n): rs for n, rs in results.items()},
        "summary": {str(n): s for n, s in summ.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=str))
    print(table(results, summ))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    failed = [f"{n} replica(s) #{i}" for n, rs in results.items() for i, r in enumerate(rs, 1)
              if "error" in r or not r["verify"]["ok"] or r["violations"]]
    if failed:
        print(f"FAILED: a limit exceeded, an image missing or an error in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
