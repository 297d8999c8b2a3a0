"""The ask pipeline, top to bottom: request in, AskResult out, each stage timed.

Each stage is a function of values (engine/ask/<stage>.py); this module only calls them in order.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from engine.ask import evidence, images, reading, retrieval, summary
from engine.ask.retrieval import document_labels, passage_share
from engine.ask.request import AskPlan, AskRequest, resolve
from engine.config import Config
from engine.results import AskResult
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE
from engine.store.store import Store

# An abstractive summary is written from this many times max_sentences evidence sentences.
EVIDENCE_FACTOR = 3


@dataclass(frozen=True)
class Parts:
    """The loaded parts an answer needs; models that may not be needed load only when asked for."""

    config: Config
    store: Store
    text: object  # engine.encoders.text.TextEncoder
    clip: Callable[[], object | None]  # the CLIP encoder, or None when unavailable
    reranker: object | None  # engine.encoders.rerank.Reranker
    summarizer: Callable[[], object]  # engine.generate.AbstractiveSummarizer
    calibration: Callable[[], object]  # engine.ask.calibration.Calibration


def answer(parts: Parts, request: AskRequest) -> AskResult:
    """Answer ``request`` from the store with a cited summary and aligned images."""
    plan = resolve(request, parts.config.ask, bool(parts.config.generate.model or parts.config.generate.url))
    timings: dict[str, float] = {}
    timer = Stopwatch(timings)
    if parts.store.vector_version(TEXT_SPACE) == 0:
        notice = "the store is empty: index something first (engine index --topics FILE --from PATH)"
        return _result(plan, timings, notices=[notice])
    parts.store.bind_model((TEXT_SPACE,), parts.text.name, parts.text.dim)  # refuses vectors of another model
    with timer("encode_query"):
        query_vector = parts.text.encode([plan.question])[0]
    index = parts.store.index(TEXT_SPACE, parts.text.dim)
    found = retrieval.retrieve(
        parts.store, index, plan, query_vector, parts.config.index.topic_min_similarity, parts.reranker, timer
    )
    with timer("evidence"):
        hits, passages = reading.distinct_passages(parts.store, found.hits, max(plan.k, evidence.COVERAGE_PASSAGES), parts.text.dim)
        decision = evidence.decide(
            plan.question,
            query_vector,
            hits,
            passages,
            document_labels(parts.store, [p.document_id for p in passages]),
            parts.text.encode,
            lambda words: passage_share(parts.store, words, up_to=evidence.COMMON_SHARE),
            _thresholds(plan, parts),
            plan.k,
            plan.filters.any(),
        )
    settings = plan.settings() | ({} if found.filtered_to is None else {"filtered_to_chunks": found.filtered_to})
    if not decision.evidence:
        return _result(plan, timings, settings=settings, relevance=decision.relevance, notices=[decision.notice])
    kept = {h.chunk_id for h in decision.evidence}
    passages = [p for p in passages if p.chunk_id in kept]
    hits = {h.chunk_id: h for h in decision.evidence}
    documents = list(dict.fromkeys(p.document_id for p in passages))
    if plan.images_only:
        with timer("images"):
            return _images_only(parts, plan, query_vector, documents, _clip_query(parts, plan), timings, settings, decision)
    with timer("summarize"):
        budget = plan.max_sentences * EVIDENCE_FACTOR if plan.abstractive else plan.max_sentences
        written = summary.extractive(parts.store, parts.text, query_vector, passages, hits, budget, plan.mmr_lambda)
    faithfulness, notices = None, []
    if plan.abstractive:
        with timer("generate"):
            rewrite = summary.abstractive(
                parts.summarizer(), parts.text, plan.question, query_vector, written, plan.style, plan.max_sentences, plan.language
            )
        written, faithfulness, notices = rewrite.summary, rewrite.faithfulness, rewrite.notices
    shown, dropped, sources = [], {}, written.sources
    if plan.max_images > 0:
        with timer("images"):
            clip = _clip_query(parts, plan)
            scene = images.Scene(query_vector, [s.text for s in written.sentences], written.vectors)
            found_images = images.candidates(parts.store, documents, clip, plan.max_images)
            picture = images.rank(parts.store, parts.text, clip, found_images, scene, plan.max_images, plan.min_alignment)
            # Pages that only show an image are cited too, after the summary's sources.
            numbers, sources = _with_image_pages(parts.store, written, picture, documents)
            shown, dropped = images.with_sources(picture.images, picture.candidates, numbers), picture.dropped
    return _result(
        plan,
        timings,
        settings=settings,
        relevance=decision.relevance,
        sentences=written.sentences,
        sources=sources,
        shown=shown,
        dropped=dropped,
        faithfulness=faithfulness,
        notices=notices,
    )


def _images_only(parts, plan, query_vector, documents, clip, timings, settings, decision) -> AskResult:  # noqa: ANN001
    """Images as the answer: each described by its captions, with its page cited."""
    count = max(plan.max_images, 1)
    scene = images.Scene(query_vector, [], np.zeros((0, len(query_vector)), np.float32))
    found_images = images.candidates(parts.store, documents, clip, count)
    picture = images.rank(parts.store, parts.text, clip, found_images, scene, count, plan.min_alignment)
    numbers, sources = summary.cite(parts.store, images.pages_shown_on(picture.images, picture.candidates), documents)
    shown = images.with_sources(picture.images, picture.candidates, numbers)
    sentences, shown = images.captions_as_summary(shown, picture.candidates)
    return _result(
        plan, timings, settings=settings, relevance=decision.relevance, sentences=sentences, sources=sources, shown=shown, dropped=picture.dropped
    )


def _with_image_pages(store: Store, written: summary.Summary, picture: images.Illustration, documents: list[int]):  # noqa: ANN202
    """Source numbers for the summary's documents and the image pages; the full source list."""
    cited = [s.document_id for s in written.sources]
    numbers = {s.document_id: s.number for s in written.sources}
    missing = [d for d in images.pages_shown_on(picture.images, picture.candidates) if d not in numbers]
    if not missing:
        return numbers, written.sources
    extra_numbers, extra = summary.cite(store, missing, [])
    shift = len(written.sources)
    extra = [replace(s, number=s.number + shift) for s in extra]
    numbers |= {d: n + shift for d, n in extra_numbers.items()}
    return numbers, images.cited_sources(written.sources, extra)


