"""Rendering API results for people (rich text, Markdown) and scripts (JSON).

Every page-derived string goes through rich's escape (text) or Markdown escaping,
so a page cannot inject markup into the terminal or the report.
"""

from __future__ import annotations

import json
import re
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.results import AskResult


def render_ask(result: AskResult, fmt: str, console: Console | None) -> str:
    """Render ``result``; print it on ``console`` if given, and return the text."""
    if fmt == "json":
        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
    elif fmt == "markdown":
        text = ask_markdown(result)
    else:
        if console is not None:
            print_ask(console, result)
            return ""
        text = ask_markdown(result)
    if console is not None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    return text


def print_ask(console: Console, result: AskResult) -> None:
    console.print(f"[bold]{escape(result.query)}[/]\n")
    if not result.summary:
        console.print("Nothing relevant is stored for this question.")
    for sentence in result.summary:
        cites = "".join(f"[{n}]" for n in sentence.citations)
        console.print(f"• {escape(sentence.text)} [cyan]{escape(cites)}[/]")
    if result.sources:
        console.print("\n[bold]Sources[/]")
        for s in result.sources:
            date = f" ({escape(s.published)})" if s.published else ""
            console.print(f"  [{s.number}] {escape(s.title or 'untitled')}{date} — {escape(s.url)}", highlight=False)
    if result.images:
        console.print("\n[bold]Images[/]")
        for n, image in enumerate(result.images, 1):
            parts = ", ".join(f"{k} {v:.2f}" for k, v in image.parts.items())
            label = image.alt or image.caption or ""
            source = f"[{image.source}] " if image.source else ""
            console.print(f"  {n}. {escape(image.path)}", highlight=False)
            console.print(f"     {escape(source)}score {image.score:.3f} ({parts}) {escape(label[:100])}", highlight=False)


def ask_markdown(result: AskResult) -> str:
    lines = [f"# {_md(result.query)}", ""]
    if not result.summary:
        lines.append("Nothing relevant is stored for this question.")
    for sentence in result.summary:
        lines.append(f"- {_md(sentence.text)} " + "".join(f"[{n}]" for n in sentence.citations))
    if result.sources:
        lines += ["", "## Sources", ""]
        for s in result.sources:
            date = f" ({_md(s.published)})" if s.published else ""
            lines.append(f"{s.number}. [{_md(s.title or 'untitled')}](<{_url(s.url)}>){date}")
    if result.images:
        lines += ["", "## Images", ""]
        for image in result.images:
            alt = _md(image.alt or image.caption or "image")
            source = f" — source [{image.source}]" if image.source else ""
            lines.append(f"![{alt}](<{_url(image.path)}>)")
            lines.append(f"*score {image.score:.3f}{source}*")
            lines.append("")
    if result.notices:
        lines += ["", *[f"> note: {_md(n)}" for n in result.notices]]
    return "\n".join(lines).rstrip() + "\n"


def _md(text: str) -> str:
    # Escape Markdown and inline HTML so page text renders as text.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+!|])", r"\\\1", text)


def _url(url: str) -> str:
    return url.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def print_index_report(console: Console, report) -> None:  # noqa: ANN001 - IndexReport
    pages = report.pages
    console.print(
        f"pages: {pages['added']} added, {pages['updated']} updated, {pages['duplicate']} duplicate, "
        f"{pages['unchanged']} unchanged, {pages['failed']} failed"
    )
    console.print(f"chunks: {report.chunks_added} added")
    images = report.images
    console.print(
        f"images: {images['added']} added, {images['linked']} already stored (linked), {images['failed']} failed"
    )
    if not report.clip_used:
        console.print("CLIP vectors: not computed (no weights); images are ranked by their text context")
    if report.failures:
        console.print("\n[bold]Failures by reason[/]")
        for (kind, reason), count in report.failure_reasons().most_common():
            console.print(f"  {count:4d} {kind}: {escape(reason)}", highlight=False)
        for failure in report.failures[:10]:
            console.print(f"  - {escape(failure.origin)}: {escape(failure.reason)}", highlight=False)
        if len(report.failures) > 10:
            console.print(f"  … and {len(report.failures) - 10} more (engine status --json lists them)")
    console.print(f"took {report.seconds:.1f} s")


def print_status(console: Console, report) -> None:  # noqa: ANN001 - StatusReport
    console.print(f"store: {escape(report.store)}", highlight=False)
    console.print(
        f"{report.documents} documents from {report.sources} sources, {report.chunks} chunks, {report.images} images"
    )
    vectors = ", ".join(f"{k} {v}" for k, v in report.vectors.items())
    console.print(f"vectors: {vectors}; images without CLIP vectors: {report.images_without_clip}")
    console.print("size: " + ", ".join(f"{k} {_bytes(v)}" for k, v in report.bytes.items()))
    if report.models:
        console.print("models: " + ", ".join(f"{k} = {escape(v)}" for k, v in report.models.items()), highlight=False)
    if report.topics:
        table = Table("topic", "documents", "chunks", "images", "last update")
        for t in report.topics:
            table.add_row(escape(t.name), str(t.documents), str(t.chunks), str(t.images), _when(t.last_update))
        console.print(table)
    if report.last_run:
        run = report.last_run
        console.print(f"last run: {run['status']}, started {_when(run['started_at'])}")


def print_check(console: Console, report) -> None:  # noqa: ANN001 - CheckReport
    for s in report.spaces:
        console.print(
            f"{s.space}: {s.in_database} vectors in SQLite, {s.in_index_file} in the index file"
            + (f" ({s.index_file_problem})" if s.index_file_problem else "")
        )
    console.print(f"SQLite integrity: {report.sqlite_integrity}; foreign key violations: {report.foreign_key_violations}")
    for note in report.notes:
        console.print(f"[yellow]note[/]: {escape(note)}")
    for problem in report.problems:
        console.print(f"[red]problem[/]: {escape(problem)}")
    console.print("[green]consistent[/]" if report.ok else "[red]inconsistent[/]")


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"
