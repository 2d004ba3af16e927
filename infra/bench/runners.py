"""One measured run of each crawler, from a clean state.

* imgcrawl: a private local stack (`imgcrawl up --no-workers` in a fresh IMGCRAWL_HOME on
  free ports; for the R3 modes `--nats-nodes 3`, a 3-node JetStream cluster with the
  stream, buckets and blob store at R3, with the server's default fsync or
  `--nats-sync always`), the workers started here (`imgcrawl run`: all stages in one
  process, or one process per stage for the scale-out figure), the request published
  once every consumer exists; measured from the publish to the job's `crawl.completed`
  event. CPU = the worker processes + every nats-server node + every PostgreSQL
  process, each accounted separately (`cpu_by_process_s`).
* Scrapy: `scrapy runspider` measured from spawn to exit (CPU and peak RSS by wait4).
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import census
import procstat
from natsclient import Nats
from prepare import HERE, ROOT, free_port, log, psql_binary

RUN_TIMEOUT = 1800

# ext4 skips recently deleted inodes when it allocates new ones, and checking them costs:
# profiled 35 s after the previous run's 20,000 files were deleted, 36% of the store
# stage's CPU was ext4's `recently_deleted()` under file and directory creation. So no
# run deletes anything: a finished run's files are moved aside (a rename) and the pile
# is deleted when the bench starts (followed by one long settle) and when it ends.
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "65"))
_last_delete = [0.0]


def _discard(path):
    """Moves a run's files out of the way, into `<workdir>/trash`, without deleting."""
    if path.exists():
        dest = path.parent / "trash" / f"{path.name}-{time.monotonic_ns()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.rename(dest)


def empty_trash(workdir):
    """Deletes the files of finished runs (at the start and the end of a bench)."""
    trash = workdir / "trash"
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
        os.sync()
        _last_delete[0] = time.monotonic()


def _settle():
    wait = _last_delete[0] + SETTLE_S - time.monotonic()
    if wait > 0:
        log(f"waiting {wait:.0f}s for the filesystem to settle after the last cleanup")
        time.sleep(wait)


def _wait_consumers(monitor_port, want, timeout=60):
    """Waits until the stream has `want` consumers (the stages are pulling)."""
    url = f"http://127.0.0.1:{monitor_port}/jsz?consumers=true"
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                jsz = json.load(r)
            streams = [s for a in jsz.get("account_details", [])
                       for s in a.get("stream_detail", []) if s.get("name") == "IMGCRAWL"]
            n = sum(len(s.get("consumer_detail") or []) for s in streams)
            if n >= want:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"only {n} of {want} consumers after {timeout}s")


