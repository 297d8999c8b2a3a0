"""The store's behaviour, the same on SQLite and on PostgreSQL (each test runs on both: ``backend``).

Vectors and keyword search, all-or-nothing transactions, a second Store catching up with a
writer's commits, one writer at a time, readers during writes seeing whole pages only, and
status/check. The PostgreSQL run uses a fresh database per test; a kill -9 of the writer is
tests/pg/test_store_pg.py's.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy import delete, func, insert, select, text

from engine.errors import ModelMismatchError, StoreError
from engine.store import fulltext
from engine.store.health import check_store, store_status
from engine.store.schema import TEXT_SPACE, chunks, documents, embeddings

DIM = 8
CHUNKS_PER_PAGE = 4


def unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store, ids, vectors):
    with store.transaction() as conn:
        store.put_vectors(conn, TEXT_SPACE, ids, vectors)
    store.apply_committed()


def writer_of(backend, machine="a"):
    store = backend.store(machine)
    store.acquire_write_lock()
    store.bind_model((TEXT_SPACE,), "synthetic", DIM)
    return store


def add_page(store, conn, n: int, words: tuple[str, ...] = (), rng=None) -> list[int]:
    """A page as the indexer writes one: a document, its chunks and their text vectors, in ``conn``'s transaction."""
    doc = conn.execute(
        insert(documents).values(content_hash=f"page-{n}", title=f"Page {n}", text=f"page {n}", created_at=time.time())
    ).inserted_primary_key[0]
    ids = []
    for position in range(CHUNKS_PER_PAGE):
        body = f"Passage {position} of page {n}. " + " ".join(words)
        ids.append(conn.execute(
            insert(chunks).values(document_id=doc, position=position, text=body, start_char=0, end_char=len(body), n_tokens=8)
        ).inserted_primary_key[0])
    vectors = unit(rng if rng is not None else np.random.default_rng(n), len(ids))
    store.put_vectors(conn, TEXT_SPACE, ids, vectors)
    return ids


# One statement, so one snapshot on either database (pysqlite runs SELECTs outside a transaction).
COUNTS = text(
    "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks), "
    "(SELECT count(*) FROM embeddings WHERE space = 'text')"
)


def counts(store) -> tuple[int, int, int]:
    with store.reading() as conn:
        return tuple(conn.execute(COUNTS).one())


# -- vectors and search ---------------------------------------------------------------------------


def test_vectors_are_stored_read_back_and_found_again_after_reopening(backend):
    vectors = unit(np.random.default_rng(0), 20)
    store = writer_of(backend)
    index = store.index(TEXT_SPACE, DIM)
    put(store, list(range(1, 21)), vectors)
    back = store.read_vectors(TEXT_SPACE, [5, 99, 1], DIM)
    assert np.array_equal(back[0], vectors[4]) and np.array_equal(back[2], vectors[0])
    assert not back[1].any(), "an id without a vector reads as zeros"
    scores, ids = index.search(vectors[7:8], 1)
    assert ids[0, 0] == 8 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)

    with store.transaction() as conn:
        store.delete_vectors(conn, TEXT_SPACE, [8])
    store.apply_committed()
    assert 8 not in index.ids().tolist() and index.search(vectors[7:8], 1)[1][0, 0] != 8
    with store.reading() as conn:
        assert store.vector_count(TEXT_SPACE, conn) == 19
    assert store.vector_version(TEXT_SPACE) == 2 == index.version
    store.close()

    with backend.store() as again:  # the saved index file is current: nothing to reconcile
        reopened = again.index(TEXT_SPACE, DIM)
        assert sorted(reopened.ids().tolist()) == [i for i in range(1, 21) if i != 8]
        assert (again.reconciled[-1].added, again.reconciled[-1].removed, again.reconciled[-1].discarded) == (0, 0, None)
        assert reopened.search(vectors[2:3], 1)[1][0, 0] == 3


def test_keyword_search_finds_passages_and_forgets_a_deleted_page(backend):
    store = writer_of(backend)
    with store.transaction() as conn:
        roasting = add_page(store, conn, 1, ("green", "coffee", "beans", "are", "roasted", "in", "a", "drum"))
        add_page(store, conn, 2, ("the", "denarius", "was", "a", "silver", "coin"))
    with store.reading() as conn:
        assert fulltext.matching(conn, "roasted", 100) == CHUNKS_PER_PAGE
        assert fulltext.matching(conn, "denarius", 100) == CHUNKS_PER_PAGE
        assert fulltext.matching(conn, "espresso", 100) == 0
        found = fulltext.best_passages(conn, ["roasted", "drum"], 3)
    assert len(found) == 3 and {chunk for chunk, _ in found} <= set(roasting)
    assert all(score > 0 for _, score in found)
    with store.transaction() as conn:  # a replaced page: its chunks go with it (ON DELETE CASCADE)
        conn.execute(delete(documents).where(documents.c.content_hash == "page-1"))
    with store.reading() as conn:
        assert fulltext.matching(conn, "roasted", 100) == 0 and fulltext.best_passages(conn, ["roasted"], 3) == []
        assert conn.execute(select(func.count()).select_from(chunks)).scalar() == CHUNKS_PER_PAGE
    store.close()


