"""Status (what is stored) and check (is it consistent) — read-only views of a store.

Status is plain SQL on a sqlite3 connection, and this module imports SQLAlchemy, numpy and
FAISS only inside check_store: `engine status` on a store at the newest schema
(``status_at``) loads none of them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.results import StatusReport, TopicStatus
from engine.store import database
from engine.store.spaces import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, SPACE_TABLE, TEXT_SPACE

if TYPE_CHECKING:
    from engine.store.store import Store


def status_at(root: Path, topic_min_similarity: float) -> StatusReport:
    """The status of the store at ``root``: read with sqlite3 alone when its schema is the
    newest, else opened as a Store first (which creates, migrates or refuses it, as ever)."""
    root = Path(root)
    conn = database.connect_at_head(root / "engine.db")
    if conn is None:
        from engine.store.store import Store

        with Store(root) as store:
            return store_status(store, topic_min_similarity)
    with closing(conn):
        return _status(conn, root, root / "engine.db", topic_min_similarity)


def store_status(store: Store, topic_min_similarity: float) -> StatusReport:
    from engine.store.dialect import QmarkConnection

    with store.reading() as conn:
        return _status(QmarkConnection(conn), store.root, store.db_path, topic_min_similarity)


def _status(conn: sqlite3.Connection, root: Path, db_path: Path, topic_min_similarity: float) -> StatusReport:
    def one(sql: str, *params: object) -> object:
        return conn.execute(sql, params).fetchone()[0]

    count = lambda table: one(f"SELECT count(*) FROM {table}")  # noqa: E731
    vectors = dict(conn.execute("SELECT space, count(*) FROM embeddings GROUP BY space").fetchall())
    # The topic's documents: those whose link score reaches topic_min_similarity.
    docs = "SELECT document_id FROM topic_documents WHERE topic_id = ? AND score >= ?"
    per_topic = []
    for topic_id, name in conn.execute("SELECT id, name FROM topics ORDER BY name").fetchall():
        of_topic = (topic_id, topic_min_similarity)
        per_topic.append(
            TopicStatus(
                name=name,
                documents=one(f"SELECT count(*) FROM ({docs}) AS linked", *of_topic),
                images=one(f"SELECT count(DISTINCT image_id) FROM document_images WHERE document_id IN ({docs})", *of_topic),
                chunks=one(f"SELECT count(*) FROM chunks WHERE document_id IN ({docs})", *of_topic),
                last_update=one(f"SELECT max(updated_at) FROM sources WHERE document_id IN ({docs})", *of_topic),
            )
        )
        _add_crawl_status(conn, topic_id, per_topic[-1])
    last = conn.execute("SELECT started_at, finished_at, status, summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    report = StatusReport(
        store=str(root),
        documents=count("documents"),
        sources=count("sources"),
        chunks=count("chunks"),
        images=count("images"),
        vectors={space: vectors.get(space, 0) for space in SPACE_TABLE},
        images_without_clip=one(
            "SELECT count(*) FROM images WHERE id NOT IN (SELECT item_id FROM embeddings WHERE space = ?)", CLIP_IMAGE_SPACE
        ),
        bytes={
            "database": _size(db_path) + _size(db_path.with_name("engine.db-wal")),
            "images": _tree_size(root / "images"),
            "indexes": _tree_size(root / "index"),
        },
        models={
            k.removeprefix("model."): v
            for k, v in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'model.%'").fetchall()
        },
        topics=per_topic,
        last_run=None,
        indexes=_index_summaries(root / "index", vectors),
    )
    if last is not None:
        started_at, finished_at, status, summary = last
        report.last_run = {
            "started_at": started_at,
            "finished_at": finished_at,
            # A run still "running" with nobody holding the write lock was killed.
            "status": status,
            "summary": json.loads(summary) if summary else None,
        }
    return report


def _index_summaries(folder: Path, vectors: dict[str, int]) -> dict[str, dict]:
    """Each space's index as its manifest describes it (json alone: no FAISS to read it)."""
    from engine.ann.choice import memory_of

    out = {}
    for space in SPACE_TABLE:
        try:
            manifest = json.loads((folder / f"{space}.faiss.json").read_text())
        except (OSError, ValueError):
            if vectors.get(space):
                out[space] = {"kind": None, "note": "no index file yet (built on next use)"}
            continue
        info = manifest.get("info") or {"kind": "flat"}
        count = int(manifest.get("count") or 0)
        kind = info.get("kind", "flat")
        out[space] = {
            "kind": kind,
            "factory": info.get("factory", "Flat"),
            "vectors": count,
            # Exact search finds what exact search finds: its recall is 1 by definition.
            "recall_at_10": 1.0 if kind == "flat" else info.get("recall_at_10"),
            "target_recall": info.get("target_recall"),
            "params": info.get("params") or {},
            "memory_bytes": memory_of(kind, count + len(manifest.get("dead") or []), int(manifest.get("dim") or 0),
                                      info.get("nlist", 0), info.get("pq_bytes", 0)),
            "file_bytes": _size(folder / (manifest.get("file") or f"{space}.faiss")),
            "built_vectors": info.get("built_vectors"),
            "built_at": info.get("built_at"),
        }
    return out


def _add_crawl_status(conn: sqlite3.Connection, topic_id: int, status: TopicStatus) -> None:
    row = conn.execute(
        "SELECT last_crawl_at, next_crawl_at, discovery_errors FROM crawl_topics WHERE topic_id = ?", (topic_id,)
    ).fetchone()
    if row is not None:
        status.last_crawl, status.next_crawl, discovery_errors = row
        for provider, reason in json.loads(discovery_errors or "{}").items():
            key = f"discovery {provider}: {_reason_head(reason)}"
            status.errors[key] = status.errors.get(key, 0) + 1
    rows = conn.execute(
        "SELECT status, last_error, count(*) FROM crawl_urls "
        "WHERE id IN (SELECT url_id FROM crawl_url_topics WHERE topic_id = ?) AND kind = 'page' "
        "GROUP BY status, last_error",
        (topic_id,),
    ).fetchall()
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
    import numpy as np
    from sqlalchemy import func, select, text

    from engine.store.schema import chunks, embeddings, images
    from engine.store.vectors import VectorIndex

    with store.reading() as conn:
        if conn.dialect.name == "sqlite":
            integrity = conn.execute(text("PRAGMA integrity_check")).scalar()
            fk_violations = len(conn.execute(text("PRAGMA foreign_key_check")).fetchall())
        else:  # a server database checks its own pages and enforces foreign keys on every write
            integrity, fk_violations = "ok", 0
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
                if problem is None and not store.index_file(space).exists() and len(db_ids):
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
