"""Export: documents, chunks and images as JSON Lines (and the image files), for use elsewhere.

    <target>/documents.jsonl  one object per document: metadata, sources, topics, text
    <target>/chunks.jsonl     one object per chunk (passage) of those documents
    <target>/images.jsonl     one object per image: metadata, the exported documents linking it
    <target>/images/ab/<hash>.<ext>   the image files (with images=True)
    <target>/manifest.json    engine version, schema revision, filters and counts; written last

The export is built in a staging folder beside ``target`` and renamed into place at the end, so
``target`` holds a whole export or nothing (an interrupted one leaves no half-written files).

It only reads: one read transaction (a snapshot, so the files agree with each other), never the
write lock, so a running `engine index` is not held up. Rows are read in id-ordered pages
(keyset pagination), so memory stays flat however large the store is. Vectors are not exported.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Connection, and_, select

from engine.errors import InputError, StoreError
from engine.store.atomic import fsync_dir, fsync_tree
from engine.store.database import current_revision
from engine.store.schema import (
    chunks,
    document_images,
    documents,
    images,
    meta,
    sources,
    topic_documents,
    topics,
)

if TYPE_CHECKING:
    from engine.store.store import Store

FORMAT = "engine-export"
FORMAT_VERSION = 1
FILES = ("documents.jsonl", "chunks.jsonl", "images.jsonl")
# Rows per page: documents carry their whole text, so fewer of them.
DOCUMENT_PAGE = 200
CHUNK_PAGE = 2_000
IMAGE_PAGE = 500


@dataclass(frozen=True)
class ExportReport:
    target: Path
    documents: int
    chunks: int
    images: int
    image_files: int  # copied into <target>/images
    missing_image_files: int  # images whose file is not in the store (see `engine check`)
    files: tuple[str, ...]  # written, relative to target (the image files not named)
    filters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["target"] = str(self.target)
        out["files"] = list(self.files)
        return out


def iso(timestamp: float | None) -> str | None:
    """``timestamp`` (seconds since the epoch) as ISO 8601 in UTC, e.g. 2026-11-01T12:00:00Z."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def export_store(
    store: Store,
    target: Path,
    topic: str | None = None,
    since: float | None = None,
    images: bool = True,
    topic_min_similarity: float = 0.25,
) -> ExportReport:
    """Write the store's documents, chunks and images (metadata, and the files when ``images``) into ``target``.

    Args:
        target: a folder that does not exist yet, or is empty.
        topic: only the documents linked to this topic (score >= ``topic_min_similarity``).
        since: only the documents created at or after this time (seconds since the epoch). A
            page whose text changed is stored as a new document, so this is "new or changed".
        images: copy the image files too (their metadata is exported either way).

    Raises:
        InputError: ``target`` is not empty or not a folder, or ``topic`` is unknown.
    """
    given, target = Path(target), Path(target).absolute()
    _check_target(target)
    staging = target.parent / f".{target.name}.export-{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with store.reading() as conn:
            _snapshot(conn)
            topic_id = _topic_id(conn, topic) if topic is not None else None
            selected = _selected_documents(topic_id, since, topic_min_similarity)
            n_documents = _write_documents(conn, staging / "documents.jsonl", selected, topic_min_similarity)
            n_chunks = _write_chunks(conn, staging / "chunks.jsonl", selected)
            n_images, copied, missing = _write_images(conn, store, staging, selected, images)
            revision = current_revision(store.engine)
            models = {
                key.removeprefix("model."): value
                for key, value in conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.like("model.%")))
            }
        filters = {"topic": topic, "since": iso(since), "topic_min_similarity": topic_min_similarity if topic else None}
        counts = {
            "documents": n_documents,
            "chunks": n_chunks,
            "images": n_images,
            "image_files": copied,
            "missing_image_files": missing,
        }
        from engine import __version__

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "engine_version": __version__,
            "schema_revision": revision,
            "created_at": iso(time.time()),
            "filters": filters,
            "counts": counts,
            "files": list(FILES) + (["images/"] if images else []),
            "models": models,
            "vectors": False,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        fsync_tree(staging)
        _check_target(target)  # still empty: nobody wrote there meanwhile
        if target.exists():
            target.rmdir()  # empty, so the rename below can take its place
        os.replace(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportReport(
        target=given,
        documents=n_documents,
        chunks=n_chunks,
        images=n_images,
        image_files=copied,
        missing_image_files=missing,
        files=(*FILES, "manifest.json"),
        filters=filters,
    )


# -- what is selected ----------------------------------------------------------------------


def _check_target(target: Path) -> None:
    if target.exists():
        if not target.is_dir():
            raise InputError(str(target), "exists and is not a folder; export into a new or empty folder")
        if any(target.iterdir()):
            raise InputError(str(target), "the folder is not empty; export into a new or empty folder")


def _snapshot(conn: Connection) -> None:
    """Make every read on ``conn`` see one committed state of the store, without blocking writers.

    SQLite (WAL): an explicit deferred BEGIN (pysqlite opens none before a SELECT), so the
    snapshot is taken by the first read and held to the end; writers go on committing.
    PostgreSQL: REPEATABLE READ, the same.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")
    else:
        conn.execution_options(isolation_level="REPEATABLE READ")


def _topic_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(topics.c.id).where(topics.c.name == name)).scalar()
    if found is None:
        known = list(conn.execute(select(topics.c.name).order_by(topics.c.name)).scalars())
        listed = ", ".join(repr(k) for k in known) if known else "none (index some pages for topics first)"
        raise InputError("--topic", f"the store has no topic {name!r}; its topics: {listed}")
    return found


def _selected_documents(topic_id: int | None, since: float | None, topic_min_similarity: float):  # noqa: ANN202
    """The WHERE clause on ``documents`` of the exported documents (None: all of them)."""
    conditions = []
    if topic_id is not None:
        # As `engine status` counts a topic's documents (engine/store/health.py).
        conditions.append(
            documents.c.id.in_(
                select(topic_documents.c.document_id).where(
                    topic_documents.c.topic_id == topic_id, topic_documents.c.score >= topic_min_similarity
                )
            )
        )
    if since is not None:
        conditions.append(documents.c.created_at >= since)
    return and_(*conditions) if conditions else None


def _document_ids(selected):  # noqa: ANN001, ANN202
    """A subquery of the exported documents' ids (None: all)."""
    return None if selected is None else select(documents.c.id).where(selected)


def _pages(conn: Connection, query, key, size: int) -> Iterator[list]:  # noqa: ANN001
    """The rows of ``query`` in pages of ``size``, in ascending ``key`` (keyset pagination)."""
    last = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = conn.execute(page.order_by(key).limit(size)).all()
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.name)


