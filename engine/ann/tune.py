"""Search parameters for a target recall, measured on the store's own vectors at build time.

A held sample of the stored vectors serves as the queries. The ground truth is exact search
over every stored vector except the query itself: its own nearest neighbour would make any
index look better than it is. recall@10 is the share of the exact 10 nearest that the
index's 10 contain, a result counting as found when its exact score reaches the exact 10th
score (so equal vectors, ties, are never misses). Candidates are tried from the cheapest
setting up, and the first whose recall reaches the target with 95% confidence (its mean
less 1.645 standard errors over the sample's queries) is kept with the recall it measured:
at 1M passages the bare mean picked a setting at 0.951 on its sample that found 0.944 on
held-out queries. If none does, the best one is kept and its recall says so.
"""

from __future__ import annotations

import numpy as np

from engine.ann.choice import HNSW, IVF_PQ, IVF_SQ8

K = 10
TUNE_QUERIES = 400
TIE_TOLERANCE = 1e-5
EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
PQ_REFINE = (4, 8, 16, 32)  # candidates re-scored from the exact vectors, per result
SQ8_REFINE = 2


class GroundTruth:
    """Exact top-k of held queries over vectors streamed in batches, each query's own id left out."""

    def __init__(self, queries: np.ndarray, query_ids: np.ndarray, k: int = K):
        self.queries = np.ascontiguousarray(queries, np.float32)
        self.query_ids = np.asarray(query_ids, np.int64)
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, np.float32)
        self.ids = np.full((len(queries), k), -1, np.int64)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0 or len(self.queries) == 0:
            return
        scores = self.queries @ np.asarray(vectors, np.float32).T
        scores[self.query_ids[:, None] == np.asarray(ids)[None, :]] = -np.inf
        merged_scores = np.concatenate([self.scores, scores], axis=1)
        merged_ids = np.concatenate([self.ids, np.broadcast_to(np.asarray(ids, np.int64), scores.shape)], axis=1)
        best = np.argpartition(-merged_scores, self.k - 1, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(merged_scores, best, axis=1)
        self.ids = np.take_along_axis(merged_ids, best, axis=1)



def measured_recall(index, truth: GroundTruth, params: dict | None = None) -> float:  # noqa: ANN001 - VectorIndex
    """recall@k of ``index`` searched with ``params`` against ``truth`` (queries' own ids left out)."""
    per_query = recall_per_query(index, truth, params)
    return float(per_query.mean()) if len(per_query) else 1.0


def recall_per_query(index, truth: GroundTruth, params: dict | None = None) -> np.ndarray:  # noqa: ANN001 - VectorIndex
    """Each query's share of its exact top k that the index found (queries with no neighbour left out)."""
    k = truth.k
    valid = np.isfinite(truth.scores).sum(axis=1)  # fewer than k when the space is tiny
    if not len(truth.queries) or not valid.max(initial=0):
        return np.zeros(0)
    scores, ids = index.search(truth.queries, k + 1, params=params)
    exact_desc = -np.sort(-truth.scores, axis=1)
    hits = []
    for q, wanted in enumerate(valid):
        if wanted:
            others = [s for s, i in zip(scores[q], ids[q]) if i >= 0 and i != truth.query_ids[q]][:k]
            bar = exact_desc[q, wanted - 1] - TIE_TOLERANCE
            hits.append(min(sum(1 for s in others if s >= bar), wanted) / wanted)
    return np.asarray(hits, np.float64)


def candidates(kind: str, nlist: int) -> list[dict]:
    """Search settings to try, cheapest first."""
    if kind == HNSW:
        return [{"efSearch": ef} for ef in EF_SEARCH]
    # Powers of two and the halfway steps between them: a jump from 256 to 512 lists doubles the time.
    probes = sorted({n for p in range(17) for n in (2**p, 3 * 2**p // 2) if 1 <= n <= nlist})
    if kind == IVF_SQ8:
        return [{"nprobe": p, "refine": SQ8_REFINE} for p in probes]
    if kind == IVF_PQ:
        return [{"nprobe": p, "refine": r} for p in probes for r in PQ_REFINE]
    return [{}]


def tune(index, truth: GroundTruth, target: float) -> tuple[dict, float]:  # noqa: ANN001 - VectorIndex
    """The cheapest setting reaching ``target`` recall@k (with 95% confidence), and the recall it measured."""
    best: tuple[dict, float] = ({}, -1.0)
    for params in candidates(index.info.kind, index.info.nlist):
        per_query = recall_per_query(index, truth, params)
        if not len(per_query):
            return params, 1.0
        recall = float(per_query.mean())
        if recall > best[1]:
            best = (params, recall)
        if lower_bound(per_query) >= target:
            return params, recall
    return best


def lower_bound(per_query: np.ndarray) -> float:
    """The one-sided 95% lower confidence bound of the mean recall."""
    spread = per_query.std(ddof=1) / np.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
    return float(per_query.mean() - 1.645 * spread)
