#!/usr/bin/env python3
"""`just bench`: imgcrawl against Scrapy's ImagesPipeline on the same site, same machine,
same run.

Prepares (idempotently) nginx, the synthetic site, Scrapy and the release build; serves
the site with a private nginx; then alternates runs of imgcrawl (all stages in one
process, one nats-server: R1), Scrapy, imgcrawl scaled out (one process per stage, two
downloaders, R1), and imgcrawl on a 3-node nats-server cluster with everything at R3
(`r3`: the server's default fsync; `r3-always`: `sync_interval: always`), each from a
clean state. Prints wall time, pages, images, images/s, CPU seconds per image and peak
RSS per run, the medians, the ratios imgcrawl/Scrapy, and the CPU budget per process
(ms of CPU per image for each stage process, each nats-server node, PostgreSQL and
nginx), and writes everything to bench-results/bench.json. Exits 1 if a run did not
store every image.

    python3 infra/bench/bench.py [--runs 3] [--crawlers imgcrawl,scrapy,scaleout,r3,r3-always]

The cost of the index's announcements: `--crawlers imgcrawl,no-indexed` (`images.indexed`
off; compare CPU per image and the message census).

The local bucket's directories: `--crawlers scaleout,scaleout-predirs` (the 256
`images/<aa>/` directories made before the crawl; compare the store's CPU).

nats-server's memory: `--crawlers imgcrawl,nats-memlimit` (nats-server with
`GOMEMLIMIT`, 150MiB or `BENCH_NATS_GOMEMLIMIT`; compare its peak RSS and CPU).

The cost of observability: `--crawlers telemetry-off,telemetry-on` (one process each;
off: no delivery spans, text logs, no metrics listener; on: delivery spans, JSON logs,
/metrics served and scraped every second); compare their CPU seconds per image.
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prepare  # noqa: E402
import procstat  # noqa: E402
import runners  # noqa: E402
from prepare import ROOT, log  # noqa: E402

# Issue 19's targets, imgcrawl/Scrapy: images/s at least, CPU per image (every process of
# the stack) at most, peak RSS below; on R3 with every write fsynced, images/s at least.
TARGETS = {"images_per_s": 10.0, "cpu_s_per_image": 0.15, "peak_rss_bytes": 1.0}
TARGETS_BY_CRAWLER = {"r3-always": {"images_per_s": 5.0}}
CRAWLERS = "imgcrawl,scrapy,scaleout,r3,r3-always"


def derived(r):
    """Adds images/s and CPU s/image to a run's result."""
    r["images_per_s"] = r["images"] / r["wall_s"] if r["wall_s"] else 0.0
    r["cpu_s_per_image"] = r["cpu_s"] / r["images"] if r["images"] else None
    # CPU the rest of the machine used meanwhile: other users, the harness itself.
    r["other_cpu_s"] = r["machine_busy_s"] - r["cpu_s"] - r.get("nginx_cpu_s", 0.0)
    return r


def medians(runs):
    keys = ["wall_s", "pages", "images", "images_per_s", "cpu_s", "cpu_s_per_image",
            "peak_rss_bytes", "other_cpu_s", "nginx_cpu_s", "loadavg_before"]
    ok = [r for r in runs if "error" not in r]
    return {k: statistics.median(r[k] for r in ok) for k in keys if ok} if ok else {}


def ratios(m, base):
    if not m or not base:
        return {}
    return {k: m[k] / base[k] for k in TARGETS if base.get(k)}


def targets(crawler):
    return {**TARGETS, **TARGETS_BY_CRAWLER.get(crawler, {})}


def budget(runs):
    """Medians per process of one crawler's runs: CPU seconds, CPU ms per image stored,
    and peak RSS; the processes in the order of the first run, then nginx."""
    ok = [r for r in runs if "error" not in r and r.get("cpu_by_process_s") and r["images"]]
    if not ok:
        return {}
    out = {}
    names = list(ok[0]["cpu_by_process_s"]) + ["nginx"]
    for name in names:
        key = "nginx_cpu_s" if name == "nginx" else None
        cpu = [r[key] if key else r["cpu_by_process_s"].get(name, 0.0) for r in ok]
        per = [c / r["images"] * 1000 for c, r in zip(cpu, ok)]
        rss = [r.get("peak_rss_by_process_bytes", {}).get(name, 0) for r in ok]
        out[name] = {"cpu_s": statistics.median(cpu), "cpu_ms_per_image": statistics.median(per),
                     "peak_rss_bytes": statistics.median(rss)}
    # Replicas of one stage (download-1, download-2): which one works varies from run to
    # run (one owner per host partition), so their sum is the comparable figure; the
    # same for the nodes of a nats cluster.
    fams = {}
    for name in names:
        m = re.match(r"^(.+)-n?\d+$", name)  # download-2, nats-n3
        if m:
            fams.setdefault(m.group(1), []).append(name)
    for fam, members in fams.items():
        if len(members) < 2:
            continue
        cpu = [sum(r["cpu_by_process_s"].get(n, 0.0) for n in members) for r in ok]
        row = {
            "cpu_s": statistics.median(cpu),
            "cpu_ms_per_image": statistics.median(c / r["images"] * 1000 for c, r in zip(cpu, ok)),
            "peak_rss_bytes": max(out[n]["peak_rss_bytes"] for n in members)}
        keys = list(out)
        at = keys.index(members[-1]) + 1
        out = {k: out[k] for k in keys[:at]} | {f"{fam} (all)": row} | {k: out[k] for k in keys[at:]}
    totals = [r["cpu_s"] / r["images"] * 1000 for r in ok]
    out["total"] = {"cpu_s": statistics.median(r["cpu_s"] for r in ok),
                    "cpu_ms_per_image": statistics.median(totals),
                    "peak_rss_bytes": max(v["peak_rss_bytes"] for v in out.values())}
    return out


