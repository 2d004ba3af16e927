"""A minimal NATS client (the text protocol over one socket), enough for the benchmark:
publish the crawl request to JetStream with headers, await its PubAck, and wait for the
job's `crawl.completed` event. No third-party package needed.
"""

import json
import socket
import time


class Nats:
    """One connection; `request_js` publishes and awaits the PubAck, `wait_for` reads
    messages of a subscription until a predicate holds."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sids = {}
        info = self._line()
        if not info.startswith(b"INFO"):
            raise RuntimeError(f"nats: unexpected greeting {info[:80]!r}")
        connect = {"verbose": False, "pedantic": False, "headers": True, "lang": "python",
                   "version": "0", "name": "imgcrawl-bench", "no_responders": True}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        self.flush()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nats: timed out")
        self.sock.settimeout(min(remaining, 5.0))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return
        if not chunk:
            raise ConnectionError("nats: connection closed")
        self.buf += chunk

    def _line(self, deadline=None):
        deadline = deadline or time.monotonic() + 10
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def flush(self, timeout=10.0):
        """PING and wait for PONG: everything sent before is processed by the server."""
        self.sock.sendall(b"PING\r\n")
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg == "PONG":
                return

    def subscribe(self, subject, sid):
        self.sids[str(sid)] = subject
        self.sock.sendall(f"SUB {subject} {sid}\r\n".encode())

    def _next(self, deadline):
        """The next message as (sid, headers bytes, payload bytes), or 'PONG'."""
        while True:
            line = self._line(deadline)
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line == b"PONG":
                return "PONG"
            elif line.startswith(b"-ERR"):
                raise RuntimeError(f"nats: {line.decode(errors='replace')}")
            elif line.startswith(b"MSG "):
                parts = line.split()
                return parts[2].decode(), b"", self._exact(int(parts[-1]), time.monotonic() + 30)
            elif line.startswith(b"HMSG "):
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._exact(total, time.monotonic() + 30)
                return parts[2].decode(), data[:hlen], data[hlen:]

    def publish(self, subject, payload, headers=None, reply=None):
        hdr = b"NATS/1.0\r\n"
        for k, v in (headers or {}).items():
            hdr += f"{k}: {v}\r\n".encode()
        hdr += b"\r\n"
        head = f"HPUB {subject} {reply + ' ' if reply else ''}{len(hdr)} {len(hdr) + len(payload)}"
        self.sock.sendall(head.encode() + b"\r\n" + hdr + payload + b"\r\n")

    def request_js(self, subject, payload, headers, timeout=10.0):
        """Publishes to a JetStream subject and returns its PubAck (raises on an error)."""
        inbox = "_INBOX.bench.puback"
        self.subscribe(inbox, 9001)
        self.flush()
        self.publish(subject, payload, headers, reply=inbox)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg != "PONG" and msg[0] == "9001":
                ack = json.loads(msg[2] or b"{}")
                if "error" in ack or "seq" not in ack:
                    raise RuntimeError(f"jetstream publish to {subject}: {ack} {msg[1]!r}")
                return ack

    def request(self, subject, payload=b"", timeout=10.0):
        """A core NATS request (JetStream's API, say): the first reply's payload."""
        inbox = "_INBOX.bench.request"
        self.subscribe(inbox, 9002)
        self.flush()
        self.publish(subject, payload, reply=inbox)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg != "PONG" and msg[0] == "9002":
                self.sock.sendall(b"UNSUB 9002\r\n")
                return msg[2]

    def wait_for(self, sid, predicate, timeout, alive=lambda: True):
        """Reads messages until one on `sid` satisfies `predicate(payload)`; returns it.
        Calls `alive()` between reads and gives up when it returns False."""
        deadline = time.monotonic() + timeout
        while True:
            if not alive():
                raise RuntimeError("a process under test died")
            step = min(deadline, time.monotonic() + 2.0)
            try:
                msg = self._next(step)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if msg != "PONG" and msg[0] == str(sid) and predicate(msg[2]):
                return msg[2]

    def close(self):
        self.sock.close()
