"""When each HTTP request reached the hosts, by the kernel's clock: a packet capture on
lo (an AF_PACKET socket with a BPF filter on the site's port, kernel timestamps), so
`just bench-hosts` can judge request starts as the host's network saw them instead of
by nginx's clock.

nginx stamps a request with its cached time of the event-loop iteration that read it:
up to a millisecond early, and late by however long the worker was not running.
Measured against this capture on the 2-core bench machine: nginx's start minus the
wire's was -1.0 to +0.8 ms for 99 % of requests, +6.6 ms at worst in one run, and in
another a gap of 194 ms at the wire was 173 ms by nginx. The capture needs CAP_NET_RAW; without it
`Capture.open` returns None and the bench falls back to nginx's times.
"""

import ctypes
import socket
import struct
import threading

SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_HOST = 0


def _filter(port):
    """Classic BPF: IPv4, TCP, not a fragment, destination port `port`."""
    prog = [
        (0x28, 0, 0, 12),       # ldh [12]: ethertype
        (0x15, 0, 8, 0x0800),   # IPv4, else drop
        (0x30, 0, 0, 23),       # ldb [23]: protocol
        (0x15, 0, 6, 6),        # TCP, else drop
        (0x28, 0, 0, 20),       # ldh [20]: fragment offset
        (0x45, 4, 0, 0x1FFF),   # a fragment: drop
        (0xB1, 0, 0, 14),       # x = IP header length
        (0x48, 0, 0, 16),       # ldh [x + 16]: destination port
        (0x15, 0, 1, port),     # the port, else drop
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),        # drop
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    return code, struct.pack("HL", len(prog), ctypes.addressof(code))


def _parse(data):
    """(destination address, request path) of a packet that starts an HTTP GET."""
    ihl = (data[14] & 0x0F) * 4
    tcp = 14 + ihl
    payload = data[tcp + (data[tcp + 12] >> 4) * 4:]
    if not payload.startswith(b"GET "):
        return None
    return socket.inet_ntoa(data[30:34]), payload.split(b" ", 2)[1].decode(errors="replace")


class Capture:
    """GET requests to `port` on lo, as (kernel time in seconds, address, path)."""

    def __init__(self, sock, code):
        self._sock, self._code = sock, code
        self._seen, self._lock = [], threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, port):
        """A running capture, or None when raw sockets are not allowed."""
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        except (PermissionError, OSError):
            return None
        code, prog = _filter(port)
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("lo", 0))
        s.settimeout(0.2)
        return cls(s, code)

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, anc, _, addr = self._sock.recvmsg(65536, 256)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] != PACKET_HOST:  # lo shows each packet going out and coming in
                continue
            got = _parse(data)
            stamp = next((d for lvl, typ, d in anc if typ == SO_TIMESTAMPNS), None)
            if got and stamp:
                sec, nsec = struct.unpack("qq", stamp[:16])
                with self._lock:
                    self._seen.append((sec + nsec / 1e9, *got))

    def take(self):
        """The requests seen since the last call."""
        with self._lock:
            seen, self._seen = self._seen, []
        return seen

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
