"""Status (what is stored) and check (is it consistent) — read-only views of a store."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from engine.results import StatusReport, TopicStatus
from engine.store.schema import (
    CLIP_IMAGE_SPACE,
    CLIP_TEXT_SPACE,
    SPACE_TABLE,
    TEXT_SPACE,
    chunks,
    crawl_topics,
    crawl_url_topics,
    crawl_urls,
    document_images,
    documents,
    embeddings,
    images,
    runs,
    sources,
    topic_documents,
    topics,
)
from engine.store.store import Store
from engine.store.vectors import VectorIndex


def store_status(store: Store, topic_min_similarity: float) -> StatusReport:
    with store.reading() as conn:
        count = lambda table: conn.execute(select(func.count()).select_from(table)).scalar_one()  # noqa: E731
        vectors = {space: n for space, n in conn.execute(select(embeddings.c.space, func.count()).group_by(embeddings.c.space))}
        linked = topic_documents.c.score >= topic_min_similarity
        per_topic = []
        for topic_id, name in conn.execute(select(topics.c.id, topics.c.name).order_by(topics.c.name)):
            docs = select(topic_documents.c.document_id).where(topic_documents.c.topic_id == topic_id, linked)
            per_topic.append(
                TopicStatus(
                    name=name,
                    documents=conn.execute(select(func.count()).select_from(docs.subquery())).scalar_one(),
                    images=conn.execute(
                        select(func.count(func.distinct(document_images.c.image_id))).where(
                            document_images.c.document_id.in_(docs)
                        )
                    ).scalar_one(),
                    chunks=conn.execute(
                        select(func.count()).select_from(chunks).where(chunks.c.document_id.in_(docs))
                    ).scalar_one(),
                    last_update=conn.execute(
                        select(func.max(sources.c.updated_at)).where(sources.c.document_id.in_(docs))
                    ).scalar(),
                )
            )
            _add_crawl_status(conn, topic_id, per_topic[-1])
        last = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(1)).mappings().first()
        with_clip = select(embeddings.c.item_id).where(embeddings.c.space == CLIP_IMAGE_SPACE)
        report = StatusReport(
            store=str(store.root),
            documents=count(documents),
            sources=count(sources),
            chunks=count(chunks),
            images=count(images),
            vectors={space: vectors.get(space, 0) for space in SPACE_TABLE},
            images_without_clip=conn.execute(
                select(func.count()).select_from(images).where(images.c.id.not_in(with_clip))
            ).scalar_one(),
            bytes={
                "database": _size(store.db_path) + _size(store.db_path.with_name("engine.db-wal")),
                "images": _tree_size(store.root / "images"),
                "indexes": _tree_size(store.root / "index"),
            },
            models={
                k.removeprefix("model."): v
                for k, v in conn.execute(text("SELECT key, value FROM meta WHERE key LIKE 'model.%'"))
            },
            topics=per_topic,
            last_run=None,
        )
        if last is not None:
            report.last_run = {
                "started_at": last["started_at"],
                "finished_at": last["finished_at"],
                # A run still "running" with nobody holding the write lock was killed.
                "status": last["status"],
                "summary": json.loads(last["summary"]) if last["summary"] else None,
            }
    return report


def _add_crawl_status(conn, topic_id: int, status: TopicStatus) -> None:  # noqa: ANN001 - Connection
    row = conn.execute(select(crawl_topics).where(crawl_topics.c.topic_id == topic_id)).mappings().first()
    if row is not None:
        status.last_crawl = row["last_crawl_at"]
        status.next_crawl = row["next_crawl_at"]
        for provider, reason in json.loads(row["discovery_errors"] or "{}").items():
            key = f"discovery {provider}: {_reason_head(reason)}"
            status.errors[key] = status.errors.get(key, 0) + 1
    of_topic = select(crawl_url_topics.c.url_id).where(crawl_url_topics.c.topic_id == topic_id)
    rows = conn.execute(
        select(crawl_urls.c.status, crawl_urls.c.last_error, func.count())
        .where(crawl_urls.c.id.in_(of_topic), crawl_urls.c.kind == "page")
        .group_by(crawl_urls.c.status, crawl_urls.c.last_error)
    )
    for url_status, error, n in rows:
        status.urls[url_status] = status.urls.get(url_status, 0) + n
        if error:
            key = f"{url_status}: {_reason_head(error)}"
            status.errors[key] = status.errors.get(key, 0) + n
    status.errors = dict(sorted(status.errors.items(), key=lambda kv: (-kv[1], kv[0])))


def _reason_head(reason: str) -> str:
    """The stable part of a reason ("HTTP 503", "timeout", "robots.txt"), without URLs and numbers."""
    head = reason.split(":", 1)[0].strip()
    return head if len(head) <= 60 else head[:59] + "…"


@dataclass
class SpaceCheck:
    space: str
    in_database: int
    in_index_file: int
    missing_from_index: int
    orphans_in_index: int
    index_file_problem: str | None


@dataclass
class CheckReport:
    sqlite_integrity: str
    foreign_key_violations: int
    spaces: list[SpaceCheck]
    missing_image_files: list[str]
    unreferenced_image_files: list[str]
    chunks_without_text_vector: int
    images_without_clip_vector: int
    problems: list[str] = field(default_factory=list)  # inconsistencies that need a person
    notes: list[str] = field(default_factory=list)  # harmless, repaired on their own

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_store(store: Store) -> CheckReport:
    """Compare SQLite with the FAISS files and the image folder, changing nothing."""
    with store.reading() as conn:
        integrity = conn.execute(text("PRAGMA integrity_check")).scalar()
        fk_violations = len(conn.execute(text("PRAGMA foreign_key_check")).fetchall())
        image_paths = set(conn.execute(select(images.c.path)).scalars())
        without_text = conn.execute(
            select(func.count()).select_from(chunks).where(
                chunks.c.id.not_in(select(embeddings.c.item_id).where(embeddings.c.space == TEXT_SPACE))
            )
        ).scalar_one()
        without_clip = conn.execute(
            select(func.count()).select_from(images).where(
                images.c.id.not_in(select(embeddings.c.item_id).where(embeddings.c.space == CLIP_IMAGE_SPACE))
            )
        ).scalar_one()
        spaces = []
        for space in (TEXT_SPACE, CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE):
            db_ids = store.ids_with_vectors(space, conn)
            dim = store.get_meta(f"dim.{space}", conn)
            cached, problem = np.zeros(0, np.int64), None
            if dim is not None:
                index, problem = VectorIndex.load(store.index_path(space), int(dim))
                cached = index.ids()
                if problem is None and not store.index_path(space).exists() and len(db_ids):
                    problem = "no index file yet (built on next use)"
            spaces.append(
                SpaceCheck(
                    space,
                    len(db_ids),
                    len(cached),
                    len(np.setdiff1d(db_ids, cached)),
                    len(np.setdiff1d(cached, db_ids)),
                    problem,
                )
            )
    on_disk = {
        str(p.relative_to(store.root)) for p in (store.root / "images").rglob("*") if p.is_file() and not p.name.endswith(".tmp")
    } if (store.root / "images").exists() else set()
    report = CheckReport(
        sqlite_integrity=integrity,
        foreign_key_violations=fk_violations,
        spaces=spaces,
        missing_image_files=sorted(image_paths - on_disk),
        unreferenced_image_files=sorted(on_disk - image_paths),
        chunks_without_text_vector=without_text,
        images_without_clip_vector=without_clip,
    )
    if integrity != "ok":
        report.problems.append(f"SQLite integrity check: {integrity}")
    if fk_violations:
        report.problems.append(f"{fk_violations} foreign key violations")
    if report.missing_image_files:
        report.problems.append(f"{len(report.missing_image_files)} image files are missing")
    if without_text:
        report.problems.append(f"{without_text} chunks have no text vector (engine reindex --text)")
    if report.unreferenced_image_files:
        report.notes.append(
            f"{len(report.unreferenced_image_files)} image files belong to no stored image "
            "(left by an interrupted run or a replaced page)"
        )
    for s in spaces:
        if s.missing_from_index or s.orphans_in_index or s.index_file_problem:
            report.notes.append(
                f"{s.space} index file is behind the database: {s.missing_from_index} missing, "
                f"{s.orphans_in_index} orphaned{', ' + s.index_file_problem if s.index_file_problem else ''} "
                "(repaired on next use, or now by engine reindex)"
            )
    return report


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _tree_size(root: Path) -> int:
    return sum(_size(p) for p in root.rglob("*") if p.is_file()) if root.exists() else 0
