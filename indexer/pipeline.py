"""The indexing run: a producer → prepare (background thread) → embed → write, with progress.

A producer (local inputs, or the crawler in indexer/crawl.py) runs in a thread and
feeds a bounded queue with prepared pages, so reading, fetching, trafilatura and image
decoding overlap the encoders; the main thread embeds batches and is the one writer:
it commits each page in its own short transaction, and the producer's bookkeeping (a
crawl's frontier) in order with the pages around it. Interrupted or killed, a run loses
at most the pages not yet committed; the next run skips what is stored.

An :class:`Executor` decides where pages are prepared and embedded: here (the default), or on
a Ray cluster (indexer/distributed), which hands the pages back embedded, in order, to the
same writer.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import Connection, insert, select, update

from engine.config import Config
from engine.results import Progress
from engine.store.schema import (
    TEXT_SPACE,
    chunks,
    failures,
    images,
    runs,
    topic_documents,
)
from engine.store.store import Store
from indexer.embed import BatchEmbedder
from indexer.prepare import PageToPrepare, PreparedPage, UnchangedPage, canonical_url, prepare_or_fail
from indexer.sources import InputFailure, Limits, count_pages, iter_inputs
from indexer.write import EmbeddedPage, known_source, put_topic_scores, write_page

_DONE = object()
SAVE_EVERY_SECONDS = 60.0
Emit = Callable[[object], None]


@dataclass
class Bookkeeping:
    """A producer's state change (e.g. a crawl's frontier), committed by the writer in queue order.

    Not a page; it may stand for one (``outcome``: counted in the report's pages, e.g.
    ``not_modified`` or ``gone``) and carry failures to record.
    """

    apply: Callable[[Connection], None] | None = None
    outcome: str | None = None
    failures: list[InputFailure] = field(default_factory=list)
    checkpoint: bool = False  # save the FAISS files once committed (e.g. a crawl round ended)
    label: str = ""  # shown as progress


class Producer(Protocol):
    """Where a run's pages come from. ``produce`` runs in the producer thread."""

    def estimate(self) -> int:
        """Pages expected so far (for progress; may grow while producing)."""
        ...

    def produce(self, store: Store, config: Config, emit: Emit, stop: threading.Event) -> None:
        """Emit PreparedPage, UnchangedPage, InputFailure or Bookkeeping items until done or ``stop``."""
        ...


class LocalInputs:
    """Saved-page folders, HTML files and WARC/ARC archives (indexer/sources.py).

    ``prepare_pages=False`` emits :class:`PageToPrepare` items for an executor that prepares
    pages elsewhere (indexer/distributed); the store lookup that skips unchanged pages stays here.
    """

    def __init__(self, paths: list[Path], prepare_pages: bool = True):
        self.paths = list(paths)
        self.prepare_pages = prepare_pages
        self._total: int | None = None

    def estimate(self) -> int:
        if self._total is None:
            self._total = count_pages(self.paths)
        return self._total

    def produce(self, store: Store, config: Config, emit: Emit, stop: threading.Event) -> None:
        limits = Limits(config.index.max_page_bytes, config.index.max_image_bytes)
        with store.reading() as conn:

            def stored_raw_hash(url: str) -> str | None:
                known = known_source(conn, url)
                return None if known is None else known[0]

            for page in iter_inputs(self.paths, limits):
                if stop.is_set():
                    return
                if isinstance(page, InputFailure):
                    emit(page)
                elif self.prepare_pages:
                    emit(prepare_or_fail(page, config.index, stored_raw_hash))
                else:
                    emit(PageToPrepare(page, stored_raw_hash(canonical_url(page.url))))


class Executor(Protocol):
    """Where pages are prepared and embedded; the run's thread writes what it returns, in order."""

    prepares_pages: bool  # False: producers emit PageToPrepare items for it

    def embedded(self, batches: Iterator[list], embedder: BatchEmbedder) -> Iterator[list]:
        """The same items in the same order, a page to prepare or embed replaced by its
        EmbeddedPage (or its UnchangedPage / InputFailure); may yield [] while waiting."""
        ...