def psql(env, sql):
    """Rows of `sql` on the stack's index database, as lists of strings."""
    port = env["IMGCRAWL_PG_PORT"]
    out = subprocess.run([psql_binary(), "-h", "127.0.0.1", "-p", port, "-U", "imgcrawl", "-d",
                          "imgcrawl", "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, text=True, env=env)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def _bucket_shas(bucket):
    """{sha256 named by the key: sha256 of the bytes} of every object in the bucket."""
    found = {}
    for dirpath, _, files in os.walk(bucket):
        for name in files:
            data = Path(dirpath, name).read_bytes()
            found[name.split(".")[0]] = hashlib.sha256(data).hexdigest()
    return found


def _verify_imgcrawl(env, home, job, shas):
    job_row = psql(env, f"select status, pages_fetched, images_stored from jobs "
                        f"where job_id = '{job}'")
    index = {r[0] for r in psql(env, "select sha256 from images")}
    bucket = _bucket_shas(home / "bucket")
    bad_objects = sum(1 for k, v in bucket.items() if k != v)
    status, pages, stored = job_row[0] if job_row else ("missing", 0, 0)
    v = {
        "job_status": status,
        "pages_fetched": int(pages),
        "image_urls_stored": int(stored),
        "index_distinct_sha256": len(index),
        "bucket_objects": len(bucket),
        "bucket_objects_with_wrong_bytes": bad_objects,
        "index_matches_site": index == shas,
        "bucket_matches_site": set(bucket) == shas,
    }
    v["ok"] = (status == "completed" and v["index_matches_site"] and v["bucket_matches_site"]
               and bad_objects == 0)
    return v


def _request(job, url):
    # Scrapy follows every link (DEPTH_LIMIT 0): so does this job. Scrapy's
    # CONCURRENT_REQUESTS_PER_DOMAIN=64 is the job's per-host concurrency. The rest are
    # imgcrawl's defaults.
    return {
        "job_id": job,
        "url": url,
        "scope": {"max_depth": 1000},
        "politeness": {"per_host_concurrency": 64},
        "label": "bench",
    }


STAGE_SETS = {
    "imgcrawl": [[]],
    "scaleout": [["crawl"], ["download"], ["download"], ["store"], ["index"]],
    "r3": [[]],
    "r3-always": [[]],
    "no-indexed": [[]],
    "nats-memlimit": [[]],
    "scaleout-predirs": [["crawl"], ["download"], ["download"], ["store"], ["index"]],
    "telemetry-off": [[]],
    "telemetry-on": [[]],
}

# The cost of one event kind (docs/performance.md, "The event budget"): `no-indexed` is
# `imgcrawl` with the index's `images.indexed` announcements off (`[index]
# publish_indexed = false`: one stored message, its PubAck and one delivery less per
# committed batch; per image before they were batched). The first worker's config file, per mode.
# With a config file, `imgcrawl run` takes the database and the bucket from it, so it
# names the stack's (`{pg_port}` and `{home}` are filled in by `stack`).
MODE_CONFIGS = {
    "no-indexed": ["[index]\npublish_indexed = false\n"
                   "database_url = \"postgres://imgcrawl@127.0.0.1:{pg_port}/imgcrawl\"\n"
                   "[store]\ntarget = \"file://{home}/bucket\"\n"],
}

# The R3 modes: `imgcrawl up --nats-nodes 3` (the stream, the KV buckets and the blob
# store at R3), with the server's default fsync or every write fsynced on every node.
# The same workers as `imgcrawl` (one process), so the difference is durability.
NATS_MODES = {
    "r3": ["--nats-nodes", "3", "--nats-sync", "default"],
    "r3-always": ["--nats-nodes", "3", "--nats-sync", "always"],
}


def process_names(stage_sets):
    """The name of each worker process of `stage_sets` in the CPU accounting: its
    stage (numbered when several processes run the same one), or `imgcrawl` for one
    process running every stage."""
    names = ["+".join(s) if s else "imgcrawl" for s in stage_sets]
    out, seen = [], {}
    for n in names:
        if names.count(n) > 1:
            seen[n] = seen.get(n, 0) + 1
            n = f"{n}-{seen[n]}"
        out.append(n)
    return out

# The cost of observability (docs/observability.md), one process like `imgcrawl`:
# off: no delivery spans (their target at warn), text logs, no metrics listener;
# on: delivery spans, JSON logs, /metrics served and scraped every second.
MODE_ENV = {
    # nats-server (started by `imgcrawl up`, inheriting the environment) with a Go soft
    # memory limit below Scrapy's peak RSS: what the RSS target costs in CPU.
    "nats-memlimit": {"GOMEMLIMIT": os.environ.get("BENCH_NATS_GOMEMLIMIT", "150MiB")},
    "telemetry-off": {"RUST_LOG": "info,async_nats=warn,sqlx=warn,imgcrawl_bus::worker=warn"},
    "telemetry-on": {"RUST_LOG": "info,async_nats=warn,sqlx=warn", "IMGCRAWL_LOG_FORMAT": "json"},
}


def _scrape(port, stop):
    """GET /metrics every second until `stop` is set (a Prometheus stand-in)."""
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            pass


def run_imgcrawl(binary, url, shas, workdir, mode):
    """One run of imgcrawl (`mode` = imgcrawl: one process, scaleout: one per stage)."""
    extra = dict(MODE_ENV.get(mode, {}))
    scraping = None
    if mode == "telemetry-on":
        port = free_port()
        extra["IMGCRAWL_METRICS_LISTEN"] = f"127.0.0.1:{port}"
        scraping = threading.Event()
        threading.Thread(target=_scrape, args=(port, scraping), daemon=True).start()
    try:
        with stack(binary, workdir, mode, STAGE_SETS[mode], extra, configs=MODE_CONFIGS.get(mode),
                   up_args=NATS_MODES.get(mode)) as (env, home, workers):
            if mode == "scaleout-predirs":
                _make_leaf_dirs(home / "bucket")
            return measure_crawl(env, home, workers, _request(str(uuid.uuid4()), url), shas,
                                 names=process_names(STAGE_SETS[mode]))
    finally:
        if scraping:
            scraping.set()


def _make_leaf_dirs(bucket):
    """All 256 `images/<aa>/` directories of a local bucket (the flat layout's folders),
    before the crawl (`scaleout-predirs`): the store's CPU without creating any
    directory (docs/performance.md)."""
    for a in range(256):
        (bucket / "images" / f"{a:02x}").mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def stack(binary, workdir, name, stage_sets, extra_env=None, configs=None, up_args=None):
    """A private local stack from a clean state: `imgcrawl up --no-workers [up_args]` in a
    fresh `<workdir>/<name>-home` on free ports (three consecutive ones each for a
    cluster's client, monitoring and route ports), then one `imgcrawl run` process per
    entry of `stage_sets` (a list of stage names; empty: all stages), the i-th with `--config`
    `configs[i]` (TOML text; `{pg_port}` and `{home}` in it become the stack's PostgreSQL
    port and home) unless that is None. Yields (env, home, workers) once every
    consumer exists; afterwards stops the workers and the stack, keeps the logs in
    `<name>-home-last-logs` and moves the rest aside."""
    home = workdir / f"{name}-home"
    _discard(home)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "IMGCRAWL_BUCKET", "IMGCRAWL_CONFIG",
                        "RUST_LOG")}
    cluster = bool(up_args)
    n = 3 if cluster else 1
    env.update(IMGCRAWL_HOME=str(home), IMGCRAWL_NATS_PORT=str(free_ports(n)),
               IMGCRAWL_PG_PORT=str(free_port()), IMGCRAWL_NATS_MONITOR_PORT=str(free_ports(n)),
               IMGCRAWL_NATS_CLUSTER_PORT=str(free_ports(3)))
    env.update(extra_env or {})
    workers = []
    try:
        if not cluster:
            _start_nats_with_pprof(home, env)
        subprocess.run([binary, "up", "--no-workers", *(up_args or [])], check=True, cwd=ROOT,
                       env=env, stdout=subprocess.DEVNULL)
        for i, stages in enumerate(stage_sets):
            args = [binary, "run", "--allow-loopback"]
            if configs and configs[i] is not None:
                text = (configs[i].replace("{pg_port}", env["IMGCRAWL_PG_PORT"])
                            .replace("{home}", str(home.resolve())))
                (home / f"run-{i}.toml").write_text(text)
                args += ["--config", str(home / f"run-{i}.toml")]
            for s in stages:
                args += ["--stage", s]
            with open(home / f"run-{i}.log", "w") as logf:
                workers.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=logf,
                                                stderr=subprocess.STDOUT))
        _wait_consumers(int(env["IMGCRAWL_NATS_MONITOR_PORT"]), 4)
        yield env, home, workers
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        subprocess.run([binary, "down"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        keep = home.with_name(home.name + "-last-logs")
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir()
        for f in home.glob("*.log"):
            shutil.copy(f, keep)
        _discard(home)


def free_ports(n):
    """The first of `n` consecutive free loopback ports (a local cluster's node i
    listens on the first + i - 1)."""
    for _ in range(200):
        first = free_port()
        socks = []
        try:
            for p in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def nats_pids(home):
    """{name: pid} of the stack's nats-server nodes: `nats-server` alone, or
    `nats-n1`... for a cluster."""
    single = home / "nats.pid"
    if single.is_file():
        return {"nats-server": int(single.read_text().strip())}
    return {f"nats-{p.stem}": int(p.read_text().strip())
            for p in sorted((home / "nats-cluster").glob("n*.pid"))}


def _start_nats_with_pprof(home, env):
    """With BENCH_PPROF=DIR: starts the stack's nats-server here, as `imgcrawl up` would
    but with Go's profiler on a free port (`up` then finds it running)."""
    if not os.environ.get("BENCH_PPROF"):
        return
    port = free_port()
    env["BENCH_PPROF_PORT"] = str(port)
    (home / "nats").mkdir(parents=True, exist_ok=True)
    cmd = [str(ROOT / ".tools/bin/nats-server"), "-js", "-a", "127.0.0.1", "-n",
           "imgcrawl-local", "-p", env["IMGCRAWL_NATS_PORT"], "-m",
           env["IMGCRAWL_NATS_MONITOR_PORT"], "-sd", str(home / "nats"), "-P",
           str(home / "nats.pid"), "-profile", str(port)]
    subprocess.Popen(cmd, stdout=open(home / "nats.log", "w"), stderr=subprocess.STDOUT,
                     start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", int(env["IMGCRAWL_NATS_PORT"])), 0.2).close()
            if (home / "nats.pid").is_file():
                break
        except OSError:
            pass
        time.sleep(0.1)


def _grab_pprof(env, home, seconds=20, delay=5):
    """With BENCH_PPROF=DIR: a CPU profile of nats-server, `delay` s after the request."""
    port = env.get("BENCH_PPROF_PORT")
    if not port:
        return None
    import threading

    def grab():
        time.sleep(delay)
        url = f"http://127.0.0.1:{port}/debug/pprof/profile?seconds={seconds}"
        data = urllib.request.urlopen(url, timeout=seconds + 30).read()
        Path(os.environ["BENCH_PPROF"], f"{home.name}-nats.pprof").write_bytes(data)

    t = threading.Thread(target=grab, daemon=True)
    t.start()
    return t


def _start_perf(roots, home):
    """With BENCH_PERF=DIR: `perf record` (cpu-clock, DWARF call graphs) on each worker
    process during the measured window, one file per process into DIR (nats-server is
    profiled with its own pprof endpoint, see BENCH_PPROF)."""
    out = os.environ.get("BENCH_PERF")
    if not out:
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in roots.items():
        if name == "postgres" or name.startswith("nats-"):
            continue
        data = Path(out) / f"{home.name}-{name}.data"
        procs.append(subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "249", "--call-graph", "dwarf,32768",
             "-p", str(pid), "-o", str(data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1)
    return procs


def _stop_perf(procs):
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(60)


def measure_crawl(env, home, workers, request, shas, names=None):
    """Publishes `request` (a crawl request with its `job_id`) and measures it until the
    job's `crawl.completed`: wall time, CPU and peak RSS of the stack's processes, and
    the index and bucket checked against `shas`. `names` names the workers in the
    per-process figures (default `worker<i>`)."""
    names = names or [f"worker{i}" for i in range(len(workers))]
    pg_pid = int((home / "pg/data/postmaster.pid").read_text().split()[0])
    roots = dict(zip(names, (w.pid for w in workers)))
    roots.update(nats_pids(home))
    roots["postgres"] = pg_pid
    nats = Nats(int(env["IMGCRAWL_NATS_PORT"]))
    nats.subscribe("imgcrawl.crawl.completed", 1)
    nats.flush()
    job = request["job_id"]
    body = json.dumps(request).encode()
    _settle()
    perf = _start_perf(roots, home)
    pprof = _grab_pprof(env, home)
    monitor = int(env["IMGCRAWL_NATS_MONITOR_PORT"])
    single = "nats-server" in roots
    counted = census.counters(monitor) if single else None
    load0 = procstat.loadavg()
    meter = procstat.CpuMeter(roots)
    t0 = time.monotonic()
    nats.request_js("imgcrawl.crawl.requested", body,
                    {"Nats-Msg-Id": f"bench-{job}", "Imgcrawl-Event": "crawl.requested.v1"})
    done = nats.wait_for(1, lambda p: json.loads(p).get("job_id") == job, RUN_TIMEOUT,
                         alive=lambda: all(w.poll() is None for w in workers))
    wall = time.monotonic() - t0
    cpu, busy = meter.stop()
    hwm = {name: procstat.vm_hwm_bytes(w.pid) for name, w in zip(names, workers)}
    servers = {n: procstat.tree_vm_hwm_bytes(p) for n, p in roots.items() if n not in hwm}
    load1 = procstat.loadavg()
    _stop_perf(perf)
    if pprof:
        pprof.join(60)
    counts = None
    if counted is not None:
        try:
            counts = census.take(nats, monitor, counted)
        except (OSError, ValueError, RuntimeError) as e:
            log(f"no census of the stream: {e}")
    nats.close()
    completed = json.loads(done)
    verify = _verify_imgcrawl(env, home, job, shas)
    images = verify["index_distinct_sha256"]
    return {
        "wall_s": wall,
        "pages": completed.get("pages_fetched"),
        "images": images,
        "cpu_s": sum(cpu.values()),
        "cpu_by_process_s": cpu,
        "peak_rss_bytes": max(hwm.values()),
        "peak_rss_by_process_bytes": {**hwm, **servers},
        "machine_busy_s": busy,
        "loadavg_before": load0,
        "loadavg_after": load1,
        "completed_event": completed,
        "census": counts,
        "verify": verify,
    }


def run_scrapy(scrapy, url, expected_images, workdir):
    """One run of Scrapy's CrawlSpider + ImagesPipeline, from a clean output directory."""
    out = workdir / "scrapy"
    _discard(out)
    out.mkdir(parents=True)
    stats_file = out / "stats.json"
    cmd = [str(scrapy), "runspider", str(HERE / "scrapy_spider.py"), "-a", f"start_url={url}",
           "-s", f"IMAGES_STORE={out / 'images'}", "-s", f"BENCH_STATS={stats_file}"]
    _settle()
    load0 = procstat.loadavg()
    busy0 = procstat.machine_busy_seconds()
    t0 = time.monotonic()
    with open(out / "scrapy.log", "w") as logf:
        p = subprocess.Popen(cmd, cwd=out, stdout=logf, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    busy = procstat.machine_busy_seconds() - busy0
    load1 = procstat.loadavg()
    if p.returncode != 0:
        raise RuntimeError(f"scrapy exited with {p.returncode}; see {out / 'scrapy.log'}")
    stats = json.loads(stats_file.read_text())
    full = out / "images/full"
    stored = sum(1 for f in full.iterdir() if f.is_file()) if full.is_dir() else 0
    s = stats["stats"]
    result = {
        "wall_s": wall,
        "pages": stats["pages"],
        "images": stored,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_bytes": ru.ru_maxrss * 1024,
        "machine_busy_s": busy,
        "loadavg_before": load0,
        "loadavg_after": load1,
        "verify": {
            "images_stored": stored,
            "file_status_count/downloaded": s.get("file_status_count/downloaded"),
            "ok": stored == expected_images,
        },
    }
    _discard(out / "images")
    return result
