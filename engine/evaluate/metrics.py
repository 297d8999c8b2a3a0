"""Evaluation metrics in plain numpy; the tests check them against scikit-learn.

Conventions (scikit-learn's, where it has the metric):

- A pair is predicted a match when its score is >= the threshold.
- Ties: ROC-AUC counts a tied positive/negative pair as half right (Mann-Whitney U);
  average precision and the threshold sweeps treat equal scores as one threshold;
  a ranking puts the first relevant item at its expected position among the items
  whose score it ties with.
- Undefined figures are NaN, never a made-up number: ROC-AUC without positives or
  without negatives, average precision without positives, MRR of no queries.
- Empty input, mismatched shapes, labels other than 0/1 and non-finite scores raise
  ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - array-likes
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D and the same length")
    if len(y) == 0:
        raise ValueError("no scores to evaluate")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 or booleans")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return y.astype(bool), s


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ascending; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def roc_auc(labels, scores) -> float:  # noqa: ANN001
    """Area under the ROC curve: the probability that a random positive outscores a
    random negative (ties count half). NaN when one class is absent."""
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    u = _midranks(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def threshold_counts(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """For each distinct score t, highest first: (t, true positives, false positives)
    when every pair scoring >= t is predicted a match."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]
    tp = np.cumsum(y_sorted)[last_of_group]
    fp = last_of_group + 1 - tp
    return s_sorted[last_of_group], tp.astype(np.int64), fp.astype(np.int64)


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """(false positive rate, true positive rate, thresholds), starting at (0, 0) with
    threshold +inf. A rate whose denominator is zero is NaN."""
    thresholds, tp, fp = threshold_counts(labels, scores)
    n_pos, n_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, tp / n_pos] if n_pos else np.full(len(tp) + 1, math.nan)
        fpr = np.r_[0.0, fp / n_neg] if n_neg else np.full(len(fp) + 1, math.nan)
    return fpr, tpr, np.r_[math.inf, thresholds]


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """(precision, recall, thresholds) at each distinct score, highest threshold first."""
    thresholds, tp, fp = threshold_counts(labels, scores)
    n_pos = tp[-1]
    precision = tp / (tp + fp)
    recall = tp / n_pos if n_pos else np.full(len(tp), math.nan)
    return precision, recall, thresholds