def test_vectors_of_another_model_are_refused(backend):
    store = writer_of(backend)
    put(store, [1], unit(np.random.default_rng(4), 1))
    with pytest.raises(ModelMismatchError, match="'synthetic'.*'other-model'.*`engine reindex --text`"):
        store.bind_model((TEXT_SPACE,), "other-model", DIM)
    with backend.store("b") as other:  # another process (or machine) reads the same binding
        assert other.get_meta("model.text") == "synthetic"
        with pytest.raises(ModelMismatchError):
            other.bind_model((TEXT_SPACE,), "other-model", DIM)
    store.close()


# -- transactions -----------------------------------------------------------------------------------


def test_a_failed_transaction_leaves_nothing_behind(backend):
    store = writer_of(backend)
    index = store.index(TEXT_SPACE, DIM)
    with store.transaction() as conn:
        kept = add_page(store, conn, 1)
    store.apply_committed()
    version = store.vector_version(TEXT_SPACE)

    with pytest.raises(RuntimeError, match="crash inside"):
        with store.transaction() as conn:
            add_page(store, conn, 2, ("unfinished",))
            store.set_meta(conn, "half", "written")
            raise RuntimeError("crash inside the transaction")
    store.discard_uncommitted()
    store.apply_committed()

    assert counts(store) == (1, CHUNKS_PER_PAGE, CHUNKS_PER_PAGE)
    assert store.vector_version(TEXT_SPACE) == version, "the rolled-back version bump is still there"
    assert store.get_meta("half") is None
    assert sorted(index.ids().tolist()) == kept, "the index ran ahead of the database"
    with store.reading() as conn:
        assert fulltext.matching(conn, "unfinished", 10) == 0
        assert store.changes_between(TEXT_SPACE, 0, version + 1).tolist() == kept
    with backend.store("b") as reader:
        assert sorted(reader.index(TEXT_SPACE, DIM).ids().tolist()) == kept
    store.close()


# -- another reader following the writer --------------------------------------------------------------


def test_a_second_store_catches_up_on_the_changed_ids_alone(backend, monkeypatch):
    vectors = unit(np.random.default_rng(2), 30)
    writer = writer_of(backend)
    writer.index(TEXT_SPACE, DIM)
    put(writer, list(range(1, 21)), vectors[:20])
    reader = backend.store("b")  # a long-lived reader (engine serve) with its index loaded
    index = reader.index(TEXT_SPACE, DIM)
    assert sorted(index.ids().tolist()) == list(range(1, 21))

    with writer.transaction() as conn:
        writer.put_vectors(conn, TEXT_SPACE, list(range(21, 31)), vectors[20:])
        writer.delete_vectors(conn, TEXT_SPACE, [1, 2, 3])
        writer.put_vectors(conn, TEXT_SPACE, [4], vectors[29:30])  # a re-put id: its vector changes
    writer.apply_committed()

    def every_id(*args):
        raise AssertionError("the reader read every id instead of the logged changes")

    monkeypatch.setattr(reader, "ids_with_vectors", every_id)
    assert reader.index(TEXT_SPACE, DIM) is index
    assert index.version == writer.vector_version(TEXT_SPACE) == 4
    assert sorted(index.ids().tolist()) == list(range(4, 31))
    scores, ids = index.search(vectors[29:30], 2)
    assert set(ids[0].tolist()) == {4, 30} and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    writer.close()
    reader.close()


def test_a_reader_older_than_the_change_log_compares_every_id(backend, monkeypatch):
    from engine.store import store as store_module

    monkeypatch.setattr(store_module, "CHANGES_PRUNE_EVERY", 2)
    monkeypatch.setattr(store_module, "CHANGES_KEPT", 1)
    vectors = unit(np.random.default_rng(3), 10)
    writer = writer_of(backend)
    writer.index(TEXT_SPACE, DIM)
    put(writer, [1, 2], vectors[:2])
    reader = backend.store("b")
    index = reader.index(TEXT_SPACE, DIM)
    for n in range(3, 11):  # eight more versions: the log forgets the first ones
        put(writer, [n], vectors[n - 1 : n])
    with writer.transaction() as conn:
        writer.delete_vectors(conn, TEXT_SPACE, [2])
    writer.apply_committed()
    assert reader.changes_between(TEXT_SPACE, index.version, writer.vector_version(TEXT_SPACE)) is None
    assert sorted(reader.index(TEXT_SPACE, DIM).ids().tolist()) == [1, *range(3, 11)]
    writer.close()
    reader.close()


# -- one writer, many readers ------------------------------------------------------------------------


