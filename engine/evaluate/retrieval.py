"""Retrieval, the NewsImages way: rank every candidate for every query and see where
the right one lands (MRR, Recall@K, "match in 100": how many queries find theirs in
the top 100).

Pairs datasets: caption→image and image→caption in CLIP's space, and caption→caption
in the text model's space (captions of the same image are each other's answers).
Articles datasets: article→image and image→article in CLIP's space for each text
strategy, and title→text in the text model's space.

Every figure comes with what random ranking would score on the same queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.evaluate import metrics as m
from engine.evaluate.datasets import ArticleDataset, PairDataset
from engine.evaluate.embed import ImageSide, TextSide
from engine.evaluate.results import Ranking
from engine.evaluate.strategies import BODY_STRATEGIES, LABELS, article_views, view_scores

DIRECTIONS = ("text-image", "image-text", "text-text")
ARROWS = {"text-image": "text→image", "image-text": "image→text", "text-text": "text→text"}
DEFAULT_KS = (1, 5, 10, 50, 100)


@dataclass
class Sides:
    """The encoders a retrieval run may use; CLIP ones are None when not needed."""

    image: ImageSide | None
    clip_text: TextSide | None
    text: TextSide | None


def rank(
    name: str,
    direction: str,
    strategy: str | None,
    model: str,
    scores: np.ndarray,
    relevant: np.ndarray,
    exclude: np.ndarray | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    seed: int = 0,
) -> Ranking:
    """Rank-based figures of ``scores`` (queries × candidates) with chance beside them."""
    ranks = m.first_relevant_ranks(scores, relevant, exclude)
    valid = ~np.isnan(ranks)
    live = np.ones_like(relevant, bool) if exclude is None else ~np.asarray(exclude, bool)
    n_candidates = live.sum(axis=1)[valid]
    n_relevant = (relevant & live).sum(axis=1)[valid]
    chance_mrr, chance_recall = _chance(n_candidates, n_relevant, ks)
    good = ranks[valid]
    return Ranking(
        name=name,
        direction=direction,
        strategy=strategy,
        model=model,
        queries=int(valid.sum()),
        candidates=int(n_candidates.max()) if len(n_candidates) else int(scores.shape[1]),
        mrr=m.mean_reciprocal_rank(good),
        mrr_ci95=m.bootstrap_mean_interval(1.0 / good, seed=seed),
        recall={k: m.recall_at(good, k) for k in ks},
        chance_mrr=chance_mrr,
        chance_recall=chance_recall,
        match_in_100=int((good <= 100).sum()),
        median_rank=float(np.median(good)) if len(good) else math.nan,
        skipped_queries=int((~valid).sum()),
        ranks=good,
        relevant_counts=n_relevant,
    )


def _chance(n_candidates: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...]) -> tuple[float, dict[int, float]]:
    if len(n_candidates) == 0:
        return math.nan, {k: math.nan for k in ks}
    cases, counts = np.unique(np.stack([n_candidates, n_relevant], axis=1), axis=0, return_counts=True)
    weights = counts / counts.sum()
    mrr = sum(w * m.chance_reciprocal_rank(int(n), int(r)) for (n, r), w in zip(cases, weights))
    recall = {
        k: float(
            sum(w * m.chance_first_rank_cdf(int(n), int(r), np.array([k]))[0] for (n, r), w in zip(cases, weights))
        )
        for k in ks
    }
    return float(mrr), recall


def chance_curve(ranking: Ranking, ks: np.ndarray) -> np.ndarray:
    """Random ranking's Recall@K for every K in ``ks`` on the same queries (for plots)."""
    n = ranking.candidates
    cases, counts = np.unique(ranking.relevant_counts, return_counts=True)
    return sum((c / counts.sum()) * m.chance_first_rank_cdf(n, int(r), ks) for r, c in zip(cases, counts))


