"""`engine forget`: take pages, documents or a topic out of the store for good (engine/keep/forget.py)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from cli.app import app, err, knowledge_base, out


@app.command()
def forget(
    ctx: typer.Context,
    what: Optional[list[str]] = typer.Argument(
        None,
        help="URLs a page was stored from (ending in * for a prefix), document ids, or paths of indexed files or folders.",
        show_default=False,
    ),
    topic: Optional[list[str]] = typer.Option(
        None, "--topic", help="A topic: its documents no other topic holds, and the topic itself; repeatable."
    ),
    gone: bool = typer.Option(False, "--gone", help="Documents whose page answered 404 or 410 when the crawl last checked it."),
    prefix: bool = typer.Option(False, "--prefix", help="Take every URL given as a prefix (as if it ended in *)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be forgotten; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Forget documents for good: their rows, passages, vectors, images no other page shows, and crawl state.

    Example: engine forget https://example.org/coffee/how-coffee-is-roasted.html --dry-run
    Example: engine forget "https://example.org/cats/*"
    Example: engine forget 12 17 --json
    Example: engine forget --topic "domestic cats"
    Example: engine forget --gone
    """
    from engine.keep.forget import Selection

    with knowledge_base(ctx) as kb:
        selection = Selection.parse(what or [], topic or [], gone=gone, prefix=prefix)
        report = kb.forget(selection, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    _print_report(report)


def _print_report(report) -> None:  # noqa: ANN001 - engine.keep.forget.ForgetReport
    plan = report.plan
    would = "would forget" if report.dry_run else "forgot"
    for doc in plan.documents:
        title = doc.title or "(untitled)"
        out.print(f"{would} document {doc.id}: {title} — {doc.url or 'no URL'} ({doc.chunks} passages)", highlight=False)
    for kept in plan.kept:
        out.print(
            f"document {kept.id} ({kept.title or 'untitled'}) stays: also stored from {', '.join(kept.still_at)}",
            highlight=False,
        )
    for name in plan.topics:
        out.print(f"{would} topic {name!r}", highlight=False)
    files = len(plan.images)
    out.print(
        f"{would}: {len(plan.documents)} documents, {len(plan.sources)} source URLs, {len(plan.chunk_ids)} passages, "
        f"{files} images, {len(plan.topics)} topics, {len(plan.crawl_urls)} crawl URLs",
        highlight=False,
    )
    if plan.orphan_files:
        verb = "would delete" if report.dry_run else "deleted"
        out.print(f"{verb} {len(plan.orphan_files)} image files no stored image refers to (left by an interrupted run)")
    if plan.empty:
        err.print("nothing to forget")
