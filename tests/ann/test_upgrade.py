"""An index outgrown by its space is rebuilt in the background and swapped in; readers keep
answering; a kill -9 at any point leaves a usable index; status and `eval index` say what is in use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.ann.choice import FLAT, HNSW
from engine.evaluate.index_quality import evaluate_index
from engine.store.health import check_store, status_at
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store
from tests.ann.conftest import DIM, fill, open_store

REPO = Path(__file__).resolve().parents[2]


def test_readers_keep_answering_while_the_upgrade_builds_and_swaps(tmp_path, space):
    ids, vectors, _ = space
    writer = open_store(tmp_path, exact_below=100_000)  # stays exact while filled
    fill(writer, ids[:15_000], vectors[:15_000])
    writer.index(TEXT_SPACE, DIM)
    writer.save_indexes()
    other_process = Store(tmp_path)  # a reader with its own copy, as `engine serve` or another ask has
    assert other_process.index(TEXT_SPACE, DIM).info.kind == FLAT
    old_file = writer.index_file(TEXT_SPACE)

    errors, answers, stop = [], [], threading.Event()

    def ask_repeatedly(store: Store) -> None:
        rng = np.random.default_rng(threading.get_ident() % 1000)
        while not stop.is_set():
            try:
                n = int(rng.integers(0, 15_000))
                _, found = store.index(TEXT_SPACE, DIM).search(vectors[n : n + 1], 3)
                answers.append(found[0, 0] == ids[n])  # a stored vector's best match is itself
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    readers = [threading.Thread(target=ask_repeatedly, args=(writer,)), threading.Thread(target=ask_repeatedly, args=(other_process,))]
    for reader in readers:
        reader.start()
    writer.index_config = type(writer.index_config)(exact_below=1_000)
    writer.index(TEXT_SPACE, DIM)  # the writer notices the space outgrew exact search
    assert TEXT_SPACE in writer._upgrades
    # It keeps writing during the build: those vectors must be in the index that is swapped in.
    fill(writer, ids[15_000:], vectors[15_000:], batch=1_000)
    writer.wait_for_upgrades()
    time.sleep(0.2)
    stop.set()
    for reader in readers:
        reader.join()

    assert not errors
    assert len(answers) > 20 and np.mean(answers) >= 0.98
    index = writer.index(TEXT_SPACE, DIM)
    assert index.info.kind == HNSW and index.info.recall_at_10 >= 0.95
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())
    assert writer.index_file(TEXT_SPACE) != old_file and not old_file.exists()
    # The other process's reader takes the new file at its next use.
    assert other_process.index(TEXT_SPACE, DIM).info.kind == HNSW
    assert len(other_process.index(TEXT_SPACE, DIM)) == len(ids)
    writer.close()
    other_process.close()


DRIVER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
import engine.ann.build as build
import engine.store.atomic as atomic
from engine.config import IndexConfig
from engine.store.store import Store

root, point, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def stop_here():
    marker.touch()
    time.sleep(120)

if point == "building":
    real_tune = build.tune
    build.tune = lambda *a, **k: (stop_here(), real_tune(*a, **k))[1]
else:  # the new index file is in place, its manifest not yet
    real_exit = atomic.atomic_path.__exit__
    def exit_then_stop(self, *exc):
        real_exit(self, *exc)
        if self.target.suffix == ".faiss" and self.target.name != "text.faiss":
            stop_here()
    atomic.atomic_path.__exit__ = exit_then_stop

store = Store(root, IndexConfig(exact_below=1000))
store.acquire_write_lock()
store.index("text", {dim})
store.wait_for_upgrades()
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["building", "file-written"])
def test_a_kill_during_the_upgrade_leaves_a_usable_index(tmp_path, space, point):
    ids, vectors, queries = space
    writer = open_store(tmp_path, exact_below=100_000)
    fill(writer, ids[:5_000], vectors[:5_000])
    writer.index(TEXT_SPACE, DIM)
    writer.close()
    marker = tmp_path / "reached"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), dim=DIM))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path), point, str(marker)])
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert process.poll() is None, "the upgrade ended before reaching the kill point"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()

    with Store(tmp_path) as reader:  # the old index serves, complete and exact
        index = reader.index(TEXT_SPACE, DIM)
        assert index.info.kind == FLAT and len(index) == 5_000
        _, found = index.search(vectors[:20], 1)
        assert (found[:, 0] == ids[:20]).all()
        assert check_store(reader).ok
    # The next writer clears what the killed one left and upgrades again.
    writer = open_store(tmp_path)
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.name for p in (tmp_path / "index").glob("*.faiss")) == ["text.faiss"]
    writer.index(TEXT_SPACE, DIM)
    writer.wait_for_upgrades()
    assert writer.index(TEXT_SPACE, DIM).info.kind == HNSW
    writer.close()
    assert sorted(p.name for p in (tmp_path / "index").glob("*.faiss")) == [Store(tmp_path).index_file(TEXT_SPACE).name]


def test_status_and_eval_index_report_the_index_in_use_and_its_real_recall(tmp_path, space):
    ids, vectors, _ = space
    store = open_store(tmp_path, exact_below=100_000)
    fill(store, ids[:12_000], vectors[:12_000])
    store.index_config = type(store.index_config)(exact_below=1_000)
    index = store.rebuild_index(TEXT_SPACE, DIM)

    status = status_at(tmp_path, 0.25).indexes[TEXT_SPACE]
    assert status["kind"] == HNSW and status["vectors"] == 12_000
    assert status["recall_at_10"] == index.info.recall_at_10 >= 0.95
    assert status["params"] == index.info.params and status["memory_bytes"] > 12_000 * DIM * 4

    # Built again: the new file replaces the old one on disk too.
    index = store.rebuild_index(TEXT_SPACE, DIM)
    assert [p.name for p in (tmp_path / "index").glob("*.faiss")] == [index.file]
    header = {"task": "index", "dataset": {}, "settings": {}, "models": {}}
    tuned = evaluate_index(store, TEXT_SPACE, header, sample=200)
    assert tuned.recall["10-recall@10"] >= 0.9
    assert "HNSW" in tuned.index_type
    # Searched with too little effort, the same index measures worse: the figure is measured, not assumed.
    index.info.params = {"efSearch": 1}
    starved = evaluate_index(store, TEXT_SPACE, header, sample=200)
    assert starved.recall["10-recall@10"] < tuned.recall["10-recall@10"]
    store.close()
