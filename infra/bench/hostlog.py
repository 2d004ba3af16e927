"""Politeness as the hosts saw it: nginx's access log of `just bench-hosts`, read back
per host.

Each line is `address msec request_time status bytes uri user-agent` (see
hostsite.nginx_http): a request completed at `msec` and started `request_time`
earlier (when nginx read its first byte); the user agent names the process that sent
it (each process of the bench has its own). Per host, from those intervals:

* max in flight: the most requests open at one moment (a sweep over starts and ends;
  an end at the same instant as a start closes first);
* min gap: the shortest time between two consecutive request starts;
* violations: starts that put more than the limit in flight, and gaps shorter than
  the delay;
* handovers: consecutive requests (by start) sent by different processes, i.e. the
  host's lease changed hands; and requests of two processes open at once, which host
  leases should make impossible.

Starts are taken from the packet capture when there is one (`with_wire`: when the
request reached the host's address, by the kernel's clock; see wire.py), else from
nginx. Either way a request leaves the crawler a little after its gate let it go (a
new connection, a process the scheduler delays), and nginx's own timestamps have
millisecond resolution, so the check allows `tolerance_ms`: a start counts
`tolerance_ms` later for the in-flight sweep, and a gap counts as too short only under
`delay_ms - tolerance_ms`. The raw figures (without tolerance) are kept beside them.
"""

import statistics
from collections import defaultdict


def read(path, offset=0):
    """The requests logged in `path` after byte `offset`, as dicts (host, start, end,
    status, bytes, uri); times in seconds."""
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f:
            parts = raw.decode(errors="replace").strip().split(maxsplit=6)
            if len(parts) < 6:
                continue
            host, msec, rtime, status, size, uri = parts[:6]
            end = float(msec)
            out.append({"host": host, "start": end - float(rtime), "end": end,
                        "status": int(status), "bytes": int(size), "uri": uri,
                        "client": parts[6] if len(parts) > 6 else "-"})
    return out


def with_wire(reqs, seen):
    """Replaces each request's start by the time its GET reached the host (`seen`:
    (time, address, path) from wire.Capture), matching the requests for one URL in
    order; keeps nginx's as `nginx_start`. Returns how many were matched."""
    wire = defaultdict(list)
    for t, host, uri in sorted(seen):
        wire[(host, uri)].append(t)
    logged = defaultdict(list)
    for r in sorted(reqs, key=lambda r: r["start"]):
        r["nginx_start"] = r["start"]
        logged[(r["host"], r["uri"])].append(r)
    matched = 0
    for key, rs in logged.items():
        ts = wire.get(key, [])
        if len(ts) == len(rs):
            for r, t in zip(rs, ts):
                r["start"] = t
            matched += len(rs)
    return matched


def max_in_flight(intervals, limit, shift=0.0):
    """(most requests open at once, starts that opened more than `limit`) over
    `(start, end)` intervals, each start counted `shift` seconds later."""
    events = []
    for start, end in intervals:
        events.append((min(start + shift, end), 1))
        events.append((end, -1))
    events.sort()  # at equal times -1 sorts first: an end frees its slot first
    cur = most = over = 0
    for _, delta in events:
        cur += delta
        if delta > 0 and cur > limit:
            over += 1
        most = max(most, cur)
    return most, over


def gaps(starts):
    """Milliseconds between consecutive starts (sorted), rounded to the log's
    millisecond."""
    s = sorted(starts)
    return [round((b - a) * 1000) for a, b in zip(s, s[1:])]


def close_pairs(reqs, under_ms):
    """Consecutive requests (by start) less than `under_ms` apart: the gap and both
    requests (uri, start, duration), for the report."""
    s = sorted(reqs, key=lambda r: r["start"])
    return [{"gap_ms": round((b["start"] - a["start"]) * 1000),
             "first": [a["uri"], round(a["start"], 3), round(a["end"] - a["start"], 3)],
             "second": [b["uri"], round(b["start"], 3), round(b["end"] - b["start"], 3)]}
            for a, b in zip(s, s[1:]) if round((b["start"] - a["start"]) * 1000) < under_ms]


def handovers(reqs, shift=0.0):
    """(times consecutive requests by start come from different clients, requests
    that start while another client's request is open), each start counted `shift`
    seconds later."""
    s = sorted(reqs, key=lambda r: r["start"])
    switches = sum(1 for a, b in zip(s, s[1:]) if a["client"] != b["client"])
    mixed = sum(1 for i, b in enumerate(s)
                if any(a["client"] != b["client"] and a["end"] > b["start"] + shift
                       for a in s[:i]))
    return switches, mixed


def host_figures(reqs, limit, delay_ms, tolerance_ms):
    """The figures of one host's requests (see the module doc)."""
    intervals = [(r["start"], r["end"]) for r in reqs]
    tol = tolerance_ms / 1000
    most, over = max_in_flight(intervals, limit, tol)
    raw_most, _ = max_in_flight(intervals, limit)
    g = gaps(r["start"] for r in reqs)
    min_gap = min(g) if g else None
    g_nginx = gaps(r.get("nginx_start", r["start"]) for r in reqs)
    too_close = sum(1 for x in g if x < delay_ms - tolerance_ms)
    switches, mixed = handovers(reqs, tol)
    return {
        "requests": len(reqs),
        "images": sum(1 for r in reqs if r["uri"].startswith("/img/")),
        "max_in_flight": most,
        "max_in_flight_raw": raw_most,
        "over_limit": over,
        "min_gap_ms": min_gap,
        "min_gap_ms_nginx": min(g_nginx) if g_nginx else None,
        "too_close": too_close,
        "too_close_pairs": close_pairs(reqs, delay_ms - tolerance_ms)[:10],
        "handovers": switches,
        "two_clients_open": mixed,
    }


