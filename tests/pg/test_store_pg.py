"""The store's vectors on PostgreSQL: the same writes, indexes, catch-up and single-writer rule as on SQLite."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from engine.errors import StoreError
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store

DIM = 8


@pytest.fixture()
def database(postgres_url):
    """The session's server, emptied for each test."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


def unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_status_and_check_read_a_store_on_postgresql(tmp_path, database, monkeypatch):
    import json

    from typer.testing import CliRunner

    from cli.app import app

    store = Store(tmp_path, database_url=database)
    store.acquire_write_lock()
    store.bind_model((TEXT_SPACE,), "synthetic", DIM)
    store.index(TEXT_SPACE, DIM)
    with store.transaction() as conn:
        store.put_vectors(conn, TEXT_SPACE, [1, 2, 3], unit(np.random.default_rng(1), 3))
    store.apply_committed()
    store.close()
    monkeypatch.setenv("ENGINE_STORE_DATABASE_URL", database)
    runner = CliRunner()
    status = runner.invoke(app, ["--store", str(tmp_path), "status", "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["vectors"]["text"] == 3 and report["models"]["text"] == "synthetic"
    check = runner.invoke(app, ["--store", str(tmp_path), "check"])
    assert check.exit_code == 0, check.output


@pytest.mark.slow
def test_a_store_copied_to_postgresql_and_back_keeps_every_row(tmp_path, database, examples_dir, text_encoder):
    from sqlalchemy import func, select

    from engine.config import ClipConfig, Config, StoreConfig
    from engine.kb import KnowledgeBase
    from engine.store.copy import copy_database
    from engine.store.schema import metadata

    config = Config(store=StoreConfig(path=tmp_path / "kb"), clip=ClipConfig(enabled=False))
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        kb.index(["coffee"], [examples_dir / "pages"])
        to_postgres = copy_database(kb.store.engine, database)
        first = kb.ask("how is coffee roasted", max_images=0).sources[0].url

    def counts(url):
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            found = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in metadata.sorted_tables}
        engine.dispose()
        return found

    assert counts(database) == to_postgres.rows and to_postgres.rows["chunks"] > 0
    with pytest.raises(StoreError, match="already holds rows"):
        copy_database(sa.create_engine(f"sqlite:///{tmp_path / 'kb' / 'engine.db'}"), database)
    # Served from PostgreSQL (same folder: images and indexes), the answer is the same.
    on_server = Config(store=StoreConfig(path=tmp_path / "kb", database_url=database), clip=ClipConfig(enabled=False))
    with KnowledgeBase(on_server, text_encoder=text_encoder) as kb:
        assert kb.ask("how is coffee roasted", max_images=0).sources[0].url == first
        with kb.store.transaction() as conn:  # the sequences continue after the copied ids
            conn.execute(sa.text("INSERT INTO topics(name, created_at) VALUES ('new', 0)"))
        back = copy_database(kb.store.engine, str(tmp_path / "back.db"))
    assert back.rows["topics"] == to_postgres.rows["topics"] + 1
    assert counts(f"sqlite:///{tmp_path / 'back.db'}")["chunks"] == to_postgres.rows["chunks"]


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
import numpy as np
from engine.store.store import Store
store = Store(Path(sys.argv[1]), database_url=sys.argv[2])
store.acquire_write_lock()
store.bind_model(("text",), "synthetic", 8)
rng = np.random.default_rng(0)
for start in range(1, 10_000, 10):
    with store.transaction() as conn:
        vectors = rng.standard_normal((10, 8)).astype(np.float32)
        store.put_vectors(conn, "text", list(range(start, start + 10)), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    store.apply_committed()
    if start > 200:
        Path(sys.argv[3]).touch()
"""


@pytest.mark.slow
def test_a_killed_writer_leaves_whole_commits_and_frees_the_writer_lock(tmp_path, database):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script, marker = tmp_path / "writer.py", tmp_path / "writing"
    script.write_text(WRITER.format(repo=str(Path(__file__).resolve().parents[2])))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "w"), database, str(marker)])
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    store = Store(tmp_path / "next", database_url=database)
    deadline = time.time() + 10
    while True:  # the server ends the killed session's backend, and with it its advisory lock
        try:
            store.acquire_write_lock()
            break
        except StoreError:
            assert time.time() < deadline, "the killed writer's lock was never released"
            time.sleep(0.1)
    with store.reading() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM embeddings WHERE space = 'text'")).scalar()
        version = int(store.get_meta("vectors_version.text"))
    assert count % 10 == 0 and count >= 200 and version == count // 10  # whole commits only
    assert len(store.index(TEXT_SPACE, DIM)) == count
    store.close()
