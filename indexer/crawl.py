"""The crawl: topics → discovery → frontier → polite fetches → prepared pages, for the pipeline.

:class:`Crawl` is a pipeline producer (indexer/pipeline.py). It runs in the producer
thread with its own event loop; pages are prepared (trafilatura, Pillow) in worker threads,
whose image reads fetch through that loop. It never writes to the store: every change of
crawl state travels through the pipeline's queue, with the page it belongs to (committed in
the page's own transaction) or as Bookkeeping, and the one writer commits it in order. So a
run killed at any moment loses only what was not committed, and the next run resumes the
unfinished round, skipping the URLs it had settled.

A round for a topic: discovery, then each of the topic's URLs fetched once. New URLs are
fetched whole; known ones with a conditional GET (304: nothing to do); 404/410 marks a URL
gone and keeps what was stored from it. Image candidates are stored with the page they
appear on, which is crawled for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import Connection

from engine.config import Config, DiscoverConfig
from engine.errors import FetchError, InputError
from engine.store.store import Store
from indexer import frontier
from indexer.extract import ImageRef
from indexer.fetch.fetcher import Fetcher, FetchResult
from indexer.fetch.netguard import GuardedTransport, Resolver, system_resolver, trusted_hosts
from indexer.fetch.urls import page_url_problem
from indexer.frontier import FrontierUrl, NewUrl
from indexer.images import load_image
from indexer.pipeline import Bookkeeping, Emit
from indexer.prepare import PreparedPage, UnchangedPage, canonical_url, prepare
from indexer.sources import InputFailure, PageInput
from indexer.write import known_source

# topic, client -> an object with `candidates` (indexer.discover.base.Candidate) and
# `failures` (InputError: source = provider, reason): indexer.discover.run.DiscoveryResult.
Discover = Callable[[str, httpx.AsyncClient], Awaitable[Any]]
# Images shared by many pages (logos, icons) are fetched once per run, up to this many bytes.
IMAGE_CACHE_BYTES = 32_000_000


def discover_with_providers(config: DiscoverConfig) -> Discover:
    """Discovery through the configured providers (raises ConfigError for bad settings now)."""
    from indexer.discover.registry import build_providers
    from indexer.discover.run import discover_topic

    providers = build_providers(config)

    async def discover(topic: str, client: httpx.AsyncClient) -> Any:
        return await discover_topic(topic, providers, client, config)

    return discover


class Crawl:
    """Crawl ``topics`` once, or (``watch_every`` seconds) again and again until stopped.

    Args:
        topics: {topic name: topic id} (see indexer.write.ensure_topics).
        discover: how candidate URLs are found for a topic (:func:`discover_with_providers`).
        watch_every: None for one round per topic; else the seconds between a topic's rounds.
        resolver: host name → addresses for the SSRF guard (tests pass a stub).
        trusted_endpoints: the discovery services the user configured (registry.configured_endpoints):
            discovery may reach them on loopback or a private network; the pages they name may not.
    """

    def __init__(
        self,
        topics: dict[str, int],
        discover: Discover,
        watch_every: float | None = None,
        resolver: Resolver = system_resolver,
        trusted_endpoints: list[str] | None = None,
    ):
        self.topics = dict(topics)
        self.discover = discover
        self.watch_every = watch_every
        self.resolver = resolver
        self.trusted_endpoints = list(trusted_endpoints or [])
        self._total = 0

    def estimate(self) -> int:
        return self._total

    def produce(self, store: Store, config: Config, emit: Emit, stop: threading.Event) -> None:
        asyncio.run(CrawlRun(self, store, config, emit, stop).run())


@dataclass
class PageWork:
    """A page to fetch, with the image candidates discovery found on it."""

    page: FrontierUrl
    images: list[FrontierUrl] = field(default_factory=list)  # candidates shown on this page


class CrawlRun:
    """One `engine index` run of a :class:`Crawl` (its loop, fetcher and worker threads)."""

    def __init__(self, crawl: Crawl, store: Store, config: Config, emit: Emit, stop: threading.Event):
        self.crawl = crawl
        self.store = store
        self.config = config
        self.emit = emit
        self.stop = stop
        self.pool = concurrent.futures.ThreadPoolExecutor(max(2, config.crawl.concurrency), "engine-crawl")
        self.images = _ImageCache(IMAGE_CACHE_BYTES)
        self.titles: dict[str, tuple[str | None, str | None]] = {}  # candidate URL -> title, snippet
        self.finished: dict[int, frontier.TopicRound] = {}  # rounds this run ended
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fetcher: Fetcher | None = None
        self.discovery: httpx.AsyncClient | None = None

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        watcher = self.loop.create_task(self._cancel_on_stop(asyncio.current_task()))
        try:
            index = self.config.index
            async with (
                Fetcher(self.config.crawl, index.max_page_bytes, index.max_image_bytes, self.crawl.resolver) as fetcher,
                _discovery_client(self.config.crawl, self.crawl.resolver, self.crawl.trusted_endpoints) as discovery,
            ):
                self.fetcher = fetcher
                self.discovery = discovery
                await self._crawl()
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
        finally:
            watcher.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def _crawl(self) -> None:
        """The topics' rounds: once each, or (watch) again and again until stopped."""
        first = True
        while not self.stop.is_set():
            due = self._due_topics(first)
            if due:
                await self._round(due)
            first = False
            if self.crawl.watch_every is None:
                return
            await asyncio.sleep(self._seconds_to_next_round())

    async def _cancel_on_stop(self, task: asyncio.Task) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
        task.cancel()  # in-flight fetches end now, not at their timeouts

    # -- scheduling -------------------------------------------------------------------------

    def _rounds(self) -> dict[int, frontier.TopicRound]:
        """Each topic's rounds: as stored, or as this run ended them (the writer may not have
        committed that yet, and a round must not look unfinished because of it)."""
        with self.store.reading() as conn:
            rounds = frontier.topic_rounds(conn, list(self.crawl.topics.values()))
        return {**rounds, **self.finished}

    def _due_topics(self, first: bool) -> list[tuple[str, int, float | None]]:
        """(name, id, start of the round to resume or None for a new round) of the topics due now."""
        rounds = self._rounds()
        now = time.time()
        due = []
        for name, topic_id in self.crawl.topics.items():
            state = rounds.get(topic_id)
            if state is not None and state.unfinished:
                due.append((name, topic_id, state.round_started_at))
            elif (first and self.crawl.watch_every is None) or self._next_round_at(state) <= now:
                due.append((name, topic_id, None))
        return due

    def _next_round_at(self, state: frontier.TopicRound | None) -> float:
        return frontier.next_round_at(state, self.crawl.watch_every or 0.0)

    def _seconds_to_next_round(self) -> float:
        rounds = self._rounds()
        soonest = min(self._next_round_at(rounds.get(t)) for t in self.crawl.topics.values())
        return max(1.0, soonest - time.time())

    # -- one round --------------------------------------------------------------------------

    async def _round(self, due: list[tuple[str, int, float | None]]) -> None:
        started = time.time()
        round_start: dict[int, float] = {}
        discovered: dict[str, tuple[NewUrl, set[int]]] = {}
        for name, topic_id, resumed_from in due:
            if resumed_from is not None:
                round_start[topic_id] = resumed_from
                continue
            found, failures = await self._discover(name)
            round_start[topic_id] = started
            errors = {f.origin: f.reason for f in failures}
            await self._emit(
                Bookkeeping(
                    apply=partial(frontier.start_round, topic_id=topic_id, started_at=started, found=found, discovery_errors=errors),
                    failures=failures,
                    label=f"{name}: {len(found)} URLs discovered",
                )
            )
            for new in found:
                discovered.setdefault(new.canonical_url, (new, set()))[1].add(topic_id)

        work, image_only = self._work(round_start, discovered)
        self.crawl._total += len(work) + len(image_only)
        for image in image_only:
            await self._emit(self._settled(image, [], "skipped", error="an image without the page it appears on (nothing to cite it by)", kind="image"))
        queue: asyncio.Queue[PageWork] = asyncio.Queue()
        for item in work:
            queue.put_nowait(item)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(min(self.config.crawl.concurrency, len(work)))]
        await asyncio.gather(*workers)
        if self.stop.is_set():
            return  # the round stays unfinished; the next run resumes it
        finished = time.time()
        watch = self.crawl.watch_every
        next_at = finished + watch if watch else None
        await self._emit(
            Bookkeeping(
                apply=partial(frontier.finish_round, topic_ids=list(round_start), finished_at=finished, next_at=next_at),
                checkpoint=True,
                label="crawl round finished",
            )
        )
        for topic_id, started_at in round_start.items():
            self.finished[topic_id] = frontier.TopicRound(topic_id, started_at, finished, next_at)

    async def _discover(self, topic: str) -> tuple[list[NewUrl], list[InputFailure]]:
        assert self.discovery is not None
        try:
            result = await self.crawl.discover(topic, self.discovery)
        except InputError as exc:
            return [], [InputFailure("discovery", f"{exc.source} (topic {topic!r})", exc.reason)]
        except Exception as exc:  # noqa: BLE001 - a broken provider must not end the crawl of the others
            return [], [InputFailure("discovery", f"topic {topic!r}", f"discovery failed: {type(exc).__name__}: {exc}")]
        failures = [InputFailure("discovery", f"{f.source} (topic {topic!r})", f.reason) for f in result.failures]
        return self._frontier_entries(result.candidates), failures

    def _frontier_entries(self, candidates: list) -> list[NewUrl]:
        """Candidates as frontier rows; an image brings the page it appears on."""
        out: dict[str, NewUrl] = {}
        for c in candidates:
            key = canonical_url(c.url)
            self.titles.setdefault(key, (c.title, c.snippet))
            if c.kind == "image":
                out.setdefault(key, NewUrl(key, c.url, "image", c.provider, c.rank, c.page_url))
                if c.page_url:
                    page_key = canonical_url(c.page_url)
                    out.setdefault(page_key, NewUrl(page_key, c.page_url, "page", c.provider, c.rank))
            else:
                out.setdefault(key, NewUrl(key, c.url, "page", c.provider, c.rank))
        return list(out.values())

    def _work(
        self, round_start: dict[int, float], discovered: dict[str, tuple[NewUrl, set[int]]]
    ) -> tuple[list[PageWork], list[FrontierUrl]]:
        """The round's pages still to fetch (each with its image candidates), and orphan images."""
        with self.store.reading() as conn:
            known = frontier.urls_of_topics(conn, list(round_start))
        for key, (new, topic_ids) in discovered.items():
            if key in known:
                known[key].topic_ids |= topic_ids
            else:
                known[key] = FrontierUrl(key, new.url, new.kind, new.page_url, "queued", None, None, None, set(topic_ids))

        def settled_this_round(url: FrontierUrl) -> bool:
            starts = [round_start[t] for t in url.topic_ids if t in round_start]
            return url.checked_at is not None and url.checked_at >= max(starts)

        pages = {key: PageWork(url) for key, url in known.items() if url.kind == "page" and not settled_this_round(url)}
        orphans = []
        for url in known.values():
            if url.kind != "image" or settled_this_round(url):
                continue
            page = pages.get(canonical_url(url.page_url)) if url.page_url else None
            if page is not None:
                page.images.append(url)
            elif not url.page_url:
                orphans.append(url)
        return _interleave_hosts(list(pages.values())), orphans

    async def _worker(self, queue: asyncio.Queue) -> None:
        while not self.stop.is_set():
            try:
                work = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._crawl_page(work)

    # -- one page -------------------------------------------------------------------------------

    async def _crawl_page(self, work: PageWork) -> None:
        assert self.fetcher is not None and self.loop is not None
        result = await self._fetched(work, self.fetcher.fetch_page)
        if result is not None:
            await self.loop.run_in_executor(self.pool, self._prepare, work, result)

    async def _fetched(self, work: PageWork, fetch: Callable[..., Awaitable[FetchResult]], named_by_user: bool = False) -> FetchResult | None:
        """The body of ``work``'s page fetched (conditionally) by ``fetch``; None when the URL ended
        without one (refused, failed, gone, 304), its bookkeeping emitted."""
        page = work.page
        problem = page_url_problem(page.url, self.config.crawl.allow_private_addresses, named_by_user)
        if problem:
            await self._emit(self._settled(page, work.images, "skipped", error=problem))
            return None
        try:
            result = await fetch(page.url, page.etag, page.last_modified)
        except FetchError as exc:
            await self._emit(self._settled(page, work.images, exc.outcome, error=exc.reason, http_status=exc.status))
            return None
        if result.not_modified:
            await self._emit(
                self._settled(page, work.images, "not_modified", http_status=304,
                              etag=result.headers.get("etag"), last_modified=result.headers.get("last-modified"))
            )
            return None
        return result

    def _prepare(self, work: PageWork, result: FetchResult) -> None:
        """In a worker thread: extract the page, fetch and validate its images, hand it on."""
        page = PageInput(
            url=result.final_url,
            origin=work.page.url,
            html=result.content,
            resolve=self._resolver(result.final_url),
            fetched_at=result.fetched_at,
            http_status=result.status,
            content_type=result.content_type,
            headers=result.headers,
        )
        validators = {"etag": result.headers.get("etag"), "last_modified": result.headers.get("last-modified")}
        try:
            prepared = prepare(page, self.config.index, self._stored_raw_hash)
        except InputError as exc:
            self.emit(self._settled(work.page, work.images, "failed", error=exc.reason, http_status=result.status))
            return
        except Exception as exc:  # noqa: BLE001 - one bad page must not end the crawl
            reason = f"unexpected {type(exc).__name__}: {exc}"
            self.emit(self._settled(work.page, work.images, "failed", error=reason, http_status=result.status))
            return
        if isinstance(prepared, UnchangedPage):
            self.emit(self._settled(work.page, work.images, "fetched", http_status=result.status, report_as="unchanged", **validators))
            return
        image_errors = self._add_candidate_images(prepared, work.images)
        page.on_commit = partial(self._commit_page, work, result.status, validators, image_errors, time.time())
        self.emit(prepared)

    def _commit_page(self, work: PageWork, status: int, validators: dict, image_errors: dict[str, str], at: float, conn: Connection) -> None:
        frontier.settle(conn, work.page.canonical_url, "fetched", at, http_status=status, **validators)
        for image in work.images:
            error = image_errors.get(image.canonical_url)
            frontier.settle(conn, image.canonical_url, "failed" if error else "fetched", at, error=error)

    def _settled(
        self,
        url: FrontierUrl,
        images: list[FrontierUrl],
        outcome: str,
        error: str | None = None,
        http_status: int | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        report_as: str | None = None,
        kind: str = "page",
    ) -> Bookkeeping:
        """The bookkeeping for a URL that ends without a page to write (and its images)."""
        at = time.time()

        def apply(conn: Connection) -> None:
            frontier.settle(conn, url.canonical_url, outcome, at, http_status, etag, last_modified, error)
            image_outcome = "skipped" if outcome in ("failed", "gone") else outcome
            for image in images:
                frontier.settle(conn, image.canonical_url, image_outcome, at, error=error and f"its page: {error}")

        failures = [InputFailure(kind, url.url, error)] if error else []
        return Bookkeeping(apply=apply, outcome=report_as or outcome, failures=failures, label=url.url)

    # -- images ---------------------------------------------------------------------------------

    def _resolver(self, page_url: str) -> Callable[[str], bytes | None]:
        """A page's image reader for prepare(): fetches each src (the first N of them)."""
        limit = self.config.crawl.max_images_per_page
        count = 0

        def resolve(src: str) -> bytes | None:
            nonlocal count
            if src.startswith("data:"):
                raise InputError("data: URI", "inline image data is not fetched")
            url = urljoin(page_url, src)  # a srcset value in src is reduced to one URL by extract()
            count += 1
            if count > limit:
                raise InputError(url, f"not fetched: the page shows more than crawl.max_images_per_page = {limit} images")
            return self._image_bytes(url)

        return resolve

    def _image_bytes(self, url: str) -> bytes:
        """Fetch an image through the crawl's loop (called from a worker thread)."""
        assert self.fetcher is not None and self.loop is not None
        cached = self.images.get(url)
        if cached is not None:
            return cached
        if self.stop.is_set():
            raise InputError(url, "not fetched: the crawl is stopping")
        try:
            future = asyncio.run_coroutine_threadsafe(self.fetcher.fetch_image(url), self.loop)
            result = future.result()
        except FetchError as exc:
            raise InputError(url, exc.reason) from None
        except (concurrent.futures.CancelledError, RuntimeError):
            raise InputError(url, "not fetched: the crawl is stopping") from None
        self.images.put(url, result.content)
        return result.content

    def _add_candidate_images(self, prepared: PreparedPage, candidates: list[FrontierUrl]) -> dict[str, str]:
        """Add discovery's images of this page that its main content does not show; return errors."""
        shown = {canonical_url(ref.url) for ref, _ in prepared.images}
        hashes = {data.content_hash for _, data in prepared.images}
        errors: dict[str, str] = {}
        index = self.config.index
        for image in candidates:
            if image.canonical_url in shown:
                continue
            where = f"{image.url} (on {prepared.page.url})"
            try:
                data = load_image(self._image_bytes(image.url), where, index.max_image_pixels, index.max_image_bytes, index.min_image_side)
            except InputError as exc:
                errors[image.canonical_url] = exc.reason
                prepared.failures.append(InputFailure("image", where, exc.reason))
                continue
            if data.content_hash in hashes:
                continue
            hashes.add(data.content_hash)
            title, snippet = self.titles.get(image.canonical_url, (None, None))
            context = " ".join(t for t in (title, snippet, prepared.extracted.title) if t)
            prepared.images.append((ImageRef(image.url, image.url, title, None, context, 0), data))
        return errors

    # -- plumbing -------------------------------------------------------------------------------

    def _stored_raw_hash(self, url: str) -> str | None:
        with self.store.reading() as conn:
            known = known_source(conn, url)
        return None if known is None else known[0]

    async def _emit(self, item: object) -> None:
        # The queue blocks when the encoders are behind; wait in a thread, not in the loop.
        assert self.loop is not None
        await self.loop.run_in_executor(self.pool, self.emit, item)


