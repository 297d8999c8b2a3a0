"""Durations on the command line: 90s, 30m, 2h, 1d (or a bare number of seconds)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with the accepted forms."""
    found = DURATION.fullmatch(text.strip().lower())
    seconds = float(found.group(1)) * UNITS[found.group(2) or "s"] if found else 0.0
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration such as 90s, 30m, 2h or 1d")
    return seconds


def watch_interval(watch: bool, every: str | None) -> float | None:
    """The seconds of ``--every`` (None: the configured default), checked against ``--watch``.

    Raises:
        typer.BadParameter: a bad duration, or --every without --watch.
    """
    import typer

    try:
        interval = parse_duration(every) if every is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from None
    if every is not None and not watch:
        raise typer.BadParameter("--every goes with --watch", param_hint="--every")
    return interval
