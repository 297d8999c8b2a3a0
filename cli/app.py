"""The `engine` command line: parse, call one KnowledgeBase method, render. Nothing else.

Model libraries (torch, open_clip, sentence-transformers) and the store's (numpy, FAISS,
SQLAlchemy) load inside the commands that need them, so `engine --help` and `engine status`
start fast: tests/test_cold_start.py checks what each one loads, benchmarks/startup.py times them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli import coercion
from cli.eval_cmd import eval_app
from engine.ask.request import STYLES
from engine.errors import ConfigError, EngineError

coercion.install()  # typer's pydantic checks load only for values that need them
app = typer.Typer(
    help="A persistent, multimodal knowledge base: index pages and images, then ask.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
out = Console(soft_wrap=True)  # never break a path or URL across lines
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole for grep and logs


class Format(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"


@app.callback()
def main_options(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", help="Store folder (default: config store.path)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config file (default: $ENGINE_CONFIG)."),
) -> None:
    """Global options come before the command: engine --store ./kb ask "coffee"."""
    ctx.obj = {"store": store, "config": config}


def _database_error(exc: BaseException) -> str | None:
    """SQLite's reason when ``exc`` is (or wraps, as SQLAlchemy does) an error reading the database."""
    for error in (exc, getattr(exc, "orig", None)):
        if isinstance(error, sqlite3.DatabaseError) and "locked" not in str(error):
            return str(error)
    return None