class LocalExecutor:
    """In this process: the producer thread prepares, the writer embeds (see _write_in_order)."""

    prepares_pages = True

    def embedded(self, batches: Iterator[list], embedder: BatchEmbedder) -> Iterator[list]:
        return batches


class InputsInOrder:
    """Several producers' inputs in one run, one producer after the other (saved pages, then URLs)."""

    def __init__(self, producers: list[Producer]):
        self.producers = producers

    def estimate(self) -> int:
        return sum(p.estimate() for p in self.producers)

    def produce(self, store: Store, config: Config, emit: Emit, stop: threading.Event) -> None:
        for producer in self.producers:
            if stop.is_set():
                return
            producer.produce(store, config, emit, stop)


@dataclass
class IndexReport:
    """What a run did. ``pages``: added, updated, duplicate, unchanged, failed."""

    pages: Counter = field(default_factory=Counter)
    chunks_added: int = 0
    images: Counter = field(default_factory=Counter)  # added, linked, failed
    failures: list[InputFailure] = field(default_factory=list)
    clip_used: bool = False
    interrupted: bool = False
    seconds: float = 0.0

    def failure_reasons(self) -> Counter:
        return Counter((f.kind, _reason_class(f.reason)) for f in self.failures)

    def to_dict(self) -> dict:
        return {
            "pages": dict(self.pages),
            "chunks_added": self.chunks_added,
            "images": dict(self.images),
            "failures": [asdict(f) for f in self.failures],
            "clip_used": self.clip_used,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
        }


def run_index(
    store: Store,
    config: Config,
    embedder_factory: Callable[[dict[int, np.ndarray]], BatchEmbedder],
    topic_ids: dict[str, int],
    producer: Producer | list[Path],
    on_progress: Callable[[Progress], None] | None = None,
    stop_requested: threading.Event | None = None,
    executor: Executor | None = None,
) -> IndexReport:
    """Index what ``producer`` yields (or the inputs under a list of paths) for ``topic_ids``.

    ``store`` must hold the write lock. Setting ``stop_requested`` ends the run after the
    batch being written (the report says interrupted); KeyboardInterrupt ends it at once,
    losing only the page being written. ``executor``: where pages are prepared and embedded
    (default: here, :class:`LocalExecutor`); whatever it is, this thread is the one writer.
    """
    executor = executor or LocalExecutor()
    if not hasattr(producer, "produce"):
        producer = LocalInputs(list(producer), prepare_pages=executor.prepares_pages)
    report = IndexReport()
    started = time.time()
    run_id = _start_run(store, started)
    total = producer.estimate()
    items: queue.Queue = queue.Queue(maxsize=2 * config.index.docs_per_batch)
    stop = threading.Event()
    producer_thread = threading.Thread(
        target=_produce, args=(producer, store, config, items, stop), name="engine-prepare", daemon=True
    )
    producer_thread.start()
    last_save = time.time()
    done = 0
    run_status = "failed"  # what the run row says if an error ends it
    batches: Iterator[list] = iter(())
    try:
        embedder = embedder_factory(topic_ids)
        report.clip_used = embedder.clip is not None
        _score_unscored(store, embedder, list(topic_ids.values()))
        batches = executor.embedded(_batches(items, config.index.docs_per_batch, stop_requested), embedder)
        for batch in batches:
            done += _write_in_order(store, embedder, batch, report, run_id)
            if on_progress and batch:
                total = max(producer.estimate(), done)
                on_progress(Progress(done, total, _origin(batch[-1])))
            if time.time() - last_save > SAVE_EVERY_SECONDS:
                store.save_indexes()
                last_save = time.time()
            if stop_requested is not None and stop_requested.is_set():
                report.interrupted = True
                break
        run_status = "interrupted" if report.interrupted else "done"
    except KeyboardInterrupt:
        report.interrupted = True
        run_status = "interrupted"
    finally:
        stop.set()
        getattr(batches, "close", lambda: None)()  # ends a distributed executor's pipeline
        _drain(items)
        producer_thread.join(timeout=10)
        report.seconds = time.time() - started
        store.save_indexes()
        _finish_run(store, run_id, report, run_status)
    return report


