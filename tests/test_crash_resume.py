"""Crash safety: `engine index` killed with SIGKILL at any moment, then resumed.

The requirement: killing the process at any moment (kill -9) never corrupts the
store nor loses what was committed; the next run continues where it stopped and
ends with exactly the counts a clean run gives. These tests run the real CLI in
subprocesses and kill them at several points: during the very first open (schema
creation), during model loading, after the first pages, and mid-way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store.health import store_status
from engine.store.schema import HEAD_REVISION
from engine.store.store import Store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
COPIES = 5  # of each of the 8 example pages: 40 distinct pages
N_PAGES = 8 * COPIES
N_TOPICS = 4
# Small batches so commits come a few pages at a time and a run lasts long enough
# to be killed in the middle of it (the counts do not depend on the batch size).
DOCS_PER_BATCH = 4
POLL_SECONDS = 0.05
START_TIMEOUT = 120.0  # imports and model load on a slow machine
RUN_TIMEOUT = 300.0

CITIES = ["Lisbon", "Ghent", "Turin", "Bergen", "Seville", "Utrecht", "Lyon", "Porto", "Bologna", "Tartu"]
TRADES = ["a librarian", "a retired engineer", "a secondary-school teacher", "a museum volunteer", "a nurse"]
OBJECTS = ["an old notebook", "a family photograph", "a museum catalogue", "a local newspaper", "a travel diary"]


def reader_note(n: int) -> str:
    """A paragraph of ordinary prose that is different for every ``n``."""
    city, trade, thing = CITIES[n % len(CITIES)], TRADES[n % len(TRADES)], OBJECTS[(n // 3) % len(OBJECTS)]
    year = 1951 + 3 * n
    return (
        f"A reader from {city}, {trade}, wrote to us about this article in the spring of {year + 70}. "
        f"She remembered reading about the same subject in {thing} from {year}, and compared the "
        f"explanations given then with ours. Several of the details she described have since been "
        f"confirmed by later work, while others turned out to be local legends. We thank reader "
        f"number {n + 100} for the letter and for permission to quote it here."
    )


def build_corpus(target: Path) -> Path:
    """40 distinct saved pages from the 8 examples: own URLs, own paragraph, shared images."""
    target.mkdir(parents=True)
    n = 0
    for page in sorted((EXAMPLES / "pages").glob("*.html")):
        shutil.copytree(page.with_name(page.stem + "_files"), target / (page.stem + "_files"))
        html = page.read_text(encoding="utf-8")
        found = re.search(r"<!-- saved from url=\((\d+)\)(\S+?) -->", html)
        assert found, f"{page} has no saved-from URL"
        url = found.group(2)
        for copy in range(COPIES):
            new_url = url.removesuffix(".html") + f"-{copy}.html"
            text = html.replace(found.group(0), f"<!-- saved from url=({len(new_url):04d}){new_url} -->")
            text = text.replace(url, new_url)  # canonical link, og:url
            head, sep, tail = text.partition("<h2>")
            assert sep, f"{page} has no <h2> to put the reader note before"
            text = f"{head}<p>{reader_note(n)}</p>\n{sep}{tail}"
            n += 1
            # Pages stay in the same folder as the `<stem>_files` their images are in.
            (target / f"{page.stem}-{copy}.html").write_text(text, encoding="utf-8")
    assert n == N_PAGES
    return target


# -- running the CLI -------------------------------------------------------------------------


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    config = tmp / "engine-config.toml"
    if not config.exists():
        # An existing, empty file: a named but missing config file is an error.
        config.write_text("# empty: defaults and ENGINE_* variables only\n")
    env.update(
        ENGINE_CONFIG=str(config),
        ENGINE_CLIP_ENABLED="false",  # no CLIP weights here; text-only is faster too
        ENGINE_INDEX_DOCS_PER_BATCH=str(DOCS_PER_BATCH),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def engine_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli.app import main; sys.argv[0] = 'engine'; main()",
            "--store", str(store), *args]


def run_engine(tmp: Path, store: Path, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            engine_cmd(store, *args), env=cli_env(tmp), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"engine {' '.join(args)} did not finish in {timeout:.0f} s; stderr:\n{exc.stderr}")


class IndexRun:
    """`engine index` over the corpus in a subprocess, output in log files (no pipe to fill)."""

    def __init__(self, tmp: Path, store: Path, corpus: Path, name: str):
        self.log = tmp / f"{name}.err"
        self.out = tmp / f"{name}.out"
        self.name = name
        self._log_file = open(self.log, "w")
        self._out_file = open(self.out, "w")
        self.proc = subprocess.Popen(
            engine_cmd(store, "index", "--topics", str(EXAMPLES / "topics.txt"), "--from", str(corpus), "--json"),
            env=cli_env(tmp),
            stdout=self._out_file,
            stderr=self._log_file,
            stdin=subprocess.DEVNULL,
        )
        self.db = store / "engine.db"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def _close_logs(self) -> None:
        self._log_file.close()
        self._out_file.close()

    def wait_for(self, condition, what: str, timeout: float = START_TIMEOUT):
        """Poll ``condition(db)`` until it returns a true value; fail clearly if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition(self.db)
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name}: engine index exited (code {self.proc.returncode}) before {what}; "
                    f"the corpus may be too small to kill it in time. Output:\n{self.output()}"
                )
            time.sleep(POLL_SECONDS)
        self.kill()
        pytest.fail(f"{self.name}: no {what} after {timeout:.0f} s. Output:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=30)
        finally:
            self._close_logs()

    def kill_now(self) -> None:
        """SIGKILL, and make sure it was the kill that ended the run, not its own end."""
        self.kill()
        assert self.proc.returncode == -signal.SIGKILL, (
            f"{self.name}: engine index ended by itself (code {self.proc.returncode}) before it "
            f"could be killed. Output:\n{self.output()}"
        )

    def finish(self, timeout: float = RUN_TIMEOUT) -> dict:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name}: engine index did not finish in {timeout:.0f} s. Output:\n{self.output()}")
        self._close_logs()
        assert self.proc.returncode == 0, f"{self.name}: engine index failed:\n{self.output()}"
        return json.loads(self.out.read_text())


