"""Retrieval: BM25 (SQLite FTS5) and dense (FAISS) rankings, filtered, fused, optionally reranked.

Dense search finds paraphrases; BM25 finds the rare exact words (names, codes, numbers)
that a small embedding model blurs. Reciprocal rank fusion needs no score calibration
between the two: each list contributes ``weight / (RRF_K + rank)``.
"""

from __future__ import annotations

import math
import re
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import Connection, select, text

from engine.ask.request import AskPlan, Filters
from engine.store import fulltext
from engine.store.schema import TEXT_SPACE, chunks, documents, sources, topic_documents, topics
from engine.store.store import Store
from engine.store.vectors import VectorIndex

# The constant from Cormack et al. (2009); it damps the weight of the very top ranks.
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)
# In a large store, a word found in more than this share of passages ("how", "the", "is")
# adds almost nothing to BM25 (its IDF is near zero) but makes FTS5 score most of the
# store; such words are left out of the query. Small stores keep every word.
COMMON_WORD_SHARE = 0.1
PRUNE_FROM_PASSAGES = 2000
# FTS5 scores every passage an OR-query matches (no top-k pruning): at a million passages a
# word in 160,000 of them cost 450 ms. A word found in more passages than this is left to the
# dense ranking, which bounds BM25's work whatever the store's size; BM25 is here for the
# rare words (names, codes, numbers), and at 10⁶ passages this one's IDF is already low.
MAX_WORD_PASSAGES = 10_000
# The reranker reads this many times k of the fused passages.
RERANK_DEPTH = 3


@dataclass(frozen=True)
class Hit:
    """One passage as retrieval found it: its scores and ranks in each ranking."""

    chunk_id: int
    rrf: float = 0.0
    dense: float | None = None  # cosine similarity to the query (text model)
    dense_rank: int | None = None
    bm25: float | None = None  # FTS5 bm25(), sign flipped so that higher is better
    bm25_rank: int | None = None
    rerank: float | None = None  # cross-encoder score, when one is configured

    def parts(self) -> dict[str, float | int | None]:
        """The scores behind this passage, rounded for reports."""
        out: dict[str, float | int | None] = {
            "dense": None if self.dense is None else round(self.dense, 4),
            "dense_rank": self.dense_rank,
            "bm25": None if self.bm25 is None else round(self.bm25, 4),
            "bm25_rank": self.bm25_rank,
            "rrf": round(self.rrf, 5),
        }
        if self.rerank is not None:
            out["rerank"] = round(self.rerank, 4)
        return out


@dataclass(frozen=True)
class Passage:
    """A stored chunk's text and where it sits."""

    chunk_id: int
    document_id: int
    text: str
    start_char: int
    language: str | None


@dataclass(frozen=True)
class Retrieval:
    hits: list[Hit]  # best first
    filtered_to: int | None  # how many passages the filters allowed (None: no filter)


def retrieve(
    store: Store,
    index: VectorIndex,
    plan: AskPlan,
    query_vector: np.ndarray,
    topic_min_similarity: float,
    reranker=None,  # noqa: ANN001 - engine.encoders.rerank.Reranker | None
    timer=None,  # noqa: ANN001 - engine.ask.pipeline.Stopwatch | None
) -> Retrieval:
    """Fused BM25 + dense passages for the question, best first (reranked when a reranker is given)."""
    timer = timer or (lambda stage: nullcontext())
    depth = max(5 * plan.k, 50)  # each ranking reads deeper than k, so fusion has overlap to work with
    with timer("filter"), store.reading() as conn:
        allowed = allowed_chunk_ids(conn, plan.filters, topic_min_similarity)
    with timer("dense"):
        dense = dense_ranking(index, query_vector, depth, allowed)
    with timer("bm25"), store.reading() as conn:
        bm25 = bm25_ranking(conn, plan.question, depth, allowed)
    with timer("fuse"):
        hits = fuse(dense, bm25, plan.dense_weight, plan.bm25_weight)[:depth]
        hits = with_dense_scores(store, hits, query_vector)
    if reranker is not None and hits:
        with timer("rerank"):
            hits = rerank(store, reranker, plan.question, hits, RERANK_DEPTH * plan.k)
    return Retrieval(hits, None if allowed is None else int(len(allowed)))


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))


