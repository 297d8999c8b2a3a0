"""KnowledgeBase: the composition root. Config → store → encoders → indexes, closed in one place.

Every CLI command is one method here; the CLI parses, calls, and renders. numpy, SQLAlchemy,
FAISS and the encoders load on first use, so `engine status` needs none of them.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from engine.ask.request import AskRequest
from engine.config import EXECUTORS, Config
from engine.errors import ConfigError, ModelUnavailableError, StoreError
from engine.results import AskResult, StatusReport
from engine.store.health import CheckReport, check_store, status_at, store_status
from engine.store.spaces import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE

if TYPE_CHECKING:
    import numpy as np

    from engine.encoders.clip import ClipEncoder
    from engine.encoders.memo import Memo
    from engine.encoders.text import TextEncoder
    from engine.store.store import Store


class KnowledgeBase:
    """A persistent multimodal knowledge base.

    Args:
        config: the settings; ``Config.load()`` reads the usual layers.

    Use as a context manager (or call :meth:`close`)::

        with KnowledgeBase(Config.load()) as kb:
            kb.index(["coffee"], [Path("saved_pages/")])
            print(kb.ask("how is coffee roasted?").summary)
    """

    def __init__(
        self,
        config: Config | None = None,
        text_encoder: TextEncoder | None = None,
        clip_encoder: ClipEncoder | None = None,
    ):
        """Encoders may be passed in to share one loaded model between knowledge bases."""
        self.config = config or Config.load()
        # Things a user should hear once (e.g. "CLIP weights missing"); the CLI prints them.
        self.notices: list[str] = []
        self._clip_failed: str | None = None
        self._clip = clip_encoder
        self._clip_memo: Memo | None = None
        if text_encoder is not None:
            self.__dict__["text_encoder"] = text_encoder

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        self.close()

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    # -- parts, built on first use -------------------------------------------------------

    @cached_property
    def store(self) -> Store:
        from engine.store.store import Store

        return Store(self.config.store.path, self.config.index, self.config.store.database_url or None)

    @cached_property
    def text_encoder(self) -> TextEncoder:
        """The text encoder on the configured runtime (text.runtime): torch or ONNX Runtime; for
        ``auto``, the runtime of the vectors already stored."""
        from engine.encoders.factory import build_text_encoder

        stored = self.store.get_meta(f"model.{TEXT_SPACE}") if self.config.text.runtime == "auto" else None
        return build_text_encoder(self.config.text, stored)

    @cached_property
    def captioner(self):  # noqa: ANN201 - engine.encoders.caption.Captioner | None
        """The captioning model when caption.model is set, else None (loaded on first use)."""
        from engine.encoders.caption import Captioner

        c = self.config.caption
        return Captioner(c.model, c.batch_size, c.max_new_tokens) if c.model else None

    def clip_encoder(self) -> ClipEncoder | None:
        """The CLIP encoder if its weights can be had; else None, with a notice given once."""
        if not self.config.clip.enabled or self._clip_failed:
            return None
        if self._clip is None:
            from engine.encoders.factory import load_clip_encoder

            try:
                encoder = load_clip_encoder(self.config.clip)
            except ModelUnavailableError as exc:
                self._clip_failed = str(exc)
                self.notices.append(
                    f"CLIP is unavailable, so images are stored and ranked by their text context only "
                    f"(run `engine reindex --images` once weights are configured): {exc}"
                )
                return None
            self._clip = encoder
        return self._clip

    # -- commands ----------------------------------------------------------------------------

    def index(
        self,
        topics: list[str],
        paths: list[Path | str] | None = None,
        on_progress: Callable | None = None,
        *,
        watch: bool = False,
        every: float | None = None,
        discover: Callable | None = None,
        stop_requested: threading.Event | None = None,
        executor: str | None = None,
    ):
        """Index saved pages, HTML files and WARC archives under ``paths`` for ``topics``, and
        ``paths`` that are http(s) URLs, ``.txt`` lists of them, feeds or sitemaps
        (indexer/url_inputs.py); without ``paths``, crawl the web for ``topics`` (indexer/crawl.py).

        Args:
            watch: keep crawling, each topic again every ``every`` seconds (default
                ``crawl.watch_every_seconds``), until ``stop_requested`` or Ctrl-C.
            discover: how a topic's candidate URLs are found (default: the configured
                providers, ``[discover]``); see indexer.crawl.Discover.
            stop_requested: set it to end the run after the batch being written.
            executor: ``local`` or ``ray`` (default ``index.executor``): where pages are prepared
                and embedded (indexer/distributed); this process is the writer either way.

        Returns:
            indexer.pipeline.IndexReport: counts of pages, chunks and images, and failures.
        """
        import numpy as np

        from indexer.embed import BatchEmbedder
        from indexer.pipeline import run_index
        from indexer.write import ensure_topics

        topics = [t.strip() for t in topics if t.strip()]
        if not paths and not topics:
            raise ConfigError("nothing to index: give --from PATH, or --topics FILE to crawl the web for them")
        if paths and (watch or discover):
            raise ConfigError("--watch crawls the web for the topics; it does not go with --from")
        if every is not None and every <= 0:
            raise ConfigError(f"the crawl interval must be positive, not {every} s")
        executor = executor or self.config.index.executor
        if executor not in EXECUTORS:
            raise ConfigError(f"the executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
        custom_discover = discover is not None
        if not paths:
            from indexer.crawl import discover_with_providers
            from indexer.discover.registry import configured_endpoints

            discover = discover or discover_with_providers(self.config.discover)  # bad settings fail here
        store = self.store
        store.acquire_write_lock()
        topic_ids = ensure_topics(store, topics) if topics else {}
        if paths:
            producer = None  # the inputs' producers, once the executor says who prepares the pages
        else:
            from indexer.crawl import Crawl

            interval = every or self.config.crawl.watch_every_seconds
            trusted = None if custom_discover else configured_endpoints(self.config.discover)
            producer = Crawl(topic_ids, discover, watch_every=interval if watch else None, trusted_endpoints=trusted)

        def make_embedder(ids: dict[str, int]) -> BatchEmbedder:
            text = self.text_encoder
            store.bind_model((TEXT_SPACE,), text.name, text.dim)
            store.index(TEXT_SPACE, text.dim)
            clip = self.clip_encoder()
            if clip is not None:
                store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
                store.index(CLIP_IMAGE_SPACE, clip.dim)
                store.index(CLIP_TEXT_SPACE, clip.dim)
            vectors = text.encode(list(ids)) if ids else np.zeros((0, text.dim), np.float32)
            if self.captioner is not None:
                self.captioner.load()  # a configured model that cannot load stops the run before any page
            return BatchEmbedder(
                text,
                clip,
                dict(zip(ids.values(), vectors)),
                self.config.text.chunk_tokens,
                self.config.text.chunk_overlap_tokens,
                self.captioner,
            )

        try:
            with self._executor(executor) as run_on:
                producer = producer or _input_producer(paths, run_on.prepares_pages)
                return run_index(store, self.config, make_embedder, topic_ids, producer, on_progress, stop_requested, run_on)
        finally:
            store.release_write_lock()

    @contextmanager
    def _executor(self, name: str):  # noqa: ANN202 - a context manager of an indexer.pipeline.Executor
        """The run's executor; ``ray`` joins (or starts) the cluster for the run's length."""
        from indexer.pipeline import LocalExecutor

        if name == "local":
            yield LocalExecutor()
            return
        from indexer.distributed.cluster import connected
        from indexer.distributed.executor import RayExecutor

        with connected(self.config.ray) as ray:
            yield RayExecutor(ray, self.config, self.store.get_meta(f"model.{TEXT_SPACE}"))

    def ask(self, question: str | AskRequest, **options) -> AskResult:  # noqa: ANN003 - AskRequest's fields
        """Answer ``question`` with a cited summary and the images that align with it and its evidence.

        Args:
            question: the question, or a whole :class:`engine.ask.AskRequest`.
            options: the request's other fields when ``question`` is a string (k, max_images,
                max_sentences, style, filters, min_score, min_alignment, images_only,
                abstractive, language); see :class:`engine.ask.AskRequest`.

        Returns:
            engine.results.AskResult: its ``to_dict()`` is the JSON of ``engine ask --format json``.
        """
        from engine.ask import memory
        from engine.ask.pipeline import Parts, answer

        request = question if isinstance(question, AskRequest) else AskRequest(question, **options)
        asked_at = time.time()
        last = memory.last_ask(self.store, request.question) if request.new else None
        if last is not None:
            request = replace(request, filters=replace(request.filters, added_after=last.asked_at))
        parts = Parts(
            config=self.config,
            store=self.store,
            text=self._ask_text,
            clip=self._ask_clip,
            reranker=self.reranker,
            summarizer=lambda: self.summarizer,
            calibration=self.calibration,
        )
        new = memory.what_is_new(self.store, request.filters, self.config.index.topic_min_similarity, last) if request.new else None
        if new is not None and last is not None and new["new_documents"] == 0:
            result = AskResult(request.question, [], [], [], style=request.style or self.config.ask.style, new=new)
        else:
            result = answer(parts, request)
            result.new = new
        if request.new and last is None:
            result.notices.append("the first time this is asked: every stored document counts as new")
        unremembered = None
        if request.remember:
            unremembered = memory.remember(self.store, request.question, asked_at, [s.document_id for s in result.sources], request.new)
        result.notices.extend(n for n in [*self.notices, unremembered] if n and n not in result.notices)
        return result

    def forget(self, selection, dry_run: bool = False):  # noqa: ANN001, ANN201 - engine.keep.forget types
        """Remove what ``selection`` (engine.keep.forget.Selection) names, crash-safe; ``dry_run``
        only plans it. Returns engine.keep.forget.ForgetReport."""
        from engine.keep.forget import forget

        return forget(self.store, selection, self.config.index.topic_min_similarity, dry_run=dry_run)

    def export(self, target: Path, topic: str | None = None, since: float | None = None, images: bool = True):  # noqa: ANN201
        """Write documents, chunks and images (JSON Lines, and the files) into ``target``; reads only.
        Returns engine.keep.export.ExportReport."""
        from engine.keep.export import export_store

        return export_store(self.store, target, topic=topic, since=since, images=images,
                            topic_min_similarity=self.config.index.topic_min_similarity)

    def backup(self, target: Path):  # noqa: ANN201 - engine.keep.backup.BackupReport
        """A consistent copy of the store (database, the image files it names, FAISS caches) into ``target``,
        while readers and a writer go on. Opens no Store: it must not migrate or repair what it copies."""
        from engine.keep.backup import backup_store

        return backup_store(self.config.store.path, target, self.config.store.database_url or None)

    def restore(self, source: Path, dry_run: bool = False):  # noqa: ANN201 - engine.keep.backup.RestoreReport
        """Verify the backup at ``source``, then put it in place of the store (the current database kept
        beside it); works on a store too damaged to open, so call it before anything opens the store."""
        from engine.keep.backup import restore_store

        return restore_store(source, self.config.store.path, self.config.store.database_url or None, dry_run=dry_run)

    def search(self, question: str, k: int | None = None):  # noqa: ANN201 - engine.search.SearchResult
        """The ``k`` passages ``ask`` would retrieve for ``question``, ranked, with their sources; no summary.

        Returns:
            engine.search.SearchResult: its ``to_dict()`` is the JSON of ``GET /v1/search``.
        """
        from engine.search import search

        return search(self.store, self.text_encoder, self.config, question, k, self.reranker)

    @cached_property
    def _ask_text(self) -> Memo:
        """The text encoder as asks use it: a sentence met in an earlier ask is not encoded again."""
        from engine.encoders.memo import Memo

        return Memo(self.text_encoder)

    def forget_encoded_texts(self) -> None:
        """Forget the remembered sentence vectors (a benchmark measures an ask's whole cost this way)."""
        self.__dict__.pop("_ask_text", None)
        self._clip_memo = None

    def _ask_clip(self) -> Memo | None:
        encoder = self.clip_encoder()
        if encoder is None:
            return None
        if self._clip_memo is None or self._clip_memo._encoder is not encoder:
            from engine.encoders.memo import Memo

            self._clip_memo = Memo(encoder, "encode_texts")
        return self._clip_memo

    @cached_property
    def reranker(self):  # noqa: ANN201 - engine.encoders.rerank.Reranker | None
        """The cross-encoder named by ask.reranker, or None (loaded on first use)."""
        from engine.encoders.rerank import Reranker

        return Reranker(self.config.ask.reranker) if self.config.ask.reranker else None

    @cached_property
    def summarizer(self):  # noqa: ANN201 - engine.generate.AbstractiveSummarizer, imported lazily
        from engine.generate import AbstractiveSummarizer

        return AbstractiveSummarizer(self.config.generate, self.text_encoder)

    def calibration(self):  # noqa: ANN201 - engine.ask.calibration.Calibration
        """The store's relevance calibration (cached in the store; measured again when stale)."""
        from engine.ask.calibration import relevance_cutoff

        return relevance_cutoff(self.store, self.text_encoder.name, lambda: self.probe_vectors)

    @cached_property
    def probe_vectors(self) -> np.ndarray:
        """The calibration's probe questions in the text model's space (encoded once per process)."""
        from engine.ask.calibration import probe_questions

        return self.text_encoder.encode(probe_questions())

    def document(self, document_id: int):  # noqa: ANN201 - engine.documents.Document | None
        """Document ``document_id``: its metadata, topics, passages in order and images; None if unknown.

        Returns:
            engine.documents.Document: its ``to_dict()`` is the JSON of ``GET /v1/documents/{id}``.
        """
        from engine.documents import read_document

        return read_document(self.store, document_id, self.config.index.topic_min_similarity)

    def image(self, image_id: int):  # noqa: ANN201 - engine.documents.StoredImage | None
        """Stored image ``image_id`` and its file's path; None if unknown (raises StoreError for a
        path that leads outside the store's image folder)."""
        from engine.documents import read_image

        return read_image(self.store, image_id)

    def status(self) -> StatusReport:
        """What is stored, per topic, with sizes and the last run."""
        similarity = self.config.index.topic_min_similarity
        if "store" in self.__dict__ or self.config.store.database_url:  # open already (a server's), or on a server
            return store_status(self.store, similarity)
        # Not opened for this: sqlite3 alone when the store is at the newest schema.
        return status_at(self.config.store.path, similarity)

    def check(self) -> CheckReport:
        """Compare SQLite with the FAISS files and the image files; change nothing."""
        return check_store(self.store)

    def reindex(
        self, images: bool = False, text: bool = False, on_progress: Callable | None = None, captions: bool = False
    ) -> dict:
        """Rebuild every FAISS index from SQLite; optionally (re)compute vectors first.

        Args:
            images: compute the CLIP vectors that are missing (images stored while CLIP
                was unavailable), or all of them if the CLIP model changed.
            text: re-embed every chunk with the configured text model.
            captions: caption the stored images that have no generated caption (caption.model).
        """
        from engine.reembed import fill_captions, fill_missing_phashes, reembed_clip, reembed_text

        store = self.store
        store.acquire_write_lock()
        try:
            done: dict[str, int] = {"image_hashes": fill_missing_phashes(store, on_progress)}
            if text:
                done["text_vectors"] = reembed_text(store, self.text_encoder, on_progress)
            if images:
                clip = self.clip_encoder()
                if clip is None:
                    raise ModelUnavailableError(self._clip_failed or "CLIP is disabled (clip.enabled = false)")
                done.update(reembed_clip(store, clip, on_progress))
            if captions:
                if self.captioner is None:
                    raise ConfigError("reindex --captions needs caption.model (ENGINE_CAPTION_MODEL), a local captioning model")
                done.update(fill_captions(store, self.captioner, on_progress))
            for space in (TEXT_SPACE, CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE):
                dim = store.get_meta(f"dim.{space}")
                if dim is not None:
                    report = _index_progress(on_progress, f"{space} index")
                    done[f"{space}_indexed"] = len(store.rebuild_index(space, int(dim), report))
            return done
        finally:
            store.release_write_lock()

    def upgrade(self) -> str:
        """Migrate the store to the newest schema; return the revision now in force.

        Raises:
            StoreError: SQLite's quick check finds the database damaged (an upgrade reads only the
                version table, so it would otherwise report a damaged store as fine).
        """
        from sqlalchemy import text

        from engine.store.database import current_revision

        if self.store.engine.dialect.name == "sqlite":
            with self.store.reading() as conn:
                verdict = [row[0] for row in conn.execute(text("PRAGMA quick_check"))]
            if verdict != ["ok"]:
                raise StoreError(
                    f"the store's database {self.store.db_path} is damaged ({'; '.join(verdict[:3])}); "
                    "restore a backup: engine restore BACKUP"
                )
        return current_revision(self.store.engine) or "none"


def _input_producer(paths: list[Path | str], prepare_pages: bool):  # noqa: ANN202 - an indexer.pipeline.Producer
    """Saved pages and archives first, then URLs (given, or listed in .txt files; feeds, sitemaps)."""
    from indexer.pipeline import InputsInOrder, LocalInputs
    from indexer.url_lists import sort_inputs

    inputs = sort_inputs(paths)
    producers = [LocalInputs(inputs.paths, prepare_pages=prepare_pages)] if inputs.paths else []
    if inputs.urls or inputs.failures:
        from indexer.url_inputs import UrlInputs

        producers.append(UrlInputs(inputs.urls, inputs.failures))
    return producers[0] if len(producers) == 1 else InputsInOrder(producers)


def _index_progress(on_progress: Callable | None, what: str) -> Callable[[int, int], None] | None:
    """The store's (added, total) index-build callback as Progress reports."""
    if on_progress is None:
        return None
    from engine.results import Progress

    return lambda done, total: on_progress(Progress(done, total, what))