# -- reading the database directly ------------------------------------------------------------


def read_only(db: Path) -> sqlite3.Connection:
    # Read-only, so that looking neither recovers nor checkpoints anything on the
    # engine's behalf: the next run must find the store exactly as the kill left it.
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def scalar(db: Path, sql: str):
    """One value from the database being written, or None while it cannot be read yet."""
    if not db.exists():
        return None
    try:
        conn = read_only(db)
        try:
            row = conn.execute(sql).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, schema not there yet, busy
        return None
    return None if row is None else row[0]


def documents_at_least(n: int):
    def condition(db: Path):
        count = scalar(db, "SELECT count(*) FROM documents")
        return count if count is not None and count >= n else None

    return condition


COUNTED = ["documents", "sources", "chunks", "images", "document_images", "topic_documents"]


def counts(db: Path) -> dict:
    conn = read_only(db)
    try:
        out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
        out["embeddings"] = dict(conn.execute("SELECT space, count(*) FROM embeddings GROUP BY space ORDER BY space"))
    finally:
        conn.close()
    return out


def fingerprint(db: Path) -> dict:
    """What is stored, independent of row ids and timestamps."""
    conn = read_only(db)
    try:
        return {
            "sources": sorted(conn.execute(
                "SELECT s.canonical_url, s.raw_hash, d.content_hash FROM sources s JOIN documents d ON d.id = s.document_id"
            )),
            "chunks per document": sorted(conn.execute(
                "SELECT d.content_hash, count(c.id), sum(length(c.text)) FROM documents d "
                "JOIN chunks c ON c.document_id = d.id GROUP BY d.id"
            )),
            "images": sorted(conn.execute("SELECT content_hash, path, byte_size FROM images")),
            "image links": sorted(conn.execute(
                "SELECT d.content_hash, i.content_hash, di.src_url FROM document_images di "
                "JOIN documents d ON d.id = di.document_id JOIN images i ON i.id = di.image_id"
            )),
            "topic links": sorted(conn.execute(
                "SELECT t.name, d.content_hash FROM topic_documents td JOIN topics t ON t.id = td.topic_id "
                "JOIN documents d ON d.id = td.document_id"
            )),
        }
    finally:
        conn.close()