def average_precision(labels, scores) -> float:  # noqa: ANN001
    """PR-AUC as scikit-learn defines it: sum over thresholds of (R_n - R_{n-1}) * P_n,
    no interpolation. NaN without positives."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    if np.isnan(recall).any():
        return math.nan
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass
class OperatingPoint:
    """The confusion counts and rates of one threshold (``None``: nothing is kept out,
    every pair predicted a match; ``inf``: every pair predicted no match)."""

    threshold: float | None
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def precision(self) -> float:
        """0 when nothing is predicted a match (scikit-learn's zero_division=0)."""
        predicted = self.tp + self.fp
        return self.tp / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        positives = self.tp + self.fn
        return self.tp / positives if positives else math.nan

    @property
    def false_positive_rate(self) -> float:
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else math.nan

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.threshold is None:
            rule = "every pair predicted a match"
        elif self.threshold == math.inf:
            rule = "no pair predicted a match"
        else:
            rule = "a match when score >= threshold"
        out.update(
            rule=rule,
            precision=self.precision,
            recall=self.recall,
            false_positive_rate=self.false_positive_rate,
            f1=self.f1,
            accuracy=self.accuracy,
        )
        return out


def operating_point(labels, scores, threshold: float | None) -> OperatingPoint:  # noqa: ANN001
    """Counts when pairs scoring >= ``threshold`` are predicted matches (None: all are)."""
    y, s = _check(labels, scores)
    predicted = np.ones(len(s), bool) if threshold is None else s >= threshold
    tp = int((predicted & y).sum())
    fp = int((predicted & ~y).sum())
    fn = int(y.sum()) - tp
    return OperatingPoint(threshold, tp, fp, len(y) - tp - fp - fn, fn)


def best_threshold(labels, scores, by: str = "f1") -> OperatingPoint:  # noqa: ANN001
    """The operating point that maximises ``by`` ("f1" or "accuracy") over every distinct
    score as threshold, plus +inf (predict no match at all). On a tie the higher
    threshold wins."""
    if by not in ("f1", "accuracy"):
        raise ValueError(f"best_threshold by {by!r}: use 'f1' or 'accuracy'")
    thresholds, tp, fp = threshold_counts(labels, scores)
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    thresholds = np.r_[math.inf, thresholds]
    tp, fp = np.r_[0, tp], np.r_[0, fp]
    fn, tn = n_pos - tp, n_neg - fp
    if by == "f1":
        denominator = 2 * tp + fp + fn
        value = np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    else:
        value = (tp + tn) / (n_pos + n_neg)
    best = int(np.argmax(value))
    return OperatingPoint(float(thresholds[best]), int(tp[best]), int(fp[best]), int(tn[best]), int(fn[best]))


# -- rankings ------------------------------------------------------------------------------


def first_relevant_ranks(
    scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None, block: int = 1024
) -> np.ndarray:
    """1-based rank of the best-ranked relevant candidate for each query row.

    Args:
        scores: (queries, candidates) similarities, higher is better.
        relevant: same shape, True where the candidate is a right answer.
        exclude: same shape, True where the candidate is not in the running (the query
            itself in text-to-text retrieval).

    Returns:
        float ranks; NaN for a row without a relevant candidate. Among t irrelevant and
        r relevant candidates that tie at the best relevant score, the first relevant
        one is expected at 1 + t / (r + 1), so that is its rank.
    """
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, bool)
    if scores.ndim != 2 or relevant.shape != scores.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be the same 2-D shape")
    if exclude is not None and np.asarray(exclude).shape != scores.shape:
        raise ValueError("exclude must have the shape of scores")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    ranks = np.full(len(scores), math.nan)
    for start in range(0, len(scores), block):
        s = scores[start : start + block]
        rel = relevant[start : start + block]
        out = np.zeros_like(rel) if exclude is None else np.asarray(exclude[start : start + block], bool)
        rel = rel & ~out
        irrelevant = ~rel & ~out
        best = np.where(rel, s, -np.inf).max(axis=1, initial=-np.inf)[:, None]
        greater = ((s > best) & irrelevant).sum(axis=1)
        tied_irrelevant = ((s == best) & irrelevant).sum(axis=1)
        tied_relevant = ((s == best) & rel).sum(axis=1)
        block_ranks = 1.0 + greater + tied_irrelevant / (tied_relevant + 1.0)
        block_ranks[~rel.any(axis=1)] = math.nan
        ranks[start : start + block] = block_ranks
    return ranks


def _finite(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks, np.float64)
    return ranks[~np.isnan(ranks)]


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1/rank over the queries that have a relevant candidate (NaN if none)."""
    ranks = _finite(ranks)
    return float(np.mean(1.0 / ranks)) if len(ranks) else math.nan


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose first relevant candidate ranks within the top ``k``
    (with several relevant candidates: at least one of them)."""
    ranks = _finite(ranks)
    return float(np.mean(ranks <= k)) if len(ranks) else math.nan


def chance_first_rank_cdf(n: int, r: int, k: np.ndarray) -> np.ndarray:
    """P(first of r relevant among n candidates ranks within top k) under a random order."""
    k = np.asarray(k, np.float64)
    if r <= 0 or n <= 0:
        return np.full(k.shape, math.nan)
    miss = np.ones(k.shape)
    for j in range(r):  # P(no relevant in top k) = C(n-r, k) / C(n, k)
        miss *= np.clip((n - k - j) / (n - j), 0.0, 1.0)
    return 1.0 - miss


def chance_reciprocal_rank(n: int, r: int) -> float:
    """Expected 1/rank of the first of r relevant candidates among n in random order."""
    if r <= 0 or n <= 0:
        return math.nan
    k = np.arange(1, n - r + 2)
    cdf = chance_first_rank_cdf(n, r, np.r_[0, k])
    return float(np.sum(np.diff(cdf) / k))


def bootstrap_interval(
    statistic,
    groups: list[np.ndarray],
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,  # noqa: ANN001
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)``, resampling whole groups.

    Resampling groups, not single items, keeps what belongs together (a positive and
    its negatives, which share an image) together, so the interval is not too narrow.
    Resamples where the statistic is undefined (NaN) are dropped.
    """
    if not groups:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    same_size = len({len(g) for g in groups}) == 1
    table = np.stack(groups) if same_size else None
    values = []
    for _ in range(resamples):
        picked = rng.integers(0, len(groups), len(groups))
        rows = table[picked].ravel() if same_size else np.concatenate([groups[g] for g in picked])
        value = statistic(rows)
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean_interval(
    values: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of independent ``values``."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // len(values))  # bounded memory for large query sets
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        means[start : start + count] = values[rng.integers(0, len(values), (count, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
