"""The CLI: thin, fast to start, errors as `Name: message` with non-zero exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.config import Config
from engine.kb import KnowledgeBase

runner = CliRunner()


def registered_commands() -> list[list[str]]:
    """Every command the app has, sub-commands included: a new command is checked without a list to update."""
    def name(command) -> str:  # noqa: ANN001 - typer.models.CommandInfo
        return command.name or command.callback.__name__.replace("_", "-")

    found = [[name(c)] for c in app.registered_commands]
    for group in app.registered_groups:
        found += [[group.name, name(c)] for c in group.typer_instance.registered_commands]
    return found


COMMANDS = registered_commands()


def test_the_command_list_is_the_apps():
    expected = [["index"], ["ask"], ["status"], ["check"], ["reindex"], ["serve"], ["forget"], ["export"], ["db", "upgrade"]]
    assert all(c in COMMANDS for c in expected), COMMANDS


def test_importing_the_cli_loads_no_model_library():
    code = (
        "import sys, cli.app; "
        "heavy = [m for m in ('torch', 'open_clip', 'sentence_transformers', 'faiss', 'transformers') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: engine" in result.output


def test_status_of_an_empty_store_runs_without_models(tmp_path):
    code = (
        "import sys; from cli.app import main; sys.argv = ['engine', '--store', sys.argv[1], 'status', '--json']; "
        "main()\n"
        "import sys; assert 'torch' not in sys.modules, 'status imported torch'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "kb")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["documents"] == 0 and status["topics"] == []


def test_index_ask_status_through_the_cli(tmp_path, examples_dir):
    store = tmp_path / "kb"
    result = runner.invoke(
        app,
        ["--store", str(store), "index", "--topics", str(examples_dir / "topics.txt"),
         "--from", str(examples_dir / "pages"), "--json"],
        env={"ENGINE_CLIP_ENABLED": "false"},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pages"]["added"] == 8

    with KnowledgeBase(Config.load(overrides={"store.path": store})) as kb:  # state, via the API
        status = kb.status()
    assert status.documents == 8
    assert {t.name for t in status.topics} == {"space exploration", "coffee", "domestic cats", "ancient coins"}
    assert all(t.documents >= 2 for t in status.topics)

    answer_file = tmp_path / "answer.json"
    result = runner.invoke(
        app, ["--store", str(store), "ask", "Roman coins", "--format", "json", "--out", str(answer_file)],
        env={"ENGINE_CLIP_ENABLED": "false"},
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(answer_file.read_text())
    assert answer["schema_version"] == 3 and answer["summary"] and answer["sources"]
    assert any("coin" in (s["title"] or "").lower() for s in answer["sources"])

    markdown = runner.invoke(app, ["--store", str(store), "ask", "Roman coins", "--format", "markdown"],
                             env={"ENGINE_CLIP_ENABLED": "false"})
    assert markdown.exit_code == 0 and markdown.stdout.startswith("# Roman coins")

    check = runner.invoke(app, ["--store", str(store), "check", "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True


def test_a_missing_topics_file_is_a_clear_error(tmp_path):
    result = runner.invoke(
        app, ["--store", str(tmp_path / "kb"), "index", "--topics", str(tmp_path / "nope.txt"), "--from", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "InputError" in result.stderr and "nope.txt: topics file not found" in result.stderr


def test_a_bad_config_value_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["--store", str(tmp_path / "kb"), "status"], env={"ENGINE_ASK_K": "lots"})
    assert result.exit_code == 2
    assert "ConfigError" in result.stderr and "ask.k" in result.stderr


def test_usage_errors_exit_non_zero():
    assert runner.invoke(app, ["ask"]).exit_code != 0
    assert runner.invoke(app, ["no-such-command"]).exit_code != 0
