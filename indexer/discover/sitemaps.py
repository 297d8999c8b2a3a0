"""XML sitemaps (and sitemap index files, gzipped or not) of sites a user follows.

A sitemap is untrusted input: it is parsed by lxml with entity resolution, DTD loading and
network access off and without lxml's huge-tree allowance, after a bounded read and a
bounded gunzip. URLs are kept when their address (or an image/news title in the sitemap)
mentions a topic word, or all of them when topic filtering is off; image sitemap entries
(``<image:image><image:loc>``) become candidate images shown on that page.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field

import httpx

from engine.errors import InputError
from indexer.discover.base import Candidate
from indexer.discover.fetching import fetch_bytes
from indexer.discover.text import topic_score, topic_terms, url_words, web_url

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class SitemapUrl:
    loc: str
    lastmod: str | None = None
    titles: list[str] = field(default_factory=list)  # image and news titles, for topic matching
    images: list[str] = field(default_factory=list)


@dataclass
class Sitemap:
    urls: list[SitemapUrl]
    children: list[str]  # a sitemap index lists other sitemaps instead of URLs


class SitemapUrls:
    """URLs of one sitemap (or of the sitemaps one index lists) that match the topic."""

    name = "sitemaps"

    def __init__(
        self,
        sitemap_url: str,
        limit: int,
        max_bytes: int,
        max_children: int = 10,
        topic_filter: bool = True,
    ):
        self.sitemap_url = sitemap_url
        self.limit = limit
        self.max_bytes = max_bytes
        self.max_children = max_children
        self.topic_filter = topic_filter

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        sitemap = await self._read(client, self.sitemap_url)
        urls = sitemap.urls
        if sitemap.children:
            urls = await self._read_children(client, sitemap.children[: self.max_children])
        return sitemap_candidates(urls, topic_terms(topic) if self.topic_filter else None, limit, self.name)

    async def _read(self, client: httpx.AsyncClient, url: str) -> Sitemap:
        body = await fetch_bytes(client, self.name, url, max_bytes=self.max_bytes)
        return parse_sitemap(body, url, self.name, self.max_bytes)

    async def _read_children(self, client: httpx.AsyncClient, children: list[str]) -> list[SitemapUrl]:
        read = await asyncio.gather(*(self._read(client, c) for c in children), return_exceptions=True)
        urls = [u for r in read if isinstance(r, Sitemap) for u in r.urls]
        failures = [r for r in read if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, InputError):
                raise failure
        if failures and not urls:
            raise InputError(
                self.name,
                f"{self.sitemap_url}: none of its {len(children)} sitemaps could be read; "
                f"first: {failures[0].reason}",
            )
        return urls


def sitemap_candidates(urls: list[SitemapUrl], terms: list[str] | None, limit: int, provider: str = "sitemaps") -> list[Candidate]:
    """A sitemap's pages (and their images) whose address or titles mention ``terms`` (all when
    None), best match first, then sitemap order, up to ``limit`` candidates."""
    scored = []
    for order, entry in enumerate(urls):
        score = topic_score(terms, url_words(entry.loc), *entry.titles) if terms is not None else 0
        if score or terms is None:
            scored.append((-score, order, entry))
    scored.sort(key=lambda item: item[:2])
    candidates: list[Candidate] = []
    for _, _, entry in scored:
        found = [(entry.loc, {"kind": "page", "published": entry.lastmod})]
        found += [(image, {"kind": "image", "page_url": entry.loc}) for image in entry.images]
        for url, fields in found[: max(0, limit - len(candidates))]:
            candidates.append(Candidate(url, provider=provider, rank=len(candidates), **fields))
    return candidates


def parse_sitemap(body: bytes, url: str, provider: str, max_bytes: int) -> Sitemap:
    """A sitemap's URLs or an index's child sitemaps.

    Raises:
        InputError(provider, reason): not gzip when it says so, too large unpacked,
            not XML, or XML whose root is neither <urlset> nor <sitemapindex>.
    """
    from lxml import etree

    if body.startswith(GZIP_MAGIC):
        body = _gunzip(body, url, provider, max_bytes)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(provider, f"{url} is not an XML sitemap: {exc}") from exc
    kind = etree.QName(root).localname
    if kind == "sitemapindex":
        children = [_text(s, "loc") for s in _children(root, "sitemap")]
        return Sitemap([], [u for u in (web_url(c, url) for c in children) if u])
    if kind != "urlset":
        raise InputError(provider, f"{url} is not a sitemap: its root element is <{kind}>")
    urls = []
    for element in _children(root, "url"):
        loc = web_url(_text(element, "loc"), url)
        if not loc:
            continue
        entry = SitemapUrl(loc, _text(element, "lastmod"))
        for image in _children(element, "image"):
            if image_url := web_url(_text(image, "loc"), loc):
                entry.images.append(image_url)
            entry.titles += filter(None, [_text(image, "title"), _text(image, "caption")])
        for news in _children(element, "news"):
            entry.titles += filter(None, [_text(news, "title")])
        urls.append(entry)
    return Sitemap(urls, [])


def _gunzip(body: bytes, url: str, provider: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InputError(provider, f"{url} is not valid gzip: {exc}") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise InputError(provider, f"{url} unpacks to more than the {max_bytes} bytes allowed")
    if not inflater.eof:
        raise InputError(provider, f"{url} is not valid gzip: the stream is truncated")
    return data


def _children(element, localname: str):
    """Child elements by local name, whatever namespace (or none) the sitemap uses."""
    from lxml import etree

    return [c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == localname]


def _text(element, localname: str) -> str | None:
    for child in _children(element, localname):
        if child.text and child.text.strip():
            return child.text.strip()
    return None

