"""Which part of an article's text stands for it when it is matched against images.

- ``title``: the title alone.
- ``title_lead``: the title and the first sentence(s) of the text.
- ``sentence_max``: every sentence embedded on its own; the article's score against
  an image is the best sentence's.
- ``chunked``: the whole text in consecutive windows of whole sentences, embedded
  and averaged (nothing is cut off).

For title→text retrieval in the text model's space the title is the query, so the
text side uses ``lead``, ``sentence_max`` or ``chunked`` without the title.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.evaluate.datasets import Article
from engine.evaluate.embed import TextSide
from engine.sentences import split_sentences

STRATEGIES = ("title", "title_lead", "sentence_max", "chunked")
BODY_STRATEGIES = ("lead", "sentence_max", "chunked")
LABELS = {
    "title": "title",
    "title_lead": "title+lead",
    "lead": "lead",
    "sentence_max": "sentence max",
    "chunked": "whole text, chunked",
}


@dataclass
class Views:
    """The texts that stand for one article and how their similarities combine."""

    texts: list[str]
    pooling: str  # "max": best text's similarity; "mean": similarity of the mean vector


def article_views(article: Article, strategy: str, lead_sentences: int = 2, chunk_words: int = 50) -> Views:
    sentences = [s for s, _, _ in split_sentences(article.text)] or [article.text]
    lead = " ".join(sentences[:lead_sentences])
    if strategy == "title":
        return Views([article.title], "max")
    if strategy == "title_lead":
        joiner = " " if article.title.rstrip()[-1:] in ".!?:" else ". "
        return Views([article.title.rstrip() + joiner + lead], "max")
    if strategy == "lead":
        return Views([lead], "max")
    if strategy == "sentence_max":
        return Views(sentences, "max")
    if strategy == "chunked":
        return Views(windows(sentences, chunk_words), "mean")
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES + BODY_STRATEGIES)})")


def windows(sentences: list[str], max_words: int) -> list[str]:
    """Consecutive sentences joined into windows of at most ``max_words`` words (a longer
    sentence is a window of its own; the encoder windows it further)."""
    out, current, used = [], [], 0
    for sentence in sentences:
        words = len(sentence.split())
        if current and used + words > max_words:
            out.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += words
    if current:
        out.append(" ".join(current))
    return out


def view_scores(side: TextSide, views: list[Views], candidates: np.ndarray) -> np.ndarray:
    """(articles, candidates) similarities: each article's views pooled as it says."""
    flat = [t for v in views for t in v.texts]
    owner = np.repeat(np.arange(len(views)), [len(v.texts) for v in views])
    vectors = side.vectors(flat)
    pooled_rows, pooled_owner = [], []
    for n, v in enumerate(views):
        rows = vectors[owner == n]
        if v.pooling == "mean":
            mean = rows.mean(axis=0)
            rows = (mean / max(float(np.linalg.norm(mean)), 1e-12))[None, :]
        pooled_rows.append(rows)
        pooled_owner.extend([n] * len(rows))
    stacked = np.concatenate(pooled_rows)
    similarities = stacked @ candidates.T
    starts = np.r_[0, np.cumsum(np.bincount(pooled_owner, minlength=len(views)))[:-1]]
    return np.maximum.reduceat(similarities, starts, axis=0)
