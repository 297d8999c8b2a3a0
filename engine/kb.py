"""KnowledgeBase: the composition root. Config → store → encoders → indexes, closed in one place.

Every CLI command is one method here; the CLI parses, calls, and renders.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from engine import query as q
from engine.config import Config
from engine.encoders.clip import ClipEncoder
from engine.encoders.text import TextEncoder
from engine.errors import ConfigError, ModelUnavailableError
from engine.results import AskResult, ImageHit, SourceRef, SummarySentence
from engine.retrieve import Filters
from engine.store.health import CheckReport, StatusReport, check_store, store_status
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE
from engine.store.store import Store


# An abstractive summary is written from this many times max_sentences evidence sentences.
EVIDENCE_FACTOR = 3


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
        return Store(self.config.store.path)

    @cached_property
    def text_encoder(self) -> TextEncoder:
        return TextEncoder(self.config.text.model, self.config.text.batch_size)

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
            encoder = ClipEncoder(self.config.clip)
            try:
                encoder.load()
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
        paths: list[Path] | None = None,
        on_progress: Callable | None = None,
        *,
        watch: bool = False,
        every: float | None = None,
        discover: Callable | None = None,
        stop_requested: threading.Event | None = None,
    ):
        """Index saved pages, HTML files and WARC archives under ``paths`` for ``topics``;
        without ``paths``, crawl the web for ``topics`` (indexer/crawl.py).

        Args:
            watch: keep crawling, each topic again every ``every`` seconds (default
                ``crawl.watch_every_seconds``), until ``stop_requested`` or Ctrl-C.
            discover: how a topic's candidate URLs are found (default: the configured
                providers, ``[discover]``); see indexer.crawl.Discover.
            stop_requested: set it to end the run after the batch being written.

        Returns:
            indexer.pipeline.IndexReport: counts of pages, chunks and images, and failures.
        """
        from indexer.embed import BatchEmbedder
        from indexer.pipeline import LocalInputs, run_index
        from indexer.write import ensure_topics

        topics = [t.strip() for t in topics if t.strip()]
        if not paths and not topics:
            raise ConfigError("nothing to index: give --from PATH, or --topics FILE to crawl the web for them")
        if paths and (watch or discover):
            raise ConfigError("--watch crawls the web for the topics; it does not go with --from")
        if every is not None and every <= 0:
            raise ConfigError(f"the crawl interval must be positive, not {every} s")
        if not paths:
            from indexer.crawl import discover_with_providers

            discover = discover or discover_with_providers(self.config.discover)  # bad settings fail here
        store = self.store
        store.acquire_write_lock()
        topic_ids = ensure_topics(store, topics) if topics else {}
        if paths:
            producer = LocalInputs(list(paths))
        else:
            from indexer.crawl import Crawl

            interval = every or self.config.crawl.watch_every_seconds
            producer = Crawl(topic_ids, discover, watch_every=interval if watch else None)

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
            return run_index(store, self.config, make_embedder, topic_ids, producer, on_progress, stop_requested)
        finally:
            store.release_write_lock()

    def ask(
        self,
        query: str,
        k: int | None = None,
        max_images: int | None = None,
        max_sentences: int | None = None,
        style: str | None = None,
        filters: Filters | None = None,
        min_score: float | str | None = None,
        min_alignment: float | str | None = None,
        images_only: bool = False,
        abstractive: bool | None = None,
        language: str | None = None,
    ) -> AskResult:
        """Answer ``query`` with a cited summary and the images that align with it and its evidence.

        Args:
            style: bullets | paragraph | brief | detailed (default: ask.style).
            filters: restrict retrieval by topic, source, date or language.
            min_score: the relevance cutoff: a number, "auto" (calibrated from the store)
                or "off" (default: ask.min_score). Below it a passage is not evidence; with
                no evidence left the result says nothing relevant was found.
            min_alignment: drop images whose CLIP alignment is below this ("off": keep all).
            images_only: an image-only answer: the best-aligned images, each described by
                its (generated) caption and cited.
            abstractive: write the summary with the configured generator ([generate]) from the
                cited evidence, keeping only sentences the evidence supports (default: on when
                generate.model or generate.url is set).
            language: the summary's language. Extractive summaries quote their sources, so
                the evidence is restricted to documents in it; a generator writes in it.
        """
        from engine.summarize import STYLES

        query = query.strip()
        if not query:
            raise ConfigError("the question is empty")
        settings = self.config.ask
        style = style or settings.style
        if style not in STYLES:
            raise ConfigError(f"unknown style {style!r} (choose from {', '.join(STYLES)})")
        filters = filters or Filters()
        if abstractive is None:
            abstractive = bool(self.config.generate.model or self.config.generate.url)
        if language and not abstractive:
            filters = replace(filters, language=language)
        detailed = style == "detailed"
        k = k or settings.k * (2 if detailed else 1)
        max_images = settings.max_images if max_images is None else max_images
        max_sentences = max_sentences or STYLES[style](settings.max_sentences)
        result = AskResult(
            query=query,
            summary=[],
            sources=[],
            images=[],
            style=style,
            settings={
                "k": k,
                "max_images": max_images,
                "max_sentences": max_sentences,
                "mmr_lambda": settings.mmr_lambda,
                "dense_weight": settings.dense_weight,
                "bm25_weight": settings.bm25_weight,
                "reranker": settings.reranker or None,
                "filters": {k_: v for k_, v in vars(filters).items() if v},
                "images_only": images_only,
                "abstractive": abstractive,
                "language": language,
            },
        )
        if self.store.vector_version(TEXT_SPACE) == 0:
            result.notices.append("the store is empty: index something first (engine index --topics FILE --from PATH)")
            return result
        timer = _StageTimer(result.timings_ms)
        text = self.text_encoder
        self.store.bind_model((TEXT_SPACE,), text.name, text.dim)  # refuses vectors of another model
        with timer("encode_query"):
            query_vector = text.encode([query])[0]
        hits = self._retrieve(query, query_vector, filters, k, timer, result)
        with timer("cutoff"):
            evidence_hits = self._apply_cutoff(hits, min_score, result)[:k]
        if not evidence_hits:
            result.notices.extend(self.notices)
            return result
        evidence = q.evidence_chunks(self.store, [h.chunk_id for h in evidence_hits], [h.dense for h in evidence_hits])
        by_chunk = {h.chunk_id: h for h in evidence_hits}
        evidence_docs = list(dict.fromkeys(row["document_id"] for row in evidence))
        alignment_floor = _optional_float(settings.min_alignment if min_alignment is None else min_alignment, "min_alignment")
        result.settings["min_alignment"] = alignment_floor
        if images_only:
            with timer("images"):
                self._images_only(query, query_vector, evidence_docs, max_images, alignment_floor, result)
        else:
            with timer("summarize"):
                budget = max_sentences * EVIDENCE_FACTOR if abstractive else max_sentences
                sentence_vectors = self._summarize(query_vector, evidence, by_chunk, budget, result)
            if abstractive:
                with timer("generate"):
                    sentence_vectors = self._rewrite(query, query_vector, max_sentences, language, result)
            if max_images > 0:
                with timer("images"):
                    self._illustrate(query, query_vector, sentence_vectors, evidence_docs, max_images, alignment_floor, result)
        result.notices.extend(self.notices)
        return result

    def _retrieve(self, query: str, query_vector: np.ndarray, filters: Filters, k: int, timer, result: AskResult) -> list:  # noqa: ANN001
        """Fused BM25 + dense passages for the question, best first (reranked when configured)."""
        from engine import retrieve

        settings = self.config.ask
        depth = max(5 * k, 50)  # each ranking reads deeper than k, so fusion has overlap to work with
        with timer("filter"), self.store.reading() as conn:
            allowed = retrieve.allowed_chunk_ids(conn, filters, self.config.index.topic_min_similarity)
        if allowed is not None:
            result.settings["filtered_to_chunks"] = int(len(allowed))
        with timer("dense"):
            dense = retrieve.dense_ranking(self.store.index(TEXT_SPACE, self.text_encoder.dim), query_vector, depth, allowed)
        with timer("bm25"), self.store.reading() as conn:
            bm25 = retrieve.bm25_ranking(conn, query, depth, allowed)
        with timer("fuse"):
            hits = retrieve.fuse(dense, bm25, settings.dense_weight, settings.bm25_weight)[:depth]
            retrieve.fill_dense_scores(self.store, hits, query_vector, TEXT_SPACE)
        if settings.reranker and hits:
            from engine.rerank import rerank_scores

            with timer("rerank"):
                top = hits[: 3 * k]
                rows = q.evidence_chunks(self.store, [h.chunk_id for h in top], [0.0] * len(top))
                texts = {r["chunk_id"]: r["text"] for r in rows}
                scores = rerank_scores(settings.reranker, query, [texts.get(h.chunk_id, "") for h in top])
                for hit, score in zip(top, scores):
                    hit.rerank = score
                hits = sorted(top, key=lambda h: -h.rerank) + hits[3 * k :]
        return hits

    def _apply_cutoff(self, hits: list, min_score: float | str | None, result: AskResult) -> list:
        """The hits whose dense score reaches the relevance cutoff; records what was used."""
        from engine.calibrate import relevance_cutoff

        chosen = self.config.ask.min_score if min_score is None else min_score
        threshold = _optional_float(chosen, "min_score", allow_auto=True)
        origin = "off" if threshold is None else ("flag" if min_score is not None else "config")
        if threshold == "auto":
            calibration = relevance_cutoff(self.store, self.text_encoder, self.config.index.topic_min_similarity)
            threshold = calibration.threshold
            origin = "calibrated" if threshold is not None else "off: fewer than 2 documents to calibrate from"
        best = max((h.dense for h in hits), default=None)
        kept = hits if threshold is None else [h for h in hits if h.dense >= threshold]
        result.relevance = {
            "threshold": threshold,
            "origin": origin,
            "best_score": None if best is None else round(best, 4),
            "passages_above": len(kept),
            "nothing_relevant": not kept,
        }
        if not kept:
            where = " within the filters" if result.settings.get("filters") else ""
            result.notices.append(
                f"nothing relevant found{where}: the best passage scored "
                f"{'n/a' if best is None else f'{best:.2f}'}, below the relevance cutoff {threshold:.2f} "
                f"({result.relevance['origin']}; --min-score changes it)"
                if threshold is not None
                else f"nothing found{where}"
            )
        return kept

    def _summarize(self, query_vector: np.ndarray, evidence: list[dict], by_chunk: dict, max_sentences: int, result: AskResult) -> np.ndarray:
        """An extractive summary of the evidence into ``result``; returns its sentence vectors."""
        from engine.summarize import candidate_sentences, mmr, reading_order

        candidates = candidate_sentences(evidence)
        sentence_vectors = self.text_encoder.encode([c.text for c in candidates])
        picked = reading_order(candidates, mmr(query_vector, sentence_vectors, max_sentences, self.config.ask.mmr_lambda))
        numbers = self._cite(result, [candidates[i].document_id for i in picked])
        result.summary = [
            SummarySentence(
                candidates[i].text,
                [numbers[candidates[i].document_id]],
                candidates[i].document_id,
                candidates[i].chunk_id,
                round(float(sentence_vectors[i] @ query_vector), 4),
                retrieval=_retrieval_parts(by_chunk.get(candidates[i].chunk_id)),
            )
            for i in picked
        ]
        return sentence_vectors[picked] if picked else np.zeros((0, self.text_encoder.dim), np.float32)

    @cached_property
    def summarizer(self):  # noqa: ANN201 - engine.generate.AbstractiveSummarizer, imported lazily
        from engine.generate import AbstractiveSummarizer

        return AbstractiveSummarizer(self.config.generate, self.text_encoder)

    def _rewrite(self, query: str, query_vector: np.ndarray, max_sentences: int, language: str | None, result: AskResult) -> np.ndarray:
        """Replace the extractive summary by the generator's, from a wider set of evidence sentences.

        The extractive pass picked the evidence (MMR over ``EVIDENCE_FACTOR`` times the
        sentences); the generator writes from it with [n] citations, and sentences the cited
        evidence does not support are dropped or marked (engine/faithfulness.py).
        """
        evidence = [(s.text, s.citations[0]) for s in result.summary]
        generated = self.summarizer.summarize(query, evidence, result.style, max_sentences, language)
        by_number = {s.number: s.document_id for s in result.sources}
        vectors = self.text_encoder.encode([g.text for g in generated.sentences])
        chunk_of = [s.chunk_id for s in result.summary]
        result.summary = [
            SummarySentence(
                g.text,
                g.citations,
                by_number.get(g.citations[0], 0) if g.citations else 0,
                chunk_of[g.evidence] if g.evidence is not None else 0,
                round(float(v @ query_vector), 4),
                supported=g.supported,
                support=round(g.similarity, 4),
            )
            for g, v in zip(generated.sentences, vectors)
        ]
        # Number the sources the generated text cites 1, 2, ... in order of first citation.
        renumber = {n: new for new, n in enumerate(dict.fromkeys(n for s in result.summary for n in s.citations), 1)}
        for sentence in result.summary:
            sentence.citations = [renumber[n] for n in sentence.citations]
        result.sources = sorted(
            (replace(s, number=renumber[s.number]) for s in result.sources if s.number in renumber), key=lambda s: s.number
        )
        result.faithfulness = {"model": generated.model, **vars(generated.report)}
        result.notices.extend(generated.notices)
        return vectors if len(vectors) else np.zeros((0, self.text_encoder.dim), np.float32)

    def _cite(self, result: AskResult, document_ids: list[int]) -> dict[int, int]:
        """Number the cited documents [1], [2], ... in order of first citation; fill the source list."""
        doc_order = list(dict.fromkeys(document_ids))
        info = q.document_sources(self.store, doc_order)
        numbers = {d: n + 1 for n, d in enumerate(doc_order)}
        result.sources = [
            SourceRef(numbers[d], d, info[d]["title"], info[d]["url"], info[d]["published"]) for d in doc_order if d in info
        ]
        return numbers

    def _image_candidates(self, query: str, evidence_docs: list[int], max_images: int) -> tuple[list, ClipEncoder | None]:
        """Images on the evidence pages plus CLIP's text→image search for the question."""
        clip = self.clip_encoder() if self.store.vector_version(CLIP_IMAGE_SPACE) > 0 else None
        extra: list[int] = []
        if clip is not None:
            self.store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
            clip_query = clip.encode_texts([query])[0]
            _, found = self.store.index(CLIP_IMAGE_SPACE, clip.dim).search(clip_query[None, :], max_images * 4)
            extra = [int(i) for i in found[0] if i >= 0]
        return q.image_candidates(self.store, evidence_docs, extra), clip

    def _illustrate(
        self,
        query: str,
        query_vector: np.ndarray,
        sentence_vectors: np.ndarray,
        evidence_docs: list[int],
        max_images: int,
        min_alignment: float | None,
        result: AskResult,
    ) -> None:
        from engine.align import Evidence, rank_images

        candidates, clip = self._image_candidates(query, evidence_docs, max_images)
        # Images from pages not cited yet are cited too, after the summary's sources.
        numbers = {s.document_id: s.number for s in result.sources}
        evidence = Evidence(query, query_vector, [s.text for s in result.summary], sentence_vectors)
        hits, dropped = rank_images(self.store, self.text_encoder, clip, candidates, evidence, numbers, max_images, min_alignment)
        self._cite_images(result, hits, candidates)
        result.images, result.images_dropped = hits, dropped

    def _images_only(
        self,
        query: str,
        query_vector: np.ndarray,
        evidence_docs: list[int],
        max_images: int,
        min_alignment: float | None,
        result: AskResult,
    ) -> None:
        """Images as the answer: each described by its captions, with its page cited."""
        from engine.align import Evidence, rank_images

        candidates, clip = self._image_candidates(query, evidence_docs, max(max_images, 1))
        empty = np.zeros((0, self.text_encoder.dim), np.float32)
        hits, dropped = rank_images(
            self.store, self.text_encoder, clip, candidates, Evidence(query, query_vector, [], empty), {}, max(max_images, 1), min_alignment
        )
        self._cite_images(result, hits, candidates)
        for n, hit in enumerate(hits):
            words = hit.generated_caption or hit.caption or hit.alt
            if not words:
                continue
            hit.sentence = len(result.summary)
            shown_on = next(c for c in candidates if c.image_id == hit.image_id)
            result.summary.append(
                SummarySentence(
                    words, [hit.source] if hit.source else [], shown_on.document_id, shown_on.chunk_id or 0, hit.parts.get("context", 0.0)
                )
            )
        result.images, result.images_dropped = hits, dropped

    def _cite_images(self, result: AskResult, hits: list[ImageHit], candidates: list) -> None:
        """Give every shown image a source number, adding its page to the sources if needed."""
        page_of = {c.image_id: c.document_id for c in candidates}
        missing = [page_of[h.image_id] for h in hits if h.source is None]
        if not missing:
            return
        cited = [s.document_id for s in result.summary] + [s.document_id for s in result.sources]
        numbers = self._cite(result, list(dict.fromkeys(cited + missing)))
        for hit in hits:
            hit.source = numbers.get(page_of[hit.image_id])

    def status(self) -> StatusReport:
        """What is stored, per topic, with sizes and the last run."""
        return store_status(self.store, self.config.index.topic_min_similarity)

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
                    store.rebuild_index(space, int(dim)).save()
                    done[f"{space}_indexed"] = len(store.loaded_indexes()[space])
            return done
        finally:
            store.release_write_lock()

    def upgrade(self) -> str:
        """Migrate the store to the newest schema; return the revision now in force."""
        from engine.store.database import current_revision

        return current_revision(self.store.engine) or "none"