def assert_consistent_after_kill(store: Path, seen_before_kill: int, label: str) -> dict:
    """The store a kill left behind: intact, and holding whole pages only."""
    db = store / "engine.db"
    assert db.exists(), f"{label}: no database"
    conn = read_only(db)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        assert integrity == [("ok",)], f"{label}: SQLite integrity check: {integrity}"
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        assert fk == [], f"{label}: foreign key violations: {fk}"
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        # Each page is committed whole: a source and a document, all its chunks with
        # their vectors, its image links, its scores for every topic — or nothing.
        assert one("SELECT count(*) FROM documents WHERE id NOT IN (SELECT document_id FROM sources)") == 0
        assert one("SELECT count(*) FROM sources WHERE document_id IS NULL") == 0
        assert one("SELECT count(*) FROM documents WHERE id NOT IN (SELECT document_id FROM chunks)") == 0, (
            f"{label}: a document without its chunks"
        )
        assert one(
            "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT item_id FROM embeddings WHERE space = 'text')"
        ) == 0, f"{label}: chunks without their text vectors"
        assert one(
            "SELECT count(*) FROM embeddings WHERE space = 'text' AND item_id NOT IN (SELECT id FROM chunks)"
        ) == 0, f"{label}: text vectors of chunks that are not stored"
        assert one("SELECT count(*) FROM images WHERE id NOT IN (SELECT image_id FROM document_images)") == 0
        image_paths = [p for (p,) in conn.execute("SELECT path FROM images")]
    finally:
        conn.close()
    missing = [p for p in image_paths if not (store / p).is_file()]
    assert missing == [], f"{label}: image rows whose file is missing: {missing}"
    now = counts(db)
    assert now["documents"] >= seen_before_kill, (
        f"{label}: {seen_before_kill} documents were committed before the kill, only {now['documents']} after"
    )
    assert now["sources"] == now["documents"]  # every page of the corpus is distinct
    assert now["topic_documents"] == N_TOPICS * now["documents"], f"{label}: topic scores missing: {now}"
    return now


def image_files(store: Path) -> list[str]:
    # A kill inside an atomic write may leave its `*.tmp`; nothing ever reads those.
    folder = store / "images"
    return sorted(p.relative_to(store).as_posix() for p in folder.rglob("*") if p.is_file() and p.suffix != ".tmp")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("corpus") / "pages")


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, corpus) -> dict:
    """One uninterrupted run over the corpus: the counts every resumed store must reach."""
    tmp = tmp_path_factory.mktemp("clean")
    store = tmp / "store"
    report = IndexRun(tmp, store, corpus, "clean run").finish()
    assert report["pages"] == {"added": N_PAGES}, report
    assert report["failures"] == [] and not report["interrupted"]
    db = store / "engine.db"
    result = {"store": store, "report": report, "counts": counts(db), "fingerprint": fingerprint(db)}
    c = result["counts"]
    # The corpus is what the test means it to be: 40 pages, 6 distinct images shared
    # between them (image dedup), every page scored for every topic.
    assert c["documents"] == c["sources"] == N_PAGES
    assert c["images"] == 6 and c["document_images"] == 9 * COPIES
    assert c["chunks"] == report["chunks_added"] == c["embeddings"]["text"] > N_PAGES
    assert c["topic_documents"] == N_TOPICS * N_PAGES
    return result


# -- tests ------------------------------------------------------------------------------------

