"""Abstractive summaries: a language model rewrites cited evidence, and every sentence it writes
is checked against the evidence it cites (engine.faithfulness) before it is kept.

Backends, both behind ``complete(messages, max_new_tokens, temperature, seed) -> str``:
:class:`LocalGenerator` (a transformers model or GGUF file on disk) and
:class:`OpenAICompatibleGenerator` (Ollama, vLLM, llama.cpp server, … by URL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Protocol, Sequence

from engine.config import GenerateConfig
from engine.errors import ConfigError
from engine.faithfulness import NliJudge, judge_support
from engine.generate.local import LocalGenerator
from engine.generate.openai_http import OpenAICompatibleGenerator
from engine.generate.prompt import STYLES, build_messages, parse_answer

UNSUPPORTED_MODES = ("drop", "mark")


class Generator(Protocol):
    name: str

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float = 0.0, seed: int = 0) -> str:
        ...


@dataclass
class GeneratedSentence:
    text: str  # without citation markers
    citations: list[int]  # source numbers
    supported: bool
    evidence: int | None  # index into the evidence list of the best-supporting sentence
    similarity: float  # text-model cosine similarity to that sentence
    entailment: float | None = None  # NLI probability, when an NLI model judged


@dataclass
class FaithfulnessReport:
    method: str  # "similarity" or "nli"
    threshold: float  # similarity threshold (method "similarity") or entailment probability 0.5 ("nli")
    mode: str  # drop | mark
    generated: int = 0  # distinct sentences the model wrote
    supported: int = 0
    dropped: int = 0  # unsupported and removed (mode drop)
    marked: int = 0  # unsupported and kept with supported = False (mode mark)
    repeated: int = 0  # exact repeats of an earlier sentence, removed
    unknown_citations: int = 0  # citation numbers that point at no evidence source, removed
    over_limit: int = 0  # kept sentences past max_sentences, removed


@dataclass
class GeneratedSummary:
    sentences: list[GeneratedSentence]
    report: FaithfulnessReport
    model: str
    raw: str  # the model's answer as it came
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_generator(config: GenerateConfig) -> Generator | None:
    """The configured generator, or None when abstractive summaries are off (no model)."""
    if config.url:
        return OpenAICompatibleGenerator(config.url, config.model, config.api_key_env, config.timeout_s)
    if config.model:
        return LocalGenerator(config.model)
    return None


class AbstractiveSummarizer:
    """Writes and checks abstractive summaries.

    Args:
        config: the ``[generate]`` settings.
        text_encoder: the text encoder used for the similarity check (the store's text model).
        generator: overrides the one ``config`` names (tests, a shared loaded model).
    """

    def __init__(self, config: GenerateConfig, text_encoder, generator: Generator | None = None):  # noqa: ANN001
        if config.unsupported not in UNSUPPORTED_MODES:
            raise ConfigError(f"generate.unsupported must be one of {', '.join(UNSUPPORTED_MODES)}, not {config.unsupported!r}")
        self.config = config
        self.text_encoder = text_encoder
        self.generator = generator or make_generator(config)
        if self.generator is None:
            raise ConfigError("abstractive summaries need generate.model (a local model) or generate.url")

    @cached_property
    def nli(self) -> NliJudge | None:
        return NliJudge(self.config.nli_model) if self.config.nli_model else None

    def summarize(
        self,
        query: str,
        evidence: Sequence[tuple[str, int]],
        style: str = "bullets",
        max_sentences: int = 5,
        language: str | None = None,
    ) -> GeneratedSummary:
        """Ask the generator for a cited summary of ``evidence`` and keep what the evidence supports.

        Args:
            query: the user's question.
            evidence: (evidence sentence, source number) pairs, in the order to show them.
            style: one of bullets, paragraph, brief, detailed.
            max_sentences: the most sentences to ask for and to keep.
            language: a language code or name to write in (None: the model's choice).

        Raises:
            ValueError: unknown style. GenerationError, ModelUnavailableError: the backend failed.
        """
        if style not in STYLES:
            raise ValueError(f"unknown summary style {style!r} (known: {', '.join(STYLES)})")
        if not evidence:
            return GeneratedSummary([], self._empty_report(), self.generator.name, "", ["no evidence to summarise"])
        messages = build_messages(query, evidence, style, max_sentences, language)
        c = self.config
        raw = self.generator.complete(messages, c.max_new_tokens, c.temperature, c.seed)
        return self.check(raw, evidence, max_sentences, language)

    def check(
        self,
        answer: str,
        evidence: Sequence[tuple[str, int]],
        max_sentences: int = 5,
        language: str | None = None,
    ) -> GeneratedSummary:
        """Parse a generated ``answer`` into cited sentences and judge each against ``evidence``.

        A sentence that cites nothing takes the source of its best-supporting evidence
        sentence when that one supports it. Unsupported sentences are dropped or marked
        (``generate.unsupported``).
        """
        report = self._empty_report()
        parsed, seen = [], set()
        for sentence in parse_answer(answer, {source for _, source in evidence}, language):
            report.unknown_citations += sentence.unknown_citations
            key = " ".join(sentence.text.lower().split())
            if key in seen:
                report.repeated += 1
                continue
            seen.add(key)
            parsed.append(sentence)
        report.generated = len(parsed)
        supports = judge_support(
            [(s.text, s.citations) for s in parsed], evidence, self.text_encoder, self.config.faithfulness_threshold, self.nli
        )
        kept: list[GeneratedSentence] = []
        for sentence, support in zip(parsed, supports):
            citations = sentence.citations
            if support.supported:
                report.supported += 1
                if not citations:
                    citations = [evidence[support.evidence][1]]
            elif self.config.unsupported == "drop":
                report.dropped += 1
                continue
            else:
                report.marked += 1
            kept.append(
                GeneratedSentence(
                    sentence.text, citations, support.supported, support.evidence, support.similarity, support.entailment
                )
            )
        report.over_limit = max(0, len(kept) - max_sentences)
        notices = []
        if report.dropped or report.marked:
            verb = "dropped" if report.dropped else "marked"
            notices.append(
                f"{report.dropped or report.marked} of {report.generated} generated sentences were not supported "
                f"by the evidence they cite and were {verb}"
            )
        return GeneratedSummary(kept[:max_sentences], report, self.generator.name, answer, notices)

    def _empty_report(self) -> FaithfulnessReport:
        if self.config.nli_model:
            return FaithfulnessReport("nli", 0.5, self.config.unsupported)
        return FaithfulnessReport("similarity", self.config.faithfulness_threshold, self.config.unsupported)


__all__ = [
    "STYLES",
    "AbstractiveSummarizer",
    "FaithfulnessReport",
    "GeneratedSentence",
    "GeneratedSummary",
    "Generator",
    "LocalGenerator",
    "OpenAICompatibleGenerator",
    "make_generator",
]
