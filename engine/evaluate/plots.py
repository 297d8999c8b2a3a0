"""PNG plots of evaluation results (matplotlib, Agg; imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.evaluate import metrics as m
from engine.evaluate.results import EvalResult, MatrixResult, PairsResult, RetrievalResult


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _suptitle(fig, result: EvalResult, title: str) -> None:  # noqa: ANN001
    if result.warnings and result.models.get("clip", {}).get("random_weights"):
        title += "\nRANDOM CLIP WEIGHTS: chance level is the expected result"
        fig.suptitle(title, color="firebrick")
    else:
        fig.suptitle(title)


def roc_plot(result: PairsResult, path: Path) -> Path:
    """ROC and precision–recall curves, the best-F1 threshold and min-alignment marked."""
    fpr, tpr, _ = m.roc_curve(result.labels, result.scores)
    precision, recall, _ = m.precision_recall_curve(result.labels, result.scores)
    fig = _figure(10, 4.6)
    roc, pr = fig.subplots(1, 2)
    roc.plot(fpr, tpr, lw=1.8, label=f"ROC-AUC {result.roc_auc:.3f}")
    roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance 0.5")
    prevalence = result.baselines["always_match"]["precision"]
    pr.step(recall, precision, where="post", lw=1.8, label=f"PR-AUC (AP) {result.pr_auc:.3f}")
    pr.axhline(prevalence, ls="--", color="grey", lw=1, label=f"chance {prevalence:.3f}")
    marks = [(result.best_f1, "best F1", "tab:red", "o")]
    if result.at_min_alignment.get("threshold") is not None:
        marks.append((result.at_min_alignment, "min-alignment", "tab:green", "s"))
    for point, name, colour, marker in marks:
        label = f"{name} ≥ {point['threshold']:.3f} (F1 {point['f1']:.2f}, acc {point['accuracy']:.3f})"
        roc.plot(point["false_positive_rate"], point["recall"], marker, color=colour, ms=8, label=label)
        pr.plot(point["recall"], point["precision"], marker, color=colour, ms=8, label=label)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title="ROC")
    pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="precision–recall")
    roc.legend(loc="lower right", fontsize=8)
    pr.legend(loc="upper right", fontsize=8)
    counts = result.counts
    _suptitle(
        fig,
        result,
        f"{result.dataset.get('name')}: {counts['positives']} positives, "
        f"{counts['negatives']} negatives (K={result.settings['negatives']})",
    )
    fig.savefig(path)
    return path


def score_histogram(result: PairsResult, path: Path) -> Path:
    """Where positive and negative pairs score, with the thresholds drawn across."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    bins = np.histogram_bin_edges(result.scores, bins=40)
    for mask, name in ((~result.labels, "negatives"), (result.labels, "positives")):
        if mask.any():
            ax.hist(result.scores[mask], bins=bins, density=True, alpha=0.6, label=name)
    ax.axvline(result.best_f1["threshold"], color="tab:red", ls="--", label="best-F1 threshold")
    if result.at_min_alignment.get("threshold") is not None:
        ax.axvline(result.at_min_alignment["threshold"], color="tab:green", ls=":", label="min-alignment")
    ax.set(xlabel="alignment (cosine similarity)", ylabel="density")
    ax.legend(fontsize=8)
    _suptitle(fig, result, "score distributions")
    fig.savefig(path)
    return path


def recall_plot(result: RetrievalResult, path: Path) -> Path:
    """Recall@K for every K, each run beside its chance curve (dashed)."""
    from engine.evaluate.retrieval import chance_curve

    fig = _figure(8, 5)
    ax = fig.subplots()
    colours = [f"C{n % 10}" for n in range(len(result.rankings))]
    most = max((r.candidates for r in result.rankings), default=1)
    for ranking, colour in zip(result.rankings, colours):
        if not len(ranking.ranks):
            continue
        ks = np.arange(1, ranking.candidates + 1)
        curve = np.array([np.mean(ranking.ranks <= k) for k in ks])
        ax.plot(ks, curve, color=colour, lw=1.8, label=f"{ranking.name} (MRR {ranking.mrr:.3f})")
        ax.plot(ks, chance_curve(ranking, ks), color=colour, lw=1, ls="--")
    ax.set(
        xscale="log" if most > 20 else "linear",
        xlabel="K",
        ylabel="Recall@K",
        ylim=(0, 1.02),
        title="dashed: random ranking",
    )
    ax.legend(fontsize=7, loc="lower right")
    _suptitle(fig, result, f"{result.dataset.get('name')}: recall@K")
    fig.savefig(path)
    return path


def matrix_plot(result: MatrixResult, path: Path) -> Path:
    """The similarity matrix as a heatmap; right cells outlined, each row's best dotted."""
    rows, columns = len(result.rows), len(result.columns)
    fig = _figure(min(4 + 0.35 * columns, 30), min(3 + 0.35 * rows + 0.05 * columns, 30))
    ax = fig.subplots()
    image = ax.imshow(result.matrix, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    for r, right in enumerate(result.truth):
        for c in right:
            ax.add_patch(_box(c, r))
        ax.plot(int(np.argmax(result.matrix[r])), r, "o", color="white", ms=4)
    ax.set_yticks(range(rows), [_short(x, 30) for x in result.rows], fontsize=7)
    ax.set_xticks(range(columns), [_short(x, 40) for x in result.columns], fontsize=6, rotation=75, ha="right")
    _suptitle(
        fig,
        result,
        f"similarity matrix: top-1 {result.top1_accuracy:.2f} (chance {result.chance_top1:.2f}); "
        "boxes = right, dots = row's best",
    )
    fig.savefig(path)
    return path


def _box(column: int, row: int):  # noqa: ANN202
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
