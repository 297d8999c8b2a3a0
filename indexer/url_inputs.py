"""Web addresses as `--from` inputs: page URLs, text files listing them, RSS/Atom feeds and sitemaps.

Each URL is fetched by the crawler's guarded fetcher (robots.txt, politeness, size limits, the SSRF
guard: a URL on loopback or a private network is refused unless crawl.allow_private_addresses, since
inputs can also arrive through `engine serve`). What the body is decides what it is: a feed or a
sitemap has its entries indexed as pages (up to crawl.max_pages_per_listing, their images as image
candidates), anything else must be an HTML page. A URL already stored is fetched conditionally, so
running the same inputs again costs a 304. The URLs join no topic's crawl frontier: they are indexed
once per run, for the run's topics, like saved pages.
"""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import select

from engine.config import Config
from engine.errors import FetchError, InputError
from engine.store.schema import sources
from engine.store.store import Store
from indexer.crawl import CrawlRun, PageWork
from indexer.discover.feeds import feed_candidates
from indexer.discover.sitemaps import parse_sitemap, sitemap_candidates
from indexer.fetch.fetcher import FetchResult
from indexer.fetch.netguard import Resolver, system_resolver
from indexer.fetch.sniff import listing_kind
from indexer.fetch.urls import page_url_problem
from indexer.frontier import FrontierUrl
from indexer.pipeline import Bookkeeping, Emit
from indexer.prepare import canonical_url
from indexer.sources import InputFailure

MAX_CHILD_SITEMAPS = 10


class UrlInputs:
    """A pipeline producer (indexer/pipeline.py) for URL inputs; see the module docstring."""

    def __init__(self, urls: list[str], failures: list[InputFailure] | None = None, resolver: Resolver = system_resolver):
        self.urls = list(urls)
        self.failures = list(failures or [])
        self.resolver = resolver
        self.trusted_endpoints: list[str] = []  # nothing is trusted: the user's URLs are guarded too
        self._total = len(self.urls)

    def estimate(self) -> int:
        return self._total

    def produce(self, store: Store, config: Config, emit: Emit, stop: threading.Event) -> None:
        for failure in self.failures:  # a URL list's unreadable lines: failed pages, like a missing file
            emit(failure)
        if self.urls:
            asyncio.run(_UrlInputsRun(self, store, config, emit, stop).run())


class _UrlInputsRun(CrawlRun):
    """The crawl run's fetcher, worker threads and page handling, for a fixed list of URLs."""

    async def _crawl(self) -> None:
        queue: asyncio.Queue[tuple[PageWork, bool]] = asyncio.Queue()
        self.queued: set[str] = set()  # canonical URLs: a page given and also listed is fetched once
        self._enqueue(queue, {url: [] for url in self.crawl.urls}, may_list=True)
        workers = [asyncio.create_task(self._input_worker(queue)) for _ in range(max(1, self.config.crawl.concurrency))]
        try:
            await queue.join()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _enqueue(self, queue: asyncio.Queue, pages: dict[str, list[str]], may_list: bool) -> int:
        """Queue the pages (each with its candidate images) not queued before; how many were new."""
        added = 0
        with self.store.reading() as conn:
            for url, images in pages.items():
                if canonical_url(url) not in self.queued:
                    self.queued.add(canonical_url(url))
                    queue.put_nowait((self._work_for(conn, url, images), may_list))
                    added += 1
        return added

    def _work_for(self, conn, url: str, images: list[str] = ()) -> PageWork:  # noqa: ANN001 - a Connection
        """A URL to fetch, with the validators of its stored copy (a conditional GET)."""
        key = canonical_url(url)
        stored = conn.execute(select(sources.c.etag, sources.c.last_modified).where(sources.c.canonical_url == key)).first()
        etag, last_modified = stored if stored is not None else (None, None)
        page = FrontierUrl(key, url, "page", None, "queued", etag, last_modified, None)
        shown = [FrontierUrl(canonical_url(i), i, "image", url, "queued", None, None, None) for i in images]
        return PageWork(page, shown)

    async def _input_worker(self, queue: asyncio.Queue) -> None:
        while True:
            work, may_list = await queue.get()
            try:
                if not self.stop.is_set():
                    await self._input(work, may_list, queue)
            finally:
                queue.task_done()

    async def _input(self, work: PageWork, may_list: bool, queue: asyncio.Queue) -> None:
        assert self.fetcher is not None and self.loop is not None
        page = work.page
        result = await self._fetched(work, self.fetcher.fetch_input, named_by_user=may_list)
        if result is None:
            return
        kind = listing_kind(result.content[:2048])
        if kind is None:
            await self.loop.run_in_executor(self.pool, self._prepare, work, result)
            return
        if not may_list:
            reason = f"a {kind} listed in a feed or sitemap is not followed; give it as its own --from input"
            await self._emit(self._settled(page, work.images, "skipped", error=reason))
            return
        try:
            entries = await self._listed(kind, result)
        except InputError as exc:
            # The parsers name the URL for discovery's sake; here it is the failure's own origin already.
            reason = exc.reason.removeprefix(f"{result.url}: ").removeprefix(f"{result.final_url}: ")
            await self._emit(self._settled(page, [], "failed", error=reason))
            return
        self.crawl._total += self._enqueue(queue, entries, may_list=False) - 1  # the listing stood for one page
        await self._emit(Bookkeeping(label=f"{page.url}: a {kind} of {len(entries)} pages"))

    async def _listed(self, kind: str, result: FetchResult) -> dict[str, list[str]]:
        """A feed's or sitemap's pages (up to crawl.max_pages_per_listing), each with its images."""
        limit = self.config.crawl.max_pages_per_listing
        unbounded = 1 << 30  # the page cap below applies; images do not count against it
        max_bytes = self.config.index.max_page_bytes
        if kind == "feed":
            candidates = feed_candidates(result.content, result.final_url, None, unbounded, result.url)
        else:
            sitemap = parse_sitemap(result.content, result.final_url, result.url, max_bytes)
            urls = sitemap.urls
            for child in sitemap.children[:MAX_CHILD_SITEMAPS]:
                urls += await self._child_sitemap(child, max_bytes)
                if len(urls) >= limit:
                    break
            candidates = sitemap_candidates(urls, None, unbounded, result.url)
        pages: dict[str, list[str]] = {}
        for candidate in candidates:
            if candidate.kind == "page" and candidate.url not in pages and len(pages) < limit:
                pages[candidate.url] = []
            elif candidate.kind == "image" and candidate.page_url in pages:
                pages[candidate.page_url].append(candidate.url)
        if not pages:
            raise InputError(result.url, f"the {kind} lists no page")
        return pages

    async def _child_sitemap(self, url: str, max_bytes: int) -> list:
        """The URLs of a sitemap that a sitemap index lists; one that fails is a failure line."""
        assert self.fetcher is not None
        try:
            # Like a listing given to --from: the body decides (children are often sitemap-1.xml.gz).
            problem = page_url_problem(url, self.config.crawl.allow_private_addresses, named_by_user=True)
            if problem:
                raise InputError(url, problem)
            result = await self.fetcher.fetch_input(url)
            return parse_sitemap(result.content, result.final_url, url, max_bytes).urls
        except FetchError as exc:
            failure = InputFailure("page", url, exc.reason)
        except InputError as exc:
            failure = InputFailure("page", url, exc.reason)
        await self._emit(Bookkeeping(failures=[failure], label=url))
        return []
