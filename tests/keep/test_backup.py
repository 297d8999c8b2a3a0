"""`engine backup` and `engine restore`: a consistent copy while the store is in use, a verified
restore that keeps the old database aside, and a damaged database reported cleanly by every command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.errors import InputError, StoreError
from engine.keep.backup import backup_store, restore_store, verify_backup
from engine.store.database import HEAD_REVISION

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TABLES = ["documents", "sources", "chunks", "images", "document_images", "topic_documents", "embeddings", "topics"]
NO_CLIP = {"ENGINE_CLIP_ENABLED": "false"}
runner = CliRunner()


# -- helpers -------------------------------------------------------------------------------------


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    config = tmp / "empty-config.toml"
    config.touch()
    env.update(ENGINE_CONFIG=str(config), HF_HUB_OFFLINE="1", **NO_CLIP, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def engine_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "--store", str(store), *args]


def run_engine(tmp: Path, store: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(engine_cmd(store, *args), env=clean_env(tmp), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def invoke(store: Path, *args: str):  # noqa: ANN201 - click's Result
    return runner.invoke(app, ["--store", str(store), *args], env=NO_CLIP)


def counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def image_paths(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT path FROM images")}
    finally:
        conn.close()


def files_under(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` and its sha256: what "left untouched" compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "write.lock"
    }


def ask_sources(store: Path) -> list:
    result = invoke(store, "ask", "Roman coins", "--format", "json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["sources"], answer
    return [(s["url"], s["title"]) for s in answer["sources"]]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    """A store with the 8 example pages and their images, indexed once for this module."""
    tmp = tmp_path_factory.mktemp("indexed")
    store = tmp / "store"
    done = subprocess.run(
        engine_cmd(store, "index", "--topics", str(EXAMPLES / "topics.txt"), "--from", str(EXAMPLES / "pages")),
        env=clean_env(tmp), capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert counts(store / "engine.db")["documents"] == 8
    return store


@pytest.fixture
def store(indexed, tmp_path) -> Path:
    """A private copy of the indexed store."""
    target = tmp_path / "kb"
    shutil.copytree(indexed, target)
    return target


@pytest.fixture
def a_backup(store, tmp_path) -> Path:
    target = tmp_path / "backup"
    result = invoke(store, "backup", str(target))
    assert result.exit_code == 0, result.output
    return target


# -- backup and restore --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["backup"], ["restore"]], ids=" ".join)
def test_backup_and_restore_have_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: engine" in result.output and "--json" in result.output


@pytest.mark.slow
def test_backup_then_restore_into_a_fresh_folder_gives_the_same_store(store, tmp_path):
    before = counts(store / "engine.db")
    sources_before = ask_sources(store)
    target = tmp_path / "backups" / "monday"

    result = invoke(store, "backup", str(target), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"documents": 8, "chunks": before["chunks"], "images": before["images"]}
    assert report["schema_revision"] == HEAD_REVISION and report["image_files"] == before["images"] > 0
    assert "index/text.faiss.json" in report["index_files"]
    manifest = json.loads((target / "backup.json").read_text())
    assert manifest["counts"] == report["counts"] and manifest["created_at"] and "engine.db" in manifest["files"]
    assert os.listdir(target.parent) == ["monday"]  # no half-written folder left beside it
    # The backup's database is one self-contained, intact file.
    assert not (target / "engine.db-wal").exists()
    assert sqlite3.connect(target / "engine.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    fresh = tmp_path / "new-machine" / "kb"  # does not exist yet
    result = invoke(fresh, "restore", str(target), "--json")

    assert result.exit_code == 0, result.output
    restored = json.loads(result.stdout)
    assert restored["moved_aside"] == [] and restored["image_files_copied"] == before["images"]
    assert counts(fresh / "engine.db") == before
    assert {str(p.relative_to(fresh)) for p in (fresh / "images").rglob("*") if p.is_file()} == image_paths(store / "engine.db")
    check = invoke(fresh, "check", "--json")
    assert check.exit_code == 0, check.output
    checked = json.loads(check.stdout)
    assert checked["ok"] is True and checked["problems"] == [] and checked["notes"] == []
    assert ask_sources(fresh) == sources_before


def test_backup_refuses_a_folder_that_is_not_empty(store, tmp_path):
    target = tmp_path / "used"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    result = invoke(store, "backup", str(target))

    assert result.exit_code == 1
    assert "InputError" in result.stderr and str(target) in result.stderr and "not an empty folder" in result.stderr
    assert os.listdir(target) == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    # An empty folder is fine.
    (target / "notes.txt").unlink()
    assert invoke(store, "backup", str(target)).exit_code == 0
    assert (target / "backup.json").exists()


def test_backup_of_no_store_is_a_clear_error(tmp_path):
    result = invoke(tmp_path / "nothing-here", "backup", str(tmp_path / "b"))
    assert result.exit_code == 1
    assert "StoreError" in result.stderr and "engine.db" in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_backup_holds_exactly_the_images_its_database_names(store, tmp_path):
    referenced = sorted(image_paths(store / "engine.db"))
    stray = store / "images" / "zz" / "left-by-a-killed-run.jpeg"
    stray.parent.mkdir()
    stray.write_bytes(b"not referenced")
    (store / referenced[0]).unlink()  # the store itself lost one (engine check reports it)

    report = backup_store(store, tmp_path / "b")

    in_backup = {str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b" / "images").rglob("*") if p.is_file()}
    assert in_backup == set(referenced[1:])
    assert report.missing_images == (referenced[0],) and report.image_files == len(referenced) - 1
    # What the store already lacked does not make the backup unusable: it is recorded as such.
    assert verify_backup(tmp_path / "b")["missing_images"] == [referenced[0]]


def test_restore_keeps_the_previous_database_aside(a_backup, tmp_path):
    other = tmp_path / "other"
    assert invoke(other, "status").exit_code == 0  # an empty store: schema, no rows
    before = files_under(other)

    report = restore_store(a_backup, other)

    assert counts(other / "engine.db")["documents"] == 8
    aside = [Path(p) for p in report.moved_aside]
    assert aside and aside[0].name.startswith("engine.db.before-restore-")
    assert counts(aside[0])["documents"] == 0  # the old database, intact and openable: undo is a move
    assert hashlib.sha256(aside[0].read_bytes()).hexdigest() == before["engine.db"]
    assert not list(other.glob("*.tmp"))
    assert invoke(other, "check").exit_code == 0


@pytest.mark.parametrize("stop_in", ["_copy_images", "_remove_caches", "_move_aside", "fsync_dir"])
def test_a_restore_stopped_midway_leaves_the_old_store_or_the_new_one(store, tmp_path, monkeypatch, stop_in):
    import engine.keep.backup as keep

    target = tmp_path / "b"
    backup_store(store, target)
    old = tmp_path / "old"
    shutil.copytree(store, old)
    conn = sqlite3.connect(old / "engine.db")  # make the old store tell apart: one topic more
    conn.execute("INSERT INTO topics(name, created_at) VALUES ('only in the old store', 0)")
    conn.commit()
    conn.close()
    old_topics, new_topics = counts(old / "engine.db")["topics"], counts(store / "engine.db")["topics"]

    real = getattr(keep, stop_in)

    def stop(*args, **kwargs):  # noqa: ANN002, ANN003
        if stop_in == "fsync_dir":
            real(*args, **kwargs)  # just after the switch
        raise KeyboardInterrupt

    monkeypatch.setattr(keep, stop_in, stop)
    with pytest.raises(KeyboardInterrupt):
        restore_store(target, old)
    monkeypatch.undo()

    topics = counts(old / "engine.db")["topics"]
    assert topics == (new_topics if stop_in == "fsync_dir" else old_topics)
    check = invoke(old, "check", "--json")  # the writer's lock is free again, and the store is whole
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["problems"] == []
    assert restore_store(target, old).counts["documents"] == 8  # and the restore can simply be run again
    assert counts(old / "engine.db")["topics"] == new_topics


def corrupt_database(backup: Path, keep_checksum: bool) -> str:
    db = backup / "engine.db"
    with open(db, "r+b") as f:
        f.seek(db.stat().st_size // 2)
        f.write(b"\xff" * 8192)
    if not keep_checksum:  # then integrity_check must find it on its own
        manifest = json.loads((backup / "backup.json").read_text())
        del manifest["database_sha256"]
        (backup / "backup.json").write_text(json.dumps(manifest))
    return str(db)


def remove_an_image(backup: Path, keep_checksum: bool) -> str:
    victim = next(p for p in (backup / "images").rglob("*") if p.is_file())
    victim.unlink()
    return "images"


def remove_the_manifest(backup: Path, keep_checksum: bool) -> str:
    (backup / "backup.json").unlink()
    return "backup.json"


def truncate_database(backup: Path, keep_checksum: bool) -> str:
    db = backup / "engine.db"
    os.truncate(db, db.stat().st_size // 3)
    corrupt = json.loads((backup / "backup.json").read_text())
    corrupt.pop("database_sha256")
    (backup / "backup.json").write_text(json.dumps(corrupt))
    return str(db)


@pytest.mark.parametrize(
    "damage, keep_checksum, reason",
    [
        (corrupt_database, True, "checksum"),
        (corrupt_database, False, "damaged"),
        (truncate_database, False, "damaged"),
        (remove_an_image, True, "image files"),
        (remove_the_manifest, True, "not written by `engine backup`"),
    ],
    ids=["garbled-db", "garbled-db-no-checksum", "truncated-db", "missing-image", "no-manifest"],
)
def test_restore_refuses_a_damaged_backup_and_leaves_the_store_untouched(store, a_backup, damage, keep_checksum, reason):
    named = damage(a_backup, keep_checksum)
    before = files_under(store)

    result = invoke(store, "restore", str(a_backup))

    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("InputError:") and "\n" not in message, message
    assert named in message and reason in message, message
    assert files_under(store) == before


def test_restore_refuses_while_a_writer_holds_the_store(store, a_backup):
    from engine.store.store import Store

    before = files_under(store)
    with Store(store) as writer:
        writer.acquire_write_lock()
        result = invoke(store, "restore", str(a_backup))
        assert result.exit_code == 1
        assert "StoreError" in result.stderr and f"pid {os.getpid()}" in result.stderr
        assert files_under(store) == before
    assert invoke(store, "restore", str(a_backup)).exit_code == 0  # once it is done


def test_restore_refuses_while_another_process_has_the_database_open(store, a_backup):
    reader = subprocess.Popen(  # as `engine serve` would: a connection kept open
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT count(*) FROM documents').fetchall(); print('open', flush=True); time.sleep(60)",
         str(store / "engine.db")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        before = files_under(store)
        result = invoke(store, "restore", str(a_backup))
        assert result.exit_code == 1
        assert "StoreError" in result.stderr and "open in another process" in result.stderr
        assert files_under(store) == before
    finally:
        reader.kill()
        reader.wait()
    assert invoke(store, "restore", str(a_backup)).exit_code == 0  # once it is gone


def test_a_dry_run_verifies_and_changes_nothing(store, a_backup, tmp_path):
    before = files_under(store)
    result = invoke(store, "restore", str(a_backup), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dry_run"] is True
    assert files_under(store) == before
    assert invoke(tmp_path / "never", "restore", str(a_backup), "--dry-run").exit_code == 0
    assert not (tmp_path / "never" / "engine.db").exists()


def test_a_postgresql_store_is_refused_with_what_to_use_instead(tmp_path):
    url = "postgresql+psycopg://kb@db.example.org/kb"
    with pytest.raises(StoreError, match="pg_dump") as raised:
        backup_store(tmp_path / "kb", tmp_path / "b", database_url=url)
    assert "images" in str(raised.value)
    with pytest.raises(StoreError, match="pg_restore"):
        restore_store(tmp_path / "b", tmp_path / "kb", database_url=url)
    assert not (tmp_path / "b").exists()


def test_restore_refuses_a_backup_from_a_newer_engine(a_backup, tmp_path):
    db = a_backup / "engine.db"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    manifest = json.loads((a_backup / "backup.json").read_text())
    manifest.pop("database_sha256")
    (a_backup / "backup.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="9999 is newer"):
        restore_store(a_backup, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


# -- while a writer runs -------------------------------------------------------------------------


def build_corpus(target: Path, copies: int) -> int:
    """``copies`` distinct saved pages per example page (own URL, own sentence), sharing the images."""
    target.mkdir(parents=True)
    n = 0
    for page in sorted((EXAMPLES / "pages").glob("*.html")):
        shutil.copytree(page.with_name(page.stem + "_files"), target / (page.stem + "_files"))
        html = page.read_text(encoding="utf-8")
        found = re.search(r"<!-- saved from url=\((\d+)\)(\S+?) -->", html)
        assert found, page
        url = found.group(2)
        for copy in range(copies):
            new_url = url.removesuffix(".html") + f"-{copy}.html"
            text = html.replace(found.group(0), f"<!-- saved from url=({len(new_url):04d}){new_url} -->").replace(url, new_url)
            head, sep, tail = text.partition("<h2>")
            note = f"<p>Reader letter {n}: a note from reader {n * 7 + 3} about edition {copy} of this page, kept in the archive.</p>\n"
            (target / f"{page.stem}-{copy}.html").write_text(head + note + sep + tail, encoding="utf-8")
            n += 1
    return n


@pytest.mark.slow
def test_a_backup_taken_while_engine_index_runs_is_consistent(tmp_path):
    corpus_size = build_corpus(tmp_path / "corpus", copies=6)
    live = tmp_path / "live"
    log = open(tmp_path / "index.err", "w")
    writer = subprocess.Popen(
        engine_cmd(live, "index", "--topics", str(EXAMPLES / "topics.txt"), "--from", str(tmp_path / "corpus")),
        env=clean_env(tmp_path, ENGINE_INDEX_DOCS_PER_BATCH="2"), stdout=subprocess.DEVNULL, stderr=log, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 180
        documents = 0
        while documents < 6:
            assert writer.poll() is None, f"engine index ended before the backup: {(tmp_path / 'index.err').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "engine index wrote no documents in time"
            try:
                documents = counts(live / "engine.db")["documents"]
            except sqlite3.Error:
                pass
            time.sleep(0.05)

        backups = []
        while writer.poll() is None and len(backups) < 3:  # each one a snapshot of a database being written
            backups.append(backup_store(live, tmp_path / f"backup-{len(backups)}"))
        assert writer.wait(timeout=300) == 0, (tmp_path / "index.err").read_text()[-2000:]  # never blocked for good
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        log.close()
    final = counts(live / "engine.db")
    assert final["documents"] == corpus_size
    assert backups[0].counts["documents"] < corpus_size, "the first backup was not taken mid-run"

    for n, report in enumerate(backups):
        path = Path(report.path)
        assert report.missing_images == ()  # image files are written before the rows that name them
        conn = sqlite3.connect(path / "engine.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.close()
        restored = tmp_path / f"restored-{n}"
        result = invoke(restored, "restore", str(path))
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}\n{backups}"
        got = counts(restored / "engine.db")
        assert {k: got[k] for k in ("documents", "chunks", "images")} == report.counts
        # Whole pages only: every stored chunk has its text vector, every document its chunks.
        assert got["embeddings"] >= got["chunks"] > 0
        check = invoke(restored, "check", "--json")
        assert check.exit_code == 0, check.output
        assert json.loads(check.stdout)["problems"] == []


# -- a damaged database --------------------------------------------------------------------------


def truncate(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 3)


def garble_header(db: Path) -> None:
    with open(db, "r+b") as f:
        f.write(b"this is not SQLite" * 8)


COMMANDS_THAT_OPEN_THE_STORE = [
    ["status"],
    ["status", "--json"],
    ["check"],
    ["ask", "Roman coins"],
    ["index", "--topics", str(EXAMPLES / "topics.txt"), "--from", str(EXAMPLES / "pages")],
    ["reindex"],
    ["backup", "BACKUP"],
    ["db", "upgrade"],
]


@pytest.mark.slow
@pytest.mark.parametrize("damage", [truncate, garble_header], ids=["truncated", "garbled-header"])
def test_a_damaged_database_is_a_clear_error_for_every_command_and_restore_repairs_it(indexed, tmp_path, damage):
    good_backup = tmp_path / "good"
    assert backup_store(indexed, good_backup).counts["documents"] == 8
    store = tmp_path / "kb"
    shutil.copytree(indexed, store)
    for side in ("engine.db-wal", "engine.db-shm"):
        (store / side).unlink(missing_ok=True)
    damage(store / "engine.db")

    for command in COMMANDS_THAT_OPEN_THE_STORE:
        args = [str(tmp_path / "new-backup") if a == "BACKUP" else a for a in command]
        done = run_engine(tmp_path, store, *args)
        label = " ".join(command)
        assert done.returncode == 1, f"engine {label} exited {done.returncode}: {done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"engine {label}:\n{done.stderr}"
        # One error line (a progress bar may have been drawn before it), whole: the file and the way out.
        lines = [line for line in done.stderr.splitlines() if "Error" in line]
        assert len(lines) == 1, f"engine {label}: not one error line:\n{done.stderr}"
        assert lines[0].startswith("StoreError:"), lines[0]
        assert str(store / "engine.db") in lines[0] and "restore" in lines[0], lines[0]
    assert not (tmp_path / "new-backup").exists()

    result = invoke(store, "restore", str(good_backup))  # the way out the message names
    assert result.exit_code == 0, result.output
    check = invoke(store, "check", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True, check.output
    assert counts(store / "engine.db") == counts(indexed / "engine.db")