def budget_table(name, b, n, scrapy):
    """The CPU budget of one crawler as text (`n` runs; `scrapy`: Scrapy's medians)."""
    head = f"{'process':<16} {'CPU s':>7} {'ms/image':>9} {'share':>6} {'peak RSS MB':>11}"
    lines = [f"CPU budget per process, {name} (medians of {n} run{'s' * (n != 1)}; "
             "share of the total; nginx serves the site and is not in the total, "
             "as it is not in Scrapy's; the total's RSS is the largest process's)",
             head, "-" * len(head)]
    total = b["total"]["cpu_ms_per_image"]
    for proc, v in b.items():
        if proc == "total":
            lines.append("-" * len(head))
        share = "" if proc == "nginx" else f"{v['cpu_ms_per_image'] / total:>6.0%}"
        rss = f"{v['peak_rss_bytes'] / 2**20:>11.1f}" if v["peak_rss_bytes"] else f"{'-':>11}"
        lines.append(f"{proc:<16} {v['cpu_s']:>7.2f} {v['cpu_ms_per_image']:>9.3f} {share:>6} {rss}")
    if scrapy and scrapy.get("cpu_s_per_image"):
        ms = scrapy["cpu_s_per_image"] * 1000
        lines.append(f"{'scrapy':<16} {scrapy['cpu_s']:>7.2f} {ms:>9.3f} {'':>6} "
                     f"{scrapy['peak_rss_bytes'] / 2**20:>11.1f}")
        lines.append(f"budget at the target (<= {TARGETS['cpu_s_per_image']} x Scrapy's): "
                     f"{ms * TARGETS['cpu_s_per_image']:.3f} ms/image; this run "
                     f"{total:.3f} ({total / ms:.3f} x Scrapy's)")
        big = max((k for k in b if k != "total"), key=lambda k: b[k]["peak_rss_bytes"])
        if scrapy.get("peak_rss_bytes"):
            x = b[big]["peak_rss_bytes"] / scrapy["peak_rss_bytes"]
            lines.append(f"largest process: {big}, peak RSS x{x:.2f} Scrapy's "
                         "(target: every process < 1)")
    return "\n".join(lines)


def _family(name):
    """A partitioned consumer's or subject's family: `download-p3` -> `download`,
    `imgcrawl.image.discovered.p3` -> `imgcrawl.image.discovered`."""
    return re.sub(r"[-.]p\d+$", "", name)


def census_rows(c):
    """{row: count} of one run's census: messages stored per stream and per event
    subject family, deliveries per consumer family (ordered consumers and KV watchers
    together, as `ordered/watchers`), and the server's messages in and out."""
    rows = {}

    def add(key, n):
        rows[key] = rows.get(key, 0) + n

    for name, st in c["streams"].items():
        add("stored, all streams", st["last_seq"])
        add(f"stored {name}", st["last_seq"])
        for subj, n in (st.get("subjects") or {}).items():
            add(f"  {_family(subj)}", n)
        for cons, info in st["consumers"].items():
            fam = "ordered/watchers" if info.get("ack_policy") == "none" else _family(cons)
            add(f"  delivered {name} -> {fam}", info["delivered"])
    add("server messages in (publishes, acks, requests)", c["server"]["in_msgs"])
    add("server messages out (deliveries, replies)", c["server"]["out_msgs"])
    return rows


def message_budget(runs):
    """Medians per image stored of what one crawler's runs cost the message layer (the
    census of runners.measure_crawl; single-server runs only); rows that are zero in
    every run are left out."""
    ok = [r for r in runs if "error" not in r and r.get("census") and r["images"]]
    per_run = [{k: v / r["images"] for k, v in census_rows(r["census"]).items()} for r in ok]
    keys = list(dict.fromkeys(k for pr in per_run for k in pr))
    med = {k: statistics.median(pr.get(k, 0.0) for pr in per_run) for k in keys}
    return {k: v for k, v in med.items() if any(pr.get(k) for pr in per_run)}