class _StageTimer:
    """Adds the wall time of each ``with timer("stage")`` block, in ms, to ``into``."""

    def __init__(self, into: dict[str, float]):
        self.into = into

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[stage] = round(self.into.get(stage, 0.0) + 1000 * (time.perf_counter() - started), 3)


def _optional_float(value: float | str | None, name: str, allow_auto: bool = False) -> float | str | None:
    """A threshold setting: a number, "off" (None) or, where allowed, "auto"."""
    if value is None or isinstance(value, (int, float)):
        return value
    word = str(value).strip().lower()
    if word in ("off", "none", ""):
        return None
    if allow_auto and word == "auto":
        return "auto"
    try:
        return float(word)
    except ValueError:
        choices = "a number, auto or off" if allow_auto else "a number or off"
        raise ConfigError(f"{name} must be {choices}, not {value!r}") from None


def _retrieval_parts(hit) -> dict:  # noqa: ANN001 - engine.retrieve.Hit or None
    if hit is None:
        return {}
    parts = {
        "dense": None if hit.dense is None else round(hit.dense, 4),
        "dense_rank": hit.dense_rank,
        "bm25": None if hit.bm25 is None else round(hit.bm25, 4),
        "bm25_rank": hit.bm25_rank,
        "rrf": round(hit.rrf, 5),
    }
    if hit.rerank is not None:
        parts["rerank"] = round(hit.rerank, 4)
    return parts
