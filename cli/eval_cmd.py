"""`engine eval`: measure alignment, retrieval and index quality; render what the
evaluation API (engine.evaluate.Evaluator) returns. Nothing else.

Heavy libraries load inside the commands; cli.app is imported there too (it imports
this module to register the sub-app).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer

eval_app = typer.Typer(
    help="Measure image–text alignment, retrieval and index quality; tables, JSON and PNG plots.",
    no_args_is_help=True,
)

DATASET_HELP = "CSV or JSONL: (image, caption) rows, or (id, title, text, image) rows for articles."


class Direction(str, Enum):
    text_image = "text-image"
    image_text = "image-text"
    text_text = "text-text"
    all = "all"


class Strategy(str, Enum):
    title = "title"
    title_lead = "title_lead"
    sentence_max = "sentence_max"
    chunked = "chunked"
    all = "all"


class Space(str, Enum):
    clip_image = "clip_image"
    clip_text = "clip_text"
    text = "text"


def _options(dataset, images, from_store, out_dir, cache, no_cache, plots, as_json):  # noqa: ANN001, ANN202
    return {
        "dataset": dataset,
        "images": images,
        "from_store": from_store,
        "out_dir": out_dir,
        "cache": cache,
        "no_cache": no_cache,
        "plots": plots,
        "as_json": as_json,
    }


def _run(ctx: typer.Context, task: str, opts: dict, work: Callable, embeds: bool = True) -> None:
    """Open the knowledge base and an Evaluator, run ``work(evaluator)``, render its result."""
    from cli.app import err, knowledge_base
    from cli.progress import progress_bar
    from engine.evaluate import Evaluator

    with knowledge_base(ctx) as kb:
        cache_dir = None if opts["no_cache"] else (opts["cache"] or kb.config.store.path / "eval-cache")
        evaluator = Evaluator(kb, cache_dir=cache_dir)
        if embeds:
            with progress_bar(err, "embedding") as on_progress:
                evaluator.on_progress = on_progress
                result = work(evaluator)
        else:
            result = work(evaluator)
        _render(result, opts["out_dir"] or Path(f"eval-{task}"), opts["plots"], opts["as_json"])


def _dataset(evaluator, opts: dict):  # noqa: ANN001, ANN202
    from engine.errors import ConfigError
    from engine.evaluate import load_dataset

    if opts["from_store"] and opts["dataset"] is not None:
        raise ConfigError("give a dataset file or --from-store, not both")
    if opts["from_store"]:
        return evaluator.store_pairs()
    if opts["dataset"] is None:
        raise ConfigError("give a dataset file (CSV or JSONL) or --from-store")
    return load_dataset(opts["dataset"], opts["images"])


def _render(result, out_dir: Path, plots: bool, as_json: bool) -> None:  # noqa: ANN001
    from rich.markup import escape

    from cli.app import err, out
    from engine.evaluate.report import tables, throughput_line, write_outputs

    written = write_outputs(result, out_dir, plots)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        for warning in result.warnings:
            err.print(f"[bold red]WARNING[/]: {escape(warning)}", highlight=False)
        err.print(f"throughput: {throughput_line(result)}", highlight=False)
    else:
        for warning in result.warnings:
            out.print(f"[bold red]WARNING[/]: {escape(warning)}", highlight=False)
        for table in tables(result):
            out.print(table)
        for note in result.notes:
            out.print(f"[yellow]note[/]: {escape(note)}", highlight=False)
        out.print(f"throughput: {throughput_line(result)}", highlight=False)
    err.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)


def _int_list(text: str) -> tuple[int, ...]:
    from engine.errors import ConfigError

    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--recall-at {text!r}: expected comma-separated integers like 1,5,10") from None
    return values


# Options every dataset command shares (typer reads them from each signature).
DatasetArg = typer.Argument(None, help=DATASET_HELP, show_default=False)
ImagesOpt = typer.Option(None, "--images", help="Folder image paths are relative to (default: the dataset's folder).")
FromStoreOpt = typer.Option(
    False, "--from-store", help="Evaluate the store's images against their alt text and captions."
)
OutOpt = typer.Option(None, "--out", help="Folder for result.json and the plots (default: ./eval-<task>).")
CacheOpt = typer.Option(None, "--cache", help="Embedding cache folder (default: <store>/eval-cache).")
NoCacheOpt = typer.Option(False, "--no-cache", help="Keep embeddings in memory only.")
PlotsOpt = typer.Option(True, "--plots/--no-plots", help="Write PNG plots.")
JsonOpt = typer.Option(False, "--json", help="Print the result JSON instead of tables.")
SeedOpt = typer.Option(0, "--seed", help="Seed for sampling (same seed, same figures).")


@eval_app.command("pairs")
def pairs(
    ctx: typer.Context,
    dataset: Optional[Path] = DatasetArg,
    images: Optional[Path] = ImagesOpt,
    from_store: bool = FromStoreOpt,
    negatives: int = typer.Option(
        20, "--negatives", "-k", min=1, help="K: negatives (other images' captions) per positive."
    ),
    seed: int = SeedOpt,
    min_alignment: Optional[str] = typer.Option(
        None,
        "--min-alignment",
        help="Threshold to report besides the best one (default: config ask.min_alignment; 'off').",
    ),
    out_dir: Optional[Path] = OutOpt,
    cache: Optional[Path] = CacheOpt,
    no_cache: bool = NoCacheOpt,
    plots: bool = PlotsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Pair classification: ROC-AUC, PR-AUC, F1 and accuracy beside trivial baselines.

    F1 and accuracy are given at the best threshold and at --min-alignment; each
    positive gets K negatives, captions of other images, drawn with --seed.

    Example: engine eval pairs examples/eval/captions.csv --negatives 20 --min-alignment 0.25
    """
    opts = _options(dataset, images, from_store, out_dir, cache, no_cache, plots, as_json)
    _run(
        ctx,
        "pairs",
        opts,
        lambda evaluator: evaluator.pairs(
            _dataset(evaluator, opts), negatives=negatives, seed=seed, min_alignment=min_alignment
        ),
    )