def _discovery_client(config, resolver: Resolver, trusted_endpoints: list[str]) -> httpx.AsyncClient:  # noqa: ANN001 - CrawlConfig
    """The client discovery talks to its services with: guarded like the crawl's, except that the
    services the user configured may be on loopback or a private network."""
    return httpx.AsyncClient(
        transport=GuardedTransport(config.allow_private_addresses, resolver, trusted=trusted_hosts(trusted_endpoints)),
        headers={"User-Agent": config.user_agent},
        timeout=httpx.Timeout(config.read_timeout_seconds, connect=config.connect_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )


class _ImageCache:
    """Recently fetched image bytes by URL, bounded in bytes; shared by worker threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, url: str) -> bytes | None:
        with self._lock:
            data = self._items.get(url)
            if data is not None:
                self._items.move_to_end(url)
            return data

    def put(self, url: str, data: bytes) -> None:
        with self._lock:
            if url in self._items or len(data) > self.max_bytes // 4:
                return
            self._items[url] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def _interleave_hosts(work: list[PageWork]) -> list[PageWork]:
    """Round-robin over hosts, so workers are not all queued behind one host's politeness."""
    by_host: dict[str, list[PageWork]] = {}
    for item in work:
        by_host.setdefault(urlsplit(item.page.url).netloc, []).append(item)
    out: list[PageWork] = []
    queues = list(by_host.values())
    for position in range(max((len(q) for q in queues), default=0)):
        out.extend(q[position] for q in queues if position < len(q))
    return out
