"""How well the store's vector index finds what exact search finds, and how fast.

A sample of the space's own vectors is searched twice: by exact inner product over
every stored vector (faiss ``IndexFlatIP``, the ground truth) and by the store's
index, whatever kind it is (autofaiss calls this ``score_index``). ``n-recall@k`` is
the share of the exact top n found in the index's top k. A result counts as found
when its true similarity reaches the exact n-th best's, so equal vectors (ties) never
count as misses. The store's index is exact today, so its recall is 1.0: that is the
right figure, and the same code measures an approximate index when there is one.
"""

from __future__ import annotations

import time

import numpy as np

from engine.errors import InputError
from engine.evaluate.results import IndexResult

TIE_TOLERANCE = 1e-5


def evaluate_index(store, space: str, header: dict, sample: int = 200, k: int = 10, seed: int = 0) -> IndexResult:  # noqa: ANN001
    import faiss

    from engine.store.schema import SPACE_TABLE

    if space not in SPACE_TABLE:
        raise InputError(space, f"unknown vector space (known: {', '.join(SPACE_TABLE)})")
    dim = store.get_meta(f"dim.{space}")
    with store.reading() as conn:
        ids = store.ids_with_vectors(space, conn)
    if dim is None or len(ids) == 0:
        raise InputError(str(store.root), f"the store has no vectors in the {space!r} space; run `engine index` first")
    dim = int(dim)
    ids = np.sort(ids)
    vectors = store.read_vectors(space, ids, dim)
    index = store.index(space, dim)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(ids), size=min(sample, len(ids)), replace=False))
    queries = np.ascontiguousarray(vectors[picked])
    k = max(1, min(k, len(ids)))

    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    exact_scores, _ = exact.search(queries, k)
    found_scores, found_ids = index.search(queries, k)
    position = {int(i): n for n, i in enumerate(ids)}
    # The true similarity of what the index returned (its own scores may be approximate).
    true = np.full(found_ids.shape, -np.inf, np.float32)
    for q, row in enumerate(found_ids):
        seen = set()
        for j, item in enumerate(row):
            if item >= 0 and int(item) in position and int(item) not in seen:
                seen.add(int(item))
                true[q, j] = float(vectors[position[int(item)]] @ queries[q])

    def recall(n: int, at: int) -> float:
        # Found: among the index's top `at`, items at least as similar as the exact n-th best.
        bar = exact_scores[:, n - 1 : n] - TIE_TOLERANCE
        hits = (true[:, :at] >= bar).sum(axis=1)
        return float(np.mean(np.minimum(hits, n) / n))

    result = IndexResult(**header)
    result.vectors, result.queries, result.k = len(ids), len(queries), k
    result.index_type = describe(index)
    result.recall = {"1-recall@1": recall(1, 1), f"1-recall@{k}": recall(1, k), f"{k}-recall@{k}": recall(k, k)}
    result.latency_ms = {
        "index": _latency(lambda q: index.search(q, k), queries),
        "exact": _latency(lambda q: exact.search(q, k), queries),
    }
    result.notes.append(
        "queries are the space's own vectors, so each query's nearest neighbour is itself (as in autofaiss)"
    )
    return result


def describe(index) -> str:  # noqa: ANN001 - engine.store.vectors.VectorIndex
    """The FAISS index's type, wrappers included (e.g. IndexIDMap2(IndexFlatIP))."""
    import faiss

    inner = getattr(index, "_index", index)
    names = []
    while inner is not None:
        inner = faiss.downcast_index(inner)
        names.append(type(inner).__name__)
        inner = getattr(inner, "index", None)
        if inner is not None and not isinstance(inner, faiss.Index):
            break
    return "(".join(names) + ")" * (len(names) - 1)


def _latency(search, queries: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    search(queries[:1])  # first call pays one-off setup
    times = []
    for q in range(len(queries)):
        began = time.perf_counter()
        search(queries[q : q + 1])
        times.append((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    search(queries)
    batch = (time.perf_counter() - began) * 1000
    return {
        "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)),
        "mean": float(np.mean(times)),
        "batch_per_query": batch / len(queries),
    }
