"""The evidence decision: which retrieved passages are evidence for the question, if any."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ask.retrieval import Hit


@dataclass(frozen=True)
class Decision:
    evidence: list[Hit]  # the passages to answer from, most relevant first
    relevance: dict  # what the answer reports about the decision (AskResult.relevance)
    notice: str | None  # why nothing was kept, for the user


def decide(hits: list[Hit], threshold: float | None, origin: str, k: int, filtered: bool) -> Decision:
    """The hits whose dense score reaches ``threshold`` (all when None), at most ``k``."""
    best = max((h.dense for h in hits), default=None)
    kept = hits if threshold is None else [h for h in hits if h.dense is not None and h.dense >= threshold]
    relevance = {
        "threshold": threshold,
        "origin": origin,
        "best_score": None if best is None else round(best, 4),
        "passages_above": len(kept),
        "nothing_relevant": not kept,
    }
    notice = None
    if not kept:
        where = " within the filters" if filtered else ""
        notice = (
            f"nothing relevant found{where}: the best passage scored "
            f"{'n/a' if best is None else f'{best:.2f}'}, below the relevance cutoff {threshold:.2f} "
            f"({origin}; --min-score changes it)"
            if threshold is not None
            else f"nothing found{where}"
        )
    return Decision(kept[:k], relevance, notice)
