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


def render_ask(result: AskResult, fmt: str, console: Console | None, explain: bool = False, fetch_image=None) -> str:  # noqa: ANN001
    """Render ``result``; print it on ``console`` if given, and return the text.

    ``fetch_image`` (cli.render_html.FetchImage) gives the images' bytes when the files are on
    another machine (``engine ask --server``); by default HTML reads the stored files.
    """
    if fmt == "json":
        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
    elif fmt == "markdown":
        text = ask_markdown(result, explain)
    elif fmt == "html":
        from cli.render_html import render_html

        text = render_html(result, fetch_image=fetch_image)
    else:
        if console is not None:
            print_ask(console, result, explain)
            return ""
        text = ask_markdown(result, explain)
    if console is not None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    return text


def nothing_found(result: AskResult) -> str:
    if result.nothing_new:
        return f"Nothing new since {result.new['since']}, when this was last asked."
    if result.nothing_relevant:
        return "Nothing relevant is stored for this question."
    return "No answer."


def new_since(result: AskResult) -> str | None:
    """`ask --new`: the line saying what the answer is drawn from."""
    if not result.new or result.nothing_new:
        return None
    if result.new.get("since") is None:
        return f"New to you: first asked now, so all {result.new['new_documents']} stored documents count."
    return f"Only what is new since {result.new['since']}: {result.new['new_documents']} documents added or changed."


