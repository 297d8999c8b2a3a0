"""`engine ask --server` and `engine status --server`, run as real processes: the local command's output, no torch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

QUESTION = "how is coffee roasted"
HEAVY = ("torch", "open_clip", "sentence_transformers", "faiss", "transformers", "numpy", "sqlalchemy")
# The CLI as `engine` runs it, reporting on stderr which heavy modules it imported.
WATCHED = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('imported:', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))\n"
    "from cli.app import main\n"
    "sys.argv = ['engine', *sys.argv[1:]]\n"
    "main()\n"
)


def engine(*args: str, watched: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", WATCHED] if watched else [sys.executable, "-m", "cli"]
    env = {**os.environ, "ENGINE_CLIP_ENABLED": "false"}  # as the served store was made
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)


def local(served, *args: str) -> subprocess.CompletedProcess:
    return engine("--store", str(served.config.store.path), *args)


def remote(served, *args: str, watched: bool = False) -> subprocess.CompletedProcess:
    return engine(*args, "--server", served.url, watched=watched)


def without_timings(output: str) -> dict:
    answer = json.loads(output)
    assert answer.pop("timings_ms")
    return answer


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_remote_ask_prints_what_the_local_one_prints(served, fmt):
    here, there = local(served, "ask", QUESTION, "--format", fmt), remote(served, "ask", QUESTION, "--format", fmt)
    assert here.returncode == there.returncode == 0, (here.stderr, there.stderr)
    assert there.stdout == here.stdout and QUESTION in there.stdout
    assert there.stderr == here.stderr


@pytest.mark.slow
def test_a_remote_json_answer_is_the_local_one(served):
    here = local(served, "ask", QUESTION, "--format", "json", "--style", "brief", "--topic", "coffee")
    there = remote(served, "ask", QUESTION, "--format", "json", "--style", "brief", "--topic", "coffee")
    assert here.returncode == there.returncode == 0, (here.stderr, there.stderr)
    assert without_timings(there.stdout) == without_timings(here.stdout)
    assert without_timings(there.stdout)["settings"]["filters"] == {"topic": "coffee"}  # the flags went along


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["text", "json"])
def test_remote_status_prints_what_local_status_prints(served, args):
    here, there = local(served, "status", *args), remote(served, "status", *args)
    assert here.returncode == there.returncode == 0, (here.stderr, there.stderr)
    assert there.stdout == here.stdout and there.stderr == here.stderr


def test_a_remote_ask_imports_no_model_library(served):
    answered = remote(served, "ask", QUESTION, "--format", "html", watched=True)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("<!DOCTYPE html>") or "<html" in answered.stdout
    assert answered.stderr.splitlines()[-1] == "imported: []"
    status = remote(served, "status", watched=True)
    assert status.returncode == 0 and status.stderr.splitlines()[-1] == "imported: []"


def test_a_server_that_is_down_is_a_clear_error(served):
    with socket.socket() as probe:  # a port that nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for command in (["ask", QUESTION], ["status"]):
        failed = engine(*command, "--server", f"http://127.0.0.1:{port}")
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr == (
            f"ServerUnavailable: cannot reach http://127.0.0.1:{port} (connection refused); start it with `engine serve`\n"
        )


def test_the_server_is_also_taken_from_engine_server(served, monkeypatch):
    monkeypatch.setenv("ENGINE_SERVER", served.url)
    status = engine("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["store"] == str(served.config.store.path)


def test_a_bad_request_is_the_servers_400_as_a_usage_error(served):
    failed = remote(served, "ask", QUESTION, "--min-score", "banana")
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.startswith("ConfigError: min_score (from the request) must be") and "'banana'" in failed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", QUESTION, "--server", "ftp://example.org"], "ConfigError: --server 'ftp://example.org' is not an http(s) URL"),
        (["--store", "kb", "status", "--server", "http://127.0.0.1:9"], "ConfigError: --store and --config choose a local store"),
    ],
    ids=["not-http", "store-too"],
)
def test_a_bad_server_option_is_a_usage_error(args, message):
    failed = engine(*args)
    assert failed.returncode == 2 and failed.stderr.startswith(message)


def test_an_answer_in_another_schema_version_is_refused(served):
    from cli.remote import RemoteError, RemoteKnowledgeBase
    from engine.ask import AskRequest

    class Newer(RemoteKnowledgeBase):
        def _call(self, method, path, body=None):  # noqa: ANN001, ANN202
            return {**super()._call(method, path, body), "schema_version": 99}

    with Newer(served.url) as kb, pytest.raises(RemoteError, match="schema version 99"):
        kb.ask(AskRequest(QUESTION))
