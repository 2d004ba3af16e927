#!/usr/bin/env python3
"""`just bench`: imgcrawl against Scrapy's ImagesPipeline on the same site, same machine,
same run.

Prepares (idempotently) nginx, the synthetic site, Scrapy and the release build; serves
the site with a private nginx; then alternates runs of imgcrawl (all stages in one
process), Scrapy and imgcrawl scaled out (one process per stage, two downloaders), each
from a clean state. Prints wall time, pages, images, images/s, CPU seconds per image and
peak RSS per run, the medians and the ratios imgcrawl/Scrapy, and writes everything to
bench-results/bench.json. Exits 1 if a run did not store every image.

    python3 infra/bench/bench.py [--runs 3] [--crawlers imgcrawl,scrapy,scaleout]

The cost of observability: `--crawlers telemetry-off,telemetry-on` (one process each;
off: no delivery spans, text logs, no metrics listener; on: delivery spans, JSON logs,
/metrics served and scraped every second); compare their CPU seconds per image.
"""

import argparse
import json
import os
import platform
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

TARGETS = {"images_per_s": 15.0, "cpu_s_per_image": 0.1, "peak_rss_bytes": 1.0}


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
            lines.append(
                f"{name}/scrapy: images/s x{rt['images_per_s']:.1f} (target >= 15), "
                f"CPU s/image x{rt['cpu_s_per_image']:.3f} (target <= 0.1), "
                f"peak RSS x{rt['peak_rss_bytes']:.2f} (target < 1)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--crawlers", default="imgcrawl,scrapy,scaleout")
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
        "targets": TARGETS,
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