def distinctive_words(conn: Connection, words: list[str]) -> list[str]:
    """``words`` without the ones too common in this store to matter.

    In a store of moderate size, if every word is common the rarest stays. Past
    ``MAX_WORD_PASSAGES`` matches a word is left out whatever the others are, so a question
    of common words only gets no BM25 ranking (the dense one answers it).
    """
    passages = fulltext.passage_count(conn)
    if passages < PRUNE_FROM_PASSAGES:
        return words
    cap = min(int(COMMON_WORD_SHARE * passages), MAX_WORD_PASSAGES)
    # Counting stops at the cap, so a very common word costs no more than a rare one.
    counts = {w: fulltext.matching(conn, w, cap) for w in words}
    kept = [w for w in words if counts[w] < cap]
    if kept or cap == MAX_WORD_PASSAGES:
        return kept
    # Every word is common in a store where that is still cheap to score: keep the rarest, counted further.
    counts = {w: fulltext.matching(conn, w, MAX_WORD_PASSAGES) for w in words}
    return [min(words, key=counts.__getitem__)]


def allowed_chunk_ids(conn: Connection, filters: Filters, topic_min_similarity: float) -> np.ndarray | None:
    """Ids of the chunks the filters allow (sorted), or None when nothing is filtered."""
    if not filters.any():
        return None
    compiled = allowed_query(filters, topic_min_similarity).compile(conn.engine)
    # sqlite3 directly: building a Row per id made a topic of 250,000 passages cost 0.6 s.
    rows = conn.connection.driver_connection.execute(compiled.string, [compiled.params[k] for k in compiled.positiontup])
    return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64))


def allowed_query(filters: Filters, topic_min_similarity: float):  # noqa: ANN201 - a SQLAlchemy Select
    """The query of the chunk ids ``filters`` allow: the allowed documents first, then their
    chunks through the (document_id, position) index, so the cost follows the documents, not the store."""
    allowed_documents = select(documents.c.id)
    if filters.topic:
        allowed_documents = allowed_documents.where(
            documents.c.id.in_(
                select(topic_documents.c.document_id)
                .join(topics, topics.c.id == topic_documents.c.topic_id)
                .where(topics.c.name == filters.topic, topic_documents.c.score >= topic_min_similarity)
            )
        )
    if filters.source:
        allowed_documents = allowed_documents.where(
            documents.c.id.in_(
                select(sources.c.document_id).where(sources.c.url.contains(filters.source, autoescape=True))
            )
        )
    if filters.since:
        allowed_documents = allowed_documents.where(documents.c.published >= filters.since)
    if filters.until:
        # "2024-05-01" must include "2024-05-01T10:00": compare against the day's end.
        allowed_documents = allowed_documents.where(documents.c.published <= filters.until + "\uffff")
    if filters.added_after is not None:
        allowed_documents = allowed_documents.where(documents.c.created_at > filters.added_after)
    if filters.language:
        lang = filters.language.lower()
        allowed_documents = allowed_documents.where((documents.c.language == lang) | documents.c.language.like(f"{lang}-%"))
    return select(chunks.c.id).where(chunks.c.document_id.in_(allowed_documents))


