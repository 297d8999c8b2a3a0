"""Building a vector index of a chosen kind from the stored vectors, without holding them twice.

Training reads a random sample; the vectors are then streamed in batches from SQLite into
the index while the same pass computes the exact neighbours of the held tuning queries, so
a build reads the database once and never holds a float32 copy of the whole space.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from engine.ann.choice import FLAT, IndexChoice
from engine.ann.tune import TUNE_QUERIES, GroundTruth, tune
from engine.store.vectors import VectorIndex


def build_index(
    path: Path,
    dim: int,
    choice: IndexChoice,
    ids: np.ndarray,
    read_vectors: Callable[[np.ndarray], np.ndarray],
    batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    target_recall: float,
    file: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> VectorIndex:
    """A filled, tuned index of ``choice``'s kind over the space whose stored ``ids`` are given.

    Args:
        read_vectors: the exact vectors of some ids (training and tuning samples, re-scoring).
        batches: yields (ids, vectors) over the whole space, in any order.
        on_progress: called with (vectors added, vectors expected).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    index = VectorIndex.empty(path, dim, choice, file)
    index.exact_vectors = read_vectors
    if choice.train_size:
        picked = rng.choice(ids, size=min(choice.train_size, len(ids)), replace=False)
        index.train(read_vectors(np.sort(picked)))
    truth = None
    if choice.kind != FLAT:
        query_ids = np.sort(rng.choice(ids, size=min(TUNE_QUERIES, len(ids)), replace=False))
        truth = GroundTruth(read_vectors(query_ids), query_ids)
    added = 0
    for batch_ids, vectors in batches():
        index.add(batch_ids, vectors)
        if truth is not None:
            truth.update(batch_ids, vectors)
        added += len(batch_ids)
        if on_progress:
            on_progress(added, len(ids))
    info = index.info
    if truth is not None:
        info.params, info.recall_at_10 = tune(index, truth, target_recall)
        info.recall_queries = len(truth.queries)
        info.recall_at_10 = round(info.recall_at_10, 4)
    info.target_recall = target_recall
    info.built_vectors = len(index)
    info.built_at = time.time()
    info.build_seconds = round(time.perf_counter() - started, 2)
    return index
