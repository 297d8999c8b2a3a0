"""What the API returns: plain dataclasses the CLI only renders.

``AskResult.to_dict`` is the documented JSON schema (``schema_version`` changes
whenever a field changes meaning or disappears).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ASK_SCHEMA_VERSION = 1


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


@dataclass
class ImageHit:
    image_id: int
    path: str  # absolute path of the stored file
    source: int | None  # number of the source page that shows it
    src_url: str
    alt: str | None
    caption: str | None
    width: int
    height: int
    score: float
    # The parts the score is made of, each a similarity in [-1, 1]: context (text model,
    # topic vs. alt/caption/nearby text), clip_topic and clip_evidence (when CLIP is available).
    parts: dict[str, float] = field(default_factory=dict)
    sentence: int | None = None  # index of the summary sentence it illustrates best


@dataclass
class AskResult:
    query: str
    summary: list[SummarySentence]
    sources: list[SourceRef]
    images: list[ImageHit]
    notices: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": ASK_SCHEMA_VERSION,
            "query": self.query,
            "summary": [asdict(s) for s in self.summary],
            "sources": [asdict(s) for s in self.sources],
            "images": [asdict(i) for i in self.images],
            "notices": list(self.notices),
            "settings": dict(self.settings),
        }
