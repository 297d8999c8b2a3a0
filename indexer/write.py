"""Writing: one page, its chunks, images, vectors and topic scores in one transaction.

Either all of a page is committed or none of it, so a process killed at any moment
leaves the store as it was after the last whole page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, delete, select
from engine.store.dialect import insert

from engine.store.schema import (
    CLIP_IMAGE_SPACE,
    CLIP_TEXT_SPACE,
    TEXT_SPACE,
    chunks,
    document_images,
    documents,
    embeddings,
    images,
    sources,
    topic_documents,
    topics,
)
from engine.store.store import Store
from indexer.chunk import Chunk, chunk_holding
from indexer.extract import ExtractedPage, ImageRef
from indexer.images import ImageData
from indexer.sources import InputFailure, PageInput


@dataclass
class EmbeddedPage:
    """A page ready to write: everything computed, nothing stored yet."""

    page: PageInput
    canonical_url: str
    raw_hash: str
    content_hash: str
    extracted: ExtractedPage
    chunks: list[Chunk]
    text_vectors: np.ndarray
    # CLIP vectors of the chunks that hold one of the page's images, by chunk position: the
    # passage each image is scored against (clip_context); no other chunk needs one.
    clip_text_vectors: dict[int, np.ndarray]
    images: list[tuple[ImageRef, ImageData]]
    # CLIP vectors of this page's images by content hash (only those newly embedded).
    image_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # Generated captions of this page's new images by content hash (when captioning is on).
    image_captions: dict[str, str] = field(default_factory=dict)
    topic_scores: dict[int, float] = field(default_factory=dict)
    # What went wrong with the page's images while preparing it (recorded with the run).
    failures: list[InputFailure] = field(default_factory=list)


@dataclass
class WriteOutcome:
    page: str  # added | updated | duplicate | unchanged
    chunks_added: int = 0
    images_added: int = 0
    images_linked: int = 0  # already stored, now also linked to this page


def ensure_topics(store: Store, names: list[str]) -> dict[str, int]:
    """Ids of ``names``, creating the missing topics."""
    now = time.time()
    with store.transaction() as conn:
        for name in names:
            conn.execute(insert(conn, topics).values(name=name, created_at=now).on_conflict_do_nothing())
        rows = conn.execute(select(topics.c.name, topics.c.id).where(topics.c.name.in_(names)))
        return {name: topic_id for name, topic_id in rows}


def known_source(conn: Connection, canonical_url: str) -> tuple[str | None, int | None] | None:
    """(raw_hash, document_id) of a stored source, or None if new."""
    row = conn.execute(
        select(sources.c.raw_hash, sources.c.document_id).where(sources.c.canonical_url == canonical_url)
    ).first()
    return None if row is None else (row[0], row[1])


def write_page(store: Store, conn: Connection, item: EmbeddedPage) -> WriteOutcome:
    """Store ``item`` inside the caller's transaction."""
    now = time.time()
    existing = conn.execute(
        select(documents.c.id).where(documents.c.content_hash == item.content_hash)
    ).scalar()
    previous = conn.execute(
        select(sources.c.document_id).where(sources.c.canonical_url == item.canonical_url)
    ).first()
    if existing is not None:
        _upsert_source(conn, item, existing, now)
        put_topic_scores(conn, existing, item.topic_scores, now)
        if previous is not None and previous[0] == existing:
            outcome = WriteOutcome("unchanged")  # new bytes (ads, scripts, a new image), the same text
        else:
            if previous is not None and previous[0] is not None:
                _drop_if_unreferenced(store, conn, previous[0])
            outcome = WriteOutcome("duplicate")
        # The same text may come with images the stored document lacks (one added to the page).
        stored_chunks = list(conn.execute(select(chunks.c.id).where(chunks.c.document_id == existing).order_by(chunks.c.position)).scalars())
        _link_images(store, conn, item, existing, stored_chunks, now, outcome)
        return outcome

    doc_id = conn.execute(
        insert(conn, documents).values(
            content_hash=item.content_hash,
            title=item.extracted.title,
            author=item.extracted.author,
            published=item.extracted.published,
            language=item.extracted.language,
            text=item.extracted.text,
            created_at=now,
        )
    ).inserted_primary_key[0]
    _upsert_source(conn, item, doc_id, now)
    if previous is not None and previous[0] is not None:
        _drop_if_unreferenced(store, conn, previous[0])

    chunk_ids = [
        conn.execute(
            insert(conn, chunks).values(
                document_id=doc_id,
                position=n,
                text=c.text,
                start_char=c.start,
                end_char=c.end,
                n_tokens=c.n_tokens,
            )
        ).inserted_primary_key[0]
        for n, c in enumerate(item.chunks)
    ]
    store.put_vectors(conn, TEXT_SPACE, chunk_ids, item.text_vectors)
    if item.clip_text_vectors:
        positions = sorted(item.clip_text_vectors)
        store.put_vectors(
            conn, CLIP_TEXT_SPACE, [chunk_ids[n] for n in positions], np.stack([item.clip_text_vectors[n] for n in positions])
        )

    outcome = WriteOutcome("updated" if previous is not None else "added", chunks_added=len(chunk_ids))
    _link_images(store, conn, item, doc_id, chunk_ids, now, outcome)
    put_topic_scores(conn, doc_id, item.topic_scores, now)
    return outcome


