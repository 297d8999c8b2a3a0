"""Reading the best passages: near-duplicates collapsed, split into statements.

A page stored three times (a syndicated article and two reprints) is read once, so it
neither crowds other sources out of the evidence nor repeats itself in the summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select

from engine.ask.retrieval import Hit, Passage, read_passages
from engine.sentences import split_sentences
from engine.store.schema import TEXT_SPACE, chunks
from engine.store.store import Store

# Two passages whose text-model vectors are this close say the same thing: a syndicated
# copy or a reprint with a word changed. Only the better-ranked one is read.
NEAR_DUPLICATE = 0.95
# A heading ("The roasting machine") or a link label is not a statement worth citing.
MIN_WORDS = 6
ENDS_LIKE_A_SENTENCE = re.compile(r"[.!?\"'”’)]$")


@dataclass(frozen=True)
class Sentence:
    text: str
    document_id: int
    chunk_id: int
    offset: int  # character offset inside the document, for reading order


def distinct_passages(store: Store, hits: list[Hit], count: int, dim: int) -> tuple[list[Hit], list[Passage]]:
    """The first ``count`` distinct passages of ``hits`` (near-duplicates collapsed), with their text."""
    distinct = distinct_hits(store, hits, count, dim)
    texts = read_passages(store, [h.chunk_id for h in distinct])
    kept = [h for h in distinct if h.chunk_id in texts]  # a passage deleted since the index was read is skipped
    return kept, [texts[h.chunk_id] for h in kept]


def distinct_hits(store: Store, hits: list[Hit], count: int, dim: int) -> list[Hit]:
    """Up to ``count`` hits, one per group of near-duplicate passages, best group first.

    Each group is read from one copy: the one whose document ranks best among the copies', so
    every passage of a syndicated article is cited from the same copy. The hit carries the
    group's ranks, counted among distinct passages: three copies of one article at dense
    ranks 0-2 leave rank 1 to the next distinct passage.
    """
    window = hits[: 4 * count]  # enough to fill ``count`` even when every page is there three times
    vectors = store.read_vectors(TEXT_SPACE, [h.chunk_id for h in window], dim)
    documents = _documents(store, [h.chunk_id for h in window])
    group = duplicate_groups(vectors)
    document_rank = {d: n for n, d in enumerate(dict.fromkeys(documents))}
    members: dict[int, list[int]] = {}
    for n, leader in enumerate(group):
        members.setdefault(leader, []).append(n)
    dense = _group_ranks(window, group, "dense_rank")
    bm25 = _group_ranks(window, group, "bm25_rank")
    out = []
    for leader in list(members)[:count]:
        copy = min(members[leader], key=lambda n: document_rank[documents[n]])
        out.append(replace(window[copy], dense_rank=dense.get(leader), bm25_rank=bm25.get(leader)))
    return out


def _documents(store: Store, chunk_ids: list[int]) -> list[int | None]:
    with store.reading() as conn:
        owner = dict(conn.execute(select(chunks.c.id, chunks.c.document_id).where(chunks.c.id.in_(chunk_ids))).all())
    return [owner.get(i) for i in chunk_ids]


def duplicate_groups(vectors: np.ndarray) -> list[int]:
    """For each row, the first row it near-duplicates (cosine >= NEAR_DUPLICATE), else itself."""
    leaders: list[int] = []
    group = []
    for n in range(len(vectors)):
        twin = next((m for m in leaders if float(vectors[m] @ vectors[n]) >= NEAR_DUPLICATE), None)
        if twin is None:
            leaders.append(n)
        group.append(n if twin is None else twin)
    return group


def _group_ranks(window: list[Hit], group: list[int], field: str) -> dict[int, int]:
    """Each group's rank in one ranking, counted among groups (by the best member's rank there)."""
    best: dict[int, int] = {}
    for n, hit in enumerate(window):
        rank = getattr(hit, field)
        if rank is not None and (group[n] not in best or rank < best[group[n]]):
            best[group[n]] = rank
    return {leader: position for position, leader in enumerate(sorted(best, key=best.__getitem__))}


def statements(passages: list[Passage]) -> tuple[list[Sentence], list[int]]:
    """The distinct, statement-like sentences of ``passages`` and the passage each comes from."""
    seen: set[str] = set()
    out, owners = [], []
    for n, passage in enumerate(passages):
        for sentence, start, _ in split_sentences(passage.text, passage.language):
            key = " ".join(sentence.lower().split())
            if key in seen or len(sentence.split()) < MIN_WORDS or not ENDS_LIKE_A_SENTENCE.search(sentence):
                continue
            seen.add(key)
            out.append(Sentence(sentence, passage.document_id, passage.chunk_id, passage.start_char + start))
            owners.append(n)
    return out, owners
