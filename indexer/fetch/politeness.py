"""Per-host politeness: at most N requests to a host at once, and a minimum gap between starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class HostGate:
    """Hands out turns to talk to a host.

    Args:
        per_host: requests to one host in flight at once.
        interval: seconds between the starts of two requests to one host (a longer
            robots.txt Crawl-delay for that host wins; see :meth:`set_delay`).
    """

    def __init__(self, per_host: int, interval: float):
        self.per_host = max(1, per_host)
        self.interval = max(0.0, interval)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._delays: dict[str, float] = {}

    def set_delay(self, host: str, seconds: float) -> None:
        """A host's own minimum gap (robots.txt Crawl-delay)."""
        self._delays[host] = seconds

    @asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[None]:
        slot = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        async with slot:
            # Reserve the next start time before sleeping, so waiting requests queue up
            # one interval apart instead of all waking at once.
            now = time.monotonic()
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + max(self.interval, self._delays.get(host, 0.0))
            if start > now:
                await asyncio.sleep(start - now)
            yield
