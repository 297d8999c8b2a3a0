"""Images for an answer: candidates from the evidence pages and CLIP search, ranked by alignment.

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

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select

from engine.near_duplicates import collapse
from engine.results import ImageHit, SourceRef, SummarySentence
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, document_images, images
from engine.store.store import Store

WEIGHTS = {"clip_topic": 0.35, "clip_evidence": 0.25, "clip_context": 0.15, "context": 0.25}
# CLIP's text→image search proposes this many times max_images extra candidates.
CLIP_SEARCH_FACTOR = 4


@dataclass(frozen=True)
class ImageCandidate:
    image_id: int
    document_id: int
    path: str
    src_url: str
    alt: str | None
    caption: str | None
    context: str | None
    width: int
    height: int
    chunk_id: int | None = None  # the passage it sits in on that page
    phash: str | None = None
    generated_caption: str | None = None  # from the captioning model, when configured

    def description(self) -> str:
        """The text that tells what the image shows: alt text, captions, nearby text."""
        return " ".join(p for p in (self.alt, self.caption, self.generated_caption, self.context) if p)


@dataclass(frozen=True)
class ClipQuery:
    """CLIP, loaded, with the question already encoded in its text space (encoded once per ask)."""

    encoder: object  # engine.encoders.clip.ClipEncoder
    vector: np.ndarray


@dataclass(frozen=True)
class Scene:
    """What the images are scored against."""

    query_vector: np.ndarray  # text model
    sentences: list[str]  # the summary sentences, in order
    sentence_vectors: np.ndarray  # text model, one row per sentence


@dataclass(frozen=True)
class Illustration:
    images: list[ImageHit]
    dropped: dict[str, int]  # left out, by reason
    candidates: list[ImageCandidate]


def candidates(store: Store, evidence_documents: list[int], clip: ClipQuery | None, max_images: int) -> list[ImageCandidate]:
    """Images on the evidence pages plus those CLIP's text→image search finds for the question."""
    extra: list[int] = []
    if clip is not None:
        index = store.index(CLIP_IMAGE_SPACE, len(clip.vector))
        _, found = index.search(clip.vector[None, :], max_images * CLIP_SEARCH_FACTOR)
        extra = [int(i) for i in found[0] if i >= 0]
    return image_candidates(store, evidence_documents, extra)


def image_candidates(store: Store, document_ids: list[int], extra_image_ids: list[int]) -> list[ImageCandidate]:
    """Images shown on ``document_ids``, plus ``extra_image_ids``.

    An image on several pages is listed once, with the occurrence on the best-ranked document.
    """
    rank = {d: n for n, d in enumerate(document_ids)}
    with store.reading() as conn:
        rows = conn.execute(
            select(
                document_images.c.image_id,
                document_images.c.document_id,
                document_images.c.src_url,
                document_images.c.alt,
                document_images.c.caption,
                document_images.c.context,
                document_images.c.chunk_id,
                images.c.path,
                images.c.phash,
                images.c.caption.label("generated_caption"),
                images.c.width,
                images.c.height,
            )
            .join(images, images.c.id == document_images.c.image_id)
            .where(document_images.c.document_id.in_(document_ids) | document_images.c.image_id.in_(extra_image_ids))
        ).mappings()
        best: dict[int, dict] = {}
        for row in rows:
            current = best.get(row["image_id"])
            if current is None or rank.get(row["document_id"], 1 << 30) < rank.get(current["document_id"], 1 << 30):
                best[row["image_id"]] = dict(row)
    return [
        ImageCandidate(
            image_id=r["image_id"],
            document_id=r["document_id"],
            path=str(store.root / r["path"]),
            src_url=r["src_url"],
            alt=r["alt"],
            caption=r["caption"],
            context=r["context"],
            width=r["width"],
            height=r["height"],
            chunk_id=r["chunk_id"],
            phash=r["phash"],
            generated_caption=r["generated_caption"],
        )
        for r in best.values()
    ]


def fuse(parts: dict[str, float]) -> float:
    """Weighted mean of the available score parts."""
    weights = {k: WEIGHTS[k] for k in parts if k in WEIGHTS}
    total = sum(weights.values())
    return sum(parts[k] * w for k, w in weights.items()) / total if total else 0.0