@contextmanager
def knowledge_base(ctx: typer.Context) -> Iterator:
    """Open the knowledge base; map library errors to `Name: message` and exit codes."""
    from engine.config import Config
    from engine.kb import KnowledgeBase

    kb = None
    try:
        options = ctx.obj or {}
        config = Config.load(options.get("config"), overrides={"store.path": options.get("store")})
        kb = KnowledgeBase(config)
        yield kb
    except EngineError as exc:
        # escape: a message may hold [brackets] (a config section, a page's text) that rich would eat
        err.print(f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
    except Exception as exc:
        reason = _database_error(exc)
        if reason is None or kb is None:
            raise
        err.print(
            f"[bold red]StoreError[/]: the store's database {kb.config.store.path / 'engine.db'} could not be read "
            f"({reason}); if it is damaged, restore a backup: engine restore BACKUP (the current file is kept beside it); "
            "damaged FAISS files alone need no backup: engine reindex rebuilds them from the database",
            highlight=False, markup=True,
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        raise typer.Exit(130) from None
    finally:
        if kb is not None:
            kb.close()
            for notice in dict.fromkeys(kb.notices):
                err.print(f"[yellow]note[/]: {notice}", highlight=False)


@app.command()
def index(
    ctx: typer.Context,
    topics: Optional[Path] = typer.Option(None, "--topics", help="File with one topic per line (# comments)."),
    sources: Optional[list[str]] = typer.Option(
        None, "--from", help="Saved-pages folder, HTML file, WARC/ARC, page/feed/sitemap URL, or .txt list of URLs; "
        "repeatable. Without it, crawl the web.",
    ),
    watch: bool = typer.Option(False, "--watch", help="Keep crawling: each topic again every --every, until Ctrl-C."),
    every: Optional[str] = typer.Option(
        None, "--every", help="Interval between a topic's crawls with --watch: 90s, 30m, 2h, 1d (default: crawl.watch_every_seconds)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="local, or ray: prepare and embed on a Ray cluster ([ray] address; default index.executor)."
    ),
) -> None:
    """Index pages and their images for topics: from saved pages (--from), or crawled from the web.

    Example: engine index --topics examples/topics.txt --from examples/pages
    Example: engine index --topics my_topics.txt --from https://example.org/feed.xml --from urls.txt
    Example: engine index --topics my_topics.txt --watch --every 30m
    Example: engine index --topics examples/topics.txt --from /shared/pages --executor ray
    """
    from cli.durations import watch_interval
    from cli.interrupt import stop_after_batch_on_ctrl_c
    from cli.render import print_index_report
    from cli.progress import progress_bar
    from indexer.topics import read_topics

    interval = watch_interval(watch, every)
    with knowledge_base(ctx) as kb:
        names = read_topics(topics) if topics else []
        label = "indexing" if sources else "crawling"
        with progress_bar(err, label) as on_progress, stop_after_batch_on_ctrl_c(err) as stop_requested:
            report = kb.index(
                names,
                sources or [],
                on_progress=on_progress,
                watch=watch,
                every=interval,
                stop_requested=stop_requested,
                executor=executor,
            )
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            print_index_report(out, report)
        if report.interrupted:
            raise KeyboardInterrupt
        building = kb.store.upgrades_running()
        if building:
            # Closing waits for it: say why the command has not returned yet.
            err.print(
                f"the {', '.join(building)} index outgrew its kind: building a new one before exiting "
                "(Ctrl-C stops it; the current index stays in use and the next run builds it again)"
            )


# The choices come from the one definition of the styles (engine/ask/request.py).
Style = Enum("Style", {name: name for name in STYLES}, type=str)
SERVER_OPTION = typer.Option(
    None, "--server", envvar="ENGINE_SERVER", help="Send it to the `engine serve` at this URL (e.g. http://127.0.0.1:8000)."
)


def local_or_remote(ctx: typer.Context, server: str | None):  # noqa: ANN201 - a context manager
    """The local knowledge base, or with --server the running server's (httpx only: no model library loads)."""
    if not server:
        return knowledge_base(ctx)
    from cli.remote import remote_knowledge_base

    if any((ctx.obj or {}).values()):
        err.print(
            "[bold red]ConfigError[/]: --store and --config choose a local store, "
            "--server (or ENGINE_SERVER) a running one; give one or the other"
        )
        raise typer.Exit(2)
    return remote_knowledge_base(server, err)


@app.command()
def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="A topic or question."),
    k: Optional[int] = typer.Option(None, "--k", min=1, help="Evidence passages to use."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=0, help="Images to show."),
    max_sentences: Optional[int] = typer.Option(None, "--max-sentences", min=1, help="Summary length."),
    style: Optional[Style] = typer.Option(None, "--style", help=", ".join(STYLES) + "."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Only documents linked to this topic."),
    source: Optional[str] = typer.Option(None, "--source", help="Only pages whose URL contains this (e.g. a host)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only documents published on or after this date (YYYY-MM-DD)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only documents published on or before this date."),
    lang: Optional[str] = typer.Option(
        None, "--lang", help="The answer's language (e.g. en): extractive answers quote only documents in it."
    ),
    abstractive: Optional[bool] = typer.Option(
        None, "--abstractive/--extractive", help="Write the summary with the [generate] model (default: when one is set)."
    ),
    min_score: Optional[str] = typer.Option(
        None, "--min-score", help="Relevance cutoff: a cosine similarity, 'auto' (calibrated) or 'off'."
    ),
    min_alignment: Optional[str] = typer.Option(
        None, "--min-alignment", help="Drop images whose CLIP alignment is below this ('off' keeps all)."
    ),
    images_only: bool = typer.Option(False, "--images-only", help="Answer with images and their captions only."),
    new: bool = typer.Option(
        False, "--new", help="Only what was added or changed since this question was last asked (asks are remembered)."
    ),
    explain: bool = typer.Option(False, "--explain", help="Show the scores behind each sentence and image."),
    fmt: Format = typer.Option(Format.text, "--format", help="text, json, markdown or html (a self-contained page)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the answer to this file."),
    server: Optional[str] = SERVER_OPTION,
) -> None:
    """Answer with a cited summary and the best-aligned images.

    Example: engine ask "how is coffee roasted" --style paragraph --format markdown --out answer.md
    Example: engine ask "how is coffee roasted" --server http://127.0.0.1:8000
    Example: engine ask "coffee roasting" --new --format json
    """
    from cli.render import render_ask
    from engine.ask import AskRequest, Filters

    for name, value in (("--since", since), ("--until", until)):
        if value is not None and not _is_iso_date(value):
            err.print(f"[bold red]ConfigError[/]: {name} {escape(repr(value))} is not a date (YYYY-MM-DD)", highlight=False)
            raise typer.Exit(2)
    filters = Filters(topic=topic, source=source, since=since, until=until)
    with local_or_remote(ctx, server) as kb:
        request = AskRequest(
            question,
            k=k,
            max_images=max_images,
            max_sentences=max_sentences,
            style=style.value if style else None,
            filters=filters,
            min_score=min_score,
            min_alignment=min_alignment,
            images_only=images_only,
            abstractive=abstractive,
            language=lang,
            new=new,
        )
        result = kb.ask(request)
        fetch_image = kb.image_bytes if server else None  # a server's image files are not on this machine
        if out_file is not None:
            out_file.write_text(render_ask(result, fmt.value, None, explain, fetch_image), encoding="utf-8")
            err.print(f"wrote {out_file}")
        else:
            render_ask(result, fmt.value, out, explain, fetch_image)
        if fmt is Format.text or out_file is not None:
            for notice in result.notices:
                if notice not in kb.notices:
                    err.print(f"[yellow]note[/]: {notice}", highlight=False)


def _is_iso_date(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value[:10])
        return True
    except ValueError:
        return False


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    server: Optional[str] = SERVER_OPTION,
) -> None:
    """What is stored, per topic, with sizes and the last run.

    Example: engine status --json
    Example: engine status --server http://127.0.0.1:8000
    """
    from cli.render import print_status

    with local_or_remote(ctx, server) as kb:
        report = kb.status()
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            print_status(out, report)