def dense_ranking(index: VectorIndex, query_vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    scores, ids = index.search(query_vector[None, :], k, allowed)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def bm25_ranking(conn: Connection, query: str, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    words = query_words(query)
    if not words:
        return []
    # A filter can reject most keyword hits: read deeper, then keep the allowed ones.
    rows = fulltext.best_passages(conn, distinctive_words(conn, words), k if allowed is None else k * 20)
    if allowed is not None:
        keep = np.isin(np.fromiter((r[0] for r in rows), np.int64, len(rows)), allowed, assume_unique=True)
        rows = [r for r, kept in zip(rows, keep) if kept]
    return rows[:k]


def fuse(dense: list[tuple[int, float]], bm25: list[tuple[int, float]], dense_weight: float, bm25_weight: float) -> list[Hit]:
    """Reciprocal rank fusion of the two rankings, best first (ties: better dense score first)."""
    found: dict[int, dict] = {}
    for rank, (chunk_id, score) in enumerate(dense):
        entry = found.setdefault(chunk_id, {"chunk_id": chunk_id, "rrf": 0.0})
        entry.update(dense=score, dense_rank=rank)
        entry["rrf"] += dense_weight / (RRF_K + rank + 1)
    for rank, (chunk_id, score) in enumerate(bm25):
        entry = found.setdefault(chunk_id, {"chunk_id": chunk_id, "rrf": 0.0})
        entry.update(bm25=score, bm25_rank=rank)
        entry["rrf"] += bm25_weight / (RRF_K + rank + 1)
    hits = [Hit(**entry) for entry in found.values()]
    return sorted(hits, key=lambda h: (-h.rrf, -(h.dense if h.dense is not None else -2.0)))


def with_dense_scores(store: Store, hits: list[Hit], query_vector: np.ndarray) -> list[Hit]:
    """``hits`` with a cosine score for those only BM25 found, so every hit has the same signals."""
    missing = [h.chunk_id for h in hits if h.dense is None]
    if not missing:
        return hits
    vectors = store.read_vectors(TEXT_SPACE, missing, len(query_vector))
    scores = dict(zip(missing, (vectors @ query_vector).tolist()))
    return [h if h.dense is not None else replace(h, dense=float(scores[h.chunk_id])) for h in hits]


def rerank(store: Store, reranker, question: str, hits: list[Hit], depth: int) -> list[Hit]:  # noqa: ANN001
    """The top ``depth`` hits ordered by the cross-encoder (scores recorded), then the rest."""
    top = hits[:depth]
    texts = read_passages(store, [h.chunk_id for h in top])
    scores = reranker.scores(question, [texts[h.chunk_id].text if h.chunk_id in texts else "" for h in top])
    scored = [replace(h, rerank=s) for h, s in zip(top, scores)]
    return sorted(scored, key=lambda h: -h.rerank) + hits[depth:]


def read_passages(store: Store, chunk_ids: list[int]) -> dict[int, Passage]:
    """The stored text of each chunk id that still exists."""
    wanted = [int(i) for i in chunk_ids if i >= 0]
    if not wanted:
        return {}
    with store.reading() as conn:
        rows = conn.execute(
            select(chunks.c.id, chunks.c.document_id, chunks.c.text, chunks.c.start_char, documents.c.language)
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(chunks.c.id.in_(wanted))
        ).all()
    return {r.id: Passage(r.id, r.document_id, r.text, r.start_char, r.language) for r in rows}




def document_labels(store: Store, document_ids: list[int]) -> dict[int, str]:
    """Each document's title, author and source URLs as one string (names a question may use)."""
    if not document_ids:
        return {}
    labels: dict[int, list[str]] = {}
    with store.reading() as conn:
        rows = conn.execute(
            select(documents.c.id, documents.c.title, documents.c.author, sources.c.url)
            .join(sources, sources.c.document_id == documents.c.id, isouter=True)
            .where(documents.c.id.in_(set(document_ids)))
        ).all()
    for row in rows:
        labels.setdefault(row.id, [row.title or "", row.author or ""]).append(row.url or "")
    return {d: " ".join(parts) for d, parts in labels.items()}


def passage_share(store: Store, words: list[str], up_to: float = 1.0) -> dict[str, float]:
    """The share of the store's passages that contain each of ``words`` (as FTS5 matches them).

    Counting stops at ``up_to`` of the store, so a common word costs no more than a rare one.
    """
    with store.reading() as conn:
        passages = fulltext.passage_count(conn)
        if not passages:
            return {w: 0.0 for w in words}
        cap = max(1, math.ceil(up_to * passages))
        return {w: fulltext.matching(conn, w, cap) / passages for w in words}
