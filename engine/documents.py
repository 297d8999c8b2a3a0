"""One stored document or image read back whole: what ``GET /v1/documents/{id}`` and ``/v1/images/{id}`` serve."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.ask.summary import document_sources
from engine.errors import StoreError
from engine.store.schema import chunks, document_images, documents, images, topic_documents, topics
from engine.store.store import Store

DOCUMENT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    position: int  # 0-based, in reading order
    text: str


@dataclass(frozen=True)
class DocumentImage:
    image_id: int
    src_url: str  # where the page loaded it from
    alt: str | None
    caption: str | None  # the page's own caption (figcaption)
    generated_caption: str | None  # from the captioning model, when configured
    chunk_id: int | None  # the passage it stands beside
    width: int
    height: int


@dataclass(frozen=True)
class Document:
    id: int
    title: str | None
    url: str | None  # its most recently updated source's URL, as answers cite it
    author: str | None
    published: str | None
    language: str | None
    topics: list[str]  # linked topics, best first (score at least index.topic_min_similarity)
    passages: list[Passage]
    images: list[DocumentImage]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": DOCUMENT_SCHEMA_VERSION, **asdict(self)}


@dataclass(frozen=True)
class StoredImage:
    id: int
    content_hash: str
    format: str  # lower-case Pillow format name: jpeg, png, ...
    width: int
    height: int
    byte_size: int
    path: Path  # the file, inside ``<store>/images`` (it may be missing: see ``engine check``)


def read_document(store: Store, document_id: int, topic_min_similarity: float) -> Document | None:
    """Document ``document_id`` with its passages in order and its images; None when there is none."""
    with store.reading() as conn:
        row = conn.execute(select(documents).where(documents.c.id == document_id)).mappings().first()
        if row is None:
            return None
        linked = conn.execute(
            select(topics.c.name)
            .join(topic_documents, topic_documents.c.topic_id == topics.c.id)
            .where(topic_documents.c.document_id == document_id, topic_documents.c.score >= topic_min_similarity)
            .order_by(topic_documents.c.score.desc(), topics.c.name)
        ).scalars().all()
        passages = [
            Passage(r.id, r.position, r.text)
            for r in conn.execute(
                select(chunks.c.id, chunks.c.position, chunks.c.text)
                .where(chunks.c.document_id == document_id)
                .order_by(chunks.c.position)
            )
        ]
        # In reading order: by the passage each stands beside, then as stored.
        position = select(chunks.c.position).where(chunks.c.id == document_images.c.chunk_id).scalar_subquery()
        shown = [
            DocumentImage(r.image_id, r.src_url, r.alt, r.caption, r.generated_caption, r.chunk_id, r.width, r.height)
            for r in conn.execute(
                select(
                    document_images.c.image_id,
                    document_images.c.src_url,
                    document_images.c.alt,
                    document_images.c.caption,
                    images.c.caption.label("generated_caption"),
                    document_images.c.chunk_id,
                    images.c.width,
                    images.c.height,
                )
                .join(images, images.c.id == document_images.c.image_id)
                .where(document_images.c.document_id == document_id)
                .order_by(position.is_(None), position, document_images.c.image_id)
            )
        ]
    source = document_sources(store, [document_id]).get(document_id, {})
    return Document(
        id=row["id"],
        title=row["title"],
        url=source.get("url"),
        author=row["author"],
        published=row["published"],
        language=row["language"],
        topics=list(linked),
        passages=passages,
        images=shown,
    )


def read_image(store: Store, image_id: int) -> StoredImage | None:
    """Image ``image_id`` and where its file is; None when there is none.

    Raises:
        StoreError: its stored path leads outside ``<store>/images`` (the database was edited
            by hand, or is not ours), so the file is never served.
    """
    with store.reading() as conn:
        row = conn.execute(select(images).where(images.c.id == image_id)).mappings().first()
    if row is None:
        return None
    folder = (store.root / "images").resolve()
    path = (store.root / row["path"]).resolve()
    if folder not in path.parents:
        raise StoreError(f"image {image_id}'s stored path {row['path']!r} leads outside {folder}; run `engine check`")
    return StoredImage(
        id=row["id"],
        content_hash=row["content_hash"],
        format=row["format"].lower(),
        width=row["width"],
        height=row["height"],
        byte_size=row["byte_size"],
        path=path,
    )
