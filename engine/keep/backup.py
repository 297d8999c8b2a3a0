"""Backing a store up while it is in use, and restoring it.

A backup is a folder::

    <backup>/backup.json          what it holds: when, the schema revision, counts, files, sha256 of engine.db
    <backup>/engine.db            SQLite's online backup of the live database (one consistent snapshot)
    <backup>/images/ab/<hash>.<ext>  exactly the image files the snapshot's ``images`` table names
    <backup>/index/...            the FAISS caches and calibration.json, for a quick start (rebuildable)

``backup_store`` never takes the writer's lock: the snapshot is one read transaction (WAL mode,
so neither readers nor a running ``engine index`` wait for it). The FAISS files are copied
before the snapshot, so they never hold vectors the snapshot lacks, and their manifests are
marked with version -1, so the store compares their ids with the database's on first open and
repairs any difference. Image files are copied after the snapshot: images are content-addressed
and only ever added, so every file the snapshot names is on disk by then. The backup is written
into a hidden folder beside the target and renamed into place last, so a half-written one never
looks like a backup.

``restore_store`` verifies the backup completely before it touches the store (backup.json,
the database's checksum and ``PRAGMA integrity_check``, its schema revision, every image file),
takes the writer's lock (refusing while ``engine index`` runs, or while another process has the
database open: a server would go on using the replaced one), keeps the current database
beside it as ``engine.db.before-restore-<time>`` and switches databases with one rename, after
the image files are in place. Killed at any point, the store holds either its old database or
the restored one, each with all of its image files; the FAISS files are caches either way.

Library code: it raises engine.errors exceptions and returns frozen reports; it never prints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterator

from engine.errors import InputError, StoreError
from engine.store.atomic import atomic_path, fsync_dir, fsync_tree
from engine.store.database import HEAD_REVISION, KNOWN_REVISIONS, revision_of
from engine.store.spaces import SPACE_TABLE

MANIFEST = "backup.json"
FORMAT = 1
DATABASE = "engine.db"
CALIBRATION = "calibration.json"  # engine.ask.calibration.CACHE_FILE: a cache in the store's root
COUNTED = ("documents", "chunks", "images")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupReport:
    path: str
    created_at: str
    schema_revision: str | None
    counts: dict[str, int]
    image_files: int
    index_files: tuple[str, ...]
    # Image files the store itself lacked when the backup was made (`engine check` reports them there too).
    missing_images: tuple[str, ...]
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RestoreReport:
    store: str
    source: str
    created_at: str
    schema_revision: str | None
    counts: dict[str, int]
    image_files_copied: int
    image_files_present: int  # already in the store folder (same name, same size)
    index_files: tuple[str, ...]
    moved_aside: tuple[str, ...]  # the database files the store had, kept (undo: move them back)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# -- backup --------------------------------------------------------------------------------------


def backup_store(root: Path, target: Path, database_url: str | None = None) -> BackupReport:
    """Copy the store at ``root`` into the new folder ``target``, consistently, while it is in use.

    Raises:
        InputError: ``target`` exists and is not an empty folder.
        StoreError: there is no store at ``root``, its database cannot be read or is damaged, or
            its rows are on a PostgreSQL server (``database_url``), which pg_dump backs up.
    """
    root, target = Path(root), Path(target)
    if database_url:
        raise StoreError(
            "this store keeps its rows on a PostgreSQL server (store.database_url): back them up with "
            "pg_dump (and restore with pg_restore); the image files and FAISS caches are in the folder "
            f"{root} (copy its images/ folder; the FAISS files are rebuilt by `engine reindex`)"
        )
    db_path = root / DATABASE
    if not db_path.is_file():
        raise StoreError(f"there is no store database at {db_path}; check --store (or store.path)")
    _refuse_non_empty(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(target), f"cannot create its parent folder ({exc})") from exc
    work = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        index_files = _copy_index_files(root, work)  # before the snapshot: never ahead of it
        revision, counts = _snapshot(db_path, work / DATABASE)
        with closing(sqlite3.connect(work / DATABASE)) as conn:
            paths = [row[0] for row in conn.execute("SELECT path FROM images ORDER BY path")]
        copied, missing = 0, []
        for rel in paths:
            _check_image_path(rel, db_path)
            source = root / rel
            try:
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, work / rel)
                copied += 1
            except FileNotFoundError:
                missing.append(rel)
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        files = {str(p.relative_to(work)): p.stat().st_size for p in sorted(work.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT,
            "created_at": created_at,
            "source": str(root.resolve()),
            "schema_revision": revision,
            "counts": counts,
            "database_sha256": _sha256(work / DATABASE),
            "images": {"files": copied, "bytes": sum(size for name, size in files.items() if name.startswith("images/"))},
            "missing_images": missing,
            "files": {name: size for name, size in files.items() if not name.startswith("images/")},
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        fsync_tree(work)
        if target.exists():
            target.rmdir()  # empty (checked above); a rename onto it would need it gone on some systems
        os.replace(work, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupReport(
        path=str(target),
        created_at=created_at,
        schema_revision=revision,
        counts=counts,
        image_files=copied,
        index_files=tuple(index_files),
        missing_images=tuple(missing),
        bytes=sum(files.values()) + (target / MANIFEST).stat().st_size,
    )


def _refuse_non_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(str(target), "already exists and is not an empty folder; give a new folder for the backup")


def _snapshot(db_path: Path, copy: Path) -> tuple[str | None, dict[str, int]]:
    """SQLite's online backup of ``db_path`` into ``copy``, checked; its schema revision and counts.

    One step (pages=-1) is one read transaction: in WAL mode a writer goes on committing meanwhile
    and the copy is the database as of the step's start. (Steps of N pages would start over after
    each commit of another process, and might never finish under a busy writer.)
    """
    try:
        with closing(sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as source:
            source.execute("PRAGMA busy_timeout=30000")
            with closing(sqlite3.connect(copy)) as target:
                source.backup(target)
    except sqlite3.DatabaseError as exc:
        raise StoreError(_damaged(db_path, str(exc))) from None
    try:
        with closing(sqlite3.connect(copy)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            problem = _integrity(conn)
            if problem:
                raise StoreError(_damaged(db_path, f"integrity check: {problem}"))
            return revision_of(conn), _counts(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(_damaged(db_path, str(exc))) from None


def _damaged(db_path: Path, reason: str) -> str:
    return (
        f"the store's database {db_path} is damaged ({reason}), so a backup of it would be too: "
        f"restore an earlier backup with `engine restore BACKUP`"
    )


def _copy_index_files(root: Path, work: Path) -> list[str]:
    """Each space's FAISS file (as its manifest names it) and the calibration cache, into ``work``.

    A writer replaces a file, then its manifest: the pair is taken again until the manifest and the
    file stayed the same across the copy. The copied manifest says version -1, so the store compares
    the file's ids with the database's on first open (the file may be a few commits older than the snapshot).
    """
    copied = []
    for space in SPACE_TABLE:
        manifest_path = root / "index" / f"{space}.faiss.json"
        for _attempt in range(5):
            try:
                before = manifest_path.read_bytes()
            except FileNotFoundError:
                before = None
            try:
                manifest = json.loads(before) if before is not None else {}
            except ValueError:
                manifest = {}
            name = manifest.get("file") if isinstance(manifest, dict) else None
            name = name if isinstance(name, str) and "/" not in name and name.startswith(space + ".") else f"{space}.faiss"
            source = root / "index" / name
            destination = work / "index" / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(source, "rb") as src:
                    inode = os.fstat(src.fileno()).st_ino
                    with open(destination, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                stable = os.stat(source).st_ino == inode
                after = manifest_path.read_bytes() if before is not None else None
            except FileNotFoundError:
                destination.unlink(missing_ok=True)
                if before is None:
                    break  # no index for this space
                continue  # replaced under us: take the new pair
            if stable and after == before:
                if before is not None:
                    manifest["version"] = -1
                    (work / "index" / manifest_path.name).write_text(json.dumps(manifest), encoding="utf-8")
                    copied.append(f"index/{manifest_path.name}")
                copied.append(f"index/{name}")
                break
            destination.unlink(missing_ok=True)
        # After five replacements in a row the space's file is left out: it is rebuilt on first use.
    calibration = root / CALIBRATION
    try:
        shutil.copyfile(calibration, work / CALIBRATION)
        copied.append(CALIBRATION)
    except FileNotFoundError:
        pass
    if (work / "index").exists() and not any((work / "index").iterdir()):
        (work / "index").rmdir()
    return copied


# -- restore -------------------------------------------------------------------------------------


def verify_backup(source: Path) -> dict:
    """Check the backup at ``source`` completely; return its backup.json.

    Raises:
        InputError: it is not a backup, or a part of it is missing or damaged (the message names the file).
    """
    source = Path(source)
    manifest_path = source / MANIFEST
    if not source.is_dir():
        raise InputError(str(source), "no such folder; give a folder written by `engine backup`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(manifest_path), "missing: this folder was not written by `engine backup` (or not completely)") from None
    except (OSError, ValueError) as exc:
        raise InputError(str(manifest_path), f"unreadable ({exc}); the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(str(manifest_path), f"not a backup manifest this engine reads (format {FORMAT} expected)")
    db_path = source / DATABASE
    if not db_path.is_file():
        raise InputError(str(db_path), "missing: the backup has no database")
    expected = manifest.get("database_sha256")
    if expected and _sha256(db_path) != expected:
        raise InputError(str(db_path), "its checksum differs from the one recorded in backup.json: the file was changed or damaged")
    try:
        with closing(sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            problem = _integrity(conn)
            if problem:
                raise InputError(str(db_path), f"damaged (integrity check: {problem})")
            revision = revision_of(conn)
            paths = [row[0] for row in conn.execute("SELECT path FROM images")]
    except sqlite3.DatabaseError as exc:
        raise InputError(str(db_path), f"damaged ({exc})") from None
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise InputError(
            str(db_path),
            f"schema revision {revision} is newer than this engine knows (newest: {HEAD_REVISION}); "
            "restore it with a newer engine (pip install -U engine)",
        )
    known_missing = set(manifest.get("missing_images") or [])
    absent = []
    for rel in paths:
        _check_image_path(rel, db_path, in_backup=True)
        if rel not in known_missing and not (source / rel).is_file():
            absent.append(rel)
    if absent:
        raise InputError(
            str(source / "images"),
            f"{len(absent)} image files the backup's database names are missing (first: {absent[0]}); the backup is damaged",
        )
    return manifest


def restore_store(source: Path, root: Path, database_url: str | None = None, dry_run: bool = False) -> RestoreReport:
    """Make the store at ``root`` the one backed up at ``source``; keep its current database beside it.

    Args:
        dry_run: verify the backup only; change nothing.

    Raises:
        InputError: the backup is missing, incomplete or damaged (nothing was changed).
        StoreError: a writer (engine index, reindex) or another process (engine serve) is using the
            store now, or the store keeps its rows on a PostgreSQL server.
    """
    source, root = Path(source), Path(root)
    if database_url:
        raise StoreError(
            "this store keeps its rows on a PostgreSQL server (store.database_url): restore them with "
            f"pg_restore, and the image files into {root / 'images'}; the FAISS files are rebuilt by `engine reindex`"
        )
    if source.resolve() == root.resolve():
        raise InputError(str(source), "is the store folder itself; give a folder written by `engine backup`")
    manifest = verify_backup(source)
    report = dict(
        store=str(root),
        source=str(source),
        created_at=str(manifest.get("created_at")),
        schema_revision=manifest.get("schema_revision"),
        counts=dict(manifest.get("counts") or {}),
    )
    index_files = tuple(
        name for name in (manifest.get("files") or {})
        if (name.startswith("index/") or name == CALIBRATION) and (source / name).is_file()
    )
    if dry_run:
        return RestoreReport(**report, image_files_copied=0, image_files_present=0, index_files=index_files,
                             moved_aside=(), dry_run=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store folder {root}: {exc}") from exc
    db_path = root / DATABASE
    with _writer_lock(root):
        if _open_elsewhere(db_path):
            raise StoreError(
                f"the store's database {db_path} is open in another process (engine serve, engine ask, ...): "
                "stop it, then restore again (it would go on reading, and writing beside, the database being replaced)"
            )
        copied, present = _copy_images(source, root)
        incoming = root / f"{DATABASE}.restoring.tmp"
        _copy_durably(source / DATABASE, incoming)
        # The old caches describe the old database: gone before it is (rebuilt from whichever is in place).
        _remove_caches(root)
        moved = _move_aside(db_path, datetime.now().strftime("%Y%m%dT%H%M%S"))
        os.replace(incoming, db_path)  # the switch: the old database, or the restored one, never neither
        fsync_dir(root)
        for name in sorted(index_files, key=lambda n: n.endswith(".json")):  # files before the manifests naming them
            _copy_durably(source / name, root / name)
    return RestoreReport(**report, image_files_copied=copied, image_files_present=present, index_files=index_files,
                         moved_aside=tuple(str(p) for p in moved))


@contextmanager
def _writer_lock(root: Path) -> Iterator[None]:
    """The store's writer lock (engine.store.store.Store.acquire_write_lock's file and flock), without
    opening the database, which may be the damaged one being replaced."""
    fd = os.open(root / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StoreError(
            f"the store {root} is being written by pid {holder}; wait for it to finish (or stop it), then restore again"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_elsewhere(db_path: Path) -> bool:
    """Whether another process has the database open: each connection holds a shared lock on the
    "dead man switch" byte (128) of its ``-shm`` file (SQLite's unix VFS) while it is connected.

    A POSIX lock: it sees other processes only, and closing the file drops this process's own locks
    on it, so call it only where this process has no connection to the database (the CLI's restore).
    """
    try:
        fd = os.open(db_path.with_name(db_path.name + "-shm"), os.O_RDWR)
    except FileNotFoundError:
        return False  # no connection has it open in WAL mode (SQLite removes it when the last one closes)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 128)
        return False
    finally:
        os.close(fd)


def _copy_images(source: Path, root: Path) -> tuple[int, int]:
    """Add the backup's image files the store lacks (content-addressed: a file of the same name and size is the same)."""
    copied = present = 0
    folder = source / "images"
    if not folder.exists():
        return 0, 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        target = root / path.relative_to(source)
        if target.is_file() and target.stat().st_size == path.stat().st_size:
            present += 1
            continue
        _copy_durably(path, target)
        copied += 1
    return copied, present


def _remove_caches(root: Path) -> None:
    (root / CALIBRATION).unlink(missing_ok=True)
    index = root / "index"
    if index.exists():
        # Manifests first: a manifest never names a file that is gone.
        for path in sorted(index.iterdir(), key=lambda p: not p.name.endswith(".json")):
            if path.is_file():
                path.unlink()


def _move_aside(db_path: Path, stamp: str) -> list[Path]:
    """Keep the store's database (and its WAL) as ``engine.db.before-restore-<stamp>``, still openable.

    ``engine.db`` itself is hard-linked, so it stays in place until the restored one replaces it. Its
    WAL is checkpointed first when it can be (a damaged database may refuse), then moved with it: a
    WAL left beside the restored database would be replayed into it.
    """
    if not db_path.exists():
        return []
    aside = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db_path.with_name(f"{db_path.name}.before-restore-{stamp}-{n}")
    try:
        with closing(sqlite3.connect(db_path, timeout=5)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass
    try:
        os.link(db_path, aside)
    except OSError:
        shutil.copy2(db_path, aside)
    moved = [aside]
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
            if suffix == "-wal":
                moved.append(aside.with_name(aside.name + suffix))
    return moved


# -- helpers ---------------------------------------------------------------------------------------


def _integrity(conn: sqlite3.Connection) -> str | None:
    """None when ``PRAGMA integrity_check`` says ok, else its first complaints."""
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
    if rows == ["ok"]:
        return None
    # A complaint can span lines ("*** in database main ***\nPage 47: ..."): one line for the error.
    return "; ".join(line.strip() for row in rows for line in row.splitlines() if line.strip() and not line.startswith("***"))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] if t in tables else 0 for t in COUNTED}


def _check_image_path(rel: str, db_path: Path, in_backup: bool = False) -> None:
    """Refuse a stored image path that leads outside ``images/`` (a database edited by hand, or not ours)."""
    parts = PurePosixPath(rel).parts
    if not rel or PurePosixPath(rel).is_absolute() or parts[0] != "images" or ".." in parts:
        reason = f"an image's stored path {rel!r} leads outside the images folder"
        if in_backup:
            raise InputError(str(db_path), f"{reason}; this is not a backup to restore")
        raise StoreError(f"{db_path}: {reason}; run `engine check`")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_durably(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source``: the old file or the whole new one, its name fsynced too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