def _write_in_order(store: Store, embedder: BatchEmbedder, batch: list, report: IndexReport, run_id: int) -> int:
    """Write a batch's pages and bookkeeping in queue order; return how many pages it held.

    Pages next to each other are embedded together; bookkeeping waits for the pages
    before it to commit, and pages wait for the bookkeeping before them.
    """
    pages = 0
    prepared: list[PreparedPage] = []
    books: list[Bookkeeping] = []
    for item in batch:
        if isinstance(item, _ProducerFailed):
            raise item.error
        if isinstance(item, Bookkeeping):
            if prepared:
                _write_batch(store, embedder, prepared, report, run_id)
                prepared = []
            books.append(item)
            pages += item.outcome is not None
            continue
        if books:
            _commit_bookkeeping(store, books, report, run_id)
            books = []
        pages += 1
        if isinstance(item, InputFailure):
            report.pages["failed"] += 1
            report.failures.append(item)
            _record_failures(store, run_id, [item])
        elif isinstance(item, UnchangedPage):
            report.pages["unchanged"] += 1
        elif isinstance(item, EmbeddedPage):  # embedded by the executor
            if prepared:
                _write_batch(store, embedder, prepared, report, run_id)
                prepared = []
            _write_embedded(store, [item], report, run_id)
        else:
            prepared.append(item)
    if prepared:
        _write_batch(store, embedder, prepared, report, run_id)
    if books:
        _commit_bookkeeping(store, books, report, run_id)
    return pages


def _commit_bookkeeping(store: Store, books: list[Bookkeeping], report: IndexReport, run_id: int) -> None:
    now = time.time()
    with store.transaction() as conn:
        for book in books:
            if book.apply is not None:
                book.apply(conn)
            if book.failures:
                conn.execute(
                    insert(failures),
                    [{"run_id": run_id, "kind": f.kind, "input": f.origin, "reason": f.reason, "created_at": now}
                     for f in book.failures],
                )
    for book in books:
        if book.outcome:
            report.pages[book.outcome] += 1
        report.failures.extend(book.failures)
    if any(book.checkpoint for book in books):
        store.save_indexes()


@dataclass
class _ProducerFailed:
    error: BaseException


def _produce(producer: Producer, store: Store, config: Config, items: queue.Queue, stop: threading.Event) -> None:
    try:
        producer.produce(store, config, lambda item: _put(items, item, stop), stop)
    except Exception as exc:  # noqa: BLE001 - re-raised by the writer, so the run fails saying why
        _put(items, _ProducerFailed(exc), stop)
    finally:
        _put(items, _DONE, stop, force=True)


def _put(items: queue.Queue, item: object, stop: threading.Event, force: bool = False) -> None:
    while True:
        try:
            items.put(item, timeout=0.2)
            return
        except queue.Full:
            if stop.is_set() and not force:
                return
            if stop.is_set():
                _drain(items)


def _drain(items: queue.Queue) -> None:
    try:
        while True:
            items.get_nowait()
    except queue.Empty:
        pass


def _next_batch(items: queue.Queue, size: int, stop_requested: threading.Event | None = None) -> tuple[list, bool]:
    """Up to ``size`` items: waits for the first (or a stop request), then takes what is ready."""
    while True:
        try:
            first = items.get(timeout=0.25) if stop_requested is not None else items.get()
            break
        except queue.Empty:
            if stop_requested.is_set():
                return [], False
    if first is _DONE:
        return [], True
    batch = [first]
    while len(batch) < size:
        try:
            item = items.get_nowait()
        except queue.Empty:
            break
        if item is _DONE:
            return batch, True
        batch.append(item)
    return batch, False


