"""Stores of synthetic clustered vectors (the shape of real embeddings: topics, near neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import IndexConfig
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store

DIM = 64


def clustered(rng: np.random.Generator, n: int, centres: int = 200, spread: float = 0.7) -> np.ndarray:
    """Unit vectors around ``centres`` random directions."""
    middle = np.random.default_rng(7).standard_normal((centres, DIM)).astype(np.float32)
    vectors = middle[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill(store: Store, ids: np.ndarray, vectors: np.ndarray, batch: int = 5_000) -> None:
    """Commit ``vectors`` under ``ids`` in the text space, as the indexer does (batch by batch)."""
    store.bind_model((TEXT_SPACE,), "synthetic", DIM)
    for start in range(0, len(ids), batch):
        with store.transaction() as conn:
            store.put_vectors(conn, TEXT_SPACE, ids[start : start + batch].tolist(), vectors[start : start + batch])
        store.apply_committed()


def exact_top(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ vectors.T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def space():
    """20k stored vectors (ids not contiguous) and 100 held-out queries from the same distribution."""
    rng = np.random.default_rng(3)
    ids = np.arange(20_000, dtype=np.int64) * 3 + 11
    return ids, clustered(rng, 20_000), clustered(rng, 100)


def open_store(root, **settings) -> Store:
    store = Store(root, IndexConfig(**{"exact_below": 1_000, **settings}))
    store.acquire_write_lock()
    return store
