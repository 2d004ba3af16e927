"""The 50-host site of `just bench-hosts`: its layout on disk and its nginx servers.

Host `h` (0..49) is 127.0.0.{h+2}, all on one port, each an nginx server with its own
root (`www/<address>/`). Image `k` of the pool (real images made by `sitegen`) lives on
host `k % HOSTS` as `/img/<k>.<ext>`; page `j` lives on host `j % HOSTS` (`/` for the
host's first page, `/p/<j>.html` after). Page `j` shows the images of slots
`IMAGES_PER_PAGE*j ..` of a seeded permutation of the pool, so every image is shown
exactly once and almost always on another host's page; it links to pages `5j+1..5j+5`
(a tree, so every page is reachable from the seed within a few hops) and to two
pseudo-random pages, all by absolute URL, so the crawl spans every host.

Images are served slowly (`limit_rate`, in small chunks), pages and robots.txt at full
speed: each image takes a few hundred milliseconds, so the run is bound by the
download replicas' concurrency, not by the CPU.
"""

import os
import random
import shutil
from pathlib import Path

HOSTS = 50
PAGES_PER_HOST = 4
IMAGES_PER_PAGE = 5
PAGES = HOSTS * PAGES_PER_HOST
IMAGES = PAGES * IMAGES_PER_PAGE
# sitegen's arguments for a pool of exactly IMAGES distinct images (its pages unused).
POOL_ARGS = ["--pages", str(IMAGES // 10), "--links", "1", "--images", "10",
             "--distinct", str(IMAGES)]
# nginx sends an image in chunks of CHUNK and waits chunk/LIMIT_RATE after each but the
# last: a 5-30 KiB image takes 0.08-0.6 s (about 0.3 s on average).
LIMIT_RATE = "48k"
CHUNK = "4k"
SEED = 1


def address(h):
    """The loopback address of host `h`."""
    return f"127.0.0.{h + 2}"


def addresses():
    """Every host's address, in order."""
    return [address(h) for h in range(HOSTS)]


def page_path(j):
    """The path of page `j` on its host."""
    return "/" if j < HOSTS else f"/p/{j}.html"


def page_url(j, port):
    """The absolute URL of page `j`."""
    return f"http://{address(j % HOSTS)}:{port}{page_path(j)}"


def _pool_images(pool_www):
    """{k: file name} of the pool's images (`img/<k>.<ext>`)."""
    found = {int(f.name.split(".")[0]): f.name for f in (pool_www / "img").iterdir()}
    if sorted(found) != list(range(IMAGES)):
        raise RuntimeError(f"the image pool in {pool_www} does not hold images 0..{IMAGES - 1}")
    return found


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _page_html(j, images, links):
    imgs = "".join(f'<img src="{u}" alt="image">' for u in images)
    refs = "".join(f'<a href="{u}">page</a> ' for u in links)
    return (f"<!doctype html><html><head><title>page {j}</title></head>"
            f"<body><h1>page {j}</h1>{imgs}<p>{refs}</p></body></html>\n")


def write(www, pool_www, port):
    """Writes the site for `port` into `www` (emptied first; images are hard links into
    the pool). Returns its ground truth: pages, image URLs, per-host counts."""
    if www.exists():
        shutil.rmtree(www)
    names = _pool_images(pool_www)
    for h in range(HOSTS):
        root = www / address(h)
        (root / "img").mkdir(parents=True)
        (root / "p").mkdir()
        (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    image_url = {}
    for k, name in names.items():
        host = address(k % HOSTS)
        _link_or_copy(pool_www / "img" / name, www / host / "img" / name)
        image_url[k] = f"http://{host}:{port}/img/{name}"
    rng = random.Random(SEED)
    order = list(range(IMAGES))
    rng.shuffle(order)
    for j in range(PAGES):
        slots = order[j * IMAGES_PER_PAGE:(j + 1) * IMAGES_PER_PAGE]
        children = [c for c in range(5 * j + 1, 5 * j + 6) if c < PAGES]
        links = children + [rng.randrange(PAGES) for _ in range(2)]
        html = _page_html(j, [image_url[k] for k in slots], [page_url(c, port) for c in links])
        target = www / address(j % HOSTS) / ("index.html" if j < HOSTS else page_path(j)[1:])
        target.write_text(html)
    return {"hosts": HOSTS, "pages": PAGES, "image_urls": IMAGES,
            "images_per_host": IMAGES // HOSTS, "pages_per_host": PAGES_PER_HOST,
            "seed": page_url(0, port)}


def nginx_http():
    """The `http {}` content for prepare.Nginx: one server per host, an access log with
    each request's host, completion time and duration, images rate-limited."""
    servers = []
    for a in addresses():
        servers.append(f"""\
    server {{{{
        listen {a}:{{port}};
        root {{root}}/{a};
        access_log {{tmp}}/access.log hosts;
        location /img/ {{{{
            limit_rate {LIMIT_RATE};
            sendfile_max_chunk {CHUNK};
        }}}}
    }}}}
""")
    # $msec: when the request completed (log time); $request_time: since its first
    # byte was read. Both in milliseconds. The user agent names the process.
    fmt = ("    log_format hosts '$server_addr $msec $request_time $status "
           "$body_bytes_sent $request_uri $http_user_agent';\n")
    return fmt + "".join(servers)


def pool_dir(site_dir):
    """Where the image pool is generated (reused across benches)."""
    return Path(site_dir) / f"pool-{IMAGES}"
