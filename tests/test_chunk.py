"""Chunking: every chunk fits the model whole, sentences are never lost, overlap is kept."""

from __future__ import annotations

import pytest

from engine.sentences import split_sentences
from indexer.chunk import chunk_text

PARAGRAPHS = [
    "Coffee beans are roasted in a drum. Dr. Smith measured 3.5 kg of beans at 200 C. The beans crack twice.",
    "Espresso is brewed under pressure. It takes about 25 seconds! Crema forms on top.",
    "A very long sentence follows " + "with many words " * 120 + "and finally ends here.",
]
TEXT = "\n\n".join(PARAGRAPHS)


def test_sentences_keep_abbreviations_and_offsets():
    sentences = split_sentences(TEXT)
    texts = [s for s, _, _ in sentences]
    assert "Dr. Smith measured 3.5 kg of beans at 200 C." in texts
    for sentence, start, end in sentences:
        assert TEXT[start:end] == sentence


def test_chunks_fit_the_model_with_its_real_tokenizer(text_encoder):
    limit = 64
    chunks = chunk_text(TEXT, text_encoder.count_tokens, limit, overlap_tokens=16)
    assert len(chunks) > 3
    real = text_encoder.count_tokens([c.text for c in chunks])
    # The count is per sentence; joining may merge a boundary token or two, never many.
    assert all(n <= limit + 2 for n in real), real
    # No word of the text is lost: every character offset is covered by some chunk.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
        assert TEXT[c.start : c.end] == c.text
    words = [i for i, ch in enumerate(TEXT) if not ch.isspace()]
    assert all(i in covered for i in words)


def test_consecutive_chunks_overlap_by_whole_sentences(text_encoder):
    chunks = chunk_text("\n\n".join(PARAGRAPHS[:2]) * 3, text_encoder.count_tokens, 40, overlap_tokens=12)
    overlapping = [a for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert overlapping, "with an overlap budget, some chunk repeats the end of the one before"
    for a, b in zip(chunks, chunks[1:]):
        assert b.start >= a.start


def test_a_single_enormous_word_is_cut_not_truncated():
    blob = "x" * 5000
    count = lambda texts: [max(1, len(t) // 4) for t in texts]  # noqa: E731 - 4 chars a token
    chunks = chunk_text(f"Start. {blob} End.", count, 100)
    assert all(c.n_tokens <= 100 for c in chunks)
    assert "".join(c.text for c in chunks).count("x") >= 5000


def test_too_small_budget_is_refused():
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_text("Hello.", lambda t: [1] * len(t), 4)
