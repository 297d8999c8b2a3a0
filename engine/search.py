"""Passage search: the ask pipeline's retrieval alone, ranked passages with their sources, no summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.ask.request import AskRequest, resolve
from engine.ask.retrieval import read_passages, retrieve
from engine.ask.summary import document_sources
from engine.config import Config
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store

SEARCH_SCHEMA_VERSION = 1


@dataclass
class PassageHit:
    rank: int  # 1 = best
    chunk_id: int
    document_id: int
    text: str
    score: float  # the fused (reciprocal rank) score the ranking is by
    retrieval: dict[str, float | int | None]  # dense/bm25 scores and ranks, rrf, rerank
    title: str | None
    url: str | None
    published: str | None


@dataclass
class SearchResult:
    query: str
    k: int
    passages: list[PassageHit]
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SEARCH_SCHEMA_VERSION,
            "query": self.query,
            "k": self.k,
            "passages": [asdict(p) for p in self.passages],
            "notices": list(self.notices),
        }


def search(store: Store, text, config: Config, question: str, k: int | None = None, reranker=None) -> SearchResult:  # noqa: ANN001
    """The ``k`` best passages for ``question`` (default ``ask.k``) as ``engine ask`` retrieves them.

    Args:
        text: the text encoder (engine.encoders.text.TextEncoder).
        reranker: the cross-encoder, when one is configured.

    Raises:
        ConfigError: an empty question or a bad ``k``, naming it.
    """
    plan = resolve(AskRequest(question, k=k), config.ask, generator_configured=False)
    if store.vector_version(TEXT_SPACE) == 0:
        notice = "the store is empty: index something first (engine index --topics FILE --from PATH)"
        return SearchResult(plan.question, plan.k, [], [notice])
    store.bind_model((TEXT_SPACE,), text.name, text.dim)  # refuses vectors of another model
    query_vector = text.encode([plan.question])[0]
    index = store.index(TEXT_SPACE, text.dim)
    found = retrieve(store, index, plan, query_vector, config.index.topic_min_similarity, reranker)
    hits = found.hits[: plan.k]
    passages = read_passages(store, [h.chunk_id for h in hits])
    sources = document_sources(store, list({p.document_id for p in passages.values()}))
    ranked = []
    for hit in hits:
        passage = passages.get(hit.chunk_id)
        if passage is None:  # deleted since the index was built
            continue
        source = sources.get(passage.document_id, {})
        ranked.append(
            PassageHit(
                rank=len(ranked) + 1,
                chunk_id=hit.chunk_id,
                document_id=passage.document_id,
                text=passage.text,
                score=round(hit.rrf, 5),
                retrieval=hit.parts(),
                title=source.get("title"),
                url=source.get("url"),
                published=source.get("published"),
            )
        )
    return SearchResult(plan.question, plan.k, ranked)
