"""The relevance cutoff, calibrated from the store's own score distribution.

A fixed cosine threshold means different things for different models and corpora. So
the store measures what "unrelated" looks like for its own text model and contents:
sentences from its chunks serve as pseudo-questions and are scored against chunks of
documents that share no topic with theirs. An unrelated question meets every stored
passage, so the cutoff is the score it would reach by chance as its best: the
(1 - 1/N) quantile of those unrelated scores for a store of N passages.

benchmarks/relevance.py measures it: on the example pages plus 12 real pages (179
passages, MiniLM) the cutoff is 0.417, ten questions about stored topics score
0.52-0.78 and ten off-topic ones 0.11-0.255.

The result is a cache (``calibration.json`` in the store), measured again when the text
model changes or the number of chunks has changed by more than a quarter.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from engine.encoders.text import TextEncoder
from engine.sentences import split_sentences
from engine.store.atomic import atomic_path
from engine.store.schema import TEXT_SPACE, chunks, documents, topic_documents
from engine.store.store import Store

# An unrelated question meets every stored passage, so its *best* score is what the cutoff
# must stop: the (1 - 1/N) quantile of unrelated scores for N passages, kept between these
# bounds (more than 99.9 cannot be measured from the sample taken).
MIN_QUANTILE, MAX_QUANTILE = 99.0, 99.9
MAX_QUESTIONS = 300
NEGATIVES_PER_QUESTION = 100
# Pseudo-questions are cut to the length of a typical question.
QUESTION_WORDS = 12
MIN_DOCUMENTS = 2
SEED = 0
CACHE_FILE = "calibration.json"


@dataclass
class Calibration:
    threshold: float | None  # None: too little data to calibrate (fewer than MIN_DOCUMENTS)
    model: str
    chunks: int  # chunk count when measured
    questions: int
    negatives: int
    positive_median: float | None = None  # a pseudo-question against its own chunk
    negative_median: float | None = None

    def stale(self, model: str, chunk_count: int) -> bool:
        return model != self.model or abs(chunk_count - self.chunks) > 0.25 * max(self.chunks, 1)


def relevance_cutoff(store: Store, encoder: TextEncoder, topic_min_similarity: float) -> Calibration:
    """The cached calibration, measured again when stale."""
    path = store.root / CACHE_FILE
    with store.reading() as conn:
        chunk_count = conn.execute(select(func.count()).select_from(chunks)).scalar_one()
    cached = _read(path)
    if cached is not None and not cached.stale(encoder.name, chunk_count):
        return cached
    calibration = calibrate(store, encoder, topic_min_similarity)
    _write(path, calibration)
    return calibration


def calibrate(store: Store, encoder: TextEncoder, topic_min_similarity: float) -> Calibration:
    rng = np.random.default_rng(SEED)
    with store.reading() as conn:
        rows = conn.execute(select(chunks.c.id, chunks.c.document_id).order_by(chunks.c.id)).all()
        linked = conn.execute(
            select(topic_documents.c.document_id, topic_documents.c.topic_id).where(
                topic_documents.c.score >= topic_min_similarity
            )
        ).all()
        chunk_ids = np.array([r.id for r in rows], dtype=np.int64)
        document_ids = np.array([r.document_id for r in rows], dtype=np.int64)
        if len(np.unique(document_ids)) < MIN_DOCUMENTS:
            return Calibration(None, encoder.name, len(rows), 0, 0)
        sample = rng.permutation(len(rows))[:MAX_QUESTIONS]
        texts = {
            r.id: (r.text, r.language)
            for r in conn.execute(
                select(chunks.c.id, chunks.c.text, documents.c.language)
                .join(documents, documents.c.id == chunks.c.document_id)
                .where(chunks.c.id.in_([int(chunk_ids[n]) for n in sample]))
            )
        }
    questions, owners = [], []
    for n in sample:
        text, language = texts[int(chunk_ids[n])]
        sentences = [s for s, _, _ in split_sentences(text, language) if len(s.split()) >= 6]
        if sentences:
            questions.append(" ".join(sentences[rng.integers(len(sentences))].split()[:QUESTION_WORDS]))
            owners.append(int(n))
    if not questions:
        return Calibration(None, encoder.name, len(rows), 0, 0)
    on_topic = _topic_matrix(document_ids, linked)
    question_vectors = encoder.encode(questions)
    picks = []
    for owner in owners:
        others = _unrelated(document_ids, on_topic, owner)
        if len(others) > 10 * NEGATIVES_PER_QUESTION:  # large store: sampling with replacement is as good, and cheap
            picks.append(others[rng.integers(len(others), size=NEGATIVES_PER_QUESTION)])
        else:
            picks.append(rng.choice(others, size=min(NEGATIVES_PER_QUESTION, len(others)), replace=False))
    needed = sorted({int(i) for p in picks for i in p} | set(owners))
    vectors = store.read_vectors(TEXT_SPACE, chunk_ids[needed], encoder.dim)
    position = {row: n for n, row in enumerate(needed)}
    negatives, positives = [], []
    for question, owner, picked in zip(question_vectors, owners, picks):
        negatives.append(vectors[[position[int(i)] for i in picked]] @ question)
        positives.append(float(vectors[position[owner]] @ question))
    negative = np.concatenate(negatives)
    return Calibration(
        threshold=round(float(np.percentile(negative, quantile_for(len(rows)))), 4),
        model=encoder.name,
        chunks=len(rows),
        questions=len(questions),
        negatives=len(negative),
        positive_median=round(float(np.median(positives)), 4),
        negative_median=round(float(np.median(negative)), 4),
    )


def quantile_for(passages: int) -> float:
    return float(np.clip(100 * (1 - 1 / max(passages, 1)), MIN_QUANTILE, MAX_QUANTILE))


def _topic_matrix(document_ids: np.ndarray, linked: list) -> np.ndarray:  # noqa: ANN001 - rows
    """Boolean (chunks x topics): whether each chunk's document is linked to each topic."""
    topic_ids = sorted({t for _, t in linked})
    column = {t: n for n, t in enumerate(topic_ids)}
    by_document = np.zeros((int(document_ids.max()) + 1, max(len(topic_ids), 1)), dtype=bool)
    for document_id, topic_id in linked:
        if document_id <= document_ids.max():
            by_document[document_id, column[topic_id]] = True
    return by_document[document_ids]


def _unrelated(document_ids: np.ndarray, on_topic: np.ndarray, owner: int) -> np.ndarray:
    """Rows of chunks from documents sharing no topic with row ``owner``'s (else: any other document)."""
    other = document_ids != document_ids[owner]
    own_topics = on_topic[owner]
    if not own_topics.any():
        return np.flatnonzero(other)
    unrelated = other & ~on_topic[:, own_topics].any(axis=1)
    return np.flatnonzero(unrelated) if unrelated.any() else np.flatnonzero(other)


def _read(path: Path) -> Calibration | None:
    try:
        return Calibration(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # missing or from another version: measure again


def _write(path: Path, calibration: Calibration) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(calibration)))
    except OSError:
        pass  # a read-only store still answers; it just measures again next time
