"""Reading passages: near-duplicate collapse and statement extraction."""

from __future__ import annotations

import numpy as np

from engine.ask.reading import NEAR_DUPLICATE, _group_ranks, duplicate_groups, statements
from engine.ask.retrieval import Hit, Passage


def _unit(*rows):
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_near_duplicate_passages_are_read_once_keeping_the_better_ranked():
    vectors = _unit([1, 0, 0], [0.999, 0.04, 0], [0, 1, 0], [0.7, 0.7, 0], [0, 1, 0.01])
    assert float(vectors[0] @ vectors[1]) >= NEAR_DUPLICATE > float(vectors[0] @ vectors[3])
    assert duplicate_groups(vectors) == [0, 0, 2, 3, 2]
    assert duplicate_groups(np.zeros((0, 3), np.float32)) == []


def test_ranks_are_counted_among_distinct_passages():
    # Copies of passage 0 hold dense ranks 0-2; passage 3 is next in the dense ranking.
    window = [Hit(10, dense_rank=0, bm25_rank=5), Hit(11, dense_rank=1), Hit(12, dense_rank=2, bm25_rank=0), Hit(13, dense_rank=3, bm25_rank=1)]
    group = [0, 0, 0, 3]
    assert _group_ranks(window, group, "dense_rank") == {0: 0, 3: 1}
    assert _group_ranks(window, group, "bm25_rank") == {0: 0, 3: 1}


def test_statements_skip_headings_fragments_and_repeats():
    first = Passage(1, 10, "The roasting machine\n\nBeans are roasted at about 200 degrees for twelve minutes. Short one.", 100, "en")
    second = Passage(2, 11, "Beans are roasted at about 200 degrees for twelve minutes. Then they rest for a day before packing.", 0, "en")
    found, owners = statements([first, second])
    assert [s.text for s in found] == [
        "Beans are roasted at about 200 degrees for twelve minutes.",
        "Then they rest for a day before packing.",
    ]
    assert owners == [0, 1]
    assert found[0].offset == 100 + first.text.index("Beans") and found[1].document_id == 11
