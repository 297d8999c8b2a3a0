"""Zero-shot matching on a small set: the whole image × text similarity matrix.

Rows are images; columns are the captions (pairs datasets) or the articles' texts as
one strategy selects them (articles datasets). A row is right when its best column
is one of its own; a column is right when its best row is its image. Per row, the
three best columns and the three best wrong ones (the confusions) are listed.
"""

from __future__ import annotations

import numpy as np

from engine.evaluate.datasets import ArticleDataset, PairDataset
from engine.evaluate.embed import ImageSide, TextSide
from engine.evaluate.results import MatrixResult
from engine.evaluate.strategies import article_views, view_scores

TOP = 3


def evaluate_matrix(
    dataset: PairDataset | ArticleDataset,
    image_side: ImageSide,
    text_side: TextSide,
    header: dict,
    max_images: int = 40,
    strategy: str = "title",
    lead_sentences: int = 2,
    chunk_words: int = 50,
) -> MatrixResult:
    where = dataset.where()
    paths = dataset.images()
    result = MatrixResult(**header)
    if len(paths) > max_images:
        result.notes.append(f"the first {max_images} of {len(paths)} images are shown (--max-images)")
        paths = paths[:max_images]
    kept = set(paths)
    image_vectors = image_side.vectors(paths, where)
    if isinstance(dataset, PairDataset):
        pairs = [p for p in dataset.pairs if p.image in kept]
        columns = list(dict.fromkeys(p.caption for p in pairs))
        column_of = {c: n for n, c in enumerate(columns)}
        truth = {p: set() for p in paths}
        for pair in pairs:
            truth[pair.image].add(column_of[pair.caption])
        matrix = image_vectors @ text_side.vectors(columns).T
    else:
        articles = [a for a in dataset.articles if a.image in kept]
        views = [article_views(a, strategy, lead_sentences, chunk_words) for a in articles]
        columns = [f"{a.id}: {a.title}" for a in articles]
        truth = {p: {n for n, a in enumerate(articles) if a.image == p} for p in paths}
        matrix = view_scores(text_side, views, image_vectors).T
    rows = [p.name for p in paths]
    right = [sorted(truth[p]) for p in paths]
    result.rows, result.columns, result.matrix, result.truth = rows, columns, matrix, right

    best_column = matrix.argmax(axis=1)
    result.top1_accuracy = float(np.mean([best_column[r] in truth[p] for r, p in enumerate(paths)]))
    result.chance_top1 = float(np.mean([len(truth[p]) / len(columns) for p in paths]))
    best_row = matrix.argmax(axis=0)
    owners = [[r for r, p in enumerate(paths) if c in truth[p]] for c in range(len(columns))]
    result.column_top1_accuracy = float(np.mean([best_row[c] in owners[c] for c in range(len(columns))]))
    result.chance_column_top1 = float(np.mean([len(o) / len(paths) for o in owners]))
    for r, path in enumerate(paths):
        order = np.argsort(-matrix[r], kind="stable")
        wrong = [int(c) for c in order if c not in truth[path]]
        result.per_row.append(
            {
                "image": rows[r],
                "right": [columns[c] for c in right[r]],
                "top": [
                    {"column": columns[c], "score": float(matrix[r, c]), "right": int(c) in truth[path]}
                    for c in order[:TOP]
                ],
                "confusions": [{"column": columns[c], "score": float(matrix[r, c])} for c in wrong[:TOP]],
            }
        )
    return result
