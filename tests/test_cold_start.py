"""Cold start: what a fresh `engine --help` and `engine status` load, and that status still
creates, upgrades or refuses a store as it always has.

Behaviour, not timing (benchmarks/startup.py times them): each command runs in a fresh
process, which then reports which of the heavy modules it imported.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.store import database
from engine.store.schema import HEAD_REVISION, KNOWN_REVISIONS
from engine.store.store import Store

# Libraries that load models or run them; no command without a model touches them.
MODEL_LIBRARIES = (
    "torch", "torchvision", "transformers", "sentence_transformers", "open_clip", "onnxruntime", "tokenizers",
)
# What reads and searches the store, and what the CLI does not need to parse its flags
# (typer checks values with pydantic only when they need it: cli/coercion.py).
STORE_LIBRARIES = ("numpy", "faiss", "sqlalchemy", "alembic")
OTHER_HEAVY = ("pydantic", "PIL", "httpx", "trafilatura", "indexer", "engine.ask.pipeline", "ray")

# The CLI as `engine` runs it; afterwards, the heavy modules it loaded go to the file in argv[1].
RUN_AND_REPORT = (
    "import json, sys\n"
    "report, sys.argv = sys.argv[1], ['engine', *sys.argv[2:]]\n"
    "from cli.app import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    f"    watched = {MODEL_LIBRARIES + STORE_LIBRARIES + OTHER_HEAVY + ('engine.kb',)!r}\n"
    "    with open(report, 'w') as f:\n"
    "        json.dump(sorted(m for m in watched if m in sys.modules), f)\n"
)


def loaded_by(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    """The watched modules a fresh `engine ARGS` imported, and its output."""
    report = tmp_path / "loaded.json"
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, str(report), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text()), done.stdout


def test_help_loads_no_model_store_or_validation_library(tmp_path):
    loaded, out = loaded_by(tmp_path, "--help")
    assert "Example" not in out and "status" in out  # the top-level help, commands listed
    assert loaded == [], f"`engine --help` imported {loaded}"


def test_status_of_a_store_at_the_newest_schema_loads_no_model_or_index_library(tmp_path):
    Store(tmp_path / "kb").close()  # created and migrated here, so the command only reads
    loaded, out = loaded_by(tmp_path, "--store", str(tmp_path / "kb"), "status")
    assert "0 documents from 0 sources" in out
    must_not = set(MODEL_LIBRARIES + OTHER_HEAVY) | {"faiss", "alembic", "sqlalchemy", "numpy"}
    assert not must_not & set(loaded), f"`engine status` imported {sorted(must_not & set(loaded))}"


@pytest.mark.slow
def test_a_local_index_run_never_imports_ray(tmp_path, examples_dir):
    page = examples_dir / "pages" / "cat-behaviour.html"
    loaded, out = loaded_by(tmp_path, "--store", str(tmp_path / "kb"), "index", "--from", str(page), "--json")
    assert json.loads(out)["pages"] == {"added": 1}
    assert "ray" not in loaded and "indexer" in loaded


def test_status_creates_a_new_store_upgrades_an_old_one_and_refuses_a_newer_one(tmp_path):
    runner = CliRunner()
    new = tmp_path / "new"
    result = runner.invoke(app, ["--store", str(new), "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 0
    assert database.schema_revision(new / "engine.db") == HEAD_REVISION

    old = tmp_path / "old"
    old.mkdir()
    engine = database.connect(old / "engine.db")
    database.upgrade(engine, KNOWN_REVISIONS[0])
    engine.dispose()
    assert database.connect_at_head(old / "engine.db") is None  # not at head: opened the full way
    result = runner.invoke(app, ["--store", str(old), "status", "--json"])
    assert result.exit_code == 0, result.output
    assert database.schema_revision(old / "engine.db") == HEAD_REVISION

    with sqlite3.connect(new / "engine.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = runner.invoke(app, ["--store", str(new), "status"])
    assert result.exit_code == 1
    assert "SchemaTooNewError" in result.output and "9999" in result.output


def test_the_revision_is_read_without_creating_anything(tmp_path):
    missing = tmp_path / "nothing" / "engine.db"
    assert database.schema_revision(missing) is None and database.connect_at_head(missing) is None
    assert not missing.parent.exists()
    not_a_database = tmp_path / "engine.db"
    not_a_database.write_bytes(b"not SQLite at all, just bytes" * 100)
    assert database.connect_at_head(not_a_database) is None  # Store reports it, as before
    Store(tmp_path / "kb").close()
    conn = database.connect_at_head(tmp_path / "kb" / "engine.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_the_schema_and_the_migration_check_know_the_same_revisions():
    from engine.store import schema

    assert database.KNOWN_REVISIONS == schema.KNOWN_REVISIONS
    assert database.HEAD_REVISION == schema.HEAD_REVISION


# -- typer's checks without pydantic (cli/coercion.py) ----------------------------------------


def _parameters():
    import typer.main

    group = typer.main.get_command(app)
    commands = [group, *group.commands.values()]
    commands += [sub for c in group.commands.values() for sub in getattr(c, "commands", {}).values()]
    return [p for c in commands for p in c.params if hasattr(p, "type_descriptor")]


@pytest.mark.parametrize(
    "value",
    [None, "", "x", "a//b/", "~/kb", "text", "json", "JSON", "bullets", "nope", "3", "-1", "1.5", "true", __file__],
)
def test_every_parameter_takes_a_value_as_typer_itself_would(value):
    from typer import _coercion

    from cli import coercion

    coercion.install()
    checked = 0
    for param in _parameters():
        if param.multiple and value is not None:
            continue  # typer refuses a str for a repeatable option before any check
        ctx = None
        fast = _outcome(lambda: param.get_runtime_param().coerce(value, param=param, ctx=ctx))
        real = _outcome(lambda: _coercion.build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx))
        assert fast == real, f"{param.name}: {value!r}"
        checked += 1
    assert checked > 20


def _outcome(call) -> tuple:  # noqa: ANN001
    try:
        result = call()
        return ("value", type(result), result)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return ("error", type(exc).__name__, str(exc))


def test_a_bad_value_is_still_refused_in_typers_words():
    result = CliRunner().invoke(app, ["ask", "coffee", "--format", "nope"])
    assert result.exit_code == 2 and "'nope' is not one of" in result.output
    result = CliRunner().invoke(app, ["ask", "coffee", "--k", "0"])
    assert result.exit_code == 2 and "--k" in result.output


@pytest.mark.parametrize("damage", ["pages overwritten", "not a database"])
def test_a_damaged_database_is_reported_plainly_not_as_a_traceback(tmp_path, damage):
    store = tmp_path / "kb"
    runner = CliRunner()
    assert runner.invoke(app, ["--store", str(store), "status"]).exit_code == 0
    db = store / "engine.db"
    if damage == "pages overwritten":  # everything after the schema page: the tables' b-trees
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * (db.stat().st_size - 4096))
    else:
        db.write_bytes(b"this is not an SQLite file at all" * 200)
    result = runner.invoke(app, ["--store", str(store), "status"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # the CLI's exit, not the error itself
    assert "Traceback" not in result.output
    assert f"StoreError: the store's database {db} could not be read (" in " ".join(result.output.split())
