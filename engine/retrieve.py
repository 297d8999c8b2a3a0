"""Hybrid text retrieval: BM25 (SQLite FTS5) and dense (FAISS) rankings fused by reciprocal rank.

Dense search finds paraphrases; BM25 finds the rare exact words (names, codes, numbers)
that a small embedding model blurs. Reciprocal rank fusion needs no score calibration
between the two: each list contributes ``weight / (RRF_K + rank)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, select, text

from engine.store.schema import chunks, documents, sources, topic_documents, topics
from engine.store.store import Store
from engine.store.vectors import VectorIndex

# The constant from Cormack et al. (2009); it damps the weight of the very top ranks.
RRF_K = 60
# Words FTS5 would read as operators; they are searched for as plain words instead.
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Filters:
    """What the user restricted the search to; empty fields restrict nothing."""

    topic: str | None = None
    source: str | None = None  # a substring of the page URL, e.g. a host name
    since: str | None = None  # ISO date; documents published on or after it
    until: str | None = None  # ISO date; documents published on or before it
    language: str | None = None  # e.g. "en": matches "en" and "en-GB"

    def any(self) -> bool:
        return any((self.topic, self.source, self.since, self.until, self.language))


@dataclass
class Hit:
    chunk_id: int
    rrf: float = 0.0
    dense: float | None = None  # cosine similarity to the query (text model)
    dense_rank: int | None = None
    bm25: float | None = None  # FTS5 bm25(), sign flipped so that higher is better
    bm25_rank: int | None = None
    rerank: float | None = None  # cross-encoder score, when one is configured


@dataclass
class Ranking:
    hits: list[Hit] = field(default_factory=list)
    filtered_to: int | None = None  # how many chunks the filters allowed (None: no filter)


# In a large store, a word found in more than this share of passages ("how", "the", "is")
# adds almost nothing to BM25 (its IDF is near zero) but makes FTS5 score most of the
# store; such words are left out of the query. Small stores keep every word.
COMMON_WORD_SHARE = 0.1
PRUNE_FROM_PASSAGES = 2000


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))


def fts_query(query: str | list[str]) -> str | None:
    """The words of ``query`` as an FTS5 OR-query of quoted terms (None if it has no words)."""
    words = query_words(query) if isinstance(query, str) else query
    return " OR ".join(f'"{w}"' for w in words) or None


def distinctive_words(conn: Connection, words: list[str]) -> list[str]:
    """``words`` without the ones too common in this store to matter (all of them if all are)."""
    passages = conn.execute(text("SELECT max(rowid) FROM chunks")).scalar() or 0
    if passages < PRUNE_FROM_PASSAGES or len(words) < 2:
        return words
    cap = int(COMMON_WORD_SHARE * passages)
    # Counting stops at the cap, so a very common word costs no more than a rare one.
    count = text("SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :w LIMIT :cap)")
    kept = [w for w in words if conn.execute(count, {"w": f'"{w}"', "cap": cap}).scalar() < cap]
    if kept:
        return kept
    # Every word is common: keep the rarest, counted further.
    counts = {w: conn.execute(count, {"w": f'"{w}"', "cap": passages}).scalar() for w in words}
    return [min(words, key=counts.__getitem__)]


def allowed_chunk_ids(conn: Connection, filters: Filters, topic_min_similarity: float) -> np.ndarray | None:
    """Ids of the chunks the filters allow, or None when nothing is filtered."""
    if not filters.any():
        return None
    query = select(chunks.c.id).join(documents, documents.c.id == chunks.c.document_id)
    if filters.topic:
        query = query.where(
            chunks.c.document_id.in_(
                select(topic_documents.c.document_id)
                .join(topics, topics.c.id == topic_documents.c.topic_id)
                .where(topics.c.name == filters.topic, topic_documents.c.score >= topic_min_similarity)
            )
        )
    if filters.source:
        query = query.where(
            chunks.c.document_id.in_(
                select(sources.c.document_id).where(sources.c.url.contains(filters.source, autoescape=True))
            )
        )
    if filters.since:
        query = query.where(documents.c.published >= filters.since)
    if filters.until:
        # "2024-05-01" must include "2024-05-01T10:00": compare against the day's end.
        query = query.where(documents.c.published <= filters.until + "\uffff")
    if filters.language:
        lang = filters.language.lower()
        query = query.where((documents.c.language == lang) | documents.c.language.like(f"{lang}-%"))
    return np.fromiter(conn.execute(query).scalars(), dtype=np.int64)


def dense_ranking(index: VectorIndex, query_vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    scores, ids = index.search(query_vector[None, :], k, allowed)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def bm25_ranking(conn: Connection, query: str, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    words = query_words(query)
    if not words:
        return []
    match = fts_query(distinctive_words(conn, words))
    rows = conn.execute(
        text("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH :q ORDER BY rank LIMIT :k"),
        # A filter can reject most BM25 hits: read deeper, then keep the allowed ones.
        {"q": match, "k": k if allowed is None else k * 20},
    ).all()
    if allowed is not None:
        keep = set(allowed.tolist())
        rows = [r for r in rows if r[0] in keep]
    return [(int(rowid), -float(score)) for rowid, score in rows[:k]]


def fuse(dense: list[tuple[int, float]], bm25: list[tuple[int, float]], dense_weight: float, bm25_weight: float) -> list[Hit]:
    """Reciprocal rank fusion of the two rankings, best first (ties: better dense score first)."""
    hits: dict[int, Hit] = {}
    for rank, (chunk_id, score) in enumerate(dense):
        hit = hits.setdefault(chunk_id, Hit(chunk_id))
        hit.dense, hit.dense_rank = score, rank
        hit.rrf += dense_weight / (RRF_K + rank + 1)
    for rank, (chunk_id, score) in enumerate(bm25):
        hit = hits.setdefault(chunk_id, Hit(chunk_id))
        hit.bm25, hit.bm25_rank = score, rank
        hit.rrf += bm25_weight / (RRF_K + rank + 1)
    return sorted(hits.values(), key=lambda h: (-h.rrf, -(h.dense if h.dense is not None else -2.0)))


def fill_dense_scores(store: Store, hits: list[Hit], query_vector: np.ndarray, space: str) -> None:
    """Cosine scores for hits only BM25 found, so every hit can face the relevance cutoff."""
    missing = [h for h in hits if h.dense is None]
    if not missing:
        return
    vectors = store.read_vectors(space, [h.chunk_id for h in missing], len(query_vector))
    for hit, vector in zip(missing, vectors @ query_vector):
        hit.dense = float(vector)
