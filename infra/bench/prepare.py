"""Everything the benchmark needs before it measures, each step idempotent: nginx from
Debian's packages, the synthetic site, Scrapy in a project-local virtualenv, the release
build of imgcrawl, and a private nginx serving the site on a loopback port."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.isfile(p)), None
    )


def ensure_nginx():
    """nginx from Debian's packages (nginx-light); its system service is not started."""
    found = nginx_binary()
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("nginx is missing: install Debian's nginx-light (apt-get install nginx-light)")
    # policy-rc.d 101 = "do not start services" while the package installs.
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light"]
        if subprocess.run(cmd, env=env).returncode != 0:
            run(["apt-get", "update", "-q"], env=env)
            run(cmd, env=env)
    finally:
        if ours:
            policy.unlink()
    found = nginx_binary()
    if not found:
        sys.exit("nginx-light installed but no nginx binary found")
    return found


def ensure_site(site_dir, sitegen_args=(), sitegen=None):
    """A synthetic site (generated once by `sitegen`, reused while truth.json exists):
    the benchmark's by default, or shaped by `sitegen_args` (`--pages N` ...). `sitegen`
    is a binary to use instead of building it. Returns its truth and its SHA-256s."""
    truth = site_dir / "truth.json"
    if not truth.is_file():
        if sitegen is None:
            run(["cargo", "build", "--release", "-q", "-p", "imgcrawl-sitegen", "--bin",
                 "sitegen"], cwd=ROOT)
            sitegen = release_binary("sitegen")
        run([str(sitegen), "--out", str(site_dir), *sitegen_args], cwd=ROOT,
            stdout=subprocess.DEVNULL)
    shas = set((site_dir / "sha256.txt").read_text().split())
    return json.loads(truth.read_text()), shas


def ensure_scrapy():
    """Scrapy and Pillow (pinned) in .tools/venv-scrapy; returns the scrapy executable."""
    venv = ROOT / ".tools/venv-scrapy"
    scrapy = venv / "bin/scrapy"
    stamp = venv / "requirements.installed"
    reqs = (HERE / "requirements-scrapy.txt").read_text()
    if not _starts(scrapy):
        # made under another checkout (a worktree): its scripts name an interpreter
        # that is gone, and the run fails with "no such file" for the script
        shutil.rmtree(venv, ignore_errors=True)
    if scrapy.is_file() and stamp.is_file() and stamp.read_text() == reqs:
        return scrapy
    if not (venv / "bin/python").is_file():
        if subprocess.run([sys.executable, "-m", "venv", str(venv)]).returncode != 0:
            # Debian's python3 needs python3-venv for ensurepip.
            shutil.rmtree(venv, ignore_errors=True)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            run(["apt-get", "install", "-y", "-q", "python3-venv"], env=env)
            run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin/pip"), "install", "-q", "-r", str(HERE / "requirements-scrapy.txt")])
    stamp.write_text(reqs)
    return scrapy


def _starts(script):
    """Whether a venv script's interpreter (its `#!` line, an absolute path) exists."""
    try:
        first = script.read_text(errors="replace").split("\n", 1)[0]
    except OSError:
        return False
    words = first[2:].split() if first.startswith("#!") else []
    return bool(words) and Path(words[0]).exists()


def psql_binary():
    """psql from PATH, or from the newest /usr/lib/postgresql/*/bin (as the stack finds
    PostgreSQL)."""
    found = shutil.which("psql")
    if found:
        return found
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not cands:
        sys.exit("psql not found (install postgresql)")
    return str(cands[-1])


def release_binary(name):
    """Where cargo puts release binary `name` (under CARGO_TARGET_DIR if set)."""
    return ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / name


def build_imgcrawl():
    """Builds the release `imgcrawl`; returns its path."""
    run(["cargo", "build", "--release", "-q", "-p", "imgcrawl"], cwd=ROOT)
    return release_binary("imgcrawl")


NGINX_CONF = """\
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include {mime};
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http}
}}
"""

ONE_SITE = """\
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
"""


class Nginx:
    """A private nginx (own config in a temp dir, loopback port, no system service).

    By default one server on 127.0.0.1 serves `www`; `http` replaces it with any
    `http {}` content (format fields `{tmp}`, `{port}`, `{root}`), and `probe` names the
    address whose port is awaited before the constructor returns."""

    def __init__(self, binary, www, http=ONE_SITE, probe="127.0.0.1", port=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="imgcrawl-bench-nginx-"))
        self.port = port or free_port()
        self.access_log = self.tmp / "access.log"
        mime = "/etc/nginx/mime.types"
        body = http.format(tmp=self.tmp, port=self.port, root=www)
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, mime=mime, http=body))
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            self._await(probe)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://{probe}:{self.port}/"
        log(f"nginx serving {www} at {self.url}")

    def _await(self, addr):
        for _ in range(100):
            try:
                socket.create_connection((addr, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {(self.tmp / 'error.log').read_text()}")
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not listen on {addr}:{self.port} within 10s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