@eval_app.command("retrieval")
def retrieval(
    ctx: typer.Context,
    dataset: Optional[Path] = DatasetArg,
    images: Optional[Path] = ImagesOpt,
    from_store: bool = FromStoreOpt,
    direction: list[Direction] = typer.Option(
        [Direction.all], "--direction", help="text-image, image-text, text-text or all; repeatable."
    ),
    strategy: list[Strategy] = typer.Option(
        [Strategy.all], "--strategy", help="Articles: title, title_lead, sentence_max, chunked or all; repeatable."
    ),
    lead_sentences: int = typer.Option(2, "--lead-sentences", min=1, help="Sentences of text in title_lead."),
    recall_at: str = typer.Option("1,5,10,50,100", "--recall-at", help="Recall@K cut-offs, comma-separated."),
    seed: int = SeedOpt,
    out_dir: Optional[Path] = OutOpt,
    cache: Optional[Path] = CacheOpt,
    no_cache: bool = NoCacheOpt,
    plots: bool = PlotsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Retrieval: MRR, Recall@K and match-in-100, with chance beside each.

    Directions: text→image and image→text (CLIP), text→text (the text model: caption
    to caption, or article title to text). Articles are compared per text strategy.

    Example: engine eval retrieval examples/eval/articles.jsonl --strategy title --strategy sentence_max
    """
    from engine.evaluate.retrieval import DIRECTIONS
    from engine.evaluate.strategies import STRATEGIES

    directions = DIRECTIONS if Direction.all in direction else tuple(dict.fromkeys(d.value for d in direction))
    strategies = STRATEGIES if Strategy.all in strategy else tuple(dict.fromkeys(s.value for s in strategy))
    opts = _options(dataset, images, from_store, out_dir, cache, no_cache, plots, as_json)
    _run(
        ctx,
        "retrieval",
        opts,
        lambda evaluator: evaluator.retrieval(
            _dataset(evaluator, opts),
            directions=directions,
            strategies=strategies,
            ks=_int_list(recall_at),
            lead_sentences=lead_sentences,
            seed=seed,
        ),
    )


@eval_app.command("matrix")
def matrix(
    ctx: typer.Context,
    dataset: Optional[Path] = DatasetArg,
    images: Optional[Path] = ImagesOpt,
    from_store: bool = FromStoreOpt,
    max_images: int = typer.Option(40, "--max-images", min=1, help="Rows (images) of the matrix at most."),
    strategy: Strategy = typer.Option(Strategy.title, "--strategy", help="Articles: the text that stands for each."),
    out_dir: Optional[Path] = OutOpt,
    cache: Optional[Path] = CacheOpt,
    no_cache: bool = NoCacheOpt,
    plots: bool = PlotsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Zero-shot matching: similarity matrix, top-1 accuracy, top-3 confusions.

    Rows are images, columns their captions (or articles); for small sets.

    Example: engine eval matrix examples/eval/captions.csv --out eval-matrix
    """
    opts = _options(dataset, images, from_store, out_dir, cache, no_cache, plots, as_json)
    _run(
        ctx,
        "matrix",
        opts,
        lambda evaluator: evaluator.matrix(_dataset(evaluator, opts), max_images=max_images, strategy=strategy.value),
    )


@eval_app.command("index")
def index(
    ctx: typer.Context,
    space: Space = typer.Option(Space.clip_image, "--space", help="clip_image, clip_text or text."),
    sample: int = typer.Option(200, "--sample", min=1, help="Stored vectors used as queries."),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours per query."),
    seed: int = SeedOpt,
    out_dir: Optional[Path] = OutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Index quality: the store's index against exact search, recall and latency.

    A sample of the space's own vectors are the queries (autofaiss's score_index).

    Example: engine eval index --space text --sample 100 --k 10
    """
    opts = _options(None, None, False, out_dir, None, True, False, as_json)
    _run(
        ctx, "index", opts, lambda evaluator: evaluator.index(space.value, sample=sample, k=k, seed=seed), embeds=False
    )
