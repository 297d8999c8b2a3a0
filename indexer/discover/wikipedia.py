"""MediaWiki search API (Wikipedia by default): articles for a topic, and the images they show.

Requests (Action API, ``format=json``):
    list=search&srsearch=TOPIC&srlimit=N&srnamespace=0           → article titles and snippets
    generator=images&titles=TITLE&gimlimit=max&prop=imageinfo&iiprop=url
                                                                  → the files one article shows
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx

from engine.errors import InputError
from indexer.discover.base import Candidate
from indexer.discover.fetching import fetch_json, json_path
from indexer.discover.text import plain_text, web_url

# What the image pipeline can decode; wikis also show SVG icons, audio and PDFs as "images".
RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


class MediaWikiApi:
    """The two API calls both Wikipedia providers use."""

    def __init__(self, provider: str, api_url: str, article_url: str, max_bytes: int):
        self.provider = provider
        self.api_url = api_url
        self.article_url = article_url
        self.max_bytes = max_bytes

    async def search(self, client: httpx.AsyncClient, topic: str, limit: int) -> list[dict]:
        """Search hits (dicts with at least ``title``), best first."""
        params = {
            "action": "query",
            "list": "search",
            "srsearch": topic,
            "srlimit": limit,
            "srnamespace": 0,
            "format": "json",
        }
        data = await fetch_json(client, self.provider, self.api_url, params=params, max_bytes=self.max_bytes)
        self._raise_api_error(data)
        hits = json_path(data, self.provider, "query", "search")
        if not isinstance(hits, list):
            raise InputError(self.provider, "unexpected answer: 'query.search' is not a list")
        hits = [h for h in hits if isinstance(h, dict) and isinstance(h.get("title"), str)]
        if not hits:
            raise InputError(self.provider, f"no results for {topic!r}")
        return hits[:limit]

    async def image_urls(self, client: httpx.AsyncClient, title: str) -> list[tuple[str, str]]:
        """``(image URL, file title)`` for each raster image the article shows."""
        params = {
            "action": "query",
            "generator": "images",
            "titles": title,
            "gimlimit": "max",
            "prop": "imageinfo",
            "iiprop": "url",
            "format": "json",
        }
        data = await fetch_json(client, self.provider, self.api_url, params=params, max_bytes=self.max_bytes)
        self._raise_api_error(data)
        if "query" not in data:  # an article without images has no "query" at all
            return []
        pages = json_path(data, self.provider, "query", "pages")
        files = pages.values() if isinstance(pages, dict) else pages if isinstance(pages, list) else []
        found = []
        for file in files:
            info = file.get("imageinfo") if isinstance(file, dict) else None
            if not info or not isinstance(info, list) or not isinstance(info[0], dict):
                continue
            url = web_url(info[0].get("url"), self.api_url)
            if url and url.lower().endswith(RASTER_SUFFIXES):
                found.append((url, str(file.get("title", "")).removeprefix("File:")))
        return found

    def article(self, title: str) -> str:
        # MediaWiki's own title encoding (wfUrlencode): spaces as "_", these characters kept.
        return self.article_url.replace("{title}", quote(title.replace(" ", "_"), safe=";@$!*(),/~:"))

    def _raise_api_error(self, data: object) -> None:
        if not isinstance(data, dict):
            raise InputError(self.provider, "unexpected answer: not a JSON object")
        error = data.get("error")
        if isinstance(error, dict):
            raise InputError(self.provider, f"API error {error.get('code')}: {error.get('info')}")


class WikipediaPages:
    """Articles matching the topic, with the search snippet."""

    def __init__(self, api: MediaWikiApi, limit: int):
        self.name = api.provider
        self.api = api
        self.limit = limit

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        hits = await self.api.search(client, topic, limit)
        return [
            Candidate(
                url=self.api.article(hit["title"]),
                kind="page",
                provider=self.name,
                rank=rank,
                title=hit["title"],
                snippet=plain_text(hit.get("snippet")),
                published=hit.get("timestamp"),
            )
            for rank, hit in enumerate(hits)
        ]


class WikipediaImages:
    """The images shown on the best-matching articles, best article first."""

    def __init__(self, api: MediaWikiApi, limit: int, pages: int):
        self.name = api.provider
        self.api = api
        self.limit = limit
        self.pages = pages

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        hits = await self.api.search(client, topic, self.pages)
        titles = [hit["title"] for hit in hits]
        per_article = await asyncio.gather(*(self.api.image_urls(client, t) for t in titles))
        candidates: list[Candidate] = []
        seen: set[str] = set()
        for title, images in zip(titles, per_article):
            for url, file_title in images:
                if url in seen or len(candidates) >= limit:
                    continue
                seen.add(url)
                candidates.append(
                    Candidate(
                        url=url,
                        kind="image",
                        provider=self.name,
                        rank=len(candidates),
                        title=file_title or None,
                        page_url=self.api.article(title),
                    )
                )
        if not candidates:
            raise InputError(self.name, f"the articles found for {topic!r} show no raster images")
        return candidates
