"""Summary stage: MMR, reading order, and the citation-numbering rule."""

from __future__ import annotations

import numpy as np

from engine.ask.reading import Sentence
from engine.ask.summary import mmr, reading_order, source_numbers


def test_mmr_starts_where_told_and_avoids_repeating_itself():
    query = np.array([1.0, 0.0, 0.0], np.float32)
    vectors = np.array([[0.9, 0.43, 0.0], [0.9, 0.43, 0.0], [0.6, 0.0, 0.8], [0.2, 0.98, 0.0]], np.float32)
    assert mmr(query, vectors, 2, 0.5) == [0, 2]  # the duplicate of row 0 is skipped for diversity
    assert mmr(query, vectors, 2, 1.0)[0] == 0
    assert mmr(query, vectors, 1, 0.7, first=3) == [3]
    assert mmr(query, vectors, 0, 0.7) == [] and mmr(query, np.zeros((0, 3), np.float32), 3, 0.7) == []


def test_sentences_are_grouped_by_document_in_relevance_then_page_order():
    candidates = [
        Sentence("a", 7, 1, 500),
        Sentence("b", 7, 1, 20),
        Sentence("c", 3, 2, 0),
        Sentence("d", 7, 4, 900),
    ]
    assert reading_order(candidates, [3, 2, 0, 1]) == [1, 0, 3, 2]


def test_source_one_is_the_most_relevant_cited_document():
    # Document 9 is cited first in page order, but 4 is more relevant: 4 gets [1].
    assert source_numbers([9, 4, 9, 6], [4, 6, 9]) == {4: 1, 6: 2, 9: 3}
    # An uncited relevant document takes no number; a page shown only for an image comes last.
    assert source_numbers([6, 12], [4, 6]) == {6: 1, 12: 2}