# -- the files -----------------------------------------------------------------------------


def _line(record: dict) -> str:
    # U+2028/U+2029 are valid in JSON strings but end a line for some readers (str.splitlines).
    text = json.dumps(record, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def _jsonl(path: Path):  # noqa: ANN202 - a text file
    return open(path, "w", encoding="utf-8", newline="\n")


def _write_documents(conn: Connection, path: Path, selected, topic_min_similarity: float) -> int:  # noqa: ANN001
    query = select(
        documents.c.id,
        documents.c.title,
        documents.c.author,
        documents.c.published,
        documents.c.language,
        documents.c.created_at,
        documents.c.text,
    )
    if selected is not None:
        query = query.where(selected)
    count = 0
    with _jsonl(path) as out:
        for rows in _pages(conn, query, documents.c.id, DOCUMENT_PAGE):
            ids = [r.id for r in rows]
            of_page = _sources_of(conn, ids)
            topics_of = _topics_of(conn, ids, topic_min_similarity)
            for r in rows:
                linked = of_page.get(r.id, [])
                changed = max((s["updated_at"] for s in linked if s["updated_at"] is not None), default=None)
                record = {
                    "id": r.id,
                    "url": linked[0]["canonical_url"] if linked else None,
                    "sources": [{**s, "fetched_at": iso(s["fetched_at"]), "updated_at": iso(s["updated_at"])} for s in linked],
                    "title": r.title,
                    "author": r.author,
                    "published": r.published,
                    "language": r.language,
                    "created_at": iso(r.created_at),
                    "updated_at": iso(changed),
                    "topics": topics_of.get(r.id, []),
                    "text": r.text,
                }
                out.write(_line(record))
                count += 1
    return count


def _sources_of(conn: Connection, ids: list[int]) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    rows = conn.execute(
        select(
            sources.c.document_id,
            sources.c.canonical_url,
            sources.c.url,
            sources.c.origin,
            sources.c.fetched_at,
            sources.c.updated_at,
        )
        .where(sources.c.document_id.in_(ids))
        .order_by(sources.c.id)
    )
    for r in rows:
        found.setdefault(r.document_id, []).append(
            {
                "canonical_url": r.canonical_url,
                "url": r.url,
                "origin": r.origin,
                "fetched_at": r.fetched_at,
                "updated_at": r.updated_at,
            }
        )
    return found


def _topics_of(conn: Connection, ids: list[int], topic_min_similarity: float) -> dict[int, list[dict]]:
    """The linked topics of each document, best first (as engine/documents.py lists them)."""
    found: dict[int, list[dict]] = {}
    rows = conn.execute(
        select(topic_documents.c.document_id, topics.c.name, topic_documents.c.score)
        .join(topics, topics.c.id == topic_documents.c.topic_id)
        .where(topic_documents.c.document_id.in_(ids), topic_documents.c.score >= topic_min_similarity)
        .order_by(topic_documents.c.document_id, topic_documents.c.score.desc(), topics.c.name)
    )
    for r in rows:
        found.setdefault(r.document_id, []).append({"name": r.name, "score": round(float(r.score), 6)})
    return found


def _write_chunks(conn: Connection, path: Path, selected) -> int:  # noqa: ANN001
    query = select(
        chunks.c.id, chunks.c.document_id, chunks.c.position, chunks.c.text, chunks.c.start_char, chunks.c.end_char
    )
    of_documents = _document_ids(selected)
    if of_documents is not None:
        query = query.where(chunks.c.document_id.in_(of_documents))
    count = 0
    with _jsonl(path) as out:
        for rows in _pages(conn, query, chunks.c.id, CHUNK_PAGE):
            for r in rows:
                out.write(_line(dict(r._mapping)))
                count += 1
    return count


def _write_images(conn: Connection, store: Store, staging: Path, selected, copy_files: bool) -> tuple[int, int, int]:  # noqa: ANN001
    """images.jsonl, and the files when ``copy_files``: (images, files copied, files missing).

    Unfiltered, every stored image (an image no document links any more too); filtered, the
    images linked to the exported documents, each with those links only.
    """
    query = select(
        images.c.id,
        images.c.content_hash,
        images.c.width,
        images.c.height,
        images.c.format,
        images.c.byte_size,
        images.c.caption,
        images.c.created_at,
        images.c.path,
    )
    of_documents = _document_ids(selected)
    if of_documents is not None:
        query = query.where(
            images.c.id.in_(select(document_images.c.image_id).where(document_images.c.document_id.in_(of_documents)))
        )
    folder = (store.root / "images").resolve()
    count = copied = missing = 0
    with _jsonl(staging / "images.jsonl") as out:
        for rows in _pages(conn, query, images.c.id, IMAGE_PAGE):
            links = _links_of(conn, [r.id for r in rows], of_documents)
            for r in rows:
                file = None
                if copy_files:
                    source = (store.root / r.path).resolve()
                    if folder not in source.parents:
                        raise StoreError(f"image {r.id}'s stored path {r.path!r} leads outside {folder}; run `engine check`")
                    relpath = source.relative_to(folder.parent).as_posix()  # images/ab/<hash>.<ext>
                    if source.is_file():
                        (staging / relpath).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(source, staging / relpath)
                        file, copied = relpath, copied + 1
                    else:
                        missing += 1
                record = {
                    "id": r.id,
                    "content_hash": r.content_hash,
                    "width": r.width,
                    "height": r.height,
                    "format": r.format,
                    "byte_size": r.byte_size,
                    "caption": r.caption,
                    "created_at": iso(r.created_at),
                    "file": file,
                    "documents": links.get(r.id, []),
                }
                out.write(_line(record))
                count += 1
    return count, copied, missing


def _links_of(conn: Connection, image_ids: list[int], of_documents) -> dict[int, list[dict]]:  # noqa: ANN001
    query = select(
        document_images.c.image_id,
        document_images.c.document_id,
        document_images.c.chunk_id,
        document_images.c.src_url,
        document_images.c.alt,
        document_images.c.caption,
        document_images.c.context,
    ).where(document_images.c.image_id.in_(image_ids))
    if of_documents is not None:
        query = query.where(document_images.c.document_id.in_(of_documents))
    found: dict[int, list[dict]] = {}
    for r in conn.execute(query.order_by(document_images.c.image_id, document_images.c.document_id)):
        link = dict(r._mapping)
        found.setdefault(link.pop("image_id"), []).append(link)
    return found