def summarize(reqs, limit, delay_ms, tolerance_ms):
    """Per-host figures, the worst host's, and totals over every host."""
    by_host = defaultdict(list)
    for r in reqs:
        by_host[r["host"]].append(r)
    hosts = {h: host_figures(rs, limit, delay_ms, tolerance_ms)
             for h, rs in sorted(by_host.items())}
    figs = list(hosts.values())
    gaps_ms = [f["min_gap_ms"] for f in figs if f["min_gap_ms"] is not None]
    images = [r for r in reqs if r["uri"].startswith("/img/")]
    return {
        "hosts_seen": len(hosts),
        "requests": len(reqs),
        "image_gets": len(images),
        "image_gets_ok": sum(1 for r in images if r["status"] == 200),
        "distinct_image_urls": len({(r["host"], r["uri"]) for r in images}),
        "non_2xx": sum(1 for r in reqs if not 200 <= r["status"] < 300),
        "image_seconds": sum(r["end"] - r["start"] for r in images),
        "image_mean_s": statistics.mean(r["end"] - r["start"] for r in images) if images else 0,
        "max_in_flight": max((f["max_in_flight"] for f in figs), default=0),
        "max_in_flight_raw": max((f["max_in_flight_raw"] for f in figs), default=0),
        "hosts_at_limit": sum(1 for f in figs if f["max_in_flight"] >= limit),
        "min_gap_ms": min(gaps_ms, default=None),
        "min_gap_ms_nginx": min((f["min_gap_ms_nginx"] for f in figs
                                 if f["min_gap_ms_nginx"] is not None), default=None),
        "median_host_min_gap_ms": statistics.median(gaps_ms) if gaps_ms else None,
        "over_limit": sum(f["over_limit"] for f in figs),
        "too_close": sum(f["too_close"] for f in figs),
        "handovers": sum(f["handovers"] for f in figs),
        "two_clients_open": sum(f["two_clients_open"] for f in figs),
        "by_client": _by_client(reqs),
        "gaps": gap_breakdown(reqs),
        "limit": limit,
        "delay_ms": delay_ms,
        "tolerance_ms": tolerance_ms,
        "per_host": hosts,
    }


def gap_breakdown(reqs):
    """Start-to-start gaps between consecutive requests to a host, by kind: the next
    request from the same process (a page or an image), or from another process (a
    handover of the host's lease). {kind: {count, min_ms, median_ms}}."""
    by_host = defaultdict(list)
    for r in reqs:
        by_host[r["host"]].append(r)
    kinds = defaultdict(list)
    for rs in by_host.values():
        rs.sort(key=lambda r: r["start"])
        for a, b in zip(rs, rs[1:]):
            if a["client"] != b["client"]:
                kind = "handover"
            else:
                kind = "same process, image" if b["uri"].startswith("/img/") else \
                    "same process, page"
            kinds[kind].append(round((b["start"] - a["start"]) * 1000, 1))
    return {k: {"count": len(v), "min_ms": min(v), "median_ms": statistics.median(v)}
            for k, v in sorted(kinds.items())}


def _by_client(reqs):
    """{client: {requests, images}}."""
    out = defaultdict(lambda: {"requests": 0, "images": 0})
    for r in reqs:
        out[r["client"]]["requests"] += 1
        out[r["client"]]["images"] += r["uri"].startswith("/img/")
    return dict(sorted(out.items()))


def _self_test():
    """The sweep and the gaps on a hand-made log (run: python3 hostlog.py)."""
    iv = [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.2, 1.3)]
    assert max_in_flight(iv, 2) == (3, 1), max_in_flight(iv, 2)
    assert max_in_flight([(0.0, 1.0), (1.0, 2.0)], 1) == (1, 0)
    # a start 1 ms before the previous end overlaps raw, not with a 2 ms tolerance
    assert max_in_flight([(0.0, 1.0), (0.999, 2.0)], 1) == (2, 1)
    assert max_in_flight([(0.0, 1.0), (0.999, 2.0)], 1, 0.002) == (1, 0)
    reqs = [{"start": s, "end": s + 0.1, "uri": "/img/x", "status": 200, "client": c}
            for s, c in ((0.0, "a"), (0.2, "a"), (0.397, "b"), (0.5, "a"))]
    f = host_figures(reqs, 2, 200, 5)
    assert f["too_close"] == 1 and f["min_gap_ms"] == 103, f
    assert host_figures(reqs[:2] + [dict(reqs[1], start=0.395)], 2, 200, 5)["too_close"] == 0
    assert handovers(reqs) == (2, 0)
    g = gap_breakdown([dict(r, host="h") for r in reqs])
    assert g["handover"] == {"count": 2, "min_ms": 103.0, "median_ms": 150.0}, g
    assert handovers([dict(reqs[0], end=0.45)] + reqs[1:]) == (2, 1)
    logged = [dict(r, host="h") for r in reqs]
    assert with_wire(logged, [(0.001, "h", "/img/x"), (0.3, "h", "/img/x")]) == 0
    seen = [(s - 0.001, "h", "/img/x") for s in (0.0, 0.2, 0.397, 0.5)]
    assert with_wire(logged, seen) == 4 and logged[2]["start"] == 0.396
    print("ok")


if __name__ == "__main__":
    _self_test()
