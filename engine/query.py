"""Reading what retrieval found: evidence chunks, their sources, and candidate images."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from engine.store.schema import chunks, document_images, documents, images, sources
from engine.store.store import Store


def evidence_chunks(store: Store, ids: list[int], scores: list[float]) -> list[dict]:
    """Rows for the chunk ids retrieval returned, best first, with document ranks."""
    wanted = [int(i) for i in ids if i >= 0]
    if not wanted:
        return []
    with store.reading() as conn:
        rows = conn.execute(
            select(
                chunks.c.id,
                chunks.c.document_id,
                chunks.c.text,
                chunks.c.start_char,
                documents.c.language,
            )
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(chunks.c.id.in_(wanted))
        ).mappings()
        by_id = {r["id"]: dict(r) for r in rows}
    out, doc_rank = [], {}
    for chunk_id, score in zip(ids, scores):
        row = by_id.get(int(chunk_id))
        if row is None:  # deleted since the index was loaded
            continue
        doc_rank.setdefault(row["document_id"], len(doc_rank))
        out.append({**row, "chunk_id": row["id"], "score": float(score), "doc_rank": doc_rank[row["document_id"]]})
    return out


def document_sources(store: Store, document_ids: list[int]) -> dict[int, dict]:
    """Title, URL and date of each document (its most recently updated source's URL)."""
    with store.reading() as conn:
        rows = conn.execute(
            select(documents.c.id, documents.c.title, documents.c.published, sources.c.url)
            .join(sources, sources.c.document_id == documents.c.id)
            .where(documents.c.id.in_(document_ids))
            .order_by(sources.c.updated_at)
        ).mappings()
        return {r["id"]: dict(r) for r in rows}


@dataclass
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


def image_candidates(store: Store, document_ids: list[int], extra_image_ids: list[int]) -> list[ImageCandidate]:
    """Images shown on the evidence documents, plus ``extra_image_ids`` (from CLIP search).

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
            .where(
                document_images.c.document_id.in_(document_ids) | document_images.c.image_id.in_(extra_image_ids)
            )
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
