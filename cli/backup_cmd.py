"""`engine backup` and `engine restore`: parse, call engine.keep.backup, render. Nothing else.

cli.app imports this module at its bottom, once `app` exists; the library loads inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.app import app, err, knowledge_base, out


@app.command()
def backup(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A new (or empty) folder to write the backup into."),
    as_json: bool = typer.Option(False, "--json", help="Print what was backed up as JSON."),
) -> None:
    """Back up the store (database, image files, FAISS files) into a new folder, while it is in use.

    The database is copied with SQLite's online backup API: readers and a running `engine index`
    go on meanwhile, and the copy is the database as of one moment, with every image file it names.

    Example: engine backup /backups/kb-2024-06-01
    """
    with knowledge_base(ctx) as kb:
        report = kb.backup(path)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    out.print(f"backed up {counts} (schema {report.schema_revision}) to {report.path}", highlight=False)
    out.print(f"{report.image_files} image files, {len(report.index_files)} index files, {report.bytes:,} bytes", highlight=False)
    if report.missing_images:
        err.print(
            f"[yellow]note[/]: {len(report.missing_images)} image files were already missing from the store "
            f"(first: {report.missing_images[0]}); run `engine check`",
            highlight=False,
        )


@app.command()
def restore(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A folder written by `engine backup`."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Verify the backup only; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print what was restored as JSON."),
) -> None:
    """Replace the store with a backup, after verifying it; the current database is kept beside it.

    Refused while a writer (engine index, reindex) runs; stop `engine serve` first, and start it again after.

    Example: engine restore /backups/kb-2024-06-01
    Example: engine --store ./new-kb restore /backups/kb-2024-06-01 --dry-run
    """
    with knowledge_base(ctx) as kb:
        report = kb.restore(path, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    if report.dry_run:
        out.print(f"the backup {report.source} ({report.created_at}) is complete and intact: {counts}; nothing changed", highlight=False)
        return
    out.print(f"restored {counts} from {report.source} ({report.created_at}) into {report.store}", highlight=False)
    out.print(f"{report.image_files_copied} image files copied, {report.image_files_present} already there", highlight=False)
    if report.moved_aside:
        out.print(f"the previous database is kept as {report.moved_aside[0]} (move it back to undo)", highlight=False)
