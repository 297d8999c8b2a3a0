"""typer's parameter checks without pydantic, for the values where typer's answer needs none.

typer (0.2x) checks each parameter value of the command it runs with a pydantic TypeAdapter,
built when the value is first checked. So `engine status` imported pydantic (about 0.2 s on a
2-core machine, a third of the command) only to learn that --server was not given. `install`
makes each parameter build typer's own check on first need instead, and answers without it
where typer's answer is known without pydantic:
- None (the option was not given): typer answers None, or () for a repeatable option, before
  its check runs (typer's ``RuntimeParam.coerce``, which still runs first);
- a str for a str parameter: typer answers the str itself;
- a member of an Enum parameter, or a str that names one: typer's own ``coerce_cli_choice``;
- a str for a plain Path parameter (no exists/writable/resolve_path/dash checks, no path_type):
  ``Path(value)``, which is what pydantic makes of a str.
Anything else (numbers, lists, files, parsers, a value that fails) goes to typer's check, so
errors read as they always did. With a typer that lacks these internals, `install` does nothing.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

_UNKNOWN = object()  # "ask typer's own check"


def install() -> None:
    """Make typer build each parameter's pydantic check only when a value needs it (idempotent)."""
    try:
        from typer import _coercion, core
        from typer._param_types import coerce_cli_choice
    except ImportError:
        return
    param_class = getattr(core, "_TyperParameter", None)
    base = getattr(_coercion, "RuntimeParam", None)
    build = getattr(_coercion, "build_runtime_param", None)
    if param_class is None or base is None or build is None or not hasattr(param_class, "get_runtime_param"):
        return
    if getattr(param_class.get_runtime_param, "_engine_lazy", False):
        return

    class LazyRuntimeParam(base):  # typer's frozen dataclass: coerce() handles None, then calls this
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            known = _known_value(value, param.type_descriptor, coerce_cli_choice, ctx)
            if known is not _UNKNOWN:
                return known
            real = param.__dict__.get("_engine_runtime_param")
            if real is None:
                real = param.__dict__["_engine_runtime_param"] = build(param.type_descriptor)
            return real._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            self._runtime_param = LazyRuntimeParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
        return self._runtime_param

    get_runtime_param._engine_lazy = True  # type: ignore[attr-defined]
    param_class.get_runtime_param = get_runtime_param


def _known_value(value: Any, descriptor: Any, coerce_cli_choice: Any, ctx: Any) -> Any:
    """typer's answer for ``value`` when it needs no pydantic, else _UNKNOWN."""
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    if getattr(info, "parser", None) is not None or descriptor.file_annotation is not None:
        return _UNKNOWN
    if annotation is str:
        return value if type(value) is str else _UNKNOWN
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if isinstance(value, annotation):
            return value
        if type(value) is not str:
            return _UNKNOWN
        try:
            return coerce_cli_choice(value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
        except ValueError:
            return _UNKNOWN  # typer's check words the error
    if annotation is Path and type(value) is str and _plain_path(info, value):
        return Path(value)
    return _UNKNOWN


def _plain_path(info: Any, value: str) -> bool:
    """Whether typer's path check of ``value`` can only answer ``Path(value)``."""
    if info.path_type is not None or info.exists or info.writable or info.resolve_path or info.allow_dash:
        return False
    if not (info.file_okay and info.dir_okay):
        return False
    # typer refuses an existing path that cannot be read (readable=True, the default).
    return not (info.readable and os.path.exists(value) and not os.access(value, os.R_OK))
