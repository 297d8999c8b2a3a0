"""The Fetcher: GET a page or an image politely and safely, or say exactly why not.

One guarded httpx client per crawl (see netguard). Each request: scheme allow-list,
robots.txt, a global and a per-host turn (politeness), connect/read timeouts and a deadline
for the whole attempt, a byte cap on the decompressed body, retries with backoff on 429/5xx
and broken connections, redirects followed by hand (each hop checked again), conditional
GET from stored validators, and a check that the body is what was asked for.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Literal, Self

import httpx

from engine.config import CrawlConfig
from engine.errors import FetchError
from indexer.fetch.body import (
    ACCEPT_ENCODING,
    BadEncoding,
    BodyTooLarge,
    BoundedDecoder,
)
from indexer.fetch.netguard import (
    AddressRefused,
    GuardedTransport,
    ResolutionFailed,
    Resolver,
    scheme_problem,
    system_resolver,
)
from indexer.fetch.politeness import HostGate
from indexer.fetch.robots import ROBOTS_MAX_BYTES, RobotsPolicy
from indexer.fetch.sniff import (
    image_refusal,
    input_refusal,
    media_type,
    page_refusal,
    page_refusal_by_type,
)

Kind = Literal["page", "image", "robots", "input"]
GZIP_TYPES = ("application/gzip", "application/x-gzip")
REDIRECTS = (301, 302, 303, 307, 308)
RETRIED_STATUSES = (429, 500, 502, 503, 504)
ACCEPT = {
    "page": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
    "image": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8",
    "robots": "text/plain,*/*;q=0.1",
    "input": "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.1",
}


@dataclass
class FetchResult:
    url: str  # as asked for
    final_url: str  # after redirects
    status: int  # 200, or 304 when the stored copy is still current
    content: bytes  # decompressed; empty on 304
    content_type: str  # the Content-Type header as sent
    headers: dict[str, str]  # of the final response, lower-case names
    fetched_at: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class _Redirect:
    location: httpx.URL


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class Fetcher:
    """Fetch pages and images for a crawl. Use as an async context manager.

    Args:
        config: the crawl settings (limits, politeness, user agent, SSRF guard).
        max_page_bytes, max_image_bytes: caps on the decompressed body.
        resolver: host name → addresses (tests pass a stub).
    """

    def __init__(self, config: CrawlConfig, max_page_bytes: int, max_image_bytes: int, resolver: Resolver = system_resolver):
        self.config = config
        self.max_bytes = {"page": max_page_bytes, "image": max_image_bytes, "robots": ROBOTS_MAX_BYTES, "input": max_page_bytes}
        self.gate = HostGate(config.per_host_concurrency, config.per_host_interval_seconds)
        self._slots = asyncio.Semaphore(max(1, config.concurrency))
        self._resolver = resolver
        self._random = random.Random()
        self.client: httpx.AsyncClient | None = None
        self.robots = RobotsPolicy(self._fetch_robots, config, self.gate)

    async def __aenter__(self) -> Self:
        c = self.config
        limits = httpx.Limits(max_connections=max(1, c.concurrency) * 2, max_keepalive_connections=max(1, c.concurrency))
        self.client = httpx.AsyncClient(
            transport=GuardedTransport(c.allow_private_addresses, self._resolver, limits),
            headers={"User-Agent": c.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(c.read_timeout_seconds, connect=c.connect_timeout_seconds),
            follow_redirects=False,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def fetch_page(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET an HTML page; with ``etag``/``last_modified`` a 304 comes back as ``not_modified``.

        Raises:
            FetchError: naming ``url`` and the reason (``outcome`` gone/skipped/failed).
        """
        return await self._fetch(url, "page", _conditional(etag, last_modified))

    async def fetch_input(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET a URL the user gave as an input: an HTML page, an RSS/Atom feed or a sitemap
        (indexer/fetch/sniff.listing_kind tells them apart), with the page's rules and limits."""
        return await self._fetch(url, "input", _conditional(etag, last_modified))

    async def fetch_image(self, url: str) -> FetchResult:
        """GET an image; the body is checked to be an image (Pillow checks the rest)."""
        return await self._fetch(url, "image", {})

    async def _fetch_robots(self, url: str) -> FetchResult:
        return await self._fetch(url, "robots", {})

    # -- one URL, following redirects ---------------------------------------------------

    async def _fetch(self, url: str, kind: Kind, validators: dict[str, str]) -> FetchResult:
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise FetchError(url, f"invalid URL: {exc}") from None
        chain = [current]
        while True:
            problem = scheme_problem(current)
            if problem:
                raise FetchError(url, problem + _via(chain))
            if kind != "robots" and self.config.respect_robots:
                refusal = await self.robots.refusal(current)
                if refusal:
                    raise FetchError(url, refusal + _via(chain), skipped=True)
            answer = await self._with_retries(url, current, kind, validators)
            if isinstance(answer, FetchResult):
                answer.final_url = str(current)
                return answer
            current = answer.location
            if current in chain:
                raise FetchError(url, "redirect loop: " + " → ".join(map(str, chain + [current])))
            chain.append(current)
            if len(chain) - 1 > self.config.max_redirects:
                raise FetchError(url, f"too many redirects (over crawl.max_redirects = {self.config.max_redirects}){_via(chain)}")

    async def _with_retries(self, url: str, current: httpx.URL, kind: Kind, validators: dict[str, str]) -> FetchResult | _Redirect:
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return await self._once(url, current, kind, validators)
            except _Retryable as retry:
                if attempt + 1 == attempts:
                    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
                    raise FetchError(url, retry.reason + tries, status=retry.status) from None
                limit = self.config.max_retry_after_seconds
                if retry.retry_after is not None and retry.retry_after > limit:
                    raise FetchError(
                        url,
                        f"{retry.reason} (asks to retry after {retry.retry_after:.0f} s, "
                        f"over crawl.max_retry_after_seconds = {limit:g})",
                        status=retry.status,
                    ) from None
                backoff = self.config.retry_backoff_seconds * 2**attempt * (0.5 + self._random.random())
                await asyncio.sleep(max(backoff, retry.retry_after or 0.0))
        raise AssertionError("unreachable")

    # -- one attempt -----------------------------------------------------------------------

    async def _once(self, url: str, current: httpx.URL, kind: Kind, validators: dict[str, str]) -> FetchResult | _Redirect:
        assert self.client is not None, "use the Fetcher as an async context manager"
        deadline = self.config.fetch_deadline_seconds
        headers = {"Accept": ACCEPT[kind], **validators}
        try:
            async with self._slots, self.gate.turn(current.netloc.decode("ascii")):
                async with asyncio.timeout(deadline):
                    async with self.client.stream("GET", current, headers=headers) as response:
                        return await self._read(url, current, kind, response)
        except TimeoutError:
            raise FetchError(url, f"timeout: the response took over crawl.fetch_deadline_seconds = {deadline:g} s") from None
        except AddressRefused as exc:
            raise FetchError(url, exc.reason) from exc  # the cause tells robots.txt apart from a refusal
        except ResolutionFailed as exc:
            raise FetchError(url, f"DNS: {exc}") from exc
        except httpx.ConnectTimeout:
            raise _Retryable(f"timeout: no connection within {self.config.connect_timeout_seconds:g} s") from None
        except httpx.ReadTimeout:
            raise FetchError(url, f"timeout: no data for {self.config.read_timeout_seconds:g} s") from None
        except httpx.ConnectError as exc:
            raise _Retryable(f"connection failed: {exc or type(exc).__name__}") from None
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            raise _Retryable(f"connection broken: {exc or type(exc).__name__}") from None
        except httpx.HTTPError as exc:  # invalid URL, unsupported protocol, ...
            raise FetchError(url, f"{type(exc).__name__}: {exc}") from None

    async def _read(self, url: str, current: httpx.URL, kind: Kind, response: httpx.Response) -> FetchResult | _Redirect:
        status = response.status_code
        if status in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise FetchError(url, f"HTTP {status}: redirect without a Location header", status=status)
            try:
                return _Redirect(current.join(location))
            except httpx.InvalidURL as exc:
                raise FetchError(url, f"HTTP {status}: invalid redirect Location {location!r}: {exc}") from None
        if status == 304:
            return self._result(url, current, response, b"")
        if status in RETRIED_STATUSES:
            raise _Retryable(f"HTTP {status}: {response.reason_phrase}", status, _retry_after(response.headers.get("retry-after")))
        if status >= 400:
            raise FetchError(url, f"HTTP {status}: {response.reason_phrase}", status=status)
        if status not in (200, 203):
            raise FetchError(url, f"HTTP {status}: {response.reason_phrase} (no usable body)", status=status)

        declared = media_type(response.headers.get("content-type"))
        if kind in ("page", "input"):
            gzipped_listing = kind == "input" and declared in GZIP_TYPES  # sitemap.xml.gz
            refusal = None if gzipped_listing else page_refusal_by_type(declared)
            if refusal:
                raise FetchError(url, refusal, status=status)
        limit = self.max_bytes[kind]
        what = {"page": "page", "image": "image", "robots": "robots.txt", "input": "page"}[kind]
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise FetchError(url, f"too large: {length} bytes is over the {limit}-byte {what} limit", status=status)
        try:
            decoder = BoundedDecoder(response.headers.get("content-encoding"), limit)
            parts = [decoder.feed(raw) async for raw in response.aiter_raw()]
            parts.append(decoder.finish())
        except BodyTooLarge as exc:
            raise FetchError(url, f"too large: {what} body {exc}", status=status) from None
        except BadEncoding as exc:
            raise FetchError(url, f"bad encoding: {exc}", status=status) from None
        body = b"".join(parts)
        if kind == "page":
            refusal = page_refusal(declared, body[:2048])
        elif kind == "input":
            refusal = input_refusal(declared, body[:2048])
        elif kind == "image":
            refusal = image_refusal(declared, body[:2048])
        else:
            refusal = None
        if refusal:
            raise FetchError(url, refusal, status=status)
        return self._result(url, current, response, body)

    def _result(self, url: str, current: httpx.URL, response: httpx.Response, body: bytes) -> FetchResult:
        return FetchResult(
            url=url,
            final_url=str(current),
            status=response.status_code,
            content=body,
            content_type=response.headers.get("content-type", ""),
            headers={k.lower(): v for k, v in response.headers.items()},
            fetched_at=time.time(),
        )


def _conditional(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The headers that make a GET of a stored copy answer 304 when it has not changed."""
    validators = {}
    if etag:
        validators["If-None-Match"] = etag
    if last_modified:
        validators["If-Modified-Since"] = last_modified
    return validators


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _via(chain: list[httpx.URL]) -> str:
    return "" if len(chain) < 2 else " (redirected: " + " → ".join(map(str, chain)) + ")"
