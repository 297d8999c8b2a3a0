"""robots.txt (RFC 9309): fetched once per host with the crawl's own guarded client, parsed by protego.

    2xx            the rules apply; a Crawl-delay widens that host's gap between requests
    4xx            no rules: everything is allowed
    429, 5xx, unreachable   everything is disallowed for crawl.robots_error_seconds, then asked again
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from engine.config import CrawlConfig
from engine.errors import FetchError
from indexer.fetch.netguard import AddressRefused, ResolutionFailed
from indexer.fetch.politeness import HostGate

if TYPE_CHECKING:
    from indexer.fetch.fetcher import FetchResult

# RFC 9309: crawlers must parse at least 500 KiB.
ROBOTS_MAX_BYTES = 512 * 1024


class RobotsPolicy:
    """Answers "may this URL be fetched?" per host, from a cache of parsed robots.txt files.

    Args:
        get: fetches a robots.txt URL (the Fetcher's own, without robots checks).
        config: user agent, error back-off, longest Crawl-delay honoured.
        gate: told each host's Crawl-delay.
    """

    def __init__(self, get: Callable[[str], Awaitable[FetchResult]], config: CrawlConfig, gate: HostGate):
        self._get = get
        self._config = config
        self._gate = gate
        self._rules: dict[str, object] = {}  # origin -> protego parser, or None (allow all)
        self._broken: dict[str, tuple[float, str]] = {}  # origin -> (retry after, why)
        self._locks: dict[str, asyncio.Lock] = {}

    async def refusal(self, url: httpx.URL) -> str | None:
        """Why robots.txt forbids ``url``, or None when it may be fetched."""
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        async with self._locks.setdefault(origin, asyncio.Lock()):
            if origin not in self._rules:
                broken = self._broken.get(origin)
                if broken is None or broken[0] <= time.monotonic():
                    await self._load(origin, url)
        if origin not in self._rules:
            _, why = self._broken[origin]
            return f"robots.txt unavailable: {why}; {origin} is skipped for {self._config.robots_error_seconds:g} s"
        rules = self._rules[origin]
        if rules is not None and not rules.can_fetch(str(url), self._config.user_agent):
            return f"robots.txt: disallowed for {self._config.user_agent.split('/')[0]}"
        return None

    async def _load(self, origin: str, url: httpx.URL) -> None:
        from protego import Protego

        try:
            found = await self._get(origin + "/robots.txt")
        except FetchError as exc:
            if isinstance(exc.__cause__, (AddressRefused, ResolutionFailed)):
                raise FetchError(str(url), exc.reason) from exc  # the host's problem, not robots.txt's
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                self._rules[origin] = None  # no robots.txt: no rules
            else:
                self._broken[origin] = (time.monotonic() + self._config.robots_error_seconds, exc.reason)
            return
        rules = Protego.parse(found.content.decode("utf-8", errors="replace"))
        self._rules[origin] = rules
        self._broken.pop(origin, None)
        delay = rules.crawl_delay(self._config.user_agent)
        if delay:
            self._gate.set_delay(url.netloc.decode("ascii"), min(float(delay), self._config.max_crawl_delay_seconds))
