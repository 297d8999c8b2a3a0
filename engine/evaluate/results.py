"""What the evaluations return: dataclasses the CLI renders and ``to_dict`` serialises.

Every result's JSON carries ``schema_version`` (changed whenever a field changes
meaning or disappears), the task, the dataset, the settings and model identities
that produced it, warnings (one says so loudly when CLIP's weights are random), the
figures, and throughput. NaN and infinity become ``null``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EVAL_SCHEMA_VERSION = 1


@dataclass
class EvalResult:
    task: str
    dataset: dict[str, Any]
    settings: dict[str, Any]
    models: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def figures(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        from engine import __version__

        return clean(
            {
                "schema_version": EVAL_SCHEMA_VERSION,
                "task": self.task,
                "engine_version": __version__,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
                "dataset": self.dataset,
                "settings": self.settings,
                "models": self.models,
                "warnings": self.warnings,
                "notes": self.notes,
                "figures": self.figures(),
                "throughput": self.throughput,
            }
        )


@dataclass
class PairsResult(EvalResult):
    counts: dict[str, int] = field(default_factory=dict)
    roc_auc: float = math.nan
    roc_auc_ci95: tuple[float, float] = (math.nan, math.nan)
    pr_auc: float = math.nan
    pr_auc_ci95: tuple[float, float] = (math.nan, math.nan)
    best_f1: dict[str, Any] = field(default_factory=dict)  # OperatingPoint.to_dict()
    best_accuracy: dict[str, Any] = field(default_factory=dict)
    at_min_alignment: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    score_summary: dict[str, Any] = field(default_factory=dict)
    # Per pair, for plots and scores.csv (not in the JSON): pair rows and their scores.
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    pair_rows: list[tuple[str, str, int]] = field(default_factory=list, repr=False)  # (image, caption, group)

    def figures(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "roc_auc": self.roc_auc,
            "roc_auc_ci95": list(self.roc_auc_ci95),
            "pr_auc": self.pr_auc,
            "pr_auc_ci95": list(self.pr_auc_ci95),
            "best_f1": self.best_f1,
            "best_accuracy": self.best_accuracy,
            "at_min_alignment": self.at_min_alignment,
            "baselines": self.baselines,
            "scores": self.score_summary,
        }


@dataclass
class Ranking:
    """One retrieval run: queries ranked against candidates."""

    name: str  # "text→image (title+lead)"
    direction: str  # text-image | image-text | text-text
    strategy: str | None
    model: str  # the model whose space the ranking is in
    queries: int
    candidates: int
    mrr: float
    mrr_ci95: tuple[float, float]
    recall: dict[int, float]
    chance_mrr: float
    chance_recall: dict[int, float]
    match_in_100: int  # queries whose first match ranks within the top 100
    median_rank: float
    skipped_queries: int = 0  # queries with no relevant candidate
    ranks: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    relevant_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "direction": self.direction,
            "strategy": self.strategy,
            "model": self.model,
            "queries": self.queries,
            "candidates": self.candidates,
            "skipped_queries": self.skipped_queries,
            "mrr": self.mrr,
            "mrr_ci95": list(self.mrr_ci95),
            "recall_at": {str(k): v for k, v in self.recall.items()},
            "match_in_100": self.match_in_100,
            "median_rank": self.median_rank,
            "chance": {"mrr": self.chance_mrr, "recall_at": {str(k): v for k, v in self.chance_recall.items()}},
        }


@dataclass
class RetrievalResult(EvalResult):
    rankings: list[Ranking] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {"rankings": [r.to_dict() for r in self.rankings]}


@dataclass
class MatrixResult(EvalResult):
    rows: list[str] = field(default_factory=list)  # image names
    columns: list[str] = field(default_factory=list)  # captions or article texts
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    truth: list[list[int]] = field(default_factory=list)  # right columns per row
    top1_accuracy: float = math.nan
    column_top1_accuracy: float = math.nan  # each column's best row is right
    chance_top1: float = math.nan
    chance_column_top1: float = math.nan
    per_row: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": self.columns,
            "matrix": np.round(self.matrix, 4).tolist(),
            "truth": self.truth,
            "top1_accuracy": self.top1_accuracy,
            "chance_top1": self.chance_top1,
            "column_top1_accuracy": self.column_top1_accuracy,
            "chance_column_top1": self.chance_column_top1,
            "per_row": self.per_row,
        }


@dataclass
class IndexResult(EvalResult):
    vectors: int = 0
    queries: int = 0
    k: int = 0
    index_type: str = ""
    recall: dict[str, float] = field(default_factory=dict)  # "10-recall@10" etc.
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # {"index": {p50, p95, mean}, "exact": …}

    def figures(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors,
            "queries": self.queries,
            "k": self.k,
            "index_type": self.index_type,
            "recall": self.recall,
            "latency_ms": self.latency_ms,
        }


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