def _content_numbering(side: ImageSide | None, paths: list, where: dict) -> tuple[dict, list]:
    """Path → image number (identical files are one image), and one path per number."""
    keys = side.keys(paths, where) if side is not None else [str(p) for p in paths]
    number: dict[str, int] = {}
    for k in keys:
        number.setdefault(k, len(number))
    of_path = {p: number[k] for p, k in zip(paths, keys)}
    representative = {of_path[p]: p for p in reversed(paths)}
    return of_path, [representative[n] for n in range(len(number))]


def pair_rankings(
    dataset: PairDataset, sides: Sides, directions: tuple[str, ...], ks: tuple[int, ...], seed: int
) -> list[Ranking]:
    captions = dataset.captions()
    caption_number = {c: n for n, c in enumerate(captions)}
    where = dataset.where()
    image_of, images = _content_numbering(sides.image, dataset.images(), where)
    relevant = np.zeros((len(captions), len(images)), bool)
    for p in dataset.pairs:
        relevant[caption_number[p.caption], image_of[p.image]] = True
    out = []
    if "text-image" in directions or "image-text" in directions:
        scores = sides.clip_text.vectors(captions) @ sides.image.vectors(images, where).T
        model = sides.image.model
        if "text-image" in directions:
            out.append(rank("caption→image", "text-image", None, model, scores, relevant, ks=ks, seed=seed))
        if "image-text" in directions:
            out.append(rank("image→caption", "image-text", None, model, scores.T, relevant.T, ks=ks, seed=seed))
    if "text-text" in directions:
        vectors = sides.text.vectors(captions)
        same_image = (relevant.astype(np.int32) @ relevant.T.astype(np.int32)) > 0
        itself = np.eye(len(captions), dtype=bool)
        out.append(
            rank(
                "caption→caption",
                "text-text",
                None,
                sides.text.model,
                vectors @ vectors.T,
                same_image,
                itself,
                ks=ks,
                seed=seed,
            )
        )
    return out


def article_rankings(
    dataset: ArticleDataset,
    sides: Sides,
    directions: tuple[str, ...],
    strategies: tuple[str, ...],
    ks: tuple[int, ...],
    seed: int,
    lead_sentences: int,
    chunk_words: dict[str, int],
) -> list[Ranking]:
    articles = dataset.articles
    where = dataset.where()
    out = []
    if "text-image" in directions or "image-text" in directions:
        image_of, images = _content_numbering(sides.image, dataset.images(), where)
        relevant = np.zeros((len(articles), len(images)), bool)
        for n, a in enumerate(articles):
            relevant[n, image_of[a.image]] = True
        image_vectors = sides.image.vectors(images, where)
        model = sides.image.model
        for strategy in strategies:
            views = [article_views(a, strategy, lead_sentences, chunk_words["clip"]) for a in articles]
            scores = view_scores(sides.clip_text, views, image_vectors)
            label = LABELS[strategy]
            if "text-image" in directions:
                out.append(
                    rank(f"article→image ({label})", "text-image", strategy, model, scores, relevant, ks=ks, seed=seed)
                )
            if "image-text" in directions:
                out.append(
                    rank(
                        f"image→article ({label})",
                        "image-text",
                        strategy,
                        model,
                        scores.T,
                        relevant.T,
                        ks=ks,
                        seed=seed,
                    )
                )
    if "text-text" in directions:
        titles = sides.text.vectors([a.title for a in articles])
        itself = np.eye(len(articles), dtype=bool)
        for strategy in BODY_STRATEGIES:
            views = [article_views(a, strategy, lead_sentences, chunk_words["text"]) for a in articles]
            scores = view_scores(sides.text, views, titles).T  # titles are the queries
            out.append(
                rank(
                    f"title→text ({LABELS[strategy]})",
                    "text-text",
                    strategy,
                    sides.text.model,
                    scores,
                    itself,
                    ks=ks,
                    seed=seed,
                )
            )
    return out
