"""How well the store's vector index finds what exact search finds, and how fast.

A sample of the space's own vectors is searched twice: by exact inner product over every
stored vector (streamed from SQLite, never held whole: the ground truth) and by the
store's index, whatever kind it is (autofaiss calls this ``score_index``). Each query's own
vector is left out of both: it is its own nearest neighbour, and counting it would flatter
any index. ``n-recall@k`` is the share of the exact top n found in the index's top k. A
result counts as found when its true similarity reaches the exact n-th best's, so equal
vectors (ties) never count as misses. An exact (flat) index measures 1.0, as it must; an
HNSW or IVF index measures what its tuned search parameters really find.
"""

from __future__ import annotations

import time

import numpy as np

from engine.errors import InputError
from engine.evaluate.results import IndexResult

TIE_TOLERANCE = 1e-5
# Exact latency is timed on an in-memory flat copy of the space only up to this many vectors.
EXACT_LATENCY_MAX = 200_000


def evaluate_index(store, space: str, header: dict, sample: int = 200, k: int = 10, seed: int = 0) -> IndexResult:  # noqa: ANN001
    import faiss

    from engine.ann.tune import GroundTruth
    from engine.store.schema import SPACE_TABLE

    if space not in SPACE_TABLE:
        raise InputError(space, f"unknown vector space (known: {', '.join(SPACE_TABLE)})")
    dim = store.get_meta(f"dim.{space}")
    with store.reading() as conn:
        ids = store.ids_with_vectors(space, conn)
    if dim is None or len(ids) == 0:
        raise InputError(str(store.root), f"the store has no vectors in the {space!r} space; run `engine index` first")
    dim = int(dim)
    index = store.index(space, dim)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(ids, size=min(sample, len(ids)), replace=False))
    queries = np.ascontiguousarray(store.read_vectors(space, picked, dim))
    k = max(1, min(k, len(ids) - 1)) if len(ids) > 1 else 1
    truth = GroundTruth(queries, picked, k)
    exact = faiss.IndexFlatIP(dim) if len(ids) <= EXACT_LATENCY_MAX else None
    for batch_ids, vectors in store.vector_batches(space, dim):
        truth.update(batch_ids, vectors)
        if exact is not None:
            exact.add(vectors)
    found_scores, found_ids = index.search(queries, k + 1)
    # Each query's results without itself; the index's scores are exact (compressed kinds are re-scored).
    found = np.full((len(queries), k), -np.inf, np.float32)
    for q in range(len(queries)):
        kept = [s for s, i in zip(found_scores[q], found_ids[q]) if i >= 0 and i != picked[q]][:k]
        found[q, : len(kept)] = kept
    exact_desc = -np.sort(-truth.scores, axis=1)

    def recall(n: int, at: int) -> float:
        # Found: among the index's top `at`, items at least as similar as the exact n-th best.
        bar = exact_desc[:, n - 1 : n] - TIE_TOLERANCE
        hits = (found[:, :at] >= bar).sum(axis=1)
        return float(np.mean(np.minimum(hits, n) / n))

    result = IndexResult(**header)
    result.vectors, result.queries, result.k = len(ids), len(queries), k
    result.index_type = describe(index)
    result.recall = {"1-recall@1": recall(1, 1), f"1-recall@{k}": recall(1, k), f"{k}-recall@{k}": recall(k, k)}
    result.latency_ms = {"index": _latency(lambda q: index.search(q, k), queries)}
    if exact is not None:
        result.latency_ms["exact"] = _latency(lambda q: exact.search(q, k), queries)
    else:
        result.notes.append(f"exact latency is not timed above {EXACT_LATENCY_MAX} vectors (it would hold them all in memory)")
    result.notes.append("queries are the space's own vectors, each left out of its own results")
    if index.info.recall_at_10 is not None:
        result.notes.append(
            f"the index was built as {index.info.kind} with {index.info.params} and measured "
            f"recall@10 {index.info.recall_at_10} on its own sample (target {index.info.target_recall})"
        )
    return result


def describe(index) -> str:  # noqa: ANN001 - engine.store.vectors.VectorIndex
    """The FAISS index's type, wrappers included (e.g. IndexIDMap2(IndexFlatIP), IndexIDMap(IndexHNSWFlat))."""
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