@app.command()
def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check that SQLite, the FAISS files and the image files agree (exit 1 if not).

    Example: engine check
    """
    from cli.render import print_check

    with knowledge_base(ctx) as kb:
        report = kb.check()
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            print_check(out, report)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def reindex(
    ctx: typer.Context,
    images: bool = typer.Option(False, "--images", help="Compute missing CLIP vectors (after weights appear)."),
    text: bool = typer.Option(False, "--text", help="Re-embed all chunks with the configured text model."),
    captions: bool = typer.Option(False, "--captions", help="Caption stored images that have none (caption.model)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was rebuilt and computed as JSON."),
) -> None:
    """Rebuild the FAISS indexes from SQLite, optionally computing vectors first.

    Example: engine reindex --images
    """
    from cli.progress import progress_bar

    with knowledge_base(ctx) as kb:
        with progress_bar(err, "reindexing") as on_progress:
            done = kb.reindex(images=images, text=text, on_progress=on_progress, captions=captions)
        if as_json:
            typer.echo(json.dumps(done, indent=2, default=str))
            return
        for key, value in done.items():
            out.print(f"{key}: {value}")


@app.command()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: serve.host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port (default: serve.port, 8000)."),
    watch: bool = typer.Option(False, "--watch", help="Keep every stored topic's crawl on its schedule, as index jobs."),
    every: Optional[str] = typer.Option(
        None, "--every", help="Interval between a topic's crawls with --watch: 90s, 30m, 2h, 1d (default: crawl.watch_every_seconds)."
    ),
) -> None:
    """Serve the knowledge base over HTTP (JSON API, OpenAPI at /docs), models loaded once.

    A non-loopback --host needs the token variable named by serve.token_env (ENGINE_SERVE_TOKEN).

    Example: engine serve --port 8000
    Example: engine serve --watch --every 30m
    """
    import uvicorn

    from cli.durations import watch_interval
    from engine.server.app import create_app
    from engine.server.security import Access, check_bind

    interval = watch_interval(watch, every)
    with knowledge_base(ctx) as kb:
        settings = kb.config.serve
        host = host or settings.host
        check_bind(host, settings)
        kb.store  # a store that cannot be opened fails here, before the server starts
        watch_every = (interval or kb.config.crawl.watch_every_seconds) if watch else None
        app = create_app(kb.config, kb, Access.for_bind(host, settings), watch_every=watch_every)
        uvicorn.run(app, host=host, port=port or settings.port)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help='Print {"revision": ...} as JSON.'),
) -> None:
    """Migrate the store to the newest schema (also done automatically on open).

    Example: engine db upgrade
    """
    with knowledge_base(ctx.parent) as kb:
        revision = kb.upgrade()
    if as_json:
        typer.echo(json.dumps({"revision": revision}))
    else:
        out.print(f"schema revision: {revision}")


@db_app.command("copy")
def db_copy(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="The target: a PostgreSQL URL (postgresql+psycopg://user@host/db) or a SQLite file."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows copied per table as JSON."),
) -> None:
    """Copy the store's database into another, empty one (SQLite to PostgreSQL, or back), row for row.

    Example: engine db copy --to postgresql+psycopg://kb@db.example.org/kb
    """
    from engine.store.copy import copy_database

    with knowledge_base(ctx.parent) as kb:
        report = copy_database(kb.store.engine, to)
    if as_json:
        typer.echo(json.dumps({"target": report.target, "rows": report.rows}, indent=2))
    else:
        out.print(f"copied {sum(report.rows.values())} rows in {len(report.rows)} tables to {report.target}", highlight=False)
        out.print("then use it: store.database_url (ENGINE_STORE_DATABASE_URL); the store folder keeps images and indexes")


# Command modules that add their commands to `app` (each imports this module's helpers).
from cli import backup_cmd  # noqa: E402,F401
from cli import forget_cmd  # noqa: E402,F401
from cli import export_cmd  # noqa: E402,F401


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `engine ask ... | head`
        sys.stderr.close()
