"""What a question asks for: one frozen request, validated in one place.

The CLI, the Python API and (later) the HTTP API all build an :class:`AskRequest`; fields
left ``None`` take the ``[ask]`` settings. :func:`resolve` turns request + config into an
:class:`AskPlan` of concrete values, and every error names the setting and where it came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Mapping

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import AskConfig  # the CLI's --help reads STYLES without loading the config

# Summary styles, and how many sentences each makes of the configured max_sentences.
# bullets and paragraph differ only in rendering; detailed also reads twice the passages.
STYLES = {
    "bullets": lambda n: n,
    "paragraph": lambda n: n,
    "brief": lambda n: min(n, 2),
    "detailed": lambda n: 2 * n,
}


@dataclass(frozen=True)
class Filters:
    """What the user restricted the search to; empty fields restrict nothing."""

    topic: str | None = None
    source: str | None = None  # a substring of the page URL, e.g. a host name
    since: str | None = None  # ISO date; documents published on or after it
    until: str | None = None  # ISO date; documents published on or before it
    language: str | None = None  # e.g. "en": matches "en" and "en-GB"
    added_after: float | None = None  # seconds since the epoch: documents stored (or changed) after it

    def any(self) -> bool:
        return any((self.topic, self.source, self.since, self.until, self.language, self.added_after is not None))

    def active(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class AskRequest:
    """One question and how to answer it; ``None`` means "the configured default".

    Args:
        question: the question or topic.
        k: evidence passages to read.
        max_images: images to show (0: none).
        max_sentences: summary length before the style's adjustment.
        style: one of :data:`STYLES`.
        filters: restrict retrieval by topic, source, date or language.
        min_score: the evidence decision's relevance floor (engine/ask/evidence.py): "auto"
            (calibrated per store), a number (a fixed floor on the best passage's dense score),
            or "off" (no decision: whatever retrieval finds is evidence).
        max_uncovered: the most of the question's meaning that words absent from the best
            passages may carry (0-1).
        min_alignment: drop images whose CLIP alignment is below this ("off": keep all).
        images_only: answer with the best-aligned images, each described by its captions.
        abstractive: write the summary with the configured generator ([generate]).
        language: the summary's language.
        new: answer only from documents added or changed since this question was last asked
            (engine/ask/memory.py); the result's ``new`` says since when and how many.
        remember: record this ask (question, time, documents cited) for a later ``new``; off for
            warm-ups and evaluations, which are not the user's questions.
    """

    question: str
    k: int | None = None
    max_images: int | None = None
    max_sentences: int | None = None
    style: str | None = None
    filters: Filters = field(default_factory=Filters)
    min_score: float | str | None = None
    max_uncovered: float | None = None
    min_alignment: float | str | None = None
    images_only: bool = False
    abstractive: bool | None = None
    language: str | None = None
    new: bool = False
    remember: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "AskRequest":
        """A request from JSON-like data (the HTTP API); unknown fields are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown request field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(data)
        if isinstance(values.get("filters"), Mapping):
            filter_names = {f.name for f in fields(Filters)}
            bad = sorted(set(values["filters"]) - filter_names)
            if bad:
                raise ConfigError(f"unknown filter(s): {', '.join(bad)} (known: {', '.join(sorted(filter_names))})")
            values["filters"] = Filters(**values["filters"])
        if "question" not in values:
            raise ConfigError("the request has no question")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AskPlan:
    """A request resolved against the configuration: every value concrete and checked."""

    question: str
    k: int
    max_images: int
    max_sentences: int
    style: str
    filters: Filters
    min_score: float | str | None  # a number, "auto", or None (off)
    min_score_origin: str  # "request" | "config"
    max_uncovered: float
    reranker_min_score: float
    min_alignment: float | None
    images_only: bool
    abstractive: bool
    language: str | None
    mmr_lambda: float
    dense_weight: float
    bm25_weight: float
    reranker: str | None

    def settings(self) -> dict[str, Any]:
        """What the answer reports it was made with (``AskResult.settings``)."""
        return {
            "k": self.k,
            "max_images": self.max_images,
            "max_sentences": self.max_sentences,
            "mmr_lambda": self.mmr_lambda,
            "dense_weight": self.dense_weight,
            "bm25_weight": self.bm25_weight,
            "reranker": self.reranker,
            "filters": self.filters.active(),
            "images_only": self.images_only,
            "abstractive": self.abstractive,
            "language": self.language,
            "min_alignment": self.min_alignment,
        }


def resolve(request: AskRequest, settings: AskConfig, generator_configured: bool) -> AskPlan:
    """Check ``request`` and fill its defaults from ``settings`` (the ``[ask]`` section).

    Raises:
        ConfigError: naming the setting and whether the request or the config gave it.
    """
    question = (request.question or "").strip()
    if not question:
        raise ConfigError("the question is empty")
    style = _chosen(request.style, settings.style, "style")
    if style.value not in STYLES:
        raise ConfigError(f"{style.name} must be one of {', '.join(STYLES)}, not {style.value!r}")
    for name in ("k", "max_sentences"):
        value = getattr(request, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} (from the request) must be a whole number of at least 1, not {value!r}")
    if request.max_images is not None and (not isinstance(request.max_images, int) or request.max_images < 0):
        raise ConfigError(f"max_images (from the request) must be a whole number of at least 0, not {request.max_images!r}")
    detailed = style.value == "detailed"
    abstractive = generator_configured if request.abstractive is None else bool(request.abstractive)
    filters = request.filters
    if request.language and not abstractive:
        # Extractive summaries quote their sources, so they can only quote documents in the language.
        filters = Filters(**{**asdict(filters), "language": request.language})
    min_score = _chosen(request.min_score, settings.min_score, "min_score")
    min_alignment = _chosen(request.min_alignment, settings.min_alignment, "min_alignment")
    max_uncovered = _chosen(request.max_uncovered, settings.max_uncovered, "max_uncovered")
    if isinstance(max_uncovered.value, bool) or not isinstance(max_uncovered.value, (int, float)) or not 0 <= max_uncovered.value <= 1:
        raise ConfigError(f"{max_uncovered.name} must be a number from 0 to 1, not {max_uncovered.value!r}")
    return AskPlan(
        question=question,
        k=request.k or settings.k * (2 if detailed else 1),
        max_images=settings.max_images if request.max_images is None else request.max_images,
        max_sentences=request.max_sentences or STYLES[style.value](settings.max_sentences),
        style=style.value,
        filters=filters,
        min_score=threshold(min_score, allow_auto=True),
        min_score_origin=min_score.origin,
        max_uncovered=float(max_uncovered.value),
        reranker_min_score=settings.reranker_min_score,
        min_alignment=threshold(min_alignment),
        images_only=request.images_only,
        abstractive=abstractive,
        language=request.language,
        mmr_lambda=settings.mmr_lambda,
        dense_weight=settings.dense_weight,
        bm25_weight=settings.bm25_weight,
        reranker=settings.reranker or None,
    )


@dataclass(frozen=True)
class _Chosen:
    value: Any
    name: str  # how to name the setting in an error: "min_score (from the request)"
    origin: str  # "request" | "config"


def _chosen(from_request: Any, from_config: Any, name: str) -> _Chosen:
    if from_request is not None:
        return _Chosen(from_request, f"{name} (from the request)", "request")
    return _Chosen(from_config, f"ask.{name} (from the configuration)", "config")


def threshold(chosen: _Chosen, allow_auto: bool = False) -> float | str | None:
    """A threshold setting: a number, "off" (None) or, where allowed, "auto"."""
    value = chosen.value
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    word = str(value).strip().lower()
    if word in ("off", "none", ""):
        return None
    if allow_auto and word == "auto":
        return "auto"
    try:
        return float(word)
    except ValueError:
        choices = "a number, auto or off" if allow_auto else "a number or off"
        raise ConfigError(f"{chosen.name} must be {choices}, not {value!r}") from None
