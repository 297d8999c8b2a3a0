"""Crawl benchmark: `engine index --topics` against a local site of real pages; pages/s and encoder share.

    .venv/bin/python benchmarks/crawl.py [--pages 2400] [--concurrency 16]

A local HTTP server (in a child process, so it does not share the crawler's interpreter)
serves the real article pages of ../shared/data/real-pages under --pages paths, cycling
through them. Each path's copy gets its own paragraph (so no two are duplicates), and the
pages' image URLs point at the example images on the same server (so images are fetched
and validated too, without the internet). Discovery returns every path. All pages are on
one host, so the per-host limits are raised to the global concurrency and the per-host
interval is 0; robots.txt is served and obeyed.

The text model (MiniLM, CPU) is loaded and warmed on a few pages first; CLIP is off. The
timed run reports pages/s, chunks/s, and the share of its wall time spent inside the text
encoder's calls: near 1.0 means the encoder sets the pace, not fetching or parsing.
``--producer-only`` times the crawl's producer alone (fetching, robots, extraction, image
fetching and validation, no encoder, nothing written): the pace the encoder would have to beat.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL_PAGES = REPO.parent / "shared" / "data" / "real-pages"
EXAMPLE_IMAGES = sorted((REPO / "examples" / "pages").glob("*_files/*.*"))

NOTE = (
    "Reader note {n}: this copy of the article was served at path number {n} of the benchmark "
    "site, and reader {n} wrote in to say that the page was useful for edition {n} of the course."
)


def site_pages(count: int) -> list[bytes]:
    """The HTML of each path: a real page, its images made local, with its own paragraph."""
    originals = [_local_images(p.read_bytes().decode("utf-8", errors="replace")) for p in sorted(REAL_PAGES.glob("*.html"))]
    if not originals:
        raise SystemExit(f"no pages in {REAL_PAGES}")
    anchors = [_main_text_position(html) for html in originals]
    pages = []
    for n in range(count):
        html, at = originals[n % len(originals)], anchors[n % len(originals)]
        html = html[:at] + NOTE.format(n=n) + " " + html[at:] if at >= 0 else html
        pages.append(html.encode("utf-8"))
    return pages


def _local_images(html: str) -> str:
    """Image URLs pointing at the example images on the benchmark site."""
    # Lazy-loading attributes would point trafilatura at the original (unreachable) hosts.
    html = re.sub(r"\s(?:data-src|data-srcset|srcset|data-lazy-src)=([\"'])[^\"']*\1", "", html, flags=re.IGNORECASE)
    counter = iter(range(10_000))
    return re.sub(
        r"(<img\b[^>]*?\bsrc=)([\"'])[^\"']*\2",
        lambda m: f"{m.group(1)}\"/img/{next(counter) % len(EXAMPLE_IMAGES)}.jpg\"",
        html,
        flags=re.IGNORECASE,
    )


def _main_text_position(html: str) -> int:
    """Where a note put into ``html`` lands in the text trafilatura extracts (-1 if nowhere found):
    tried at the occurrences of the longest extracted paragraphs until the note shows up."""
    from indexer.extract import extract

    def extracted(page: str) -> str:
        return extract(page.encode("utf-8"), "http://127.0.0.1/p.html", "benchmark page").text

    probe = "Probe sentence for the benchmark, placed here to find the main content. "
    for line in sorted(extracted(html).splitlines(), key=len, reverse=True)[:5]:
        prefix = line[:30]
        at = html.find(prefix) if len(prefix) == 30 else -1
        while at >= 0:
            if probe.strip() in extracted(html[:at] + probe + html[at:]):
                return at
            at = html.find(prefix, at + 1)
    return -1


def serve(count: int, port_out: multiprocessing.Queue) -> None:
    pages = site_pages(count)
    images = [p.read_bytes() for p in EXAMPLE_IMAGES]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body, kind, status = b"not found", "text/plain", 404
            if self.path == "/robots.txt":
                body, kind, status = b"User-agent: *\nDisallow: /private/\n", "text/plain", 200
            elif self.path.startswith("/p/") and self.path[3:-5].isdigit() and int(self.path[3:-5]) < len(pages):
                body, kind, status = pages[int(self.path[3:-5])], "text/html; charset=utf-8", 200
            elif self.path.startswith("/img/") and self.path[5:-4].isdigit():
                body, kind, status = images[int(self.path[5:-4]) % len(images)], "image/jpeg", 200
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


@dataclass
class Found:
    candidates: list
    failures: list = field(default_factory=list)


class TimedEncoder:
    """The text encoder, timing its encode calls (everything else passes through)."""

    def __init__(self, inner):
        self.inner = inner
        self.busy = 0.0
        self.texts = 0

    def encode(self, texts):
        started = time.perf_counter()
        try:
            return self.inner.encode(texts)
        finally:
            self.busy += time.perf_counter() - started
            self.texts += len(texts)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def crawl(root: Path, base: str, paths: range, encoder: TimedEncoder, concurrency: int):
    from engine.config import ClipConfig, Config, CrawlConfig, StoreConfig
    from engine.kb import KnowledgeBase
    from indexer.discover.base import Candidate

    urls = [f"{base}/p/{n}.html" for n in paths]

    async def discover(topic, client):
        return Found([Candidate(u, "page", "benchmark", rank) for rank, u in enumerate(urls)])

    config = Config(
        store=StoreConfig(root),
        clip=ClipConfig(enabled=False),
        crawl=CrawlConfig(
            allow_private_addresses=True,
            concurrency=concurrency,
            per_host_concurrency=concurrency,
            per_host_interval_seconds=0,
        ),
    )
    with KnowledgeBase(config, text_encoder=encoder) as kb:
        return kb.index(["python programming", "climate and emissions"], discover=discover)


def produce_only(root: Path, base: str, paths: range, concurrency: int) -> tuple[float, dict]:
    """Run only the crawl's producer; return its wall time and what it produced, by type."""
    import threading

    from engine.config import ClipConfig, Config, CrawlConfig, StoreConfig
    from engine.store.store import Store
    from indexer.crawl import Crawl
    from indexer.discover.base import Candidate

    urls = [f"{base}/p/{n}.html" for n in paths]

    async def discover(topic, client):
        return Found([Candidate(u, "page", "benchmark", rank) for rank, u in enumerate(urls)])

    config = Config(
        store=StoreConfig(root),
        clip=ClipConfig(enabled=False),
        crawl=CrawlConfig(allow_private_addresses=True, concurrency=concurrency,
                          per_host_concurrency=concurrency, per_host_interval_seconds=0),
    )
    produced: dict[str, int] = {}
    lock = threading.Lock()

    def emit(item: object) -> None:
        with lock:
            produced[type(item).__name__] = produced.get(type(item).__name__, 0) + 1

    with Store(root) as store:
        started = time.perf_counter()
        Crawl({"benchmark": 1}, discover).produce(store, config, emit, threading.Event())
        return time.perf_counter() - started, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2400, help="paths on the local site")
    parser.add_argument("--concurrency", type=int, default=16, help="crawl.concurrency (and per host)")
    parser.add_argument("--producer-only", action="store_true", help="time fetching and extraction alone")
    args = parser.parse_args()

    from engine.encoders.text import TextEncoder

    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.pages, ports), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=60)}"
    scratch = Path(tempfile.mkdtemp(prefix="engine-crawl-bench-"))
    if args.producer_only:
        try:
            wall, produced = produce_only(scratch / "producer", base, range(args.pages), args.concurrency)
        finally:
            server.terminate()
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"producer alone (fetch, robots.txt, extraction, images; no encoder, nothing written), "
              f"{args.pages} paths, concurrency {args.concurrency}: {wall:.1f} s, {args.pages / wall:.2f} pages/s; "
              f"produced {produced}")
        return
    try:
        encoder = TimedEncoder(TextEncoder("all-MiniLM-L6-v2"))
        _ = encoder.inner.model  # load outside the timing
        crawl(scratch / "warm", base, range(24), encoder, args.concurrency)  # torch builds its kernels
        encoder.busy, encoder.texts = 0.0, 0

        started = time.perf_counter()
        report = crawl(scratch / "timed", base, range(args.pages), encoder, args.concurrency)
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    pages = sum(report.pages.values())
    print(f"site: {args.pages} paths serving the {len(list(REAL_PAGES.glob('*.html')))} real pages of {REAL_PAGES} "
          f"in turn, each with its own paragraph; images: the {len(EXAMPLE_IMAGES)} example images")
    print(f"crawl: concurrency {args.concurrency} (one host, no per-host gap), CLIP off, text model {encoder.inner.name} on CPU")
    print(f"pages: {dict(report.pages)}; chunks added: {report.chunks_added}; images: {dict(report.images)}")
    failures = {}
    for failure in report.failures:
        key = f"{failure.kind}: {failure.reason.split(':', 1)[0]}"
        failures[key] = failures.get(key, 0) + 1
    print(f"failures by reason: {failures or 'none'}")
    print(f"wall: {wall:.1f} s; {pages / wall:.2f} pages/s; {report.chunks_added / wall:.1f} chunks/s")
    print(f"text encoder busy: {encoder.busy:.1f} s = {encoder.busy / wall:.3f} of wall time "
          f"({encoder.texts} texts encoded)")


if __name__ == "__main__":
    main()