def _link_images(
    store: Store, conn: Connection, item: EmbeddedPage, doc_id: int, chunk_ids: list[int], now: float, outcome: WriteOutcome
) -> None:
    """Store the page's images (once each, by content) and link them to ``doc_id``, counting them in ``outcome``."""
    for ref, data in item.images:
        image_id, is_new = _image_row(store, conn, data, now, item.image_captions.get(data.content_hash))
        vector = item.image_vectors.get(data.content_hash)
        if vector is not None and (is_new or not _has_vector(conn, CLIP_IMAGE_SPACE, image_id)):
            store.put_vectors(conn, CLIP_IMAGE_SPACE, [image_id], vector[None, :])
        position = chunk_holding(item.chunks, ref.char_offset)
        linked = conn.execute(
            insert(conn, document_images)
            .values(
                document_id=doc_id,
                image_id=image_id,
                chunk_id=chunk_ids[position] if position < len(chunk_ids) else None,
                src_url=ref.url,
                alt=ref.alt,
                caption=ref.caption,
                context=ref.context,
            )
            .on_conflict_do_nothing()
        ).rowcount
        if is_new:
            outcome.images_added += 1
        elif linked:  # a page stored again with the same images links nothing new
            outcome.images_linked += 1


def _upsert_source(conn: Connection, item: EmbeddedPage, doc_id: int, now: float) -> None:
    values = {
        "url": item.page.url,
        "origin": item.page.origin,
        "document_id": doc_id,
        "raw_hash": item.raw_hash,
        "fetched_at": item.page.fetched_at,
        "http_status": item.page.http_status,
        "content_type": item.page.content_type,
        "etag": item.page.headers.get("etag"),
        "last_modified": item.page.headers.get("last-modified"),
        "updated_at": now,
    }
    stmt = insert(conn, sources).values(canonical_url=item.canonical_url, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[sources.c.canonical_url], set_=values))


def _image_row(store: Store, conn: Connection, data: ImageData, now: float, caption: str | None = None) -> tuple[int, bool]:
    """The image's row id, and whether it is new. A near-duplicate of a stored image
    (the same picture rescaled or recompressed) is linked to it, not stored again."""
    found = conn.execute(select(images.c.id).where(images.c.content_hash == data.content_hash)).scalar()
    if found is None:
        found = store.near_duplicate_image(conn, data.phash)
    if found is not None:
        return found, False
    relpath = store.image_relpath(data.content_hash, data.format)
    # The file goes first: a crash before commit leaves only an unreferenced file,
    # which `engine check` reports, never a row pointing at nothing.
    store.write_image_file(relpath, data.data)
    image_id = conn.execute(
        insert(conn, images).values(
            content_hash=data.content_hash,
            width=data.width,
            height=data.height,
            format=data.format,
            byte_size=len(data.data),
            path=relpath,
            created_at=now,
            phash=data.phash,
            caption=caption,
        )
    ).inserted_primary_key[0]
    store.remember_image_phash(image_id, data.phash)
    return image_id, True


def _has_vector(conn: Connection, space: str, item_id: int) -> bool:
    query = select(embeddings.c.item_id).where(embeddings.c.space == space, embeddings.c.item_id == item_id)
    return conn.execute(query).first() is not None


def put_topic_scores(conn: Connection, doc_id: int, scores: dict[int, float], now: float | None = None) -> None:
    now = time.time() if now is None else now
    for topic_id, score in scores.items():
        stmt = insert(conn, topic_documents).values(topic_id=topic_id, document_id=doc_id, score=float(score), created_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[topic_documents.c.topic_id, topic_documents.c.document_id],
                set_={"score": float(score)},
            )
        )


def _drop_if_unreferenced(store: Store, conn: Connection, doc_id: int) -> None:
    """Delete a replaced document (and its vectors) once no source points at it."""
    still_used = conn.execute(select(sources.c.id).where(sources.c.document_id == doc_id)).first()
    if still_used is not None:
        return
    chunk_ids = list(conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id)).scalars())
    store.delete_vectors(conn, TEXT_SPACE, chunk_ids)
    store.delete_vectors(conn, CLIP_TEXT_SPACE, chunk_ids)
    conn.execute(delete(documents).where(documents.c.id == doc_id))
