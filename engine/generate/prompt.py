"""The prompt a generator gets, and the cited sentences read back out of its answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from engine.sentences import split_sentences

STYLES = {
    "bullets": "Write at most {n} short sentences, one per line, each line starting with '- '.",
    "paragraph": "Write one paragraph of at most {n} sentences.",
    "brief": "Answer in at most {brief} sentences.",
    "detailed": "Write up to {n} sentences that together cover every relevant point of the evidence.",
}

SYSTEM = (
    "You summarise evidence for a reader. Use only facts stated in the evidence; never add facts "
    "from elsewhere. End every sentence with the number of the evidence it comes from in square "
    "brackets, like [2] or [1, 3]. If the evidence does not answer the question, say so in one sentence."
)

# [3], [1, 2], [1; 2] — each group's numbers are citations.
CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
CITATIONS_ONLY = re.compile(r"^(?:\s*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+[\s.]*$")
LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)


@dataclass
class ParsedSentence:
    text: str  # citation markers removed
    citations: list[int]  # source numbers that exist in the evidence, in order of first mention
    unknown_citations: int  # numbers that point at no evidence source (removed)


def build_messages(
    query: str,
    evidence: Sequence[tuple[str, int]],
    style: str = "bullets",
    max_sentences: int = 5,
    language: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking for a cited summary of ``evidence`` ((sentence, source number) pairs).

    Raises:
        ValueError: for an unknown style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown summary style {style!r} (known: {', '.join(STYLES)})")
    lines = "\n".join(f"[{source}] {' '.join(text.split())}" for text, source in evidence)
    instruction = STYLES[style].format(n=max_sentences, brief=min(2, max_sentences))
    if language:
        instruction += f" Write in the language whose code or name is {language!r}."
    user = (
        f"Question: {query}\n\nEvidence:\n{lines}\n\n{instruction} "
        "Cite the evidence number in square brackets after each sentence."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_answer(text: str, known_sources: set[int], language: str | None = None) -> list[ParsedSentence]:
    """The sentences of a generated answer with their citations.

    List markers are removed; a citation that a sentence splitter cut off into a piece of
    its own ("… roasted. [1]") goes to the sentence before it.
    """
    # Lines are split apart first: a model's list items often lack a full stop.
    pieces = [p for line in LIST_MARKER.sub("", text).splitlines() for p, _, _ in split_sentences(line, language)]
    out: list[ParsedSentence] = []
    for piece in pieces:
        numbers = [int(n) for group in CITATION.findall(piece) for n in re.split(r"[,;]", group)]
        known = list(dict.fromkeys(n for n in numbers if n in known_sources))
        unknown = len(numbers) - sum(1 for n in numbers if n in known_sources)
        if CITATIONS_ONLY.match(piece):
            if out:
                previous = out[-1]
                previous.citations = list(dict.fromkeys(previous.citations + known))
                previous.unknown_citations += unknown
            continue
        out.append(ParsedSentence(strip_citations(piece), known, unknown))
    return [s for s in out if s.text]


def strip_citations(sentence: str) -> str:
    """``sentence`` without its [n] markers and the spaces they leave before punctuation."""
    text = CITATION.sub("", sentence)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = re.sub(r"([.!?])\.+$", r"\1", text)  # "roasted. [1]." leaves "roasted.."
    return " ".join(text.split())
