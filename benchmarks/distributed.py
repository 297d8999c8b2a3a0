"""Distributed ingest benchmark: pages/s of `engine index` locally and on Ray (1 and 2 embedding actors),
Ray's own overhead, and the one writer's rate — in one run, on one machine state.

    .venv/bin/python benchmarks/distributed.py [--copies 6,24] [--clip random|off] [--json]

The corpus is benchmarks/ingest.py's (the example pages made unique, 8 per copy), at two sizes.
Each run indexes it into a fresh store; the models are loaded and warmed once before timing the
local runs, while a Ray run pays what a real one pays: starting a local Ray instance, its workers
importing the engine, each actor loading its models. Two sizes separate the two costs: the
marginal rate, (pages of the larger − the smaller) / (its seconds − the smaller's), is the
throughput once running; what the smaller run took beyond its pages at that rate is the fixed cost.

- local: the default pipeline (one process: a preparing thread, the writer embedding).
- ray, N actors: `--executor ray` on a local instance (ray.num_cpus = N + 1 logical CPUs, so the
  preparing tasks always have a slot; on this 2-core machine 2 actors oversubscribe the cores).
- Ray start: ray.init + shutdown alone, part of every Ray run's fixed cost.
- writer: the same pages, embedded beforehand, written into a fresh store by the writer alone
  (SQLite here, or --database-url): the rate no number of encoders can push a run past.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOPICS = ["coffee", "space exploration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", default="6,24", help="two corpus sizes, in copies of the 8 example pages")
    parser.add_argument("--clip", choices=("off", "random"), default="off")
    parser.add_argument("--database-url", default="", help="also time the writer on this PostgreSQL database (must be empty)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="engine-distributed-"))
    try:
        summary = measure(args, work)
    finally:  # each size's stores and corpora take ~100 MB: never leave them behind
        shutil.rmtree(work, ignore_errors=True)
    report(summary, args.json)


def measure(args: argparse.Namespace, work: Path) -> dict:
    from benchmarks.ingest import build_corpus
    from engine.config import ClipConfig, Config, IndexConfig, RayConfig, StoreConfig, TextModelConfig
    from engine.encoders.factory import build_text_encoder, load_clip_encoder
    from engine.kb import KnowledgeBase

    small, large = sorted(int(c) for c in args.copies.split(","))
    corpora = {}
    for copies in (small, large):
        folder = work / f"pages-{copies}"
        folder.mkdir()
        corpora[copies] = (folder, build_corpus(folder, copies))
    text_config = TextModelConfig(onnx_cache=str(work / "onnx"))
    clip_config = (
        ClipConfig(pretrained="", random_weights=True, runtime="torch") if args.clip == "random" else ClipConfig(enabled=False)
    )
    text = build_text_encoder(text_config)
    clip = load_clip_encoder(clip_config) if args.clip == "random" else None

    def index(name: str, pages: Path, executor: str, **ray) -> tuple[float, dict]:
        config = Config(store=StoreConfig(work / name), text=text_config, clip=clip_config, index=IndexConfig(), ray=RayConfig(**ray))
        with KnowledgeBase(config, text_encoder=text, clip_encoder=clip) as kb:
            started = time.perf_counter()
            report = kb.index(TOPICS, [pages], executor=executor).to_dict()
            return time.perf_counter() - started, report

    index("warm", corpora[small][0], "local")  # loads and warms the encoders (and exports the ONNX model) once
    executors = {"local": ("local", {}), **{f"ray, {n} actor{'s' * (n > 1)}": ("ray", {"embed_actors": n, "num_cpus": n + 1}) for n in (1, 2)}}
    results: dict[str, dict] = {}
    outcomes = set()
    for name, (executor, ray_settings) in executors.items():
        runs = {}
        for copies, (pages, n_pages) in corpora.items():
            seconds, report = index(f"{executor}{ray_settings.get('embed_actors', '')}-{copies}", pages, executor, **ray_settings)
            runs[copies] = (n_pages, seconds)
            outcomes.add((copies, json.dumps(report["pages"], sort_keys=True), report["chunks_added"]))
        (n_small, t_small), (n_large, t_large) = runs[small], runs[large]
        rate = (n_large - n_small) / (t_large - t_small)
        results[name] = {"seconds": {str(n): s for n, s in runs.values()}, "marginal_pages_per_s": rate,
                         "fixed_s": t_small - n_small / rate, "whole_run_pages_per_s": n_large / t_large}
    same = len(outcomes) == 2  # one outcome per corpus size, whatever the executor

    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    ray_start = time.perf_counter() - started

    pages = corpora[large][0]
    writer = {"sqlite": writer_rate(work / "writer", pages, text, clip, text_config, clip_config, "")}
    if args.database_url:
        writer["postgresql"] = writer_rate(work / "writer-pg", pages, text, clip, text_config, clip_config, args.database_url)

    sizes = [n for _, n in corpora.values()]
    return {"clip": args.clip, "pages": sizes, "runs": results, "same_store": same, "ray_start_s": ray_start,
            "writer_pages_per_s": writer}


def report(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    sizes = " and ".join(str(n) for n in summary["pages"])
    print(f"{sizes} pages, CLIP {summary['clip']}; every executor stored the same pages and chunks: {summary['same_store']}")
    results = summary["runs"]
    local = results["local"]["marginal_pages_per_s"]
    for name, row in results.items():
        seconds = ", ".join(f"{n} pages {s:.1f} s" for n, s in row["seconds"].items())
        print(f"  {name:<14} {seconds}: {row['marginal_pages_per_s']:5.2f} pages/s once running "
              f"({row['marginal_pages_per_s'] / local:.2f}× local), fixed cost {row['fixed_s']:4.1f} s")
    print(f"  Ray start + shutdown alone: {summary['ray_start_s']:.1f} s")
    for name, rate in summary["writer_pages_per_s"].items():
        print(f"  the writer alone ({name}): {rate:.0f} pages/s")


def writer_rate(root: Path, pages: Path, text, clip, text_config, clip_config, database_url: str) -> float:  # noqa: ANN001 - encoders
    """Pages/s the one writer commits, the pages embedded beforehand (each page its own transaction)."""
    import threading

    from engine.config import Config, IndexConfig, StoreConfig
    from engine.store.store import Store
    from indexer.embed import BatchEmbedder
    from indexer.pipeline import IndexReport, LocalInputs, _write_embedded
    from indexer.prepare import PreparedPage

    config = Config(store=StoreConfig(root, database_url=database_url), text=text_config, clip=clip_config, index=IndexConfig())
    store = Store(root, database_url=database_url or None)
    store.acquire_write_lock()
    try:
        store.bind_model(("text",), text.name, text.dim)
        store.index("text", text.dim)
        prepared: list = []
        LocalInputs([pages]).produce(store, config, prepared.append, threading.Event())
        embedder = BatchEmbedder(text, clip, {}, config.text.chunk_tokens, config.text.chunk_overlap_tokens)
        if clip is not None:
            store.bind_model(("clip_image", "clip_text"), clip.identity, clip.dim)
            store.index("clip_image", clip.dim)
            store.index("clip_text", clip.dim)
        embedded = embedder.embed([p for p in prepared if isinstance(p, PreparedPage)], set())
        report = IndexReport()
        started = time.perf_counter()
        _write_embedded(store, embedded, report, run_id=None)
        return len(embedded) / (time.perf_counter() - started)
    finally:
        store.release_write_lock()
        store.close()


if __name__ == "__main__":
    main()
