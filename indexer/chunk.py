"""Chunking: sentences packed into chunks the text model reads whole, with overlap.

A sentence longer than the budget is split at word boundaries, so no text is
ever cut off by the model's own truncation.
"""

from __future__ import annotations

import bisect

import re
from dataclasses import dataclass
from typing import Callable

from engine.sentences import split_sentences

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int
    n_tokens: int


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets in the document text
    end: int
    n_tokens: int
    sentences: tuple[str, ...]


def chunk_holding(chunks: list[Chunk], char_offset: int) -> int:
    """The position of the chunk that holds ``char_offset`` of the document text (the last one
    starting at or before it; the first chunk for an offset before any)."""
    return max(0, bisect.bisect_right([c.start for c in chunks], char_offset) - 1)


def chunk_text(
    text: str,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int = 0,
    language: str | None = None,
) -> list[Chunk]:
    """Pack ``text``'s sentences into chunks of at most ``max_tokens`` tokens.

    Each chunk after the first starts with the last sentences of the one before,
    up to ``overlap_tokens`` tokens, so a statement split by a boundary is still
    whole in one chunk.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, not {max_tokens}")
    raw = split_sentences(text, language)
    counts = count_tokens([s for s, _, _ in raw])
    sentences: list[Sentence] = []
    for (sentence, start, end), n in zip(raw, counts):
        if n <= max_tokens:
            sentences.append(Sentence(sentence, start, end, n))
        else:
            sentences.extend(_split_long(text, start, end, count_tokens, max_tokens))

    chunks: list[Chunk] = []
    current: list[Sentence] = []
    used = 0
    for sentence in sentences:
        if current and used + sentence.n_tokens > max_tokens:
            chunks.append(_make_chunk(text, current))
            current = _overlap(current, overlap_tokens, max_tokens - sentence.n_tokens)
            used = sum(s.n_tokens for s in current)
        current.append(sentence)
        used += sentence.n_tokens
    if current:
        chunks.append(_make_chunk(text, current))
    return chunks


def _overlap(previous: list[Sentence], overlap_tokens: int, room: int) -> list[Sentence]:
    kept: list[Sentence] = []
    used = 0
    for sentence in reversed(previous):
        if used + sentence.n_tokens > min(overlap_tokens, room):
            break
        kept.insert(0, sentence)
        used += sentence.n_tokens
    return kept


def _make_chunk(text: str, sentences: list[Sentence]) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    return Chunk(
        text=text[start:end],
        start=start,
        end=end,
        n_tokens=sum(s.n_tokens for s in sentences),
        sentences=tuple(s.text for s in sentences),
    )


def _split_long(text: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int) -> list[Sentence]:
    """Cut an over-long sentence into word windows of at most ``max_tokens`` tokens."""
    words = [(m.group(), start + m.start()) for m in re.finditer(r"\S+", text[start:end])]
    counts = count_tokens([w for w, _ in words])
    words, counts = _split_long_words(words, counts, max_tokens)
    pieces: list[Sentence] = []
    first, used = 0, 0
    for i, n in enumerate(counts):
        if i > first and used + n > max_tokens:
            pieces.append(_window(text, words, first, i, used))
            first, used = i, 0
        used += n
    pieces.append(_window(text, words, first, len(words), used))
    return pieces


def _split_long_words(
    words: list[tuple[str, int]], counts: list[int], max_tokens: int
) -> tuple[list[tuple[str, int]], list[int]]:
    # A "word" of more tokens than a chunk holds (a long URL, base64) is cut into
    # character slices; each slice gets a proportional share of the count, with margin.
    out_words, out_counts = [], []
    for (word, at), n in zip(words, counts):
        if n <= max_tokens:
            out_words.append((word, at))
            out_counts.append(n)
            continue
        parts = -(-n * 5 // (max_tokens * 4))  # ceil(n / (0.8 * max_tokens))
        size = -(-len(word) // parts)
        for offset in range(0, len(word), size):
            out_words.append((word[offset : offset + size], at + offset))
            out_counts.append(-(-n // parts))
    return out_words, out_counts


def _window(text: str, words: list[tuple[str, int]], first: int, stop: int, used: int) -> Sentence:
    start = words[first][1]
    last_word, last_start = words[stop - 1]
    end = last_start + len(last_word)
    return Sentence(text[start:end], start, end, used)