# Kills inside the very first open of a store, while the schema is being created: the
# child opens a new store and SIGKILLs itself right after the Nth SQL statement.
OPEN_AND_DIE = """
import os, signal, sys
from pathlib import Path
from sqlalchemy import event
from engine.store import database

kill_after = int(sys.argv[2])
executed = 0
connect = database.connect

def connect_and_count(path):
    engine = connect(path)

    @event.listens_for(engine, "after_cursor_execute")
    def count(*args):
        global executed
        executed += 1
        if executed == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    return engine

database.connect = connect_and_count
from engine.store.store import Store
Store(Path(sys.argv[1])).close()
print(executed)
"""


def test_kill_while_a_new_store_is_being_created_leaves_it_openable(tmp_path):
    env = cli_env(tmp_path)

    def open_and_die(store: Path, kill_after: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", OPEN_AND_DIE, str(store), str(kill_after)],
            env=env, capture_output=True, text=True, timeout=120,
        )

    dry = open_and_die(tmp_path / "dry", 0)
    assert dry.returncode == 0, dry.stderr
    statements = int(dry.stdout.split()[-1])
    assert statements > 10, "creating a store should take a good number of statements"
    # Early, middle and late in the migration, and after its last two statements.
    points = sorted({1, statements // 3, statements // 2, 2 * statements // 3, statements - 1, statements})
    for n in points:
        store = tmp_path / f"store-{n}"
        died = open_and_die(store, n)
        assert died.returncode == -signal.SIGKILL, f"kill after statement {n}: {died.returncode} {died.stderr}"
        # The next open must work and give a complete, current schema.
        try:
            with Store(store) as opened:
                status = store_status(opened, 0.25)
        except Exception as exc:  # noqa: BLE001 - any failure here is the bug
            pytest.fail(f"after a kill at statement {n} of {statements} of the first open, the store "
                        f"cannot be opened: {type(exc).__name__}: {str(exc)[:500]}")
        assert status.documents == 0 and status.sources == 0
        assert scalar(store / "engine.db", "PRAGMA integrity_check") == "ok"
        assert scalar(store / "engine.db", "SELECT version_num FROM alembic_version") == HEAD_REVISION


def test_killed_at_several_points_resumes_to_the_counts_of_a_clean_run(tmp_path, corpus, clean_run):
    store = tmp_path / "store"
    db = store / "engine.db"

    # (a) Right after start: the run is recorded, the models are still loading.
    run = IndexRun(tmp_path, store, corpus, "kill (a) while loading")
    run.wait_for(lambda db: scalar(db, "SELECT count(*) FROM runs WHERE status = 'running'"), "run started")
    documents_at_kill = scalar(db, "SELECT count(*) FROM documents")
    run.kill_now()
    assert documents_at_kill == 0, "the test meant to kill before any page"
    after_a = assert_consistent_after_kill(store, 0, "kill (a)")
    assert after_a["documents"] == 0

    # (b) After the first few pages are committed.
    run = IndexRun(tmp_path, store, corpus, "kill (b) after the first pages")
    seen_b = run.wait_for(documents_at_least(3), "first pages committed")
    run.kill_now()
    after_b = assert_consistent_after_kill(store, seen_b, "kill (b)")
    assert 3 <= after_b["documents"] < N_PAGES

    # (c) About mid-way through what is left, a moment after a commit was seen (so
    # the kill tends to land inside embedding or writing of the next pages).
    run = IndexRun(tmp_path, store, corpus, "kill (c) mid-way")
    half = after_b["documents"] + (N_PAGES - after_b["documents"]) // 2
    seen_c = run.wait_for(documents_at_least(half), f"{half} documents committed", timeout=RUN_TIMEOUT)
    time.sleep(0.15)
    seen_c = max(seen_c, scalar(db, "SELECT count(*) FROM documents") or 0)
    run.kill_now()
    after_c = assert_consistent_after_kill(store, seen_c, "kill (c)")
    assert after_b["documents"] < after_c["documents"] < N_PAGES, (after_b, after_c)

    # The final run continues where (c) stopped: committed pages are skipped.
    report = IndexRun(tmp_path, store, corpus, "final run").finish()
    assert report["pages"].get("unchanged", 0) == after_c["documents"], report["pages"]
    assert report["pages"].get("added", 0) == N_PAGES - after_c["documents"], report["pages"]
    assert report["pages"].get("failed", 0) == 0 and report["pages"].get("updated", 0) == 0, report["pages"]
    assert report["chunks_added"] == clean_run["counts"]["chunks"] - after_c["chunks"]

    assert scalar(db, "SELECT status FROM runs ORDER BY id DESC LIMIT 1") == "done"

    # Exactly what a clean run stores.
    assert counts(db) == clean_run["counts"]
    assert fingerprint(db) == clean_run["fingerprint"]
    assert image_files(store) == image_files(clean_run["store"]), "extra or missing image files after resuming"

    # `engine check`: consistent, and the FAISS file written at the end holds every vector.
    checked = run_engine(tmp_path, store, "check", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    check = json.loads(checked.stdout)
    assert check["ok"] and check["problems"] == [], check
    assert check["sqlite_integrity"] == "ok" and check["foreign_key_violations"] == 0
    for space in check["spaces"]:
        assert space["in_index_file"] == space["in_database"], space
        assert space["missing_from_index"] == space["orphans_in_index"] == 0, space
        assert space["index_file_problem"] is None, space
    text_space = next(s for s in check["spaces"] if s["space"] == "text")
    assert text_space["in_database"] == clean_run["counts"]["chunks"]
    assert check["unreferenced_image_files"] == [] and check["missing_image_files"] == []

    # And the resumed store answers.
    asked = run_engine(tmp_path, store, "ask", "how is coffee roasted", "--format", "json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["summary"], answer
    assert any(s["title"] == "How coffee is roasted" for s in answer["sources"]), answer["sources"]


def test_killed_run_leaves_only_notes_and_the_faiss_cache_is_repaired_on_next_open(tmp_path, corpus):
    store = tmp_path / "store"
    db = store / "engine.db"
    run = IndexRun(tmp_path, store, corpus, "kill mid-way")
    seen = run.wait_for(documents_at_least(3 * DOCS_PER_BATCH), "some batches committed", timeout=RUN_TIMEOUT)
    run.kill_now()
    stored = assert_consistent_after_kill(store, seen, "kill mid-way")
    assert 0 < stored["documents"] < N_PAGES

    # The FAISS file lags behind SQLite (it is saved at the end of a run): a note, not a problem.
    checked = run_engine(tmp_path, store, "check", "--json")
    assert checked.returncode == 0, f"check reports problems after a kill:\n{checked.stdout}{checked.stderr}"
    before = json.loads(checked.stdout)
    assert before["ok"] and before["problems"] == [], before
    text_before = next(s for s in before["spaces"] if s["space"] == "text")
    assert text_before["in_database"] == stored["chunks"] > 0
    assert text_before["missing_from_index"] == text_before["in_database"] - text_before["in_index_file"] > 0
    assert text_before["orphans_in_index"] == 0
    assert any("text index file is behind" in note for note in before["notes"]), before["notes"]

    # The next open reconciles the cache with SQLite: asking works on the partial store (the
    # evidence decision is off: the pages stored before the kill need not be about coffee)...
    asked = run_engine(tmp_path, store, "ask", "coffee", "--format", "json", "--min-score", "off")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["summary"] and answer["sources"], answer

    # ...and the repaired FAISS file is kept: nothing missing any more.
    checked = run_engine(tmp_path, store, "check", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    after = json.loads(checked.stdout)
    text_after = next(s for s in after["spaces"] if s["space"] == "text")
    assert text_after["in_index_file"] == text_after["in_database"] == stored["chunks"], text_after
    assert text_after["missing_from_index"] == text_after["orphans_in_index"] == 0, text_after
    assert text_after["index_file_problem"] is None, text_after
    assert not any("text index file is behind" in note for note in after["notes"]), after["notes"]
    assert counts(db) == stored, "asking must not change what is stored"