def test_a_second_writer_is_refused_while_readers_go_on(backend):
    vectors = unit(np.random.default_rng(5), 3)
    first = writer_of(backend, "a")
    put(first, [1, 2, 3], vectors)
    second, third = backend.store("b"), backend.store("a")
    for other in (second, third):
        with pytest.raises(StoreError, match="being written by"):
            other.acquire_write_lock()
    # Refused writers still read, and search, while the writer holds the lock.
    assert second.index(TEXT_SPACE, DIM).search(vectors[1:2], 1)[1][0, 0] == 2
    put(first, [4], unit(np.random.default_rng(6), 1))
    assert len(third.index(TEXT_SPACE, DIM)) == 4

    first.close()  # closing frees the lock, as a release does
    second.acquire_write_lock()
    with pytest.raises(StoreError, match="being written by"):
        third.acquire_write_lock()
    second.release_write_lock()
    third.acquire_write_lock()
    third.close()
    second.close()


def test_readers_during_writes_see_whole_pages_and_never_fail(backend):
    pages = 40
    writer = writer_of(backend, "a")
    writer.index(TEXT_SPACE, DIM)
    reader = backend.store("b")
    reads = 0
    seen: list[tuple[int, int, int]] = []
    index_sizes: list[int] = []
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def read_repeatedly() -> None:
        nonlocal reads
        try:
            while writing.is_set():
                documents_, chunks_, vectors_ = counts(reader)
                seen.append((documents_, chunks_, vectors_))
                index = reader.index(TEXT_SPACE, DIM)
                ids = np.sort(index.ids())
                # Commits add whole pages in id order: the index holds the first n pages, exactly.
                assert len(ids) % CHUNKS_PER_PAGE == 0, f"a partial page in the index: {len(ids)} vectors"
                assert np.array_equal(ids, np.arange(1, len(ids) + 1)), "the index holds ids of a page not committed"
                if len(ids):
                    last = reader.read_vectors(TEXT_SPACE, ids[-1:], DIM)
                    assert index.search(last, 1)[1][0, 0] == ids[-1]
                index_sizes.append(len(ids))
                reads += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=read_repeatedly, name="reader")
    thread.start()
    try:
        rng = np.random.default_rng(7)
        for n in range(pages):
            with writer.transaction() as conn:
                add_page(writer, conn, n, rng=rng)
            writer.apply_committed()
            # Let the reader read between commits (it still races the next one).
            before, deadline = reads, time.monotonic() + 5
            while reads == before and not errors and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        writing.clear()
        thread.join(timeout=60)
    assert not errors, f"a read failed during writes: {errors[0]!r}"
    assert not thread.is_alive()
    assert seen, "the reader never read"
    for documents_, chunks_, vectors_ in seen:
        assert chunks_ == vectors_ == documents_ * CHUNKS_PER_PAGE, f"a partial page was visible: {seen}"
    assert [s[0] for s in seen] == sorted(s[0] for s in seen), "a reader went back in time"
    assert len({s[0] for s in seen if 0 < s[0] < pages}) >= 5, "the reads did not interleave with the writes"
    assert index_sizes == sorted(index_sizes)
    assert counts(reader) == (pages, pages * CHUNKS_PER_PAGE, pages * CHUNKS_PER_PAGE)
    assert len(reader.index(TEXT_SPACE, DIM)) == pages * CHUNKS_PER_PAGE
    writer.close()
    reader.close()


# -- status and check -----------------------------------------------------------------------------------


def test_status_and_check_describe_the_store_and_find_its_problems(backend):
    writer = writer_of(backend)
    writer.index(TEXT_SPACE, DIM)
    with writer.transaction() as conn:
        for n in range(3):
            add_page(writer, conn, n)
    writer.apply_committed()
    writer.close()  # saves the index file

    with backend.store() as store:
        status = store_status(store, 0.3)
        assert (status.documents, status.chunks, status.images) == (3, 3 * CHUNKS_PER_PAGE, 0)
        assert status.vectors == {"text": 3 * CHUNKS_PER_PAGE, "clip_image": 0, "clip_text": 0} and status.models == {"text": "synthetic"}
        report = check_store(store)
        assert report.ok and report.notes == [], report.to_dict()
        assert report.sqlite_integrity == "ok" and report.foreign_key_violations == 0
        text_space = next(s for s in report.spaces if s.space == TEXT_SPACE)
        assert (text_space.in_database, text_space.in_index_file, text_space.missing_from_index) == (12, 12, 0)

    # Commits the index file has not seen (written without loading it), and a chunk without a vector.
    writer = writer_of(backend)
    with writer.transaction() as conn:
        add_page(writer, conn, 3)
        document = conn.execute(select(documents.c.id).where(documents.c.content_hash == "page-0")).scalar_one()
        conn.execute(insert(chunks).values(document_id=document, position=99, text="no vector", start_char=0, end_char=9, n_tokens=2))
    writer.close()
    with backend.store() as store:
        report = check_store(store)
        assert not report.ok
        assert report.problems == ["1 chunks have no text vector (engine reindex --text)"]
        assert report.chunks_without_text_vector == 1
        assert any(n.startswith(f"text index file is behind the database: {CHUNKS_PER_PAGE} missing, 0 orphaned") for n in report.notes), report.notes
        with store.reading() as conn:
            assert conn.execute(select(func.count()).select_from(embeddings)).scalar() == 4 * CHUNKS_PER_PAGE
