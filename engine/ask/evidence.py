"""The evidence decision: is anything stored an answer to this question, and which passages are?

A question is answered only when two tests pass, each on a different signal:

1. **Relevance** — something stored is about the question: the best passage's dense
   (text-model) score reaches the store's calibrated chance level (engine/ask/calibration.py),
   or one passage is near the top of both the dense and the BM25 ranking (two independent
   rankings agreeing is not chance) and scores at least what a typical unrelated question
   reaches (in a small store the top three of both rankings can meet by chance). Ranks are
   counted among distinct passages, so three copies of one page hold one rank, not three.
   With a reranker configured, its score of the best
   passage must reach ``ask.reranker_min_score`` instead: a cross-encoder reads question and
   passage together and is the better judge.
2. **Coverage** — the store holds what the question asks *about*: the question's words that
   occur in none of the best passages (FTS5's own tokenizer and stemmer, so "roasting" is
   found by "roasted"), nor in their documents' titles, authors or URLs, must not carry
   much of the question's meaning. That share is measured with the text model itself:
   ``1 - cos(question, question without those words)``. "How much does Erin Spiceland earn
   at SpaceX" finds her profile (relevant) but no word about pay: "earn" carries a quarter
   of the question's meaning, so the answer is "nothing relevant", not her job title.
   A long question with a few incidental words the pages lack ("my coworker keeps
   forwarding me…") loses little meaning without them and is answered.

Dense scores alone cannot make this decision: a question near the store's subjects scores
as high as an answerable one (benchmarks/answers.py measures both error directions).

When the question passes, the evidence is the distinct best passages (near-duplicates
collapsed by engine/ask/reading.py) that are themselves relevant, best first.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from engine.ask.calibration import probe_questions
from engine.ask.retrieval import Hit, Passage, query_words

# A passage ranked this high by both rankings counts as relevant whatever its dense score.
AGREEMENT_RANK = 3
# The coverage test reads this many of the best distinct passages.
COVERAGE_PASSAGES = 5
# A word in at least this share of the store's passages says nothing about which passage
# answers, so its absence from the best ones is not held against the question.
COMMON_SHARE = 0.05
# Words in at least this many of the calibration probes are how questions are phrased
# ("how", "does", "difference"), not what they ask about.
PHRASING_PROBES = 5
# The tokenizer of the store's FTS5 index (migrations/versions/0002), so "covered" means
# what a keyword search would find.
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Thresholds:
    """The decision's settings, resolved."""

    relevance: float | None  # dense score floor; None: the decision is off (everything retrieved is evidence)
    origin: str  # where ``relevance`` came from: calibrated | request | config | off
    max_uncovered: float  # the most of the question's meaning that uncovered words may carry
    reranker_min_score: float | None = None  # with a reranker: its floor for the best passage
    # The lower floor for a passage both rankings agree on (the probes' median: what a typical
    # unrelated question reaches); None: agreement does not lower the floor.
    agreement_floor: float | None = None


@dataclass(frozen=True)
class Decision:
    evidence: list[Hit]  # the passages to answer from, most relevant first
    relevance: dict  # what the answer reports about the decision (AskResult.relevance)
    notice: str | None  # why nothing was kept, for the user


def decide(
    question: str,
    query_vector: np.ndarray,
    hits: list[Hit],
    passages: list[Passage],
    labels: dict[int, str],
    encode: Callable[[list[str]], np.ndarray],
    passage_share: Callable[[list[str]], dict[str, float]],
    thresholds: Thresholds,
    k: int,
    filtered: bool = False,
) -> Decision:
    """Decide whether ``passages`` (the distinct best passages, with their ``hits``) answer ``question``.

    Args:
        labels: each document's title, author and URL, by document id (words there count as covered).
        encode: the text encoder's ``encode``, to weigh the uncovered words.
        passage_share: the share of the store's passages that contain each word.
        filtered: the search was restricted by filters (said in the notice).
    """
    best = max((h.dense for h in hits if h.dense is not None), default=None)
    report = {
        "threshold": thresholds.relevance,
        "origin": thresholds.origin,
        "best_score": None if best is None else round(best, 4),
        "max_uncovered": thresholds.max_uncovered,
    }
    if not hits:
        return _refuse(report, [], f"nothing found{' within the filters' if filtered else ''}")
    if thresholds.relevance is None:
        return Decision(hits[:k], report | {"passages_above": min(len(hits), k), "nothing_relevant": False}, None)
    relevant = [h for h in hits if _relevant(h, thresholds)]
    agreement = any(_agreed(h, thresholds) for h in hits)
    read = passages[:COVERAGE_PASSAGES]
    texts = [p.text for p in read] + [labels.get(p.document_id, "") for p in read]
    missing = telling(uncovered_words(question, texts), passage_share)
    share = meaning_share(question, missing, query_vector, encode)
    report |= {
        "agreement": agreement,
        "uncovered_words": missing,
        "uncovered_share": round(share, 4),
        "passages_above": min(len(relevant), k),
    }
    if thresholds.reranker_min_score is not None:
        report["best_rerank"] = max((h.rerank for h in hits if h.rerank is not None), default=None)
    where = " within the filters" if filtered else ""
    if not relevant:
        return _refuse(report, relevant, f"nothing relevant found{where}: {_why_irrelevant(report, thresholds)}")
    if share > thresholds.max_uncovered:
        words = ", ".join(f"'{w}'" for w in missing)
        return _refuse(
            report,
            relevant,
            f"nothing relevant found{where}: the best passages never mention {words}, which carry "
            f"{share:.0%} of the question's meaning (ask.max_uncovered = {thresholds.max_uncovered:.0%})",
        )
    return Decision(relevant[:k], report | {"nothing_relevant": False}, None)


