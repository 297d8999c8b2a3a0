"""RSS and Atom feeds of sites a user follows (feedparser), one provider per feed URL.

An entry is a candidate page when it mentions a topic word (title, summary or link), or
always when topic filtering is off; its thumbnails, image media and image enclosures are
candidate images shown on that page. feedparser gets the bytes we read (never the URL, so
it fetches nothing itself) and does not resolve external entities.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from engine.errors import InputError
from indexer.discover.base import Candidate
from indexer.discover.fetching import fetch_bytes
from indexer.discover.text import (
    plain_text,
    topic_score,
    topic_terms,
    url_words,
    web_url,
)


class FeedEntries:
    """Entries of one RSS/Atom feed that match the topic, best match first, then feed order."""

    name = "feeds"

    def __init__(self, feed_url: str, limit: int, max_bytes: int, topic_filter: bool = True):
        self.feed_url = feed_url
        self.limit = limit
        self.max_bytes = max_bytes
        self.topic_filter = topic_filter

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        body = await fetch_bytes(client, self.name, self.feed_url, max_bytes=self.max_bytes)
        terms = topic_terms(topic) if self.topic_filter else None
        return feed_candidates(body, self.feed_url, terms, limit, self.name)


def feed_candidates(body: bytes, feed_url: str, terms: list[str] | None, limit: int, provider: str = "feeds") -> list[Candidate]:
    """The pages (and their images) of a feed's entries that mention ``terms`` (all when None),
    best match first, then feed order, up to ``limit`` candidates.

    Raises:
        InputError(provider, reason): not an RSS/Atom feed, or no entries.
    """
    import feedparser

    # An XML content type: else feedparser flags a well-formed feed for the header it lacks.
    feed = feedparser.parse(body, response_headers={"content-location": feed_url, "content-type": "application/xml"})
    entries = feed.get("entries") or []
    if not entries:
        problem = feed.get("bozo_exception")
        reason = f"not an RSS/Atom feed ({problem})" if problem else "the feed has no entries"
        raise InputError(provider, f"{feed_url}: {reason}")
    scored = []
    for order, entry in enumerate(entries):
        link = web_url(entry.get("link"), feed_url)
        if not link:
            continue
        summary = plain_text(entry.get("summary"))
        score = topic_score(terms, entry.get("title"), summary, url_words(link)) if terms is not None else 0
        if score or terms is None:
            scored.append((-score, order, entry, link, summary))
    scored.sort(key=lambda item: item[:2])
    candidates: list[Candidate] = []
    for _, _, entry, link, summary in scored:
        title = entry.get("title")
        published = _iso_date(entry.get("published_parsed") or entry.get("updated_parsed"))
        page = {"kind": "page", "title": title, "snippet": summary, "published": published}
        found = [(link, page)] + [
            (url, {"kind": "image", "title": title, "page_url": link, "published": published})
            for url in _entry_images(entry, link)
        ]
        for url, fields in found[: max(0, limit - len(candidates))]:
            candidates.append(Candidate(url, provider=provider, rank=len(candidates), **fields))
    return candidates


def _entry_images(entry: Any, link: str) -> list[str]:
    """Image URLs an entry carries: media:thumbnail, media:content and enclosures of image type."""
    urls: list[str] = []
    for thumb in entry.get("media_thumbnail") or []:
        urls.append(thumb.get("url"))
    for media in entry.get("media_content") or []:
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            urls.append(media.get("url"))
    for enclosure in entry.get("enclosures") or []:
        if str(enclosure.get("type", "")).startswith("image/"):
            urls.append(enclosure.get("href"))
    absolute = (web_url(url, link) for url in urls)
    return list(dict.fromkeys(url for url in absolute if url))


def _iso_date(parsed: time.struct_time | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed) if parsed else None

