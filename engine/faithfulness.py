"""Is a generated sentence supported by the evidence it cites?

Two judges. By default, text-model similarity: a sentence is supported when its cosine
similarity to some evidence sentence of a cited source reaches a threshold (0.6 by
default; benchmarks/faithfulness_threshold.py shows why). That catches sentences about
something else and most invented claims about the same topic, but not a changed number
in otherwise copied wording. An NLI cross-encoder, when configured, judges entailment
instead and can catch those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from engine.errors import ModelUnavailableError

# The NLI model reads only the few cited evidence sentences most similar to the claim.
NLI_CANDIDATES = 3


@dataclass(frozen=True)
class Support:
    supported: bool
    evidence: int | None  # index of the best-supporting evidence sentence; None when none is cited
    similarity: float  # cosine similarity to that sentence (text model)
    entailment: float | None = None  # NLI probability of entailment, when an NLI model judged


class NliJudge:
    """An NLI sequence-classification model from a local folder (e.g. a cross-encoder/nli-* checkpoint).

    Args:
        path: a local folder with the model, its tokenizer and an ``id2label`` naming an
            entailment label.
    """

    def __init__(self, path: str):
        self.path = path

    @cached_property
    def _loaded(self):  # noqa: ANN202 - (model, tokenizer, entailment label index)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(self.path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            raise ModelUnavailableError(f"NLI model {self.path!r} could not be loaded: {exc}") from exc
        labels = {int(i): str(name).lower() for i, name in model.config.id2label.items()}
        entail = [i for i, name in labels.items() if name.startswith("entail")]
        if not entail:
            raise ModelUnavailableError(
                f"NLI model {self.path!r} has no entailment label (its labels: {sorted(labels.values())})"
            )
        model.eval()
        return model, tokenizer, entail[0]

    def entailment(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """P(premise entails hypothesis) for each (premise, hypothesis) pair."""
        import torch

        model, tokenizer, entail = self._loaded
        if not pairs:
            return np.zeros(0, np.float32)
        batch = tokenizer(
            [p for p, _ in pairs], [h for _, h in pairs], padding=True, truncation=True, return_tensors="pt"
        )
        with torch.inference_mode():
            probabilities = model(**batch).logits.float().softmax(dim=-1)
        return probabilities[:, entail].numpy()


def judge_support(
    claims: Sequence[tuple[str, Sequence[int]]],
    evidence: Sequence[tuple[str, int]],
    encoder,  # noqa: ANN001 - engine.encoders.text.TextEncoder or anything with .encode(texts)
    threshold: float,
    nli: NliJudge | None = None,
) -> list[Support]:
    """One :class:`Support` per claim.

    Args:
        claims: (sentence without citation markers, cited source numbers); a claim citing
            nothing is compared with every evidence sentence.
        evidence: (evidence sentence, its source number).
        encoder: the text encoder; vectors must be L2-normalised.
        threshold: least cosine similarity that counts as support (when no NLI judge).
        nli: an NLI judge; when given, support means entailment probability ≥ 0.5 for one
            of the most similar cited evidence sentences.
    """
    if not claims:
        return []
    sources = np.array([source for _, source in evidence])
    if len(evidence) == 0:
        return [Support(False, None, 0.0) for _ in claims]
    similarity = encoder.encode([text for text, _ in claims]) @ encoder.encode([text for text, _ in evidence]).T
    out = []
    for row, (text, cited) in zip(similarity, claims):
        allowed = np.isin(sources, list(cited)) if cited else np.ones(len(evidence), bool)
        if not allowed.any():
            out.append(Support(False, None, 0.0))
            continue
        ranked = [int(i) for i in np.argsort(-np.where(allowed, row, -np.inf)) if allowed[i]]
        best = ranked[0]
        if nli is None:
            out.append(Support(bool(row[best] >= threshold), best, round(float(row[best]), 4)))
            continue
        top = ranked[:NLI_CANDIDATES]
        probabilities = nli.entailment([(evidence[i][0], text) for i in top])
        pick = int(np.argmax(probabilities))
        out.append(
            Support(
                bool(probabilities[pick] >= 0.5),
                top[pick],
                round(float(row[top[pick]]), 4),
                round(float(probabilities[pick]), 4),
            )
        )
    return out
