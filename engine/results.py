"""What the API returns: plain dataclasses the CLI only renders.

``AskResult.to_dict`` is the documented JSON schema (``schema_version`` changes
whenever a field changes meaning or disappears).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

# 2: style, relevance cutoff, retrieval scores per sentence, generated captions, faithfulness, timings.
# 3: relevance is the evidence decision (engine/ask/evidence.py): agreement, uncovered_words,
#    uncovered_share, max_uncovered; sources are numbered by relevance.
ASK_SCHEMA_VERSION = 3


@dataclass
class Progress:
    """How far a long operation is: ``done`` of ``total`` items, working on ``current``."""

    done: int
    total: int
    current: str


@dataclass
class SourceRef:
    number: int  # the [n] that summary sentences cite
    document_id: int
    title: str | None
    url: str
    published: str | None


@dataclass
class SummarySentence:
    text: str
    citations: list[int]  # source numbers
    document_id: int
    chunk_id: int
    relevance: float  # cosine similarity to the question, text model
    # How retrieval found the passage it comes from: dense/bm25 scores and ranks, rrf, rerank.
    retrieval: dict[str, float | int | None] = field(default_factory=dict)
    # Abstractive summaries only: whether a cited evidence sentence supports it (None: extractive,
    # which quotes the evidence itself), and the best similarity found.
    supported: bool | None = None
    support: float | None = None


@dataclass
class ImageHit:
    image_id: int
    path: str  # absolute path of the stored file
    source: int | None  # number of the source page that shows it
    src_url: str
    alt: str | None
    caption: str | None  # the page's own caption (figcaption)
    width: int
    height: int
    score: float
    # The parts the score is made of, each a similarity in [-1, 1] (engine/ask/images.py): context
    # (text model), clip_topic, clip_evidence, clip_context and alignment (when CLIP is available).
    parts: dict[str, float] = field(default_factory=dict)
    sentence: int | None = None  # index of the summary sentence it illustrates best
    generated_caption: str | None = None  # from the captioning model, when configured


@dataclass
class AskResult:
    query: str
    summary: list[SummarySentence]
    sources: list[SourceRef]
    images: list[ImageHit]
    notices: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    style: str = "bullets"  # bullets | paragraph | brief | detailed
    # The evidence decision: threshold, where it came from (calibrated | request | config | off),
    # the best passage score, agreement, the uncovered words and their share of the question's
    # meaning, and whether anything passed (nothing_relevant).
    relevance: dict[str, Any] = field(default_factory=dict)
    # Abstractive summaries: sentences generated, kept, dropped or marked as unsupported.
    faithfulness: dict[str, Any] | None = None
    # Images left out, by reason (below_min_alignment, near_duplicate).
    images_dropped: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage
    # `ask --new`: since (ISO 8601, None the first time), new_documents (stored since then), cited_last_time.
    new: dict[str, Any] | None = None

    @property
    def nothing_new(self) -> bool:
        return bool(self.new) and self.new.get("since") is not None and self.new.get("new_documents") == 0

    @property
    def nothing_relevant(self) -> bool:
        return bool(self.relevance.get("nothing_relevant"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": ASK_SCHEMA_VERSION,
            "query": self.query,
            "style": self.style,
            "summary": [asdict(s) for s in self.summary],
            "sources": [asdict(s) for s in self.sources],
            "images": [asdict(i) for i in self.images],
            "images_dropped": dict(self.images_dropped),
            "relevance": dict(self.relevance),
            "faithfulness": self.faithfulness,
            "notices": list(self.notices),
            "settings": dict(self.settings),
            "timings_ms": dict(self.timings_ms),
            "new": self.new,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AskResult":
        """The result ``to_dict`` gave (e.g. read back from ``POST /v1/ask``), ``schema_version`` aside.

        Raises:
            KeyError, TypeError: ``data`` is not an answer of this schema.
        """
        return cls(
            query=data["query"],
            style=data["style"],
            summary=[SummarySentence(**s) for s in data["summary"]],
            sources=[SourceRef(**s) for s in data["sources"]],
            images=[ImageHit(**i) for i in data["images"]],
            images_dropped=dict(data["images_dropped"]),
            relevance=dict(data["relevance"]),
            faithfulness=data["faithfulness"],
            notices=list(data["notices"]),
            settings=dict(data["settings"]),
            timings_ms=dict(data["timings_ms"]),
            new=data.get("new"),
        )


# Status lives here rather than beside store_status (engine/store/health.py) so that
# `engine status --server` can read it back without importing SQLAlchemy and numpy.


@dataclass
class TopicStatus:
    name: str
    documents: int
    images: int
    chunks: int
    last_update: float | None
    # The crawl (engine index --topics without --from): when its last round ended, when
    # --watch runs the next, its URLs by status, and why the failed/gone/skipped ones were.
    last_crawl: float | None = None
    next_crawl: float | None = None
    urls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class StatusReport:
    store: str
    documents: int
    sources: int
    chunks: int
    images: int
    vectors: dict[str, int]
    images_without_clip: int
    bytes: dict[str, int]
    models: dict[str, str]
    topics: list[TopicStatus]
    last_run: dict | None
    # Per vector space, its FAISS index as the manifest describes it: kind, vectors,
    # recall@10 measured at build, search parameters, estimated memory (engine/ann).
    indexes: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StatusReport":
        """The report ``to_dict`` gave (e.g. read back from ``GET /v1/status``).

        Raises:
            KeyError, TypeError: ``data`` is not a status report.
        """
        return cls(**{**data, "topics": [TopicStatus(**t) for t in data["topics"]]})
