"""The store: one folder holding the SQLite database, the image files and the FAISS caches.

    <root>/engine.db          SQLite, the source of truth (vectors included)
    <root>/images/ab/<hash>.<ext>   image files, named by content hash
    <root>/index/<space>.faiss.json the manifest of a space's FAISS cache: which file, its
                                    vector version, kind, tuned parameters and measured recall
    <root>/index/<space>[.<n>].faiss  FAISS caches, rebuilt from engine.db when stale
    <root>/write.lock         held by the one process that may write
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from sqlalchemy import Connection, delete, func, select, text
from engine.store.dialect import insert, raw

from engine.config import IndexConfig
from engine.errors import ModelMismatchError, StoreError
from engine.store import database
from engine.store.atomic import write_atomic
from engine.store.schema import SPACE_TABLE, TEXT_SPACE, embeddings, images, meta, vector_changes
from engine.store.vectors import VectorIndex, read_manifest


log = logging.getLogger(__name__)

# PostgreSQL advisory lock key of the one writer (any fixed 64-bit number; "engine" in ASCII).
WRITER_LOCK_KEY = 0x656E67696E65

# The change log keeps the last CHANGES_KEPT versions of each space, pruned every CHANGES_PRUNE_EVERY.
CHANGES_KEPT = 2_000
CHANGES_PRUNE_EVERY = 100


@dataclass(frozen=True)
class ReconcileReport:
    space: str
    added: int
    removed: int
    # Why the cached file was discarded, if it was.
    discarded: str | None = None


class Store:
    """SQLite + image files + FAISS caches under one root folder.

    Use as a context manager, or call :meth:`close`; closing waits for a background index
    upgrade to finish, then saves changed indexes.
    """

    def __init__(self, root: Path, index_config: IndexConfig | None = None, database_url: str | None = None):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.root}: {exc}") from exc
        self.db_path = self.root / "engine.db"
        # A PostgreSQL URL puts the rows there; the folder keeps the image files and FAISS caches.
        self.database_url = database_url
        self.engine = database.connect(database_url or self.db_path)
        database.ensure_schema(self.engine, database_url or self.db_path)
        self._lock_conn = None  # PostgreSQL: the connection holding the writer's advisory lock
        self.index_config = index_config or IndexConfig()
        self._indexes: dict[str, VectorIndex] = {}
        # Guards the loaded indexes against a background upgrade swapping one in while this
        # thread changes it (apply_committed, reconcile, save).
        self._index_lock = threading.RLock()
        self._upgrades: dict[str, threading.Thread] = {}
        self.upgrade_failures: dict[str, str] = {}  # space -> why its last background build failed
        self._manifests_seen: dict[str, tuple] = {}  # space -> ((inode, mtime, size), file named)
        self._lock_fd: int | None = None
        # Vector changes made inside the open transaction, applied to the loaded
        # indexes only once it commits (apply_committed), so FAISS never runs ahead.
        self._pending_changes: dict[str, list] = {}
        self._phashes = None  # engine.near_duplicates.PhashIndex, loaded on first use
        self.reconciled: list[ReconcileReport] = []

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        self.close()

    def close(self) -> None:
        try:
            self.wait_for_upgrades()
            if self._lock_fd is None and any(index.dirty for index in self._indexes.values()):
                # A reader that repaired a stale cache (e.g. after a killed run) keeps the
                # repair, but only under the write lock, so it never races a writer's save.
                try:
                    self.acquire_write_lock()
                except (StoreError, OSError):
                    pass  # a writer is busy (it saves its own), or the store is read-only
            if self._lock_fd is not None:
                self.save_indexes()
        finally:
            self.release_write_lock()
            self.engine.dispose()

    def acquire_write_lock(self) -> None:
        """Become the one writer; raise StoreError if another process writes now.

        On PostgreSQL the rule spans machines: a session-level advisory lock, held on a
        connection of its own until release; the lock file still guards this machine's folder.
        """
        if self._lock_fd is not None:
            return
        if self.database_url and self._lock_conn is None:
            lock_conn = self.engine.connect()
            if not lock_conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": WRITER_LOCK_KEY}).scalar():
                lock_conn.close()
                raise StoreError("the store's database is being written by another process; wait for it to finish")
            lock_conn.commit()
            self._lock_conn = lock_conn
        fd = os.open(self.root / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            self.release_write_lock()  # the database's lock, if taken above
            raise StoreError(
                f"the store {self.root} is being written by pid {holder}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        # Only a writer makes temp files, so under the lock any left over are from a
        # killed process: half-written images or index files that nothing refers to.
        for folder in (self.root / "images", self.root / "index"):
            if folder.exists():
                for stale in folder.rglob("*.tmp"):
                    stale.unlink(missing_ok=True)
        # A rebuilt index whose manifest was never written (killed just before) is not in use.
        for space in SPACE_TABLE:
            current = self.index_file(space)
            if current.exists():
                for other in (self.root / "index").glob(f"{space}.*faiss"):
                    if other != current and other.name.split(".")[0] == space:
                        other.unlink(missing_ok=True)

    def release_write_lock(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": WRITER_LOCK_KEY})
            self._lock_conn.close()
            self._lock_conn = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One short write transaction; committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str, conn: Connection | None = None) -> str | None:
        query = select(meta.c.value).where(meta.c.key == key)
        if conn is not None:
            return conn.execute(query).scalar()
        with self.reading() as c:
            return c.execute(query).scalar()

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        stmt = insert(conn, meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def bind_model(self, spaces: tuple[str, ...], name: str, dim: int) -> None:
        """Record which model made the vectors of ``spaces``; refuse a different one.

        A store with no vectors in those spaces takes the new model silently.
        """
        with self.transaction() as conn:
            for space in spaces:
                stored = self.get_meta(f"model.{space}", conn)
                if stored is not None and stored != name and self.vector_count(space, conn) > 0:
                    # Whole commands, not a flag in a template, so tests/test_error_messages.py checks them.
                    redo = "`engine reindex --text`" if space == TEXT_SPACE else "`engine reindex --images`"
                    # The same model on another runtime ("name+onnx-int8"): the setting to change is the runtime.
                    same_model = stored.split("+")[0] == name.split("+")[0]
                    setting = "text.runtime" if space == TEXT_SPACE else "clip.runtime"
                    again = f"set {setting} back to the one that made them" if same_model else f"configure {stored!r} again"
                    raise ModelMismatchError(
                        f"the store's {space!r} vectors were made with {stored!r}, but the "
                        f"configured model is {name!r}; run {redo} "
                        f"to re-embed everything with {name!r}, or {again}"
                    )
                self.set_meta(conn, f"model.{space}", name)
                self.set_meta(conn, f"dim.{space}", str(dim))

    # -- vectors ---------------------------------------------------------------------

    def vector_count(self, space: str, conn: Connection) -> int:
        query = select(func.count()).select_from(embeddings).where(embeddings.c.space == space)
        return conn.execute(query).scalar_one()

    def vector_version(self, space: str, conn: Connection | None = None) -> int:
        return int(self.get_meta(f"vectors_version.{space}", conn) or 0)

    def put_vectors(self, conn: Connection, space: str, ids: list[int], vectors: np.ndarray) -> None:
        """Store vectors in SQLite (inside the caller's transaction) and bump the space's version."""
        if not ids:
            return
        rows = [
            {"space": space, "item_id": int(i), "vector": np.asarray(v, np.float32).tobytes()}
            for i, v in zip(ids, vectors)
        ]
        stmt = insert(conn, embeddings)
        stmt = stmt.on_conflict_do_update(
            index_elements=[embeddings.c.space, embeddings.c.item_id],
            set_={"vector": stmt.excluded.vector},
        )
        conn.execute(stmt, rows)
        self.bump_version(conn, space, ids)
        self._pending(space).append(("add", np.asarray(ids, np.int64), np.asarray(vectors, np.float32)))

    def delete_vectors(self, conn: Connection, space: str, ids: list[int]) -> None:
        if not ids:
            return
        conn.execute(delete(embeddings).where(embeddings.c.space == space, embeddings.c.item_id.in_(ids)))
        self.bump_version(conn, space, ids)
        self._pending(space).append(("remove", np.asarray(ids, np.int64), None))

    def bump_version(self, conn: Connection, space: str, changed_ids: list[int] | None = None) -> int:
        """Count a change to ``space``'s vectors; log which ids it touched (None: too many to name).

        Returns:
            The space's new vector version.
        """
        version = int(
            conn.execute(
                text(
                    "INSERT INTO meta(key, value) VALUES (:k, '1') ON CONFLICT(key) "
                    # meta.value, qualified: PostgreSQL finds a bare `value` ambiguous with EXCLUDED's.
                    "DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT) RETURNING value"
                ),
                {"k": f"vectors_version.{space}"},
            ).scalar_one()
        )
        if changed_ids is None:
            # A bulk change (a re-embedding reset) names no ids: readers before it compare every id.
            self.set_meta(conn, f"changes_floor.{space}", str(version))
            return version
        conn.execute(insert(conn, vector_changes), [{"space": space, "version": version, "item_id": int(i)} for i in changed_ids])
        if version % CHANGES_PRUNE_EVERY == 0:
            floor = version - CHANGES_KEPT
            conn.execute(delete(vector_changes).where(vector_changes.c.space == space, vector_changes.c.version <= floor))
            if floor > int(self.get_meta(f"changes_floor.{space}", conn) or 0):
                self.set_meta(conn, f"changes_floor.{space}", str(floor))
        return version

    def changes_between(self, space: str, after: int, upto: int) -> np.ndarray | None:
        """Ids whose vectors changed in versions ``after`` < v <= ``upto``; None when the log does not reach back that far."""
        if after < 0 or after < int(self.get_meta(f"changes_floor.{space}") or 0):
            return None
        with self.reading() as conn:
            rows = raw(
                conn,
                "SELECT DISTINCT item_id FROM vector_changes WHERE space = ? AND version > ? AND version <= ?",
                (space, after, upto),
            )
            return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def _pending(self, space: str) -> list:
        return self._pending_changes.setdefault(space, [])

    def apply_committed(self) -> None:
        """Apply the vector changes of the last committed transaction(s) to loaded indexes."""
        pending, self._pending_changes = self._pending_changes, {}
        with self._index_lock:
            for space, changes in pending.items():
                index = self._indexes.get(space)
                if index is None:
                    continue
                for op, ids, vectors in changes:
                    if op == "add":
                        index.remove(ids)  # re-put of an id replaces its vector
                        index.add(ids, vectors)
                    else:
                        index.remove(ids)
                index.version = self.vector_version(space)
                self._upgrade_if_outgrown(space, index)

    def discard_uncommitted(self) -> None:
        self._pending_changes = {}
        self._phashes = None  # may hold rows that were rolled back; reloaded when needed

    def near_duplicate_image(self, conn: Connection, phash: str | None) -> int | None:
        """A stored image that looks the same as one with ``phash``, if any."""
        from engine.near_duplicates import PhashIndex

        if self._phashes is None:
            rows = conn.execute(select(images.c.id, images.c.phash).where(images.c.phash.is_not(None)))
            self._phashes = PhashIndex([(i, h) for i, h in rows])
        return self._phashes.nearest(phash)

    def remember_image_phash(self, image_id: int, phash: str | None) -> None:
        if self._phashes is not None:
            self._phashes.add(image_id, phash)

    def read_vectors(self, space: str, ids: list[int] | np.ndarray, dim: int) -> np.ndarray:
        """Vectors of ``ids`` in ``space`` in that order; rows of zeros for ids without one."""
        out = np.zeros((len(ids), dim), np.float32)
        position = {int(i): n for n, i in enumerate(ids)}
        with self.reading() as conn:
            for start in range(0, len(ids), 900):
                batch = [int(i) for i in ids[start : start + 900]]
                rows = raw(  # the driver directly: 3x faster than Core rows here
                    conn,
                    f"SELECT item_id, vector FROM embeddings WHERE space = ? AND item_id IN ({','.join('?' * len(batch))})",
                    (space, *batch),
                )
                for item_id, blob in rows:
                    out[position[item_id]] = np.frombuffer(blob, np.float32)
        return out

    def ids_with_vectors(self, space: str, conn: Connection) -> np.ndarray:
        rows = raw(conn, "SELECT item_id FROM embeddings WHERE space = ?", (space,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vector_batches(self, space: str, dim: int, size: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) of ``space`` in batches of ``size``, read in one pass."""
        with self.reading() as conn:
            rows = raw(conn, "SELECT item_id, vector FROM embeddings WHERE space = ? ORDER BY item_id", (space,))
            while batch := rows.fetchmany(size):
                ids = np.fromiter((r[0] for r in batch), np.int64, len(batch))
                vectors = np.frombuffer(b"".join(r[1] for r in batch), np.float32).reshape(len(batch), dim)
                yield ids, vectors

    def index(self, space: str, dim: int) -> VectorIndex:
        """The FAISS index of ``space``, loaded once and reconciled with SQLite whenever its vectors changed.

        A writer also starts a background upgrade when the space has outgrown the index's
        kind (engine/ann/choice.py); until it is swapped in, this one keeps answering.
        """
        if space not in SPACE_TABLE:
            raise StoreError(f"unknown vector space {space!r}")
        with self._index_lock:
            index = self._indexes.get(space)
            if index is None or index.dim != dim or self._replaced_on_disk(space, index):
                index = self._load_index(space, dim)
            elif index.version != self.vector_version(space):
                # Another writer committed (a server's index job, `engine index` in another process):
                # a long-lived reader takes its vectors now, not at its next start.
                self.reconcile(space, index)
            self._upgrade_if_outgrown(space, index)
            return index

    def _load_index(self, space: str, dim: int) -> VectorIndex:
        index, discarded = VectorIndex.load(self.index_path(space), dim)
        index.exact_vectors = self._exact_reader(space, dim)
        report = self.reconcile(space, index)
        self.reconciled.append(ReconcileReport(space, report.added, report.removed, discarded))
        if discarded:
            index.dirty = True
        self._indexes[space] = index
        return index

    def _replaced_on_disk(self, space: str, index: VectorIndex) -> bool:
        """Whether a writer (another process, or a finished upgrade) made another file the space's index."""
        return self._manifest_file(space) not in (None, index.file)

    def _manifest_file(self, space: str) -> str | None:
        """The file the space's manifest names; re-read only when the manifest changed (asked on every question)."""
        path = self.index_path(space).with_name(self.index_path(space).name + ".json")
        try:
            stat = path.stat()
        except OSError:
            return None
        seen = self._manifests_seen.get(space)
        if seen is None or seen[0] != (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            seen = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), read_manifest(self.index_path(space)).get("file"))
            self._manifests_seen[space] = seen
        return seen[1]

    def _exact_reader(self, space: str, dim: int):  # noqa: ANN202 - Callable[[np.ndarray], np.ndarray]
        return lambda ids: self.read_vectors(space, ids, dim)

    def reconcile(self, space: str, index: VectorIndex) -> ReconcileReport:
        """Make ``index`` hold exactly SQLite's ids for ``space``: add missing, drop orphans."""
        while True:
            version = self.vector_version(space)
            if index.version == version:
                return ReconcileReport(space, 0, 0)
            changed = self.changes_between(space, index.version, version)
            if changed is not None:
                return self._catch_up(space, index, changed, version)
            with self.reading() as conn:
                db_ids = self.ids_with_vectors(space, conn)
            if self.vector_version(space) == version:
                break  # nobody wrote in between, so db_ids belong to `version`
        cached = index.ids()
        orphans = np.setdiff1d(cached, db_ids, assume_unique=True)
        missing = np.setdiff1d(db_ids, cached, assume_unique=True)
        index.remove(orphans)
        for start in range(0, len(missing), 4096):
            batch = missing[start : start + 4096]
            index.add(batch, self.read_vectors(space, batch, index.dim))
        index.version = version
        index.dirty = index.dirty or len(orphans) > 0 or len(missing) > 0
        return ReconcileReport(space, len(missing), len(orphans))

    def _catch_up(self, space: str, index: VectorIndex, changed: np.ndarray, version: int) -> ReconcileReport:
        """Apply the logged changes: re-read the changed ids, drop those without a vector now."""
        vectors = self.read_vectors(space, changed, index.dim)
        present = np.any(vectors != 0, axis=1)
        index.remove(changed)
        index.add(changed[present], vectors[present])
        index.version = version
        index.dirty = index.dirty or len(changed) > 0
        return ReconcileReport(space, int(present.sum()), int((~present).sum()))

    # -- building and upgrading indexes ----------------------------------------------

    def rebuild_index(self, space: str, dim: int, on_progress: Callable[[int, int], None] | None = None) -> VectorIndex:
        """Build ``space``'s index anew from SQLite, of the kind its size calls for now, and make it current.

        Args:
            on_progress: called with (vectors added, vectors in the space).
        """
        self.wait_for_upgrades(space)
        index = self._build_index(space, dim, on_progress)
        self._install(space, index)
        return index

    def _build_index(self, space: str, dim: int, on_progress=None) -> VectorIndex:  # noqa: ANN001
        from engine.ann.build import build_index
        from engine.ann.choice import choose

        with self.reading() as conn:
            ids = self.ids_with_vectors(space, conn)
        settings = self.index_config
        choice = choose(len(ids), dim, settings.budget_bytes, settings.exact_below)
        # A new file each build: the current one keeps serving, and the manifest's rename switches.
        file = f"{space}.{time.time_ns()}.faiss"
        return build_index(
            self.index_path(space),
            dim,
            choice,
            ids,
            self._exact_reader(space, dim),
            lambda: self.vector_batches(space, dim),
            settings.target_recall,
            file,
            on_progress,
        )

    def _install(self, space: str, index: VectorIndex) -> None:
        """Catch ``index`` up with the commits made while it was built, save it and swap it in."""
        self.reconcile(space, index)  # the bulk of the catching up, without blocking the writer
        with self._index_lock:
            self.reconcile(space, index)  # the last commits; apply_committed waits meanwhile
            replaced = {self._manifest_file(space) or self.index_path(space).name}
            if space in self._indexes:
                replaced.add(self._indexes[space].file)
            index.save()
            self._indexes[space] = index
        for file in replaced - {index.file}:
            self.index_path(space).with_name(file).unlink(missing_ok=True)

    def _upgrade_if_outgrown(self, space: str, index: VectorIndex) -> None:
        """Start a background build when ``index`` no longer suits the space (writers only)."""
        from engine.ann.choice import rebuild_reason

        if self._lock_fd is None or space in self._upgrades or space in self.upgrade_failures:
            return
        settings = self.index_config
        reason = rebuild_reason(
            index.info.kind, index.info.built_vectors or len(index), len(index), index.dim,
            settings.budget_bytes, settings.exact_below, index.dead,
        )
        if reason is None:
            return
        thread = threading.Thread(target=self._upgrade, args=(space, index.dim), name=f"upgrade-{space}", daemon=True)
        self._upgrades[space] = thread
        thread.start()

    def _upgrade(self, space: str, dim: int) -> None:
        try:
            self._install(space, self._build_index(space, dim))
        except Exception as exc:  # noqa: BLE001 - the old index keeps serving; the failure is reported
            self.upgrade_failures[space] = f"{type(exc).__name__}: {exc}"
            log.warning("the %s index could not be rebuilt (the current one keeps serving): %s", space, exc)
        finally:
            self._upgrades.pop(space, None)

    def upgrades_running(self) -> list[str]:
        """The spaces whose index is being rebuilt in the background now."""
        return [space for space, thread in self._upgrades.items() if thread.is_alive()]

    def wait_for_upgrades(self, space: str | None = None) -> None:
        """Block until the background index builds (of ``space``, or all) have finished."""
        for name, thread in list(self._upgrades.items()):
            if space is None or name == space:
                thread.join()

    def index_path(self, space: str) -> Path:
        """``<root>/index/<space>.faiss``: the name the space's manifest goes by."""
        return self.root / "index" / f"{space}.faiss"

    def index_file(self, space: str) -> Path:
        """The file holding ``space``'s current index, as its manifest names it."""
        path = self.index_path(space)
        return path.with_name(read_manifest(path).get("file") or path.name)

    def save_indexes(self) -> None:
        with self._index_lock:
            for space, index in self._indexes.items():
                named = self._manifest_file(space)
                # A reader's repaired copy of an index another process has since replaced is stale.
                if index.dirty and (named is None or named == index.file):
                    index.save()

    # -- image files -------------------------------------------------------------------

    def image_relpath(self, content_hash: str, fmt: str) -> str:
        return f"images/{content_hash[:2]}/{content_hash}.{fmt.lower()}"

    def write_image_file(self, relpath: str, data: bytes) -> None:
        target = self.root / relpath
        if not target.exists():
            write_atomic(target, data)