def _thresholds(plan: AskPlan, parts: Parts) -> evidence.Thresholds:
    """The evidence decision's settings: the relevance floor in force and where it came from."""
    rerank = plan.reranker_min_score if parts.reranker is not None else None
    if plan.min_score is None:
        return evidence.Thresholds(None, "off", plan.max_uncovered, rerank)
    if plan.min_score != "auto":
        return evidence.Thresholds(float(plan.min_score), plan.min_score_origin, plan.max_uncovered, rerank)
    calibration = parts.calibration()
    if calibration.threshold is None:
        return evidence.Thresholds(None, "off: nothing stored to calibrate from", plan.max_uncovered, rerank)
    return evidence.Thresholds(calibration.threshold, "calibrated", plan.max_uncovered, rerank, calibration.probe_median)


def _clip_query(parts: Parts, plan: AskPlan) -> images.ClipQuery | None:
    """CLIP with the question encoded, when the store has image vectors and CLIP can be had."""
    if parts.store.vector_version(CLIP_IMAGE_SPACE) == 0:
        return None
    clip = parts.clip()
    if clip is None:
        return None
    parts.store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
    return images.ClipQuery(clip, clip.encode_texts([plan.question])[0])


def _result(plan: AskPlan, timings: dict[str, float], *, settings=None, relevance=None, sentences=(), sources=(),  # noqa: ANN001
            shown=(), dropped=None, faithfulness=None, notices=()) -> AskResult:
    return AskResult(
        query=plan.question,
        summary=list(sentences),
        sources=list(sources),
        images=list(shown),
        notices=[n for n in notices if n],
        settings=settings if settings is not None else plan.settings(),
        style=plan.style,
        relevance=relevance or {},
        faithfulness=faithfulness,
        images_dropped=dict(dropped or {}),
        timings_ms=timings,
    )


class Stopwatch:
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
