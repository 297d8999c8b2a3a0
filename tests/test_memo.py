"""A memoised encoder gives exactly the encoder's vectors, encodes each text once, and stays bounded."""

from __future__ import annotations

import numpy as np

from engine.encoders.memo import Memo


class CountingEncoder:
    name = "counting"
    dim = 3

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):  # noqa: ANN001, ANN201
        self.seen += texts
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], np.float32).reshape(len(texts), 3)


def test_vectors_equal_the_encoders_and_each_text_is_encoded_once():
    encoder = CountingEncoder()
    memo = Memo(encoder, max_entries=10)
    first = memo.encode(["cat", "banana", "cat"])
    assert np.array_equal(first, encoder.encode(["cat", "banana", "cat"]))
    encoder.seen.clear()
    again = memo.encode(["banana", "apple", "cat"])
    assert encoder.seen == ["apple"]  # only the new text went to the model
    assert np.array_equal(again, CountingEncoder().encode(["banana", "apple", "cat"]))
    assert memo.name == "counting" and memo.dim == 3  # the rest is the encoder's
    assert memo.encode([]).shape == (0, 3)


def test_the_least_recently_used_text_is_forgotten_first():
    encoder = CountingEncoder()
    memo = Memo(encoder, max_entries=2)
    memo.encode(["a", "b"])
    memo.encode(["a"])  # a is now the most recent
    memo.encode(["c"])  # forgets b
    encoder.seen.clear()
    memo.encode(["a", "b", "c"])
    assert encoder.seen == ["b"]
