"""A real HTTP server on 127.0.0.1 for crawler tests: routes of bytes, or handlers that misbehave.

Every request is logged (path, headers, status sent), so tests can prove what was and was
not fetched. Routes serve ETag and Last-Modified and answer conditional GETs with 304.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

Handler = Callable[["RequestHandler"], None]


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    validators: bool = True  # send ETag/Last-Modified and honour If-None-Match / If-Modified-Since
    delay: float = 0.0  # seconds before answering


@dataclass
class Logged:
    path: str
    headers: dict[str, str]
    status: int
    started: float = 0.0  # time.monotonic() when the request arrived and when it was answered
    ended: float = 0.0


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        site = self.server.site
        path = self.path
        self.sent_status = 0
        started = time.monotonic()
        site._begin()
        try:
            bare = path.split("?", 1)[0]  # a route without a query answers any query (a search API)
            handler = site.handlers.get(path) or site.handlers.get(bare)
            if handler is not None:
                handler(self)
            else:
                self._serve(site.routes.get(path) or site.routes.get(bare))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (body cap, deadline): what the test wanted
        finally:
            headers = {k.lower(): v for k, v in self.headers.items()}
            site._log(Logged(path, headers, self.sent_status, started, time.monotonic()))
            site._end()

    def send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8", headers: dict | None = None) -> None:
        self.sent_status = status
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, route: Route | None) -> None:
        if route is None:
            self.send(404, b"<html><body><p>not found</p></body></html>")
            return
        if route.delay:
            time.sleep(route.delay)
        headers = dict(route.headers)
        if route.validators and route.status == 200:
            etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
            headers.setdefault("ETag", etag)
            headers.setdefault("Last-Modified", email.utils.formatdate(self.server.site.started, usegmt=True))
            if self.headers.get("If-None-Match") == etag:
                self.send(304, b"", content_type="", headers={"ETag": etag})
                return
        self.send(route.status, route.body, route.content_type, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: LocalSite


class LocalSite:
    """A threaded HTTP server on 127.0.0.1 with a free port. Use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.handlers: dict[str, Handler] = {}
        self.log: list[Logged] = []
        self.started = time.time() - 3600
        self._lock = threading.Condition()
        self._in_flight = 0
        self._server = _Server(("127.0.0.1", 0), RequestHandler)
        self._server.site = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-site", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str = b"", **route) -> str:
        """Serve ``body`` at ``path``; returns the full URL."""
        self.routes[path] = Route(body.encode() if isinstance(body, str) else body, **route)
        return self.url(path)

    def handle(self, path: str, handler: Handler) -> str:
        self.handlers[path] = handler
        return self.url(path)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def _log(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def requests(self, path: str | None = None) -> list[Logged]:
        """The requests answered so far (waiting a moment for those still being answered)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=2.0)
            return [e for e in self.log if path is None or e.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()


# -- misbehaving handlers ---------------------------------------------------------------------


def drip(interval: float) -> Handler:
    """Headers at once, then one byte every ``interval`` seconds, forever (no length: read to close)."""

    def handler(h: RequestHandler) -> None:
        h.sent_status = 200
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"<html><body><p>")
        while True:
            time.sleep(interval)
            h.wfile.write(b"x")
            h.wfile.flush()

    return handler


def endless(chunk: bytes = b"<p>" + b"all work and no play " * 500 + b"</p>\n") -> Handler:
    """An HTML body with no length that never ends."""

    def handler(h: RequestHandler) -> None:
        h.sent_status = 200
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"<html><body>")
        while True:
            h.wfile.write(chunk)

    return handler


def gzip_bomb(decompressed_bytes: int) -> Handler:
    """A small gzip body that inflates to ``decompressed_bytes`` of spaces inside HTML."""
    payload = gzip.compress(b"<html><body><p>" + b" " * decompressed_bytes + b"</p></body></html>")

    def handler(h: RequestHandler) -> None:
        h.send(200, payload, headers={"Content-Encoding": "gzip"})

    handler.compressed_size = len(payload)  # type: ignore[attr-defined]
    return handler


def redirect_to(location: str, status: int = 302) -> Handler:
    def handler(h: RequestHandler) -> None:
        h.send(status, b"", headers={"Location": location})

    return handler


def fail_then(times: int, status: int, then: Route, retry_after: str | None = None) -> Handler:
    """Answer ``status`` the first ``times`` requests, then serve ``then``."""
    count = {"n": 0}
    lock = threading.Lock()

    def handler(h: RequestHandler) -> None:
        with lock:
            count["n"] += 1
            n = count["n"]
        if n <= times:
            h.send(status, b"busy", "text/plain", {"Retry-After": retry_after} if retry_after else None)
        else:
            h._serve(then)

    return handler


def page(title: str, *paragraphs: str, images: tuple[str, ...] = ()) -> str:
    """A small article page: a title, paragraphs, and figures with the given image srcs."""
    figures = "".join(f'<figure><img src="{src}" alt="{title} picture {n}"><figcaption>{title} figure {n}</figcaption></figure>'
                      for n, src in enumerate(images))
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1>{body}{figures}</article></body></html>")