def message_table(name, rows):
    lines = [f"Messages per image stored, {name} (medians; counted on the server after "
             "the run; stored = messages persisted in the stream, last sequence)"]
    lines += [f"{k:<52} {v:>8.3f}" for k, v in rows.items()]
    return "\n".join(lines)


def row(name, r):
    if "error" in r:
        return f"{name:<14} ERROR {r['error']}"
    return (f"{name:<14} {r['wall_s']:>8.1f} {r['pages']:>6} {r['images']:>7} "
            f"{r['images_per_s']:>9.1f} {r['cpu_s_per_image'] * 1000:>10.2f} "
            f"{r['peak_rss_bytes'] / 2**20:>9.1f} {r.get('other_cpu_s', 0):>8.1f} "
            f"{r.get('loadavg_before', 0):>6.2f}")


def table(results, summary):
    head = (f"{'run':<14} {'wall s':>8} {'pages':>6} {'images':>7} {'images/s':>9} "
            f"{'CPU ms/img':>10} {'peak RSS MB':>9} {'other CPU s':>8} {'load':>6}")
    lines = [head, "-" * len(head)]
    for name, runs in results.items():
        for i, r in enumerate(runs, 1):
            lines.append(row(f"{name} #{i}", r))
    lines.append("-" * len(head))
    for name, m in summary["medians"].items():
        if m:
            lines.append(row(f"{name} median", m))
    lines.append("")
    for name, rt in summary["ratios"].items():
        if rt:
            t = targets(name)
            lines.append(
                f"{name}/scrapy: images/s x{rt['images_per_s']:.1f} "
                f"(target >= {t['images_per_s']:g}), "
                f"CPU s/image x{rt['cpu_s_per_image']:.3f} (target <= {t['cpu_s_per_image']:g}), "
                f"peak RSS x{rt['peak_rss_bytes']:.2f} (target < 1)")
    for name, b in summary.get("budgets", {}).items():
        if b:
            n = sum(1 for r in results[name] if "error" not in r)
            lines += ["", budget_table(name, b, n, summary["medians"].get("scrapy"))]
    for name, m in summary.get("messages", {}).items():
        if m:
            lines += ["", message_table(name, m)]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--crawlers", default=CRAWLERS)
    ap.add_argument("--site", type=Path, default=ROOT / "target/bench-site")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results/bench.json")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target/bench-work")
    ap.add_argument("--binary", type=Path,
                    help="an imgcrawl binary to measure instead of building target/release/imgcrawl")
    args = ap.parse_args()
    crawlers = [c for c in args.crawlers.split(",") if c]

    nginx_bin = prepare.ensure_nginx()
    truth, shas = prepare.ensure_site(args.site)
    scrapy = prepare.ensure_scrapy() if "scrapy" in crawlers else None
    imgcrawl = None
    if set(crawlers) - {"scrapy"}:
        imgcrawl = args.binary.resolve() if args.binary else prepare.build_imgcrawl()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runners.empty_trash(args.workdir)  # a previous bench's runs
    nginx = prepare.Nginx(nginx_bin, args.site / "www")
    results = {c: [] for c in crawlers}
    try:
        for i in range(args.runs):
            # Alternate the order so neither crawler always runs on a warmer machine.
            order = crawlers if i % 2 == 0 else list(reversed(crawlers))
            for c in order:
                log(f"round {i + 1}/{args.runs}: {c}")
                nginx_cpu0 = procstat.tree_cpu(nginx.proc.pid)
                try:
                    if c == "scrapy":
                        r = runners.run_scrapy(scrapy, nginx.url, len(shas), args.workdir)
                    else:
                        r = runners.run_imgcrawl(imgcrawl, nginx.url, shas, args.workdir, c)
                    r["nginx_cpu_s"] = procstat.tree_cpu(nginx.proc.pid) - nginx_cpu0
                    r = derived(r)
                    log(f"{c}: {r['images']} images in {r['wall_s']:.1f}s, "
                        f"{r['images_per_s']:.0f}/s, verified={r['verify']['ok']}")
                except Exception as e:  # a failed run is recorded, the others go on
                    traceback.print_exc()
                    r = {"error": f"{type(e).__name__}: {e}"}
                results[c].append(r)
    finally:
        nginx.stop()
        runners.empty_trash(args.workdir)
    med = {c: medians(rs) for c, rs in results.items()}
    summary = {
        "medians": med,
        "ratios": {c: ratios(med[c], med.get("scrapy")) for c in crawlers if c != "scrapy"},
        "budgets": {c: budget(rs) for c, rs in results.items() if c != "scrapy"},
        "messages": {c: message_budget(rs) for c, rs in results.items()
                     if c in ("imgcrawl", "scaleout", "no-indexed")},
        "targets": {c: targets(c) for c in crawlers if c != "scrapy"},
    }
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version()},
        "site": truth,
        "runs": results,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=str))
    print(table(results, summary))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    bad = [c for c, rs in results.items() for r in rs if "error" in r or not r["verify"]["ok"]]
    if bad:
        print(f"FAILED: runs that did not store every image: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
