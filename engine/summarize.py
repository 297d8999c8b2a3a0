"""Extractive summaries: sentences picked by MMR for relevance and diversity, each cited."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.sentences import split_sentences

# Summary styles, and how many sentences each makes of the configured max_sentences.
# bullets and paragraph differ only in rendering.
STYLES = {
    "bullets": lambda n: n,
    "paragraph": lambda n: n,
    "brief": lambda n: min(n, 2),
    "detailed": lambda n: 2 * n,
}

# A heading ("The roasting machine") is not a statement worth citing.
MIN_WORDS = 6
ENDS_LIKE_A_SENTENCE = re.compile(r"[.!?\"'”’)]$")


@dataclass
class Candidate:
    text: str
    document_id: int
    chunk_id: int
    doc_rank: int  # rank of its document among the evidence (0 = best)
    offset: int  # character offset inside the document, for reading order


def candidate_sentences(evidence: list[dict]) -> list[Candidate]:
    """Distinct, statement-like sentences of the evidence chunks, best chunks first.

    ``evidence`` rows carry chunk_id, document_id, text, start_char, language, doc_rank.
    """
    seen: set[str] = set()
    out = []
    for row in evidence:
        for sentence, start, _ in split_sentences(row["text"], row.get("language")):
            key = " ".join(sentence.lower().split())
            if key in seen or len(sentence.split()) < MIN_WORDS or not ENDS_LIKE_A_SENTENCE.search(sentence):
                continue
            seen.add(key)
            out.append(Candidate(sentence, row["document_id"], row["chunk_id"], row["doc_rank"], row["start_char"] + start))
    return out


def mmr(query: np.ndarray, vectors: np.ndarray, k: int, trade_off: float) -> list[int]:
    """Indices of ``k`` rows chosen by maximal marginal relevance.

    Each pick maximises ``trade_off * sim(query, s) - (1 - trade_off) * max sim(s, picked)``.
    """
    if len(vectors) == 0 or k <= 0:
        return []
    relevance = vectors @ query
    chosen: list[int] = []
    redundancy = np.full(len(vectors), -np.inf)
    for _ in range(min(k, len(vectors))):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        score = trade_off * relevance - (1 - trade_off) * penalty
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, vectors @ vectors[best])
    return chosen


def reading_order(candidates: list[Candidate], picked: list[int]) -> list[int]:
    """Picked sentences grouped by document (best document first), in page order."""
    return sorted(picked, key=lambda i: (candidates[i].doc_rank, candidates[i].offset))
