"""Summaries: extractive (MMR over the evidence sentences), citation numbering, abstractive rewrite.

Citation rule: sources are numbered by relevance — [1] is the document of the best-ranked
evidence passage, [2] the next document, and so on (only documents a sentence cites get a
number). Sentences are shown grouped by source, in that order, and in page order within a
source. The summary always quotes the most relevant document, so [1] is never a lesser one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select

from engine.ask.reading import Sentence, statements
from engine.ask.retrieval import Hit, Passage
from engine.results import SourceRef, SummarySentence
from engine.store.schema import documents, sources
from engine.store.store import Store


@dataclass(frozen=True)
class Summary:
    sentences: list[SummarySentence]
    sources: list[SourceRef]
    vectors: np.ndarray  # text-model vector of each sentence, one row each


def mmr(query: np.ndarray, vectors: np.ndarray, k: int, trade_off: float, first: int | None = None) -> list[int]:
    """Indices of ``k`` rows chosen by maximal marginal relevance, starting from ``first`` if given.

    Each pick maximises ``trade_off * sim(query, s) - (1 - trade_off) * max sim(s, picked)``.
    """
    if len(vectors) == 0 or k <= 0:
        return []
    relevance = vectors @ query
    chosen: list[int] = []
    redundancy = np.full(len(vectors), -np.inf)
    for _ in range(min(k, len(vectors))):
        if not chosen and first is not None:
            best = first
        else:
            penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
            score = trade_off * relevance - (1 - trade_off) * penalty
            score[chosen] = -np.inf
            best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, vectors @ vectors[best])
    return chosen


def reading_order(candidates: list[Sentence], picked: list[int]) -> list[int]:
    """Picked sentences grouped by document (most relevant first), in page order."""
    rank = {d: n for n, d in enumerate(dict.fromkeys(c.document_id for c in candidates))}
    return sorted(picked, key=lambda i: (rank[candidates[i].document_id], candidates[i].offset))


def extractive(
    store: Store,
    encoder,  # noqa: ANN001 - engine.encoders.text.TextEncoder
    query_vector: np.ndarray,
    passages: list[Passage],
    hits: dict[int, Hit],
    max_sentences: int,
    mmr_lambda: float,
) -> Summary:
    """Up to ``max_sentences`` evidence sentences, relevant and diverse, each citing its source.

    ``passages`` are the evidence, most relevant first; ``hits`` their retrieval scores by chunk id.
    """
    candidates, _ = statements(passages)
    if not candidates:
        return Summary([], [], np.zeros((0, len(query_vector)), np.float32))
    vectors = encoder.encode([c.text for c in candidates])
    relevance = vectors @ query_vector
    top_document = [n for n, c in enumerate(candidates) if c.document_id == candidates[0].document_id]
    first = max(top_document, key=lambda n: relevance[n])  # the answer starts from the most relevant document
    picked = reading_order(candidates, mmr(query_vector, vectors, max_sentences, mmr_lambda, first))
    numbers, source_list = cite(store, [candidates[i].document_id for i in picked], [c.document_id for c in candidates])
    sentences = [
        SummarySentence(
            candidates[i].text,
            [numbers[candidates[i].document_id]],
            candidates[i].document_id,
            candidates[i].chunk_id,
            round(float(relevance[i]), 4),
            retrieval=hits[candidates[i].chunk_id].parts() if candidates[i].chunk_id in hits else {},
        )
        for i in picked
    ]
    return Summary(sentences, source_list, vectors[picked])


def cite(store: Store, cited: list[int], relevance_order: list[int]) -> tuple[dict[int, int], list[SourceRef]]:
    """Number the ``cited`` documents by relevance (:func:`source_numbers`); their source list."""
    numbers = source_numbers(cited, relevance_order)
    info = document_sources(store, list(numbers))
    refs = [SourceRef(n, d, info[d]["title"], info[d]["url"], info[d]["published"]) for d, n in numbers.items() if d in info]
    return numbers, refs


def source_numbers(cited: list[int], relevance_order: list[int]) -> dict[int, int]:
    """1, 2, … for the ``cited`` documents in ``relevance_order`` (most relevant first).

    Documents not in ``relevance_order`` (e.g. pages that only show an image) come after, in
    the order they are cited.
    """
    rank = {d: n for n, d in enumerate(dict.fromkeys(relevance_order))}
    ordered = sorted(dict.fromkeys(cited), key=lambda d: rank.get(d, len(rank)))
    return {d: n for n, d in enumerate(ordered, 1)}


def document_sources(store: Store, document_ids: list[int]) -> dict[int, dict]:
    """Title, URL and date of each document (its most recently updated source's URL)."""
    with store.reading() as conn:
        rows = conn.execute(
            select(documents.c.id, documents.c.title, documents.c.published, sources.c.url)
            .join(sources, sources.c.document_id == documents.c.id)
            .where(documents.c.id.in_(document_ids))
            .order_by(sources.c.updated_at)
        ).mappings()
        return {r["id"]: dict(r) for r in rows}


@dataclass(frozen=True)
class Rewrite:
    summary: Summary
    faithfulness: dict
    notices: list[str]


def abstractive(
    summarizer,  # noqa: ANN001 - engine.generate.AbstractiveSummarizer
    encoder,  # noqa: ANN001 - engine.encoders.text.TextEncoder
    question: str,
    query_vector: np.ndarray,
    evidence: Summary,
    style: str,
    max_sentences: int,
    language: str | None,
) -> Rewrite:
    """The generator's summary written from the ``evidence`` sentences, with their sources.

    Sentences the cited evidence does not support are dropped or marked (engine/faithfulness.py).
    Sources keep their relevance order; those no generated sentence cites are left out.
    """
    pairs = [(s.text, s.citations[0]) for s in evidence.sentences]
    generated = summarizer.summarize(question, pairs, style, max_sentences, language)
    by_number = {s.number: s.document_id for s in evidence.sources}
    vectors = encoder.encode([g.text for g in generated.sentences])
    chunk_of = [s.chunk_id for s in evidence.sentences]
    cited = sorted({n for g in generated.sentences for n in g.citations if n in by_number})
    renumber = {old: new for new, old in enumerate(cited, 1)}
    sentences = [
        SummarySentence(
            g.text,
            [renumber[n] for n in g.citations if n in renumber],
            by_number.get(g.citations[0], 0) if g.citations else 0,
            chunk_of[g.evidence] if g.evidence is not None else 0,
            round(float(v @ query_vector), 4),
            supported=g.supported,
            support=round(g.similarity, 4),
        )
        for g, v in zip(generated.sentences, vectors)
    ]
    source_list = [replace(s, number=renumber[s.number]) for s in evidence.sources if s.number in renumber]
    if not len(vectors):
        vectors = np.zeros((0, len(query_vector)), np.float32)
    return Rewrite(Summary(sentences, source_list, vectors), {"model": generated.model, **vars(generated.report)}, list(generated.notices))
