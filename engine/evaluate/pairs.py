"""Pair classification: does this caption belong to this image?

Every (image, caption) pair of the dataset is a positive; each positive gets K
negatives, captions of *other* images drawn with a seeded generator (a caption whose
text also describes the positive's image is never its negative). Every pair is scored
by the engine's image–text alignment, the cosine similarity of the CLIP image and
CLIP text vectors, and the scores are judged as a binary classifier.

With K negatives per positive, answering "no match" every time is already right
K/(K+1) of the time (95.2 % at K = 20), so accuracy is always shown beside that.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from engine.evaluate import metrics as m
from engine.evaluate.datasets import PairDataset
from engine.evaluate.embed import ImageSide, TextSide
from engine.evaluate.results import PairsResult


def sample_pairs(
    image_of_pair: list[int], caption_of_pair: list[int], n_captions: int, negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], int]:
    """Positives and their sampled negatives.

    Args:
        image_of_pair, caption_of_pair: the dataset's pairs as (image index, caption index).
        n_captions: how many distinct captions there are.
        negatives: K, negatives per positive.
        seed: the same seed draws the same negatives.

    Returns:
        image index, caption index and label per scored pair; the row indices of each
        positive's group (itself first, then its negatives); and how many negatives
        were missing because too few captions of other images exist.
    """
    own: dict[int, set[int]] = {}
    for image, caption in zip(image_of_pair, caption_of_pair):
        own.setdefault(image, set()).add(caption)
    positives = list(dict.fromkeys(zip(image_of_pair, caption_of_pair)))
    rng = np.random.default_rng(seed)
    images, captions, labels, groups, short = [], [], [], [], 0
    for image, caption in positives:
        excluded = own[image]
        drawn = rng.choice(n_captions, size=min(n_captions, negatives + len(excluded)), replace=False)
        chosen = [int(c) for c in drawn if int(c) not in excluded][:negatives]
        short += negatives - len(chosen)
        start = len(labels)
        images.extend([image] * (1 + len(chosen)))
        captions.extend([caption, *chosen])
        labels.extend([True] + [False] * len(chosen))
        groups.append(np.arange(start, len(labels)))
    return np.asarray(images, np.int64), np.asarray(captions, np.int64), np.asarray(labels, bool), groups, short


def pair_scores(
    image_vectors: np.ndarray, text_vectors: np.ndarray, images: np.ndarray, captions: np.ndarray, block: int = 16384
) -> np.ndarray:
    """Cosine similarity of each (image, caption) row, computed in blocks."""
    out = np.empty(len(images), np.float32)
    for start in range(0, len(images), block):
        i, c = images[start : start + block], captions[start : start + block]
        out[start : start + block] = np.einsum("ij,ij->i", image_vectors[i], text_vectors[c])
    return out


def evaluate_pairs(
    dataset: PairDataset,
    image_side: ImageSide,
    text_side: TextSide,
    header: dict[str, Any],
    negatives: int = 20,
    seed: int = 0,
    min_alignment: float | None = None,
    resamples: int = 200,
) -> PairsResult:
    """Score every positive and its K negatives; judge the scores as a classifier."""
    paths = dataset.images()
    where = dataset.where()
    # Identical files under two names are one image: their captions are not each other's negatives.
    keys = image_side.keys(paths, where)
    image_number = _numbering(paths, keys)
    n_images = len(set(keys))
    representative = {image_number[p]: p for p in reversed(paths)}
    captions = dataset.captions()
    caption_number = {c: n for n, c in enumerate(captions)}

    images, caption_rows, labels, groups, short = sample_pairs(
        [image_number[p.image] for p in dataset.pairs],
        [caption_number[p.caption] for p in dataset.pairs],
        len(captions),
        negatives,
        seed,
    )
    image_vectors = image_side.vectors([representative[n] for n in range(n_images)], where)
    text_vectors = text_side.vectors(captions)
    began = time.perf_counter()
    scores = pair_scores(image_vectors, text_vectors, images, caption_rows)
    scoring_seconds = time.perf_counter() - began

    n_pos, n = int(labels.sum()), len(labels)
    prevalence = n_pos / n
    result = PairsResult(**header)
    if short:
        result.notes.append(
            f"{short} negatives missing: some images have fewer than K={negatives} captions of other images to draw "
            "from, so those positives have fewer negatives (the baselines below use the real counts)"
        )
    result.counts = {
        "positives": n_pos,
        "negatives": n - n_pos,
        "pairs": n,
        "images": n_images,
        "captions": len(captions),
        "negatives_missing": short,
    }
    result.roc_auc = m.roc_auc(labels, scores)
    result.pr_auc = m.average_precision(labels, scores)
    result.roc_auc_ci95 = m.bootstrap_interval(lambda i: m.roc_auc(labels[i], scores[i]), groups, resamples, seed)
    result.pr_auc_ci95 = m.bootstrap_interval(
        lambda i: m.average_precision(labels[i], scores[i]), groups, resamples, seed
    )
    result.best_f1 = m.best_threshold(labels, scores, "f1").to_dict()
    result.best_accuracy = m.best_threshold(labels, scores, "accuracy").to_dict()
    result.at_min_alignment = m.operating_point(labels, scores, min_alignment).to_dict()
    first_in_group = np.mean([scores[g[0]] > scores[g[1:]].max() if len(g) > 1 else True for g in groups])
    result.baselines = {
        "always_no_match": {"accuracy": 1 - prevalence, "f1": 0.0, "precision": 0.0, "recall": 0.0},
        "always_match": {
            "accuracy": prevalence,
            "f1": 2 * prevalence / (1 + prevalence),
            "precision": prevalence,
            "recall": 1.0,
        },
        "random_scores": {
            "roc_auc": 0.5,
            "pr_auc": prevalence,
            "positive_first_in_group": float(np.mean([1 / len(g) for g in groups])),
        },
    }
    result.score_summary = {
        "positive": _summary(scores[labels]),
        "negative": _summary(scores[~labels]),
        # The positive outscores all of its own negatives (a retrieval view of the same scores).
        "positive_first_in_group": float(first_in_group),
    }
    result.labels, result.scores = labels, scores
    names = {n: str(p) for n, p in representative.items()}
    group_of = np.empty(n, np.int64)
    for g, rows in enumerate(groups):
        group_of[rows] = g
    result.pair_rows = [(names[int(i)], captions[int(c)], int(g)) for i, c, g in zip(images, caption_rows, group_of)]
    result.throughput["pairs_scored"] = n
    result.throughput["scoring_seconds"] = round(scoring_seconds, 4)
    result.throughput["pairs_per_second"] = round(n / scoring_seconds, 1) if scoring_seconds > 0 else None
    return result


def _numbering(paths: list, keys: list[str]) -> dict:
    """Path → image number, one number per distinct content."""
    number: dict[str, int] = {}
    for k in keys:
        number.setdefault(k, len(number))
    return {p: number[k] for p, k in zip(paths, keys)}


def _summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "median": math.nan}
    return {
        "n": int(len(values)),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(np.median(values)),
    }
