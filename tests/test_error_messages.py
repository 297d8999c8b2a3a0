"""Every `engine …` command that the code quotes to users (in errors, notices and docstrings)
exists in the CLI, verb and options, so no message can send anyone to a command that is not there."""

from __future__ import annotations

import ast
import re
from typing import Iterator

import typer

from cli.app import app
from tests.conftest import REPO

SCANNED = ("engine", "indexer", "cli")
QUOTED_COMMAND = re.compile(r"`(engine [^`\n]+)`")


def quoted_commands(source: str) -> Iterator[tuple[int, str]]:
    """(line, command) of each backquoted `engine …` in the string literals of ``source``.

    An f-string's replacement fields read as ``{}``, which `problems` leaves unchecked.
    """
    tree = ast.parse(source)
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            text = node.value
        else:
            continue
        for match in QUOTED_COMMAND.finditer(text):
            yield node.lineno + text.count("\n", 0, match.start()), match.group(1)


def problems(command: str, root) -> list[str]:  # noqa: ANN001 - typer's click command
    """What ``command`` (``engine …``) names that the CLI lacks: a command or an option.

    Duck-typed on click's Group and Option, since typer may bring its own copy of click.
    """
    found: list[str] = []
    where, path, takes_value = root, ["engine"], False
    for token in command.split()[1:]:
        if takes_value:  # the option's value, e.g. FILE after --topics
            takes_value = False
        elif "{" in token:  # an f-string field: unknowable; past a group, so is everything after it
            if hasattr(where, "commands"):
                break
        elif token.startswith("-"):
            name = token.split("=", 1)[0]
            needs_value = _takes_value(where, name)
            if needs_value is None:
                found.append(f"`{' '.join(path)}` has no option {name}")
            takes_value = bool(needs_value) and "=" not in token
        elif hasattr(where, "commands"):
            if token not in where.commands:
                found.append(f"`{' '.join(path)}` has no command {token!r}")
                break
            where = where.commands[token]
            path.append(token)
        # else: an argument of the command, such as a question or PATH
    return found


def _takes_value(command, name: str) -> bool | None:  # noqa: ANN001
    """Whether ``command``'s option ``name`` takes a value; None when it has no such option."""
    if name == "--help":
        return False
    for param in command.params:
        if param.param_type_name == "option" and name in param.opts + param.secondary_opts:
            return not (param.is_flag or param.count)
    return None


def test_every_command_the_code_quotes_exists():
    root = typer.main.get_command(app)
    quoted, offenders = 0, []
    for package in SCANNED:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, command in quoted_commands(path.read_text(encoding="utf-8")):
                quoted += 1
                offenders += [f"{path.relative_to(REPO)}:{line}: `{command}`: {p}" for p in problems(command, root)]
    assert quoted > 5  # the scan does see the code's messages
    assert not offenders, "commands that do not exist:\n" + "\n".join(offenders)


def test_the_check_names_unknown_commands_and_options():
    source = (
        'x = 1\n'
        'raise E(f"run `engine reindex --rebuild-vectors` or `engine rebuild` ({x})")\n'
        '"""Ask:\n\n    `engine --store ./kb ask "coffee" --k 3 --style=brief`, `engine db upgrade`, `engine {verb} --x`\n"""\n'
    )
    root = typer.main.get_command(app)
    found = [(line, command, problems(command, root)) for line, command in quoted_commands(source)]
    assert sorted(found) == [
        (2, "engine rebuild", ["`engine` has no command 'rebuild'"]),
        (2, "engine reindex --rebuild-vectors", ["`engine reindex` has no option --rebuild-vectors"]),
        (5, 'engine --store ./kb ask "coffee" --k 3 --style=brief', []),
        (5, "engine db upgrade", []),
        (5, "engine {verb} --x", []),
    ]
