"""DuckDuckGo web, news and image search through the ddgs package.

ddgs is synchronous and brings its own HTTP client (primp, which impersonates a browser:
DuckDuckGo refuses plain clients), so each search runs in a worker thread and takes only
the timeout from the crawler's httpx client. ddgs's own settings reach it here: a proxy
(http, https, socks5, or "tb" for Tor Browser) and a CA bundle, which is also how the
tests point it at a local server: a proxy that answers for duckduckgo.com.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from engine.errors import InputError
from indexer.discover.base import Candidate
from indexer.discover.text import plain_text, web_url

SearchKind = Literal["web", "news", "images"]
SAFESEARCH = ("on", "moderate", "off")
TIMELIMITS = ("", "d", "w", "m", "y")
# ddgs waits this long when the caller's client has no timeout.
DEFAULT_TIMEOUT_S = 10


@dataclass(frozen=True)
class DdgsSettings:
    backend: str = "duckduckgo"
    region: str = "us-en"
    safesearch: str = "moderate"
    timelimit: str = ""
    proxy: str = ""
    ca_bundle: str = ""


class DdgsSearch:
    """One ddgs search kind (web, news or images) as a provider named ``ddgs-<kind>``."""

    def __init__(self, kind: SearchKind, limit: int, settings: DdgsSettings):
        self.kind = kind
        self.name = f"ddgs-{kind}"
        self.limit = limit
        self.settings = settings

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        rows = await asyncio.to_thread(self._search, topic, limit, _timeout_s(client))
        candidates: list[Candidate] = []
        for row in rows:
            if candidate := self._candidate(row, rank=len(candidates)):
                candidates.append(candidate)
        if not candidates:
            raise InputError(self.name, f"no usable results for {topic!r}")
        return candidates[:limit]

    def _search(self, topic: str, limit: int, timeout_s: int) -> list[dict[str, Any]]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        s = self.settings
        ddgs = DDGS(proxy=s.proxy or None, timeout=timeout_s, verify=s.ca_bundle or True)
        search = {"web": ddgs.text, "news": ddgs.news, "images": ddgs.images}[self.kind]
        try:
            return search(
                topic,
                region=s.region,
                safesearch=s.safesearch,
                timelimit=s.timelimit or None,
                max_results=limit,
                backend=s.backend,
            )
        except DDGSException as exc:  # ddgs says "No results found." for blocks and empties alike
            raise InputError(self.name, f"search for {topic!r} failed: {exc}") from exc

    def _candidate(self, row: dict[str, Any], rank: int) -> Candidate | None:
        title = row.get("title") or None
        if self.kind == "images":
            url = web_url(row.get("image"))
            page = web_url(row.get("url"))
            if not url:
                return None
            return Candidate(url, "image", self.name, rank, title=title, page_url=page)
        url = web_url(row.get("href") if self.kind == "web" else row.get("url"))
        if not url:
            return None
        published = row.get("date") if self.kind == "news" else None
        return Candidate(
            url,
            "page",
            self.name,
            rank,
            title=title,
            snippet=plain_text(row.get("body")),
            published=str(published) if published else None,
        )


def _timeout_s(client: httpx.AsyncClient) -> int:
    seconds = client.timeout.read or client.timeout.connect
    return max(1, math.ceil(seconds)) if seconds else DEFAULT_TIMEOUT_S

