"""Re-embedding stored items: after a model change, or once CLIP weights become available."""

from __future__ import annotations

from typing import Callable

from sqlalchemy import bindparam, delete, select, update

from engine.encoders.clip import ClipEncoder
from engine.encoders.text import TextEncoder
from engine.errors import InputError
from engine.results import Progress
from engine.sentences import split_sentences
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE, chunks, document_images, documents, embeddings, images
from engine.store.store import Store

BATCH = 64  # rows per transaction; images come as thumbnails, so 64 of them stay under ~40 MB


def reembed_text(store: Store, encoder: TextEncoder, on_progress: Callable | None = None) -> int:
    """Re-embed every chunk with ``encoder``; the store's text model becomes this one."""
    _reset_space(store, (TEXT_SPACE,), encoder.name, encoder.dim)
    with store.reading() as conn:
        rows = conn.execute(select(chunks.c.id, chunks.c.text).order_by(chunks.c.id)).all()
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        vectors = encoder.encode([r.text for r in batch])
        _commit_vectors(store, TEXT_SPACE, [r.id for r in batch], vectors)
        _report(on_progress, start + len(batch), len(rows), "text vectors")
    return len(rows)


def reembed_clip(store: Store, clip: ClipEncoder, on_progress: Callable | None = None) -> dict[str, int]:
    """Compute the missing CLIP vectors of images and of the chunks that hold images (all of them
    if the model changed)."""
    if store.get_meta(f"model.{CLIP_IMAGE_SPACE}") != clip.identity:
        _reset_space(store, (CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
    with store.reading() as conn:
        todo_images = conn.execute(
            select(images.c.id, images.c.path).where(
                images.c.id.not_in(select(embeddings.c.item_id).where(embeddings.c.space == CLIP_IMAGE_SPACE))
            )
        ).all()
        todo_chunks = conn.execute(
            select(chunks.c.id, chunks.c.text, documents.c.language)
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(chunks.c.id.not_in(select(embeddings.c.item_id).where(embeddings.c.space == CLIP_TEXT_SPACE)))
            # Only passages that hold an image are scored in CLIP's space (clip_context).
            .where(chunks.c.id.in_(select(document_images.c.chunk_id).where(document_images.c.chunk_id.is_not(None))))
        ).all()
    unreadable = 0
    for start in range(0, len(todo_images), BATCH):
        batch = todo_images[start : start + BATCH]
        ids, pictures = _read_thumbnails(store, batch)
        unreadable += len(batch) - len(ids)
        _commit_vectors(store, CLIP_IMAGE_SPACE, ids, clip.encode_images(pictures))
        _report(on_progress, start + BATCH, len(todo_images), "image vectors")
    for start in range(0, len(todo_chunks), BATCH):
        batch = todo_chunks[start : start + BATCH]
        passages = [[s for s, _, _ in split_sentences(r.text, r.language)] or [r.text] for r in batch]
        _commit_vectors(store, CLIP_TEXT_SPACE, [r.id for r in batch], clip.encode_passages(passages))
        _report(on_progress, start + len(batch), len(todo_chunks), "chunk CLIP vectors")
    return {"image_vectors": len(todo_images) - unreadable, "clip_text_vectors": len(todo_chunks), "unreadable_images": unreadable}


def fill_missing_phashes(store: Store, on_progress: Callable | None = None) -> int:
    """Perceptual hashes for images stored before the engine kept them (schema 0001)."""
    from indexer.images import perceptual_hash

    with store.reading() as conn:
        todo = conn.execute(select(images.c.id, images.c.path).where(images.c.phash.is_(None))).all()
    done = 0
    for start in range(0, len(todo), BATCH):
        ids, pictures = _read_thumbnails(store, todo[start : start + BATCH])
        hashes = [{"row_id": i, "phash": perceptual_hash(p)} for i, p in zip(ids, pictures)]
        if hashes:
            with store.transaction() as conn:
                conn.execute(update(images).where(images.c.id == bindparam("row_id")).values(phash=bindparam("phash")), hashes)
            done += len(hashes)
        _report(on_progress, start + BATCH, len(todo), "image hashes")
    store.discard_uncommitted()
    return done


def fill_captions(store: Store, captioner, on_progress: Callable | None = None) -> dict[str, int]:  # noqa: ANN001
    """Caption the stored images that have no generated caption yet (``images.caption``).

    Args:
        captioner: an engine.encoders.caption.Captioner.

    Returns:
        {"captions": images captioned, "unreadable_images": files that could not be read}.
    """
    with store.reading() as conn:
        todo = conn.execute(select(images.c.id, images.c.path).where(images.c.caption.is_(None)).order_by(images.c.id)).all()
    done = unreadable = 0
    for start in range(0, len(todo), captioner.batch_size):
        batch = todo[start : start + captioner.batch_size]
        ids, pictures = _read_thumbnails(store, batch)
        unreadable += len(batch) - len(ids)
        if ids:
            rows = [{"row_id": i, "caption": c} for i, c in zip(ids, captioner.caption(pictures))]
            with store.transaction() as conn:
                conn.execute(update(images).where(images.c.id == bindparam("row_id")).values(caption=bindparam("caption")), rows)
            done += len(rows)
        _report(on_progress, start + captioner.batch_size, len(todo), "image captions")
    return {"captions": done, "unreadable_images": unreadable}


def _read_thumbnails(store: Store, rows: list) -> tuple[list[int], list]:
    """(ids, thumbnails) of the rows' image files that can be read, decoded as indexing decoded
    them, so a vector, hash or caption made now equals the one indexing would have made."""
    from indexer.images import read_thumbnail

    ids, pictures = [], []
    for row in rows:
        try:
            pictures.append(read_thumbnail(store.root / row.path))
        except InputError:
            continue  # `engine check` names the missing files
        ids.append(row.id)
    return ids, pictures


def _reset_space(store: Store, spaces: tuple[str, ...], model: str, dim: int) -> None:
    with store.transaction() as conn:
        for space in spaces:
            conn.execute(delete(embeddings).where(embeddings.c.space == space))
            store.bump_version(conn, space)
            store.set_meta(conn, f"model.{space}", model)
            store.set_meta(conn, f"dim.{space}", str(dim))
    store.bind_model(spaces, model, dim)


def _commit_vectors(store: Store, space: str, ids: list[int], vectors) -> None:  # noqa: ANN001
    if not ids:
        return
    with store.transaction() as conn:
        store.put_vectors(conn, space, ids, vectors)
    store.discard_uncommitted()  # indexes are rebuilt from SQLite afterwards


def _report(on_progress: Callable | None, done: int, total: int, what: str) -> None:
    if on_progress is not None:
        on_progress(Progress(min(done, total), total, what))
