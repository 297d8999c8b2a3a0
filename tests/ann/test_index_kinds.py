"""Each index kind on a 20k-vector store: measured recall, exact scores, filters, removals, reloading."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ann.choice import FLAT, HNSW, IVF_PQ, IVF_SQ8
from engine.ann.tune import GroundTruth, measured_recall
from engine.store import vectors as vectors_module
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store
from tests.ann.conftest import DIM, exact_top, fill, open_store, overlap

# Budgets that make a 20k×64 space each kind: HNSW fits 1GB, SQ8 fits 2MB, PQ needs less.
BUDGETS = {HNSW: "1GB", IVF_SQ8: "2MB", IVF_PQ: "600KB"}


@pytest.fixture(scope="module", params=list(BUDGETS))
def built(request, space, tmp_path_factory):
    """A store holding the space, its index built (and tuned) as the kind under test."""
    ids, vectors, _ = space
    store = open_store(tmp_path_factory.mktemp(request.param), memory_budget=BUDGETS[request.param], exact_below=100_000)
    fill(store, ids, vectors)
    store.index_config = type(store.index_config)(exact_below=1_000, memory_budget=BUDGETS[request.param])
    index = store.rebuild_index(TEXT_SPACE, DIM)
    assert index.info.kind == request.param
    yield store, index
    store.close()


def test_built_index_reaches_the_target_recall_it_records(built, space):
    store, index = built
    ids, vectors, queries = space
    assert index.info.recall_at_10 >= 0.95
    assert index.info.target_recall == 0.95 and index.info.recall_queries == 400
    # Held-out queries (not stored vectors) find most of the exact top 10 too.
    _, found = index.search(queries, 10)
    assert overlap(found, exact_top(queries, ids, vectors, 10)) >= 0.9


def test_search_parameters_forced_low_measure_lower_recall_than_tuned(built, space):
    store, index = built
    ids, vectors, _ = space
    picked = np.random.default_rng(5).choice(len(ids), 200, replace=False)
    truth = GroundTruth(vectors[picked], ids[picked])
    truth.update(ids, vectors)
    lowest = {HNSW: {"efSearch": 1}, IVF_SQ8: {"nprobe": 1, "refine": 1}, IVF_PQ: {"nprobe": 1, "refine": 1}}[index.info.kind]
    low = measured_recall(index, truth, lowest)
    tuned = measured_recall(index, truth)
    assert low < tuned
    assert tuned >= 0.93  # a fresh sample: near the target the build measured on its own sample


def test_every_kind_returns_exact_cosine_scores(built, space):
    store, index = built
    ids, vectors, queries = space
    scores, found = index.search(queries[:5], 10)
    position = {int(i): n for n, i in enumerate(ids)}
    for q in range(5):
        true = vectors[[position[int(i)] for i in found[q]]] @ queries[q]
        assert np.allclose(scores[q], true, atol=1e-5)
        assert list(scores[q]) == sorted(scores[q], reverse=True)


@pytest.mark.parametrize("side", ["exact", "ann"])
def test_a_filter_gets_the_k_best_allowed_on_both_sides_of_the_exact_switch(built, space, monkeypatch, side):
    store, index = built
    ids, vectors, queries = space
    allowed = ids[::40]  # 500 allowed vectors
    # Move the switch so that these 500 fall on the side under test.
    monkeypatch.setitem(vectors_module.EXACT_FILTER_MAX, index.info.kind, 1_000 if side == "exact" else 100)
    calls = []
    real = type(index)._search_exactly_among
    monkeypatch.setattr(type(index), "_search_exactly_among", lambda self, *a: calls.append(1) or real(self, *a))
    scores, found = index.search(queries, 10, allowed)
    assert bool(calls) == (side == "exact")
    assert found.shape == (len(queries), 10)
    assert set(found.ravel().tolist()) <= set(allowed.tolist())
    truth = exact_top(queries, allowed, vectors[::40], 10)
    if side == "exact":
        assert (found == truth).all()
    else:
        assert overlap(found, truth) >= 0.9  # the widened ANN search still finds the allowed best


def test_removed_vectors_are_never_found_and_a_reput_id_has_its_new_vector(tmp_path, space):
    ids, vectors, queries = space
    for budget in BUDGETS.values():
        store = open_store(tmp_path / budget, memory_budget=budget)
        fill(store, ids, vectors)
        store.index(TEXT_SPACE, DIM)  # a writer's first use finds the exact index outgrown ...
        store.wait_for_upgrades()  # ... and builds the kind the budget allows, in the background
        index = store.index(TEXT_SPACE, DIM)
        assert index.info.kind != FLAT
        _, before = index.search(queries[:20], 5)
        gone = np.unique(before[:, 0])
        with store.transaction() as conn:
            store.delete_vectors(conn, TEXT_SPACE, gone.tolist())
            # The id of the first query's former best now holds the query itself.
            store.put_vectors(conn, TEXT_SPACE, [int(gone[0])], queries[:1])
        store.apply_committed()
        scores, after = index.search(queries[:20], 5)
        assert after[0, 0] == gone[0] and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
        assert not set(after[1:].ravel().tolist()) & set(gone[1:].tolist())
        assert len(index) == len(ids) - len(gone) + 1
        store.close()
        # Saved and opened again: still without them.
        with Store(tmp_path / budget) as reopened:
            again = reopened.index(TEXT_SPACE, DIM)
            assert again.info.kind == index.info.kind and len(again) == len(index)
            _, found = again.search(queries[:20], 5)
            assert not set(found[1:].ravel().tolist()) & set(gone[1:].tolist())


def test_an_index_opens_with_the_kind_and_parameters_it_was_built_with(built, tmp_path):
    store, index = built
    store.save_indexes()
    reader = Store(store.root)
    try:
        loaded = reader.index(TEXT_SPACE, DIM)
        assert loaded.info == index.info
        assert loaded.file == index.file != f"{TEXT_SPACE}.faiss"
        assert reader.reconciled[-1].added == 0 and reader.reconciled[-1].removed == 0
    finally:
        reader.close()


def test_small_spaces_stay_exact(tmp_path, space):
    ids, vectors, _ = space
    store = open_store(tmp_path)
    fill(store, ids[:900], vectors[:900])
    assert store.index(TEXT_SPACE, DIM).info.kind == FLAT
    store.close()
