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


def test_vectors_written_on_postgresql_are_indexed_found_and_followed_by_a_reader(tmp_path, database):
    vectors = unit(np.random.default_rng(0), 30)
    writer = Store(tmp_path / "writer", database_url=database)
    writer.acquire_write_lock()
    writer.bind_model((TEXT_SPACE,), "synthetic", DIM)
    writer.index(TEXT_SPACE, DIM)
    with writer.transaction() as conn:
        writer.put_vectors(conn, TEXT_SPACE, list(range(1, 21)), vectors[:20])
    writer.apply_committed()
    # Another machine's reader: its own folder, the same database.
    reader = Store(tmp_path / "reader", database_url=database)
    index = reader.index(TEXT_SPACE, DIM)
    assert sorted(index.ids().tolist()) == list(range(1, 21))
    with writer.transaction() as conn:
        writer.put_vectors(conn, TEXT_SPACE, list(range(21, 31)), vectors[20:])
        writer.delete_vectors(conn, TEXT_SPACE, [1, 2])
    writer.apply_committed()
    assert writer.changes_between(TEXT_SPACE, index.version, writer.vector_version(TEXT_SPACE)) is not None
    assert sorted(reader.index(TEXT_SPACE, DIM).ids().tolist()) == list(range(3, 31))
    scores, ids = reader.index(TEXT_SPACE, DIM).search(vectors[25:26], 1)
    assert ids[0, 0] == 26 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    writer.close()
    reader.close()


def test_one_writer_at_a_time_across_store_folders(tmp_path, database):
    first = Store(tmp_path / "a", database_url=database)
    second = Store(tmp_path / "b", database_url=database)  # another machine: another folder, another lock file
    first.acquire_write_lock()
    with pytest.raises(StoreError, match="being written by another process"):
        second.acquire_write_lock()
    first.release_write_lock()
    second.acquire_write_lock()
    first.close()
    second.close()


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
