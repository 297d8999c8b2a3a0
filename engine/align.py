"""Image ranking: how well each candidate image aligns with the topic AND the cited evidence.

Score parts, each a cosine similarity in [-1, 1]:

- ``clip_topic``: CLIP, the image against the question.
- ``clip_evidence``: CLIP, the image against the summary sentences; the best one (max),
  since an image illustrates one statement, not the average of all of them.
- ``clip_context``: CLIP, the image against the passage it sits in on its page (the
  stored mean of that chunk's sentence vectors; CLIP reads 77 tokens at most, so
  passages are embedded sentence by sentence, never truncated).
- ``context``: the text model, the image's own words (alt text, caption, generated
  caption, nearby sentences) against the question.

The score is the weighted mean of the parts available (CLIP parts are missing when
CLIP has no weights or the image has no vector yet). ``alignment`` — what
``--min-alignment`` filters on — is the CLIP part that best ties the image to the
question or evidence: max(clip_topic, clip_evidence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.encoders.clip import ClipEncoder
from engine.encoders.text import TextEncoder
from engine.near_duplicates import collapse
from engine.query import ImageCandidate
from engine.results import ImageHit
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE
from engine.store.store import Store

WEIGHTS = {"clip_topic": 0.35, "clip_evidence": 0.25, "clip_context": 0.15, "context": 0.25}


@dataclass
class Evidence:
    """What the images are scored against."""

    query: str
    query_vector: np.ndarray  # text model
    sentences: list[str]  # the summary sentences, in order
    sentence_vectors: np.ndarray  # text model, one row per sentence


def fuse(parts: dict[str, float]) -> float:
    """Weighted mean of the available score parts."""
    weights = {k: WEIGHTS[k] for k in parts if k in WEIGHTS}
    total = sum(weights.values())
    return sum(parts[k] * w for k, w in weights.items()) / total if total else 0.0


def rank_images(
    store: Store,
    text: TextEncoder,
    clip: ClipEncoder | None,
    candidates: list[ImageCandidate],
    evidence: Evidence,
    source_numbers: dict[int, int],
    max_images: int,
    min_alignment: float | None = None,
) -> tuple[list[ImageHit], dict[str, int]]:
    """The best ``max_images`` images, best first, and counts of what was dropped and why."""
    dropped = {"below_min_alignment": 0, "near_duplicate": 0}
    if not candidates or max_images <= 0:
        return [], dropped
    descriptions = text.encode([c.description() or c.src_url for c in candidates])
    parts = [{"context": float(d @ evidence.query_vector)} for d in descriptions]
    has_sentences = len(evidence.sentences) > 0
    by_sentence = descriptions @ evidence.sentence_vectors.T if has_sentences else None
    if clip is not None:
        by_sentence = _clip_parts(store, clip, candidates, evidence, parts, by_sentence)
    order = sorted(range(len(candidates)), key=lambda n: fuse(parts[n]), reverse=True)
    if min_alignment is not None:
        kept = [n for n in order if "alignment" not in parts[n] or parts[n]["alignment"] >= min_alignment]
        dropped["below_min_alignment"] = len(order) - len(kept)
        order = kept
    unique = [order[i] for i in collapse([candidates[n].phash for n in order])]
    dropped["near_duplicate"] = len(order) - len(unique)
    hits = []
    for n in unique[:max_images]:
        c = candidates[n]
        hits.append(
            ImageHit(
                image_id=c.image_id,
                path=c.path,
                source=source_numbers.get(c.document_id),
                src_url=c.src_url,
                alt=c.alt,
                caption=c.caption,
                generated_caption=c.generated_caption,
                width=c.width,
                height=c.height,
                score=round(fuse(parts[n]), 4),
                parts={k: round(v, 4) for k, v in parts[n].items()},
                sentence=int(by_sentence[n].argmax()) if by_sentence is not None else None,
            )
        )
    return hits, dropped


def _clip_parts(
    store: Store,
    clip: ClipEncoder,
    candidates: list[ImageCandidate],
    evidence: Evidence,
    parts: list[dict[str, float]],
    by_sentence: np.ndarray | None,
) -> np.ndarray | None:
    """Add the CLIP parts in place; return the image×sentence matrix to attach images by."""
    image_vectors = store.read_vectors(CLIP_IMAGE_SPACE, [c.image_id for c in candidates], clip.dim)
    has_vector = np.linalg.norm(image_vectors, axis=1) > 0
    if not has_vector.any():
        return by_sentence
    query_clip = clip.encode_texts([evidence.query])[0]
    sentence_clip = clip.encode_texts(evidence.sentences) if evidence.sentences else None
    chunk_ids = [c.chunk_id or 0 for c in candidates]
    passage_clip = store.read_vectors(CLIP_TEXT_SPACE, chunk_ids, clip.dim)
    for n, vector in enumerate(image_vectors):
        if not has_vector[n]:
            continue
        part = parts[n]
        part["clip_topic"] = float(vector @ query_clip)
        if sentence_clip is not None:
            part["clip_evidence"] = float((sentence_clip @ vector).max())
        if candidates[n].chunk_id and np.linalg.norm(passage_clip[n]) > 0:
            part["clip_context"] = float(passage_clip[n] @ vector)
        part["alignment"] = max(part["clip_topic"], part.get("clip_evidence", -1.0))
    if sentence_clip is not None:
        clip_by_sentence = image_vectors @ sentence_clip.T
        by_sentence = clip_by_sentence if by_sentence is None else np.where(has_vector[:, None], clip_by_sentence, by_sentence)
    return by_sentence