def uncovered_words(question: str, texts: list[str]) -> list[str]:
    """The words of ``question`` that none of ``texts`` contains, as FTS5 would match them."""
    words = query_words(question)
    if not words:
        return []
    # A throwaway in-memory FTS5 table: the store's tokenizer without touching the store.
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{FTS_TOKENIZER}')")
        conn.executemany("INSERT INTO t(text) VALUES (?)", [(t,) for t in texts if t])
        return [w for w in words if conn.execute("SELECT 1 FROM t WHERE t MATCH ? LIMIT 1", (f'"{w}"',)).fetchone() is None]


def telling(words: list[str], passage_share: Callable[[list[str]], dict[str, float]]) -> list[str]:
    """``words`` without question phrasing and without words common across the store."""
    words = [w for w in words if w not in phrasing_words()]
    shares = passage_share(words) if words else {}
    return [w for w in words if shares.get(w, 0.0) < COMMON_SHARE]


@lru_cache(maxsize=1)
def phrasing_words() -> frozenset[str]:
    """Words that many of the calibration probes use: the vocabulary of asking."""
    counts = Counter(w for q in probe_questions() for w in query_words(q))
    return frozenset(w for w, n in counts.items() if n >= PHRASING_PROBES)


def meaning_share(question: str, words: list[str], query_vector: np.ndarray, encode: Callable[[list[str]], np.ndarray]) -> float:
    """How much of ``question``'s meaning ``words`` carry: 1 - cos(question, question without them)."""
    if not words:
        return 0.0
    drop = set(words)
    rest = " ".join(w for w in _WORD.findall(question) if w.lower() not in drop)
    if not rest.strip():
        return 1.0
    return float(np.clip(1.0 - float(encode([rest])[0] @ query_vector), 0.0, 1.0))


def _relevant(hit: Hit, thresholds: Thresholds) -> bool:
    if thresholds.reranker_min_score is not None and hit.rerank is not None:
        return hit.rerank >= thresholds.reranker_min_score
    return (hit.dense is not None and hit.dense >= thresholds.relevance) or _agreed(hit, thresholds)


def _agreed(hit: Hit, thresholds: Thresholds) -> bool:
    """Both rankings put ``hit`` near the top, and it scores above the agreement floor."""
    floor = thresholds.agreement_floor
    return floor is not None and hit.dense is not None and hit.dense >= floor and _agree(hit)


def _agree(hit: Hit) -> bool:
    return hit.dense_rank is not None and hit.bm25_rank is not None and max(hit.dense_rank, hit.bm25_rank) < AGREEMENT_RANK


def _why_irrelevant(report: dict, thresholds: Thresholds) -> str:
    if "best_rerank" in report and report["best_rerank"] is not None:
        return f"the reranker's best score is {report['best_rerank']:.2f}, below ask.reranker_min_score {thresholds.reranker_min_score:.2f}"
    best = report["best_score"]
    return (
        f"the best passage scored {'n/a' if best is None else f'{best:.2f}'}, below the relevance cutoff "
        f"{thresholds.relevance:.2f} ({thresholds.origin}; --min-score changes it)"
    )


def _refuse(report: dict, relevant: list[Hit], notice: str) -> Decision:
    return Decision([], report | {"passages_above": len(relevant), "nothing_relevant": True}, notice)
