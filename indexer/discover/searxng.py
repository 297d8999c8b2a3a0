"""A SearxNG instance's JSON API: ``GET <instance>/search?q=TOPIC&format=json&categories=C``.

The instance must allow the JSON format (``search.formats`` in its settings.yml); public
instances usually do not, which is why this provider is meant for self-hosters.
"""

from __future__ import annotations

from typing import Literal

import httpx

from engine.errors import InputError
from indexer.discover.base import Candidate
from indexer.discover.fetching import fetch_json, json_path
from indexer.discover.text import plain_text, web_url

SearxngKind = Literal["web", "news", "images"]
CATEGORY = {"web": "general", "news": "news", "images": "images"}
FORBIDDEN_HINT = "does the instance allow format=json in settings.yml search.formats?"


class SearxngSearch:
    """One SearxNG category as a provider named ``searxng-<kind>``."""

    def __init__(self, kind: SearxngKind, base_url: str, limit: int, max_bytes: int):
        self.kind = kind
        self.name = f"searxng-{kind}"
        self.search_url = base_url.rstrip("/") + "/search"
        self.limit = limit
        self.max_bytes = max_bytes

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        params = {"q": topic, "format": "json", "categories": CATEGORY[self.kind], "pageno": 1}
        data = await fetch_json(
            client,
            self.name,
            self.search_url,
            params=params,
            max_bytes=self.max_bytes,
            status_hints={403: FORBIDDEN_HINT},
        )
        results = json_path(data, self.name, "results")
        if not isinstance(results, list):
            raise InputError(self.name, "unexpected answer: 'results' is not a list")
        candidates: list[Candidate] = []
        for result in results:
            if len(candidates) >= limit:
                break
            if isinstance(result, dict) and (c := self._candidate(result, len(candidates))):
                candidates.append(c)
        if not candidates:
            raise InputError(self.name, f"no results for {topic!r}{_unresponsive(data)}")
        return candidates

    def _candidate(self, result: dict, rank: int) -> Candidate | None:
        page = web_url(result.get("url"))
        title = result.get("title") or None
        if self.kind == "images":
            # Image results carry the picture in img_src (sometimes relative to the instance);
            # other templates mixed into the category (videos) have none and are skipped.
            image = web_url(result.get("img_src"), self.search_url)
            if not image:
                return None
            return Candidate(image, "image", self.name, rank, title=title, page_url=page)
        if not page:
            return None
        return Candidate(
            page,
            "page",
            self.name,
            rank,
            title=title,
            snippet=plain_text(result.get("content")),
            published=result.get("publishedDate") or None,
        )


def _unresponsive(data: dict) -> str:
    """SearxNG lists the engines that failed (CAPTCHA, timeouts): the likely reason for nothing."""
    engines = data.get("unresponsive_engines") or []
    named = [": ".join(map(str, e)) for e in engines if isinstance(e, (list, tuple))]
    return f" (unresponsive engines: {', '.join(named)})" if named else ""
