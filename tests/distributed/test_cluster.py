"""Ingestion through a real two-node Ray cluster, and a driver killed with SIGKILL mid-run (slow)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.kb import KnowledgeBase
from tests.conftest import REPO, make_config, store_counts

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
RAY_PROCESS_MARKS = ("raylet", "gcs_server", "ray::", "default_worker.py", "dashboard", "runtime_env", "log_monitor", "ray/autoscaler")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes() -> dict[int, int]:
    """{pid: parent pid} of this machine's Ray processes."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(next(line.split()[1] for line in (entry / "status").read_text().splitlines() if line.startswith("PPid:")))
        except (OSError, StopIteration, ValueError):
            continue
        if any(mark in cmdline for mark in RAY_PROCESS_MARKS):
            found[int(entry.name)] = ppid
    return found


def stop_cluster_started_after(before: set[int]) -> None:
    """Stop the Ray processes `ray start` made (not the session's local instance, which descends from pytest)."""
    def ours(pid: int, parents: dict[int, int]) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid) or _parent(pid)
        return False

    for sig in (signal.SIGTERM, signal.SIGKILL):
        processes = ray_processes()
        for pid in processes:
            if pid not in before and not ours(pid, processes):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(2)


def _parent(pid: int) -> int:
    try:
        return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("PPid:")))
    except (OSError, StopIteration):
        return 0


def engine_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "RAY_"))}
    (tmp_path / "none.toml").write_text("")
    env.update(HF_HUB_OFFLINE="1", ENGINE_CONFIG=str(tmp_path / "none.toml"), PYTHONPATH=str(REPO), ENGINE_CLIP_ENABLED="false")
    env.update(extra)
    return env


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head node (1 CPU) and a second node (2 CPUs) on this machine, joined with a token."""
    token = tmp_path / "ray-token"
    token.write_text(secrets.token_hex(32))
    env = engine_env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    port = free_port()
    before = set(ray_processes())
    common = ["--disable-usage-stats", "--include-dashboard=false"]
    try:
        subprocess.run([BIN / "ray", "start", "--head", f"--port={port}", "--num-cpus=1", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([BIN / "ray", "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    finally:
        stop_cluster_started_after(before)


def test_a_two_node_cluster_indexes_the_examples_like_a_local_run(tmp_path, examples_dir, text_encoder, two_node_cluster):
    address, env = two_node_cluster
    nodes = subprocess.run(
        [sys.executable, "-c", f"import ray; ray.init(address={address!r}); print(sum(n['Alive'] for n in ray.nodes()))"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert nodes.stdout.strip().splitlines()[-1] == "2", nodes.stderr[-2000:]
    store = tmp_path / "on-cluster"
    done = subprocess.run(
        [BIN / "engine", "--store", str(store), "index", "--topics", str(examples_dir / "topics.txt"),
         "--from", str(examples_dir / "pages"), "--executor", "ray", "--json"],
        env={**env, "ENGINE_RAY_ADDRESS": address, "ENGINE_RAY_EMBED_ACTORS": "2"},
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    topics = [t for t in (examples_dir / "topics.txt").read_text().splitlines() if t.strip() and not t.startswith("#")]
    with KnowledgeBase(make_config(tmp_path / "local"), text_encoder=text_encoder) as local:
        expected = local.index(topics, [examples_dir / "pages"])
        expected_counts = store_counts(local)
        expected_answer = local.ask("how is coffee roasted")
    assert report["pages"] == dict(expected.pages) and report["chunks_added"] == expected.chunks_added
    assert report["images"] == dict(expected.images)
    config = make_config(tmp_path).replace(store=make_config(tmp_path).store.__class__(path=store))
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        assert store_counts(kb) == expected_counts
        answer = kb.ask("how is coffee roasted")
        assert [s.url for s in answer.sources] == [s.url for s in expected_answer.sources]


def count(db: Path, sql: str) -> int | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return None


def test_a_driver_killed_with_sigkill_leaves_a_consistent_store_that_the_next_run_completes(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks.ingest import build_corpus

    pages = tmp_path / "pages"
    pages.mkdir()
    total = build_corpus(pages, 4)
    store = tmp_path / "store"
    db = store / "engine.db"
    env = engine_env(tmp_path, ENGINE_INDEX_DOCS_PER_BATCH="1", ENGINE_RAY_NUM_CPUS="2")
    command = [BIN / "engine", "--store", str(store), "index", "--from", str(pages), "--executor", "ray", "--json"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while (count(db, "SELECT count(*) FROM documents") or 0) < 3:
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no pages committed in time"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    committed = count(db, "SELECT count(*) FROM documents")
    assert 3 <= committed < total
    check = subprocess.run([BIN / "engine", "--store", str(store), "check"], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "consistent" in check.stdout, check.stdout + check.stderr

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout)
    assert report["pages"] == {"unchanged": committed, "added": total - committed}
    assert count(db, "SELECT count(*) FROM documents") == count(db, "SELECT count(DISTINCT url) FROM sources") == total
    assert count(db, "SELECT count(*) FROM chunks") == count(db, "SELECT count(*) FROM embeddings WHERE space = 'text'")
    assert count(db, "SELECT count(*) FROM runs WHERE status = 'done'") == 1
