"""Asks remembered (question, time, documents cited), so `engine ask --new` knows since when.

A question is the same question again when its words are: case, spacing and a trailing
question mark do not matter. Remembering is best effort: an answer is never lost because
its ask could not be written (a read-only store, a writer holding SQLite's lock too long).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import distinct, func, insert, select
from sqlalchemy.exc import OperationalError

from engine.ask.request import Filters
from engine.store.schema import asks, chunks
from engine.store.store import Store


@dataclass(frozen=True)
class LastAsk:
    asked_at: float
    cited: list[int]


def question_key(question: str) -> str:
    return re.sub(r"\s+", " ", question.casefold()).strip().rstrip("?!. ").strip()


def last_ask(store: Store, question: str) -> LastAsk | None:
    """The latest remembered ask of ``question``, or None if it was never asked."""
    with store.reading() as conn:
        row = conn.execute(
            select(asks.c.asked_at, asks.c.cited)
            .where(asks.c.question_key == question_key(question))
            .order_by(asks.c.asked_at.desc())
            .limit(1)
        ).first()
    return None if row is None else LastAsk(row.asked_at, json.loads(row.cited))


def what_is_new(store: Store, filters: Filters, topic_min_similarity: float, last: LastAsk | None) -> dict[str, Any]:
    """The JSON ``new`` of an ``ask --new`` result: since when, and how many documents (within
    the other filters) were stored or changed since; everything counts the first time."""
    from engine.ask.retrieval import allowed_query

    allowed = allowed_query(filters, topic_min_similarity)  # filters.added_after is the last ask
    with store.reading() as conn:
        count = conn.execute(select(func.count(distinct(chunks.c.document_id))).where(chunks.c.id.in_(allowed))).scalar_one()
    since = None if last is None else datetime.fromtimestamp(last.asked_at, timezone.utc).isoformat(timespec="seconds")
    return {"since": since, "new_documents": count, "cited_last_time": [] if last is None else last.cited}


def remember(store: Store, question: str, asked_at: float, cited: list[int], new_only: bool) -> str | None:
    """Record the ask; None, or why it could not be recorded (for a notice)."""
    try:
        with store.transaction() as conn:
            conn.execute(
                insert(asks).values(
                    question=question, question_key=question_key(question), asked_at=asked_at,
                    new_only=new_only, cited=json.dumps(sorted(set(cited))),
                )
            )
    except OperationalError as exc:
        return f"this ask was not remembered for --new ({str(exc.orig or exc).splitlines()[0]})"
    return None
