"""What a crawl cost the message layer, counted on the server after the run: the
persisted messages of every stream (the event stream per subject, the KV buckets and
the blob store as streams), the deliveries and acks of every consumer, and the
server's own message counters over the measured window (docs/performance.md, "The
event budget").

Read on a single server (the R1 runs); on a cluster each node counts only its own
clients' traffic, so the figures are kept for R1 only.
"""

import json
import urllib.request


def _get(monitor_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}{path}", timeout=10) as r:
        return json.load(r)


def counters(monitor_port):
    """The server's message counters (`/varz`): messages and bytes in and out."""
    v = _get(monitor_port, "/varz")
    return {k: v.get(k, 0) for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}


def _subjects(nats, stream):
    """{subject: messages} of `stream` (JetStream's stream info, subjects filtered)."""
    out, offset = {}, 0
    while True:
        req = json.dumps({"subjects_filter": ">", "offset": offset}).encode()
        info = json.loads(nats.request(f"$JS.API.STREAM.INFO.{stream}", req))
        subjects = (info.get("state") or {}).get("subjects") or {}
        out.update(subjects)
        total = info.get("total", len(out))
        offset += len(subjects)
        if not subjects or offset >= total:
            return out


def take(nats, monitor_port, before, per_subject=("IMGCRAWL",)):
    """The census after a run: streams (messages stored, first/last sequence, bytes),
    per-subject counts of the streams named in `per_subject`, every consumer's
    deliveries, acks and redeliveries, and the server counters since `before`
    (a `counters` reading)."""
    jsz = _get(monitor_port, "/jsz?streams=true&consumers=true&config=true")
    streams = {}
    for account in jsz.get("account_details", []):
        for s in account.get("stream_detail", []):
            state = s.get("state", {})
            entry = {
                "messages": state.get("messages", 0),
                "first_seq": state.get("first_seq", 0),
                "last_seq": state.get("last_seq", 0),
                "bytes": state.get("bytes", 0),
                "consumers": {},
            }
            for c in s.get("consumer_detail") or []:
                entry["consumers"][c.get("name")] = {
                    "delivered": (c.get("delivered") or {}).get("consumer_seq", 0),
                    "ack_floor": (c.get("ack_floor") or {}).get("consumer_seq", 0),
                    "redelivered": c.get("num_redelivered", 0),
                    "ack_pending": c.get("num_ack_pending", 0),
                    "filter": (c.get("config") or {}).get("filter_subject")
                    or (c.get("config") or {}).get("filter_subjects"),
                    "ack_policy": (c.get("config") or {}).get("ack_policy"),
                }
            if s.get("name") in per_subject:
                entry["subjects"] = _subjects(nats, s["name"])
            streams[s.get("name")] = entry
    now = counters(monitor_port)
    return {"streams": streams, "server": {k: now[k] - before.get(k, 0) for k in now}}