def rank(
    store: Store,
    text,  # noqa: ANN001 - engine.encoders.text.TextEncoder
    clip: ClipQuery | None,
    found: list[ImageCandidate],
    scene: Scene,
    max_images: int,
    min_alignment: float | None = None,
) -> Illustration:
    """The best ``max_images`` of ``found``, best first, each with the summary sentence it fits best."""
    dropped = {"below_min_alignment": 0, "near_duplicate": 0}
    if not found or max_images <= 0:
        return Illustration([], dropped, found)
    descriptions = text.encode([c.description() or c.src_url for c in found])
    parts = [{"context": float(d @ scene.query_vector)} for d in descriptions]
    by_sentence = descriptions @ scene.sentence_vectors.T if scene.sentences else None
    if clip is not None:
        clip_parts, clip_by_sentence, has_vector = _clip_parts(store, clip, found, scene)
        parts = [{**p, **c} for p, c in zip(parts, clip_parts)]
        if clip_by_sentence is not None:
            by_sentence = clip_by_sentence if by_sentence is None else np.where(has_vector[:, None], clip_by_sentence, by_sentence)
    order = sorted(range(len(found)), key=lambda n: fuse(parts[n]), reverse=True)
    if min_alignment is not None:
        kept = [n for n in order if "alignment" not in parts[n] or parts[n]["alignment"] >= min_alignment]
        dropped["below_min_alignment"] = len(order) - len(kept)
        order = kept
    unique = [order[i] for i in collapse([found[n].phash for n in order])]
    dropped["near_duplicate"] = len(order) - len(unique)
    hits = [
        ImageHit(
            image_id=found[n].image_id,
            path=found[n].path,
            source=None,
            src_url=found[n].src_url,
            alt=found[n].alt,
            caption=found[n].caption,
            generated_caption=found[n].generated_caption,
            width=found[n].width,
            height=found[n].height,
            score=round(fuse(parts[n]), 4),
            parts={k: round(v, 4) for k, v in parts[n].items()},
            sentence=int(by_sentence[n].argmax()) if by_sentence is not None else None,
        )
        for n in unique[:max_images]
    ]
    return Illustration(hits, dropped, found)


def _clip_parts(
    store: Store, clip: ClipQuery, found: list[ImageCandidate], scene: Scene
) -> tuple[list[dict[str, float]], np.ndarray | None, np.ndarray]:
    """The CLIP parts of each candidate, the image×sentence CLIP matrix, and which images have a vector."""
    dim = len(clip.vector)
    image_vectors = store.read_vectors(CLIP_IMAGE_SPACE, [c.image_id for c in found], dim)
    has_vector = np.linalg.norm(image_vectors, axis=1) > 0
    if not has_vector.any():
        return [{} for _ in found], None, has_vector
    sentence_clip = clip.encoder.encode_texts(scene.sentences) if scene.sentences else None
    passage_clip = store.read_vectors(CLIP_TEXT_SPACE, [c.chunk_id or 0 for c in found], dim)
    out: list[dict[str, float]] = []
    for n, vector in enumerate(image_vectors):
        part: dict[str, float] = {}
        if has_vector[n]:
            part["clip_topic"] = float(vector @ clip.vector)
            if sentence_clip is not None:
                part["clip_evidence"] = float((sentence_clip @ vector).max())
            if found[n].chunk_id and np.linalg.norm(passage_clip[n]) > 0:
                part["clip_context"] = float(passage_clip[n] @ vector)
            part["alignment"] = max(part["clip_topic"], part.get("clip_evidence", -1.0))
        out.append(part)
    by_sentence = image_vectors @ sentence_clip.T if sentence_clip is not None else None
    return out, by_sentence, has_vector


def with_sources(hits: list[ImageHit], found: list[ImageCandidate], numbers: dict[int, int]) -> list[ImageHit]:
    """Each image with the number of the source page it is shown on (``numbers``: document → number)."""
    page_of = {c.image_id: c.document_id for c in found}
    return [replace(h, source=numbers.get(page_of[h.image_id])) for h in hits]


def pages_shown_on(hits: list[ImageHit], found: list[ImageCandidate]) -> list[int]:
    """The documents the shown images come from, in image order."""
    page_of = {c.image_id: c.document_id for c in found}
    return list(dict.fromkeys(page_of[h.image_id] for h in hits))


def captions_as_summary(hits: list[ImageHit], found: list[ImageCandidate]) -> tuple[list[SummarySentence], list[ImageHit]]:
    """An images-only answer: each image's own words as a cited sentence, pointing at the image's passage."""
    by_id = {c.image_id: c for c in found}
    sentences: list[SummarySentence] = []
    out: list[ImageHit] = []
    for hit in hits:
        words = hit.generated_caption or hit.caption or hit.alt
        if not words:
            out.append(hit)
            continue
        shown_on = by_id[hit.image_id]
        out.append(replace(hit, sentence=len(sentences)))
        sentences.append(
            SummarySentence(
                words, [hit.source] if hit.source else [], shown_on.document_id, shown_on.chunk_id or 0, hit.parts.get("context", 0.0)
            )
        )
    return sentences, out


def cited_sources(existing: list[SourceRef], extra: list[SourceRef]) -> list[SourceRef]:
    """The source list with ``extra`` pages appended (already numbered after the existing ones)."""
    have = {s.document_id for s in existing}
    return existing + [s for s in extra if s.document_id not in have]
