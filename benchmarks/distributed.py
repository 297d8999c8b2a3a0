"""Distributed ingest benchmark: pages/s of `engine index` locally and on Ray (1 and 2 embedding actors),
Ray's own overhead, and the one writer's rate — in one run, on one machine state.

    .venv/bin/python benchmarks/distributed.py [--copies 12] [--clip random|off] [--json]

The corpus is benchmarks/ingest.py's (the example pages made unique, 8 per copy). Each run indexes
it into a fresh store; the models are loaded and warmed once before timing the local run, while a
Ray run pays what a real one pays: starting a local Ray instance, each actor loading its models.

- local: the default pipeline (one process: a preparing thread, the writer embedding).
- ray, N actors: `--executor ray` on a local instance (ray.num_cpus = N + 1 logical CPUs, so the
  preparing tasks always have a slot; on this 2-core machine 2 actors oversubscribe the cores).
- Ray start: ray.init + shutdown alone, what every Ray run adds.
- writer: the same pages, embedded beforehand, written into a fresh store by the writer alone
  (SQLite here, or --database-url): the rate no number of encoders can push a run past.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOPICS = ["coffee", "space exploration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--clip", choices=("off", "random"), default="off")
    parser.add_argument("--database-url", default="", help="also time the writer on this PostgreSQL database (must be empty)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from benchmarks.ingest import build_corpus
    from engine.config import ClipConfig, Config, IndexConfig, RayConfig, StoreConfig, TextModelConfig
    from engine.encoders.factory import build_text_encoder, load_clip_encoder
    from engine.kb import KnowledgeBase

    work = Path(tempfile.mkdtemp(prefix="engine-distributed-"))
    pages = work / "pages"
    pages.mkdir()
    n_pages = build_corpus(pages, args.copies)
    text_config = TextModelConfig(onnx_cache=str(work / "onnx"))
    clip_config = (
        ClipConfig(pretrained="", random_weights=True, runtime="torch") if args.clip == "random" else ClipConfig(enabled=False)
    )
    text = build_text_encoder(text_config)
    clip = load_clip_encoder(clip_config) if args.clip == "random" else None

    def config(name: str, **ray) -> Config:
        return Config(store=StoreConfig(work / name), text=text_config, clip=clip_config,
                      index=IndexConfig(), ray=RayConfig(**ray))

    def index(name: str, executor: str, **ray) -> tuple[float, dict]:
        with KnowledgeBase(config(name, **ray), text_encoder=text, clip_encoder=clip) as kb:
            started = time.perf_counter()
            report = kb.index(TOPICS, [pages], executor=executor)
            return time.perf_counter() - started, report.to_dict()

    index("warm", "local")  # loads and warms the encoders (and exports the ONNX model) once
    results: dict[str, dict] = {}
    seconds, report = index("local", "local")
    results["local"] = {"seconds": seconds, "pages": report["pages"], "chunks": report["chunks_added"]}
    for actors in (1, 2):
        seconds, report = index(f"ray{actors}", "ray", embed_actors=actors, num_cpus=actors + 1)
        results[f"ray, {actors} actor{'s' * (actors > 1)}"] = {"seconds": seconds, "pages": report["pages"], "chunks": report["chunks_added"]}
    for row in results.values():
        row["pages_per_s"] = n_pages / row["seconds"]
    same = len({json.dumps(r["pages"], sort_keys=True) + str(r["chunks"]) for r in results.values()}) == 1

    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    ray_start = time.perf_counter() - started

    writer = {"sqlite": writer_rate(work / "writer", pages, text, clip, text_config, clip_config, "")}
    if args.database_url:
        writer["postgresql"] = writer_rate(work / "writer-pg", pages, text, clip, text_config, clip_config, args.database_url)

    summary = {"pages": n_pages, "clip": args.clip, "runs": results, "same_store": same, "ray_start_s": ray_start,
               "writer_pages_per_s": writer}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{n_pages} pages, CLIP {args.clip}; every run stored the same pages and chunks: {same}")
    for name, row in results.items():
        print(f"  {name:<14} {row['seconds']:7.1f} s  {row['pages_per_s']:6.2f} pages/s  ({row['pages_per_s'] / results['local']['pages_per_s']:.2f}× local)")
    print(f"  Ray start + shutdown alone: {ray_start:.1f} s")
    for name, rate in writer.items():
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