def _cites(numbers: list[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _unsupported(sentence) -> str:  # noqa: ANN001 - SummarySentence
    return " (unsupported by the evidence)" if sentence.supported is False else ""


def print_ask(console: Console, result: AskResult, explain: bool = False) -> None:
    console.print(f"[bold]{escape(result.query)}[/]\n")
    if new_since(result):
        console.print(f"[dim]{escape(new_since(result))}[/]\n")
    if not result.summary:
        console.print(nothing_found(result))
    if result.style == "paragraph" and result.summary:
        console.print(" ".join(f"{escape(s.text)} [cyan]{escape(_cites(s.citations))}[/]{_unsupported(s)}" for s in result.summary))
    else:
        for sentence in result.summary:
            console.print(f"• {escape(sentence.text)} [cyan]{escape(_cites(sentence.citations))}[/]{_unsupported(sentence)}")
            if explain and sentence.retrieval:
                console.print(f"    [dim]relevance {sentence.relevance:.2f}; passage {escape(_parts(sentence.retrieval))}[/]")
    if result.sources:
        console.print("\n[bold]Sources[/]")
        for s in result.sources:
            date = f" ({escape(s.published)})" if s.published else ""
            console.print(f"  [{s.number}] {escape(s.title or 'untitled')}{date} — {escape(s.url)}", highlight=False)
    if result.images:
        console.print("\n[bold]Images[/]")
        for n, image in enumerate(result.images, 1):
            label = image.alt or image.caption or image.generated_caption or ""
            source = f"[{image.source}] " if image.source else ""
            console.print(f"  {n}. {escape(image.path)}", highlight=False)
            console.print(f"     {escape(source)}score {image.score:.3f} {escape(label[:100])}", highlight=False)
            if explain:
                console.print(f"     [dim]{escape(image_reason(result, image))}[/]", highlight=False)
    if explain:
        console.print(f"\n[dim]{escape(explain_retrieval(result))}[/]", highlight=False)


def image_reason(result: AskResult, image) -> str:  # noqa: ANN001 - ImageHit
    """Why an image was chosen: its score parts and the sentence it illustrates."""
    why = f"parts: {_parts(image.parts)}"
    if image.sentence is not None and image.sentence < len(result.summary):
        why += f"; illustrates sentence {image.sentence + 1}"
    return why


def explain_retrieval(result: AskResult) -> str:
    r = result.relevance
    lines = []
    if r:
        threshold = "off" if r.get("threshold") is None else f"{r['threshold']:.3f}"
        lines.append(
            f"relevance cutoff {threshold} ({r.get('origin')}); best passage {r.get('best_score')}; "
            f"{r.get('passages_above')} passages relevant; both rankings agree: {'yes' if r.get('agreement') else 'no'}"
        )
        if "uncovered_share" in r:
            words = ", ".join(r.get("uncovered_words") or []) or "none"
            lines.append(
                f"coverage: words the best passages lack: {words} ({r['uncovered_share']:.0%} of the question's meaning; "
                f"limit {r.get('max_uncovered', 0):.0%})"
            )
    if result.images_dropped:
        lines.append("images dropped: " + _parts(result.images_dropped))
    if result.timings_ms:
        lines.append("timings ms: " + _parts(result.timings_ms))
    return "\n".join(lines)


def _parts(parts: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in parts.items())


def ask_markdown(result: AskResult, explain: bool = False) -> str:
    lines = [f"# {_md(result.query)}", ""]
    if new_since(result):
        lines += [f"_{_md(new_since(result))}_", ""]
    if not result.summary:
        lines.append(nothing_found(result))
    if result.style == "paragraph" and result.summary:
        lines.append(" ".join(f"{_md(s.text)} {_cites(s.citations)}{_unsupported(s)}" for s in result.summary))
    else:
        for sentence in result.summary:
            lines.append(f"- {_md(sentence.text)} {_cites(sentence.citations)}{_unsupported(sentence)}")
    if result.sources:
        lines += ["", "## Sources", ""]
        for s in result.sources:
            date = f" ({_md(s.published)})" if s.published else ""
            lines.append(f"{s.number}. [{_md(s.title or 'untitled')}](<{_url(s.url)}>){date}")
    if result.images:
        lines += ["", "## Images", ""]
        for image in result.images:
            alt = _md(image.alt or image.caption or image.generated_caption or "image")
            source = f" — source [{image.source}]" if image.source else ""
            lines.append(f"![{alt}](<{_url(image.path)}>)")
            lines.append(f"*score {image.score:.3f}{source}*")
            if explain:
                lines.append(f"*{_md(image_reason(result, image))}*")
            lines.append("")
    if explain:
        lines += ["", *[f"> {_md(line)}" for line in explain_retrieval(result).splitlines()]]
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
        # A crawl's other outcomes, shown when there are any.
        + "".join(f", {pages[k]} {k.replace('_', ' ')}" for k in ("not_modified", "gone", "skipped") if pages[k])
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
    console.print("size: " + ", ".join(f"{k} {byte_size(v)}" for k, v in report.bytes.items()))
    if report.models:
        console.print("models: " + ", ".join(f"{k} = {escape(v)}" for k, v in report.models.items()), highlight=False)
    for space, index in (getattr(report, "indexes", None) or {}).items():
        console.print(f"index {space}: {index_line(index)}", highlight=False)
    if report.topics:
        table = Table("topic", "documents", "chunks", "images", "last update", "last crawl", "next crawl")
        for t in report.topics:
            table.add_row(
                escape(t.name), str(t.documents), str(t.chunks), str(t.images), _when(t.last_update),
                _when(t.last_crawl), _when(t.next_crawl),
            )
        console.print(table)
        for t in report.topics:
            if t.urls:
                urls = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(t.urls.items()))
                console.print(f"[bold]{escape(t.name)}[/] crawled URLs: {urls}", highlight=False)
            for reason, n in t.errors.items():
                console.print(f"  {n:4d} {escape(reason)}", highlight=False)
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


def index_line(index: dict) -> str:
    """One space's index for `engine status`: kind, size, measured recall, memory."""
    if not index.get("kind"):
        return index.get("note", "none")
    recall = index.get("recall_at_10")
    if index["kind"] == "flat":
        measured = "exact"
    elif recall is None:
        measured = "recall not measured"
    else:
        measured = f"recall@10 {recall:.3f}" + (f" (target {index['target_recall']})" if index.get("target_recall") else "")
    params = ", ".join(f"{k} {v}" for k, v in index.get("params", {}).items())
    return (
        f"{index['kind']} ({index['factory']}), {index['vectors']} vectors, {measured}"
        + (f", {params}" if params else "")
        + f", ~{byte_size(index['memory_bytes'])} in memory"
    )


def byte_size(n: float) -> str:
    """Bytes in SI units (1 MB = 1,000,000 B), so a 100_000_000-byte limit reads "100 MB"."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return str(n)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"
