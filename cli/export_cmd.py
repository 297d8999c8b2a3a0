"""`engine export`: documents, chunks and images as JSON Lines (and the image files), for use elsewhere."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from cli.app import app, err, knowledge_base, out


def since_timestamp(value: str, now: float | None = None) -> float:
    """Seconds since the epoch of ``--since``: an ISO date or date-time (UTC unless it has an
    offset: 2026-11-01, 2026-11-01T12:00, 2026-11-01T12:00+02:00) or a duration back from now (7d, 12h).

    Raises:
        ConfigError: neither.
    """
    from datetime import datetime, timezone

    from cli.durations import parse_duration
    from engine.errors import ConfigError

    text = value.strip()
    if text[-1:].lower() in ("s", "m", "h", "d"):  # a unit is required: a bare 2026 is not 2026 seconds
        try:
            return (time.time() if now is None else now) - parse_duration(text)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads a final Z as UTC
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is neither a date or time (2026-11-01, 2026-11-01T12:00) "
            "nor a duration back from now (90m, 12h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@app.command("export")
def export(
    ctx: typer.Context,
    target: Path = typer.Argument(..., help="A new or empty folder to write the export into."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Only documents linked to this topic."),
    since: Optional[str] = typer.Option(
        None, "--since", help="Only documents new or changed since then: 2026-11-01, 2026-11-01T12:00 (UTC), or 7d, 12h back."
    ),
    images: bool = typer.Option(True, "--images/--no-images", help="Copy the image files (their metadata is exported either way)."),
    as_json: bool = typer.Option(False, "--json", help="Print the export's summary as JSON."),
) -> None:
    """Export documents, chunks and images as JSON Lines, with the image files, for use elsewhere.

    Writes documents.jsonl, chunks.jsonl, images.jsonl, images/ and manifest.json into TARGET.
    It only reads the store (no write lock), so it can run beside `engine index`.

    Example: engine export ./kb-export
    Example: engine export ./coffee --topic coffee --since 7d --json
    Example: engine export ./november --since 2026-11-01 --no-images
    """
    with knowledge_base(ctx) as kb:
        cutoff = since_timestamp(since) if since is not None else None
        report = kb.export(target, topic=topic, since=cutoff, images=images)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    out.print(
        f"exported {report.documents} documents, {report.chunks} chunks and {report.images} images "
        f"({report.image_files} image files) to {report.target}",
        highlight=False,
    )
    if report.missing_image_files:
        err.print(
            f"[yellow]note[/]: {report.missing_image_files} image files are missing from the store "
            "(their metadata is exported with \"file\": null); see `engine check`",
            highlight=False,
        )