def _batches(items: queue.Queue, size: int, stop_requested: threading.Event | None) -> Iterator[list]:
    """The producer's items in batches of up to ``size``, until it is done ([] while waiting for a stop)."""
    finished = False
    while not finished:
        batch, finished = _next_batch(items, size, stop_requested)
        yield batch


def _write_batch(store: Store, embedder: BatchEmbedder, prepared: list[PreparedPage], report: IndexReport, run_id: int) -> None:
    hashes = {data.content_hash for p in prepared for _, data in p.images}
    with store.reading() as conn:
        stored = set(conn.execute(select(images.c.content_hash).where(images.c.content_hash.in_(hashes))).scalars())
    _write_embedded(store, embedder.embed(prepared, stored), report, run_id)


def _write_embedded(store: Store, embedded: list[EmbeddedPage], report: IndexReport, run_id: int) -> None:
    """Commit each page in its own transaction, then record the pages' image failures."""
    for page in embedded:
        try:
            with store.transaction() as conn:
                outcome = write_page(store, conn, page)
                if page.page.on_commit is not None:
                    page.page.on_commit(conn)  # the producer's state for this page, in the same commit
        except BaseException:
            store.discard_uncommitted()
            raise
        store.apply_committed()
        report.pages[outcome.page] += 1
        report.chunks_added += outcome.chunks_added
        report.images["added"] += outcome.images_added
        report.images["linked"] += outcome.images_linked
    failed = [f for page in embedded for f in page.failures]
    report.images["failed"] += len(failed)
    report.failures.extend(failed)
    _record_failures(store, run_id, failed)


def _score_unscored(store: Store, embedder: BatchEmbedder, topic_ids: list[int]) -> None:
    """Score stored documents against the topics they were never scored for (new topics)."""
    with store.reading() as conn:
        scored = {(d, t) for d, t in conn.execute(select(topic_documents.c.document_id, topic_documents.c.topic_id))}
        by_document: dict[int, list[int]] = defaultdict(list)
        for doc_id, chunk_id in conn.execute(select(chunks.c.document_id, chunks.c.id)):
            by_document[doc_id].append(chunk_id)
    todo = [d for d in by_document if any((d, t) not in scored for t in topic_ids)]
    for start in range(0, len(todo), 256):
        batch = todo[start : start + 256]
        chunk_ids = [c for d in batch for c in by_document[d]]
        vectors = store.read_vectors(TEXT_SPACE, chunk_ids, embedder.text.dim)
        with store.transaction() as conn:
            offset = 0
            for doc_id in batch:
                n = len(by_document[doc_id])
                scores = embedder.topic_scores(vectors[offset : offset + n])
                offset += n
                missing = {t: s for t, s in scores.items() if (doc_id, t) not in scored}
                put_topic_scores(conn, doc_id, missing)


def _start_run(store: Store, started: float) -> int:
    with store.transaction() as conn:
        return conn.execute(insert(runs).values(started_at=started, status="running")).inserted_primary_key[0]


def _finish_run(store: Store, run_id: int, report: IndexReport, status: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                finished_at=time.time(),
                status=status,
                summary=json.dumps(report.to_dict()),
            )
        )


def _record_failures(store: Store, run_id: int, items: list[InputFailure]) -> None:
    if not items:
        return
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            insert(failures),
            [{"run_id": run_id, "kind": f.kind, "input": f.origin, "reason": f.reason, "created_at": now} for f in items],
        )


def _origin(item: object) -> str:
    if isinstance(item, Bookkeeping):
        return item.label
    page = getattr(item, "page", item)
    return str(getattr(page, "origin", ""))


def _reason_class(reason: str) -> str:
    # Group "x.jpg: damaged image: ..." style reasons by their stable head.
    return reason.split(":", 1)[0]
