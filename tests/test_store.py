"""The store: migrations, schema guard, FAISS reconcile and rebuild, model binding, write lock."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlalchemy import text

from engine.errors import ModelMismatchError, SchemaTooNewError, StoreError
from engine.store.database import MIGRATIONS_DIR
from engine.store.schema import HEAD_REVISION, KNOWN_REVISIONS, TEXT_SPACE, is_fts_name, metadata
from engine.store.store import Store

DIM = 8


def unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store, ids, vectors):
    with store.transaction() as conn:
        store.put_vectors(conn, TEXT_SPACE, ids, vectors)
    store.apply_committed()


def test_new_store_is_created_by_migrations_and_matches_the_schema(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Store(tmp_path) as store:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            context = MigrationContext.configure(
                conn, opts={"include_name": lambda name, type_, parent: not (type_ == "table" and is_fts_name(name))}
            )
            diff = compare_metadata(context, metadata)
    assert diff == [], f"migrations and engine/store/schema.py disagree: {diff}"


def test_known_revisions_list_every_migration():
    from alembic.script import ScriptDirectory
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert tuple(chain) == KNOWN_REVISIONS
    assert script.get_current_head() == HEAD_REVISION


def test_store_written_by_a_newer_engine_is_refused(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / "engine.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaTooNewError, match="9999.*newer than this engine"):
        Store(tmp_path)


def test_faiss_file_is_reconciled_with_sqlite_on_open(tmp_path):
    rng = np.random.default_rng(0)
    vectors = unit(rng, 10)
    with Store(tmp_path) as store:
        store.acquire_write_lock()
        store.index(TEXT_SPACE, DIM)
        put(store, list(range(1, 6)), vectors[:5])
    # The saved file holds ids 1-5. Commit 6-10 and delete 1-2 without updating it,
    # as a process killed before saving would.
    with Store(tmp_path) as store:
        with store.transaction() as conn:
            store.put_vectors(conn, TEXT_SPACE, list(range(6, 11)), vectors[5:])
            store.delete_vectors(conn, TEXT_SPACE, [1, 2])
        store.discard_uncommitted()
    with Store(tmp_path) as store:
        index = store.index(TEXT_SPACE, DIM)
        assert sorted(index.ids().tolist()) == list(range(3, 11))
        assert store.reconciled[-1].added == 5 and store.reconciled[-1].removed == 2
        scores, ids = index.search(vectors[7:8], 1)
        assert ids[0, 0] == 8 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_up_to_date_file_opens_without_reconciling(tmp_path):
    with Store(tmp_path) as store:
        store.acquire_write_lock()
        store.index(TEXT_SPACE, DIM)
        put(store, [1, 2], unit(np.random.default_rng(1), 2))
    with Store(tmp_path) as store:
        store.index(TEXT_SPACE, DIM)
        assert store.reconciled[-1].added == 0 and store.reconciled[-1].removed == 0


def test_corrupt_faiss_file_is_rebuilt_from_sqlite(tmp_path):
    with Store(tmp_path) as store:
        store.acquire_write_lock()
        store.index(TEXT_SPACE, DIM)
        put(store, [1, 2, 3], unit(np.random.default_rng(2), 3))
        path = store.index_path(TEXT_SPACE)
    path.write_bytes(b"garbage")
    with Store(tmp_path) as store:
        index = store.index(TEXT_SPACE, DIM)
        assert sorted(index.ids().tolist()) == [1, 2, 3]
        assert "unreadable" in store.reconciled[-1].discarded


def test_failed_transaction_leaves_no_vectors_anywhere(tmp_path):
    with Store(tmp_path) as store:
        store.acquire_write_lock()
        index = store.index(TEXT_SPACE, DIM)
        with pytest.raises(RuntimeError):
            with store.transaction() as conn:
                store.put_vectors(conn, TEXT_SPACE, [1], unit(np.random.default_rng(3), 1))
                raise RuntimeError("crash inside the transaction")
        store.discard_uncommitted()
        store.apply_committed()
        assert len(index) == 0
        with store.reading() as conn:
            assert store.vector_count(TEXT_SPACE, conn) == 0


def test_vectors_of_another_model_are_refused(tmp_path):
    with Store(tmp_path) as store:
        store.bind_model((TEXT_SPACE,), "model-a", DIM)
        put(store, [1], unit(np.random.default_rng(4), 1))
        with pytest.raises(ModelMismatchError, match="model-a.*model-b.*`engine reindex --text`"):
            store.bind_model((TEXT_SPACE,), "model-b", DIM)


def test_only_one_writer_at_a_time(tmp_path):
    with Store(tmp_path) as first, Store(tmp_path) as second:
        first.acquire_write_lock()
        with pytest.raises(StoreError, match="being written by pid"):
            second.acquire_write_lock()
        first.release_write_lock()
        second.acquire_write_lock()


def test_index_files_are_replaced_atomically(tmp_path):
    with Store(tmp_path) as store:
        store.acquire_write_lock()
        store.index(TEXT_SPACE, DIM)
        put(store, [1], unit(np.random.default_rng(5), 1))
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (tmp_path / "index" / "text.faiss.json").exists()


def test_temp_files_left_by_a_killed_writer_are_removed_by_the_next_writer(tmp_path):
    Store(tmp_path).close()
    leftover = tmp_path / "images" / "ab" / "abcdef.jpeg.x1y2.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half an image")
    kept = tmp_path / "images" / "ab" / "abcdef.jpeg"
    kept.write_bytes(b"a whole image")
    with Store(tmp_path):
        assert leftover.exists()  # readers never delete anything
    with Store(tmp_path) as writer:
        writer.acquire_write_lock()
        assert not leftover.exists() and kept.exists()


def test_upgrading_a_0001_store_indexes_its_chunks_for_full_text_search_and_keeps_them(tmp_path):
    from engine.store import database

    (tmp_path / "old").mkdir()
    engine = database.connect(tmp_path / "old" / "engine.db")
    database.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO documents (id, content_hash, text, created_at) VALUES (1, 'h', 'x', 0)"))
        conn.execute(
            text(
                "INSERT INTO chunks (id, document_id, position, text, start_char, end_char, n_tokens) "
                "VALUES (7, 1, 0, 'Roasting turns green coffee brown.', 0, 33, 8)"
            )
        )
    engine.dispose()
    with Store(tmp_path / "old") as store, store.reading() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        found = conn.execute(text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'roasted'")).scalars().all()
        assert found == [7]  # porter stemming: "roasted" finds "Roasting"
        assert conn.execute(text("SELECT text FROM chunks WHERE id = 7")).scalar().startswith("Roasting")


def test_a_store_from_before_the_change_log_starts_its_log_at_its_current_version(tmp_path):
    """Migration 0004: readers of an older store compare every id once; after that they follow the log."""
    from engine.store import database

    engine = database.connect(tmp_path / "engine.db")
    database.upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO meta(key, value) VALUES ('vectors_version.text', '7')"))
    engine.dispose()
    with Store(tmp_path) as store:
        assert store.get_meta("changes_floor.text") == "7"
        assert store.changes_between(TEXT_SPACE, 6, 7) is None  # before the log began
        assert store.changes_between(TEXT_SPACE, 7, 7).tolist() == []
