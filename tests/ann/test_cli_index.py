"""`engine reindex` builds the kind the settings call for; `engine status` shows it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.app import app
from engine.store.schema import TEXT_SPACE
from tests.ann.conftest import fill, open_store

runner = CliRunner()


def test_reindex_builds_the_index_the_budget_calls_for_and_status_shows_it(tmp_path, space, monkeypatch):
    ids, vectors, _ = space
    store = open_store(tmp_path, exact_below=100_000)
    fill(store, ids[:12_000], vectors[:12_000])
    store.index(TEXT_SPACE, vectors.shape[1])
    store.close()
    monkeypatch.setenv("ENGINE_INDEX_EXACT_BELOW", "1000")
    monkeypatch.setenv("ENGINE_INDEX_MEMORY_BUDGET", "2MB")  # too small for HNSW over 12k×64: IVF with SQ8 codes

    result = runner.invoke(app, ["--store", str(tmp_path), "reindex"])
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["--store", str(tmp_path), "status", "--json"])
    assert status.exit_code == 0, status.output
    index = json.loads(status.stdout)["indexes"][TEXT_SPACE]
    assert index["kind"] == "ivf-sq8" and index["vectors"] == 12_000
    assert index["recall_at_10"] >= 0.95 and index["target_recall"] == 0.95
    assert set(index["params"]) == {"nprobe", "refine"} and index["memory_bytes"] <= 2 * 1024**2
    shown = runner.invoke(app, ["--store", str(tmp_path), "status"]).output
    assert "index text: ivf-sq8 (IVF256,SQ8), 12000 vectors, recall@10" in shown


def test_a_bad_memory_budget_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_INDEX_MEMORY_BUDGET", "a lot")
    result = runner.invoke(app, ["--store", str(tmp_path), "status"])
    assert result.exit_code != 0
    assert "index.memory_budget" in result.output and "a lot" in result.output
