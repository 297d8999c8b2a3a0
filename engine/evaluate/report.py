"""Evaluation results for people and files: rich tables, result.json, PNG plots, scores.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from engine.evaluate.results import EvalResult, IndexResult, MatrixResult, PairsResult, RetrievalResult
from engine.store.atomic import atomic_path


def write_outputs(result: EvalResult, folder: Path, plots: bool = True) -> list[Path]:
    """Write result.json (every figure and the settings), the task's plots, and for
    pairs a scores.csv of every scored pair. Returns the files written."""
    from engine.evaluate import plots as p

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "result.json"]
    with atomic_path(written[0]) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if isinstance(result, PairsResult):
        scores = folder / "scores.csv"
        with atomic_path(scores) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["group", "image", "caption", "label", "score"])
            for (image, caption, group), label, score in zip(result.pair_rows, result.labels, result.scores):
                writer.writerow([group, image, caption, int(label), f"{score:.6f}"])
        written.append(scores)
    if plots:
        if isinstance(result, PairsResult):
            written += [p.roc_plot(result, folder / "roc.png"), p.score_histogram(result, folder / "scores.png")]
        elif isinstance(result, RetrievalResult) and result.rankings:
            written.append(p.recall_plot(result, folder / "recall_at_k.png"))
        elif isinstance(result, MatrixResult) and result.rows:
            written.append(p.matrix_plot(result, folder / "matrix.png"))
    return written


def tables(result: EvalResult) -> list[Table]:
    if isinstance(result, PairsResult):
        return [_pairs_table(result)]
    if isinstance(result, RetrievalResult):
        return [_retrieval_table(result)]
    if isinstance(result, MatrixResult):
        return [_matrix_table(result)]
    if isinstance(result, IndexResult):
        return [_index_table(result)]
    raise TypeError(type(result).__name__)


def throughput_line(result: EvalResult) -> str:
    """One line: embeddings computed vs from cache, rates, scoring rate, total time."""
    parts = []
    for key, name in (
        ("image_embeddings", "images"),
        ("clip_text_embeddings", "CLIP texts"),
        ("text_embeddings", "texts"),
    ):
        stats = result.throughput.get(key)
        if stats:
            rate = f" ({stats['per_second']:.1f}/s)" if stats["per_second"] else ""
            parts.append(f"{name}: {stats['computed']} embedded{rate}, {stats['from_cache']} from cache")
    if "pairs_per_second" in result.throughput and result.throughput["pairs_per_second"]:
        parts.append(
            f"{result.throughput['pairs_scored']} pairs scored ({result.throughput['pairs_per_second']:,.0f}/s)"
        )
    parts.append(f"total {result.throughput.get('total_seconds', 0):.2f} s")
    return "; ".join(parts)


def _f(value, digits: int = 3) -> str:  # noqa: ANN001
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _ci(pair) -> str:  # noqa: ANN001
    low, high = pair
    return "" if low is None or math.isnan(low) else f" [{low:.3f}, {high:.3f}]"


def _pairs_table(r: PairsResult) -> Table:
    c = r.counts
    table = Table(
        title=f"pair classification — {escape(r.dataset['name'])}: {c['positives']} positives, "
        f"{c['negatives']} negatives (K={r.settings['negatives']}, seed {r.settings['seed']})"
    )
    for name in ("figure", "value", "threshold", "F1", "accuracy", "precision", "recall"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    table.add_row("ROC-AUC [95% CI]", _f(r.roc_auc) + _ci(r.roc_auc_ci95), "", "", "", "", "")
    table.add_row("  chance", "0.500", "", "", "", "", "")
    table.add_row("PR-AUC (AP) [95% CI]", _f(r.pr_auc) + _ci(r.pr_auc_ci95), "", "", "", "", "")
    table.add_row("  chance (prevalence)", _f(r.baselines["random_scores"]["pr_auc"]), "", "", "", "", "")
    points = [("best F1", r.best_f1), ("best accuracy", r.best_accuracy), ("at min-alignment", r.at_min_alignment)]
    for name, point in points:
        threshold = point["threshold"]
        shown = "off" if threshold is None else ("∞ (none kept)" if threshold == math.inf else _f(threshold))
        table.add_row(
            name, "", shown, _f(point["f1"]), _f(point["accuracy"]), _f(point["precision"]), _f(point["recall"])
        )
    for name, key in (("always 'no match'", "always_no_match"), ("always 'match'", "always_match")):
        b = r.baselines[key]
        table.add_row(
            f"  baseline: {name}", "", "", _f(b["f1"]), _f(b["accuracy"]), _f(b["precision"]), _f(b["recall"])
        )
    table.add_row(
        "positive beats all its negatives", _f(r.score_summary["positive_first_in_group"]), "", "", "", "", ""
    )
    table.add_row("  chance", _f(r.baselines["random_scores"]["positive_first_in_group"]), "", "", "", "", "")
    pos, neg = r.score_summary["positive"], r.score_summary["negative"]
    table.add_row("mean score: positives / negatives", f"{_f(pos['mean'])} / {_f(neg['mean'])}", "", "", "", "", "")
    return table


def _retrieval_table(r: RetrievalResult) -> Table:
    ks = r.settings["recall_at"]
    table = Table(title=f"retrieval — {escape(r.dataset['name'])} (chance in grey)")
    table.add_column("run")
    table.add_column("queries × candidates", justify="right")
    table.add_column("MRR [95% CI]", justify="right")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    table.add_column("match in 100", justify="right")
    table.add_column("median rank", justify="right")
    for g in r.rankings:
        table.add_row(
            escape(g.name),
            f"{g.queries} × {g.candidates}",
            _f(g.mrr) + _ci(g.mrr_ci95),
            *[_f(g.recall[k]) for k in ks],
            f"{g.match_in_100}/{g.queries}",
            _f(g.median_rank, 1),
        )
        table.add_row(
            "  [grey50]chance[/]",
            "",
            f"[grey50]{_f(g.chance_mrr)}[/]",
            *[f"[grey50]{_f(g.chance_recall[k])}[/]" for k in ks],
            "",
            "",
        )
    return table


def _matrix_table(r: MatrixResult) -> Table:
    table = Table(
        title=f"zero-shot matching — {escape(r.dataset['name'])}: top-1 {_f(r.top1_accuracy)} "
        f"(chance {_f(r.chance_top1)}); by column {_f(r.column_top1_accuracy)} "
        f"(chance {_f(r.chance_column_top1)})"
    )
    table.add_column("image")
    table.add_column("top 3 (✓ right)")
    table.add_column("top confusions")
    for row in r.per_row:
        top = "\n".join(
            f"{'✓' if t['right'] else '✗'} {t['score']:.3f} {escape(_cut(t['column']))}" for t in row["top"]
        )
        wrong = "\n".join(f"{t['score']:.3f} {escape(_cut(t['column']))}" for t in row["confusions"])
        table.add_row(escape(row["image"]), top, wrong)
    return table


def _index_table(r: IndexResult) -> Table:
    table = Table(
        title=f"index quality — {escape(r.dataset['space'])}: {r.index_type}, {r.vectors} vectors, "
        f"{r.queries} sampled queries, k={r.k}"
    )
    table.add_column("figure")
    table.add_column("store index", justify="right")
    table.add_column("exact (IndexFlatIP)", justify="right")
    for name, value in r.recall.items():
        table.add_row(name, _f(value), "1.000")
    for stat in ("p50", "p95", "mean", "batch_per_query"):
        table.add_row(f"latency {stat} (ms/query)", _f(r.latency_ms["index"][stat]), _f(r.latency_ms["exact"][stat]))
    return table


def _cut(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
