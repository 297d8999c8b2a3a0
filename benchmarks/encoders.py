"""Encoder benchmark: the text model and CLIP on each runtime (torch, onnx, onnx-int8), ratios in one run.

    .venv/bin/python benchmarks/encoders.py [--chunks 160] [--repeats 2] [--set dev|holdout|all|none]
                                            [--cold-runs 5] [--sentences 500] [--no-clip] [--json]

About 15 minutes on a 2-core CPU with the dev questions, most of it asking them three times.

Corpus: the answer benchmark's plain store (benchmarks/answers.py: the real pages of
../shared/data/real-pages when present, and examples/pages), indexed with the torch runtime.
Its stored chunks (~180 tokens, as indexer/chunk.py cuts them) are the texts. Per runtime:
- texts/s on the chunks (after one untimed pass, so every runtime has met every shape;
  runtimes interleaved, the median of --repeats passes), and the speedup over torch in this run;
- cosine of its chunk vectors to torch's (min / mean);
- retrieval: the store's chunk vectors re-encoded by the runtime (`engine reindex --text`), then
  the answer benchmark's questions asked with it: the right-first-source rate; plus int8 queries
  against the torch vectors, to show what mixing the two spaces would do;
- cold `engine ask` (a fresh process, CLIP off, its ONNX file already cached), the median of
  --cold-runs, divided by the median of `python -c "import torch"` in the same run.
CLIP (ViT-B-32 with random weights: the real compute, no meaning; none ship offline), per runtime:
- sentences/s on --sentences sentences of the same chunks, and images/s on the example images;
  "torch, 77 tokens" is open_clip's own encode_text (every sentence padded to 77 tokens, the
  engine before issue 11), "torch" the engine's padding-free path; speedups over the former;
- cosine of its vectors to torch's (min / mean);
- cold `engine ask` with CLIP on, on a store of the example pages with CLIP vectors.
The ONNX files are exported into a temporary cache, so the first-use export is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import answers  # noqa: E402 - the answer benchmark's corpus, store and scoring

from engine.config import ClipConfig, Config, StoreConfig, TextModelConfig  # noqa: E402
from engine.encoders.factory import build_text_encoder  # noqa: E402
from engine.kb import KnowledgeBase  # noqa: E402

RUNTIMES = ("torch", "onnx", "onnx-int8")
COLD_QUESTION = "how is coffee roasted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=160, help="stored chunks timed per pass (default 160)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per runtime (default 2)")
    parser.add_argument("--set", default="dev", choices=["dev", "holdout", "all", "none"],
                        help="answer-benchmark questions for the retrieval check (default dev; none skips it)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per cold-start figure (default 5)")
    parser.add_argument("--sentences", type=int, default=500, help="CLIP sentences timed per pass (default 500)")
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP figures")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="engine-encoders-") as tmp:
        work = Path(tmp)
        cache = work / "onnx-cache"
        text_configs = {r: TextModelConfig(runtime=r, onnx_cache=str(cache)) for r in RUNTIMES}
        encoders = {r: build_text_encoder(c) for r, c in text_configs.items()}
        figures: dict = {"runtimes": {r: {} for r in RUNTIMES}}

        _progress("building the torch store (answer benchmark corpus, plain) ...")
        built = answers.build_store("plain", work / "torch", encoders["torch"])
        built.kb.close()
        texts, tokens = _chunks(built.kb)
        sample = texts[: args.chunks]
        figures["corpus"] = {"chunks": len(texts), "timed": len(sample), "mean_tokens": round(float(np.mean(tokens)), 1)}

        for runtime in ("onnx", "onnx-int8"):
            started = time.perf_counter()
            encoders[runtime].load()  # export (fp32, then int8 from it) and open
            figures["runtimes"][runtime]["export_s"] = round(time.perf_counter() - started, 1)

        _progress(f"timing {len(sample)} chunks per runtime ...")
        figures["runtimes"] = _speed(encoders, sample, args.repeats, figures["runtimes"])

        stores = {"torch": built.kb.config.store.path}
        if args.set != "none" and answers.REAL_PAGES.is_dir():
            stores, retrieval = _retrieval(built, encoders, work, args.set)
            figures["retrieval"] = retrieval
        elif args.set != "none":
            _progress(f"no real pages at {answers.REAL_PAGES}: retrieval check skipped")

        if not args.no_clip:
            _progress("CLIP ...")
            figures["clip"] = _clip_speed(texts, cache, args.sentences, args.repeats)
            stores["clip"] = _clip_store(work, cache)

        _progress("cold starts ...")
        figures["cold"] = _cold_starts(stores, text_configs, args.cold_runs, cache)

    print(json.dumps(figures, indent=2) if args.json else _table(figures))
    return 0


def _chunks(kb: KnowledgeBase) -> tuple[list[str], list[int]]:
    from sqlalchemy import select

    from engine.store.schema import chunks

    with KnowledgeBase(kb.config) as fresh, fresh.store.reading() as conn:
        rows = conn.execute(select(chunks.c.text, chunks.c.n_tokens).order_by(chunks.c.id)).all()
    # Spread the timed sample over all pages rather than the first few.
    rows = rows[::2] + rows[1::2]
    return [r.text for r in rows], [r.n_tokens for r in rows]


def _speed(encoders: dict, texts: list[str], repeats: int, figures: dict) -> dict:
    vectors = {r: e.encode(texts) for r, e in encoders.items()}  # untimed: every shape met once
    seconds: dict[str, list[float]] = {r: [] for r in encoders}
    for _ in range(repeats):
        for runtime, encoder in encoders.items():  # interleaved: load changes hit all alike
            started = time.perf_counter()
            encoder.encode(texts)
            seconds[runtime].append(time.perf_counter() - started)
    base = statistics.median(seconds["torch"])
    for runtime in encoders:
        took = statistics.median(seconds[runtime])
        cosines = np.sum(vectors[runtime] * vectors["torch"], axis=1)
        figures[runtime].update(
            texts_per_s=round(len(texts) / took, 2),
            speedup=round(base / took, 2),
            cos_min=round(float(cosines.min()), 5),
            cos_mean=round(float(cosines.mean()), 5),
        )
    return figures


def _retrieval(built, encoders: dict, work: Path, set_name: str) -> tuple[dict[str, Path], dict]:  # noqa: ANN001
    """Per runtime: a copy of the torch store re-encoded by it, and the answer benchmark's rates on it."""
    names = ["dev", "holdout"] if set_name == "all" else [set_name]
    questions = {"answerable": [], "off_topic": []}
    for name in names:
        for kind, items in answers.load_questions(name).items():
            questions.setdefault(kind, []).extend(items)
    stores: dict[str, Path] = {}
    results: dict[str, dict] = {}
    for runtime, encoder in encoders.items():
        path = built.kb.config.store.path
        if runtime != "torch":
            path = work / runtime / "store"
            shutil.copytree(built.kb.config.store.path, path)
        stores[runtime] = path
        config = Config(store=StoreConfig(path=path), clip=ClipConfig(enabled=False))
        with KnowledgeBase(config, text_encoder=encoder) as kb:
            if runtime != "torch":
                _progress(f"re-encoding the chunks with {runtime} ...")
                kb.reindex(text=True)
            _progress(f"asking with {runtime} ...")
            results[runtime] = _rates(answers.evaluate(kb, questions, built.page_of_url))
            results[runtime].update(_dense_retrieval(kb, encoder, questions["answerable"], built.page_of_url))
    # int8 query vectors against the torch store's fp32 chunk vectors: what mixing would do.
    mixed = build_text_encoder(TextModelConfig(runtime="onnx-int8", onnx_cache=str(encoders["onnx-int8"].cache_dir)))
    mixed.name = encoders["torch"].name  # passes the store's model guard on purpose
    config = Config(store=StoreConfig(path=stores["torch"]), clip=ClipConfig(enabled=False))
    with KnowledgeBase(config, text_encoder=mixed) as kb:
        _progress("asking with int8 queries on the torch vectors ...")
        results["int8 queries, torch vectors"] = _rates(answers.evaluate(kb, questions, built.page_of_url))
    return stores, results


def _dense_retrieval(kb: KnowledgeBase, encoder, answerable: list[dict], page_of_url: dict[str, str]) -> dict:  # noqa: ANN001
    """Retrieval alone, as `engine eval retrieval` scores it: each question's vector against every
    stored chunk's (no BM25, no evidence decision); a page ranks by its best chunk. MRR and
    Recall@1 of the right page, over the answerable questions."""
    from sqlalchemy import select

    from engine.evaluate.metrics import first_relevant_ranks, mean_reciprocal_rank, recall_at
    from engine.store.schema import TEXT_SPACE, chunks, sources

    with kb.store.reading() as conn:
        rows = conn.execute(
            select(chunks.c.id, sources.c.url).join(sources, sources.c.document_id == chunks.c.document_id)
        ).all()
    pages = sorted({page_of_url[r.url] for r in rows})
    chunk_vectors = kb.store.read_vectors(TEXT_SPACE, [r.id for r in rows], encoder.dim)
    chunk_page = np.array([pages.index(page_of_url[r.url]) for r in rows])
    by_chunk = encoder.encode([q["question"] for q in answerable]) @ chunk_vectors.T
    by_page = np.stack([by_chunk[:, chunk_page == n].max(axis=1) for n in range(len(pages))], axis=1)
    relevant = np.array([[page == q["page"] for page in pages] for q in answerable])
    ranks = first_relevant_ranks(by_page, relevant)
    return {"dense_mrr": round(mean_reciprocal_rank(ranks), 4), "dense_recall_at_1": round(recall_at(ranks, 1), 4)}


def _rates(figures: dict) -> dict:
    counts = figures["counts"]
    return {
        "right_first": counts["right_first"],
        "answerable": counts["answerable"],
        "answerable_refused": counts["answerable_refused"],
        "off_topic_refused": counts["off_topic_refused"],
        "off_topic": counts["off_topic"],
        "ask_p50_ms": round(figures["latency_ms"]["ask"]["p50"], 1),
    }


def _clip_speed(chunk_texts: list[str], cache: Path, n_sentences: int, repeats: int) -> dict:
    """CLIP sentences/s and images/s per runtime, the speedups over open_clip's padded encode_text,
    and cosines to the torch vectors."""
    from PIL import Image

    from engine.encoders import clip_text
    from engine.encoders.factory import build_clip_encoder
    from engine.sentences import split_sentences

    sentences = [s for text in chunk_texts for s, _, _ in split_sentences(text)][:n_sentences]
    pictures = [Image.open(p).convert("RGB") for p in sorted((REPO / "examples" / "pages").glob("*_files/*.jpg"))]
    encoders = {r: build_clip_encoder(ClipConfig(pretrained="", random_weights=True, runtime=r, onnx_cache=str(cache)))
                for r in RUNTIMES}
    figures: dict = {"sentences": len(sentences), "images": len(pictures), "runtimes": {}}
    for runtime in ("onnx", "onnx-int8"):
        started = time.perf_counter()
        encoders[runtime].load()
        figures["runtimes"][runtime] = {"export_s": round(time.perf_counter() - started, 1)}

    def padded(texts: list[str]):  # noqa: ANN202 - the engine before issue 11: every text padded to 77
        saved, clip_text.can_trim = clip_text.can_trim, lambda model: False  # noqa: ARG005
        try:
            return encoders["torch"].encode_texts(texts)
        finally:
            clip_text.can_trim = saved

    text_runs = {"torch, 77 tokens": padded, **{r: e.encode_texts for r, e in encoders.items()}}
    image_runs = {r: e.encode_images for r, e in encoders.items()}
    text_s, text_vectors = _timed(text_runs, sentences, repeats)
    image_s, image_vectors = _timed(image_runs, pictures, repeats)
    for name in text_runs:
        cos = np.sum(text_vectors[name] * text_vectors["torch"], axis=1)
        row = figures["runtimes"].setdefault(name, {})
        row.update(
            sentences_per_s=round(len(sentences) / text_s[name], 1),
            text_speedup=round(text_s["torch, 77 tokens"] / text_s[name], 2),
            text_cos_min=round(float(cos.min()), 5),
            text_cos_mean=round(float(cos.mean()), 5),
        )
        if name in image_runs:
            cos = np.sum(image_vectors[name] * image_vectors["torch"], axis=1)
            row.update(
                images_per_s=round(len(pictures) / image_s[name], 2),
                image_speedup=round(image_s["torch"] / image_s[name], 2),
                image_cos_min=round(float(cos.min()), 5),
            )
    return figures


def _timed(runs: dict, items: list, repeats: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Median seconds of each run over ``items`` (after an untimed pass), interleaved; and its vectors."""
    vectors = {name: run(items) for name, run in runs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(items)
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(s) for name, s in seconds.items()}, vectors


def _clip_store(work: Path, cache: Path) -> Path:
    """A store of the example pages with CLIP vectors (random weights) for the cold CLIP-on asks."""
    path = work / "clip" / "store"
    clip = ClipConfig(pretrained="", random_weights=True, onnx_cache=str(cache))
    text = TextModelConfig(runtime="onnx", onnx_cache=str(cache))
    with KnowledgeBase(Config(store=StoreConfig(path=path), text=text, clip=clip)) as kb:
        kb.index(answers.load_topics(), [REPO / "examples" / "pages"])
    return path


def _cold_starts(stores: dict[str, Path], configs: dict, runs: int, cache: Path) -> dict:
    """Median seconds of a fresh `engine ask` per runtime, and of `import torch`, interleaved."""
    env = {**os.environ, "ENGINE_CLIP_ENABLED": "false"}
    commands = {"import torch": ([sys.executable, "-c", "import torch"], env)}
    for runtime, config in configs.items():
        store = stores.get(runtime, stores["torch"])
        if runtime == "onnx-int8" and runtime not in stores:
            continue  # no store of int8 vectors without the retrieval step
        run_env = {**env, "ENGINE_TEXT_RUNTIME": runtime, "ENGINE_TEXT_ONNX_CACHE": config.onnx_cache}
        command = [sys.executable, "-m", "cli", "--store", str(store), "ask", COLD_QUESTION]
        commands[f"ask {runtime}"] = (command, run_env)
    if "clip" in stores:
        for clip_runtime in ("torch", "onnx"):
            run_env = {**os.environ, "ENGINE_TEXT_RUNTIME": "onnx", "ENGINE_TEXT_ONNX_CACHE": str(cache),
                       "ENGINE_CLIP_PRETRAINED": "", "ENGINE_CLIP_RANDOM_WEIGHTS": "true",
                       "ENGINE_CLIP_RUNTIME": clip_runtime, "ENGINE_CLIP_ONNX_CACHE": str(cache)}
            command = [sys.executable, "-m", "cli", "--store", str(stores["clip"]), "ask", COLD_QUESTION]
            commands[f"ask onnx, CLIP on {clip_runtime}"] = (command, run_env)
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, run_env) in commands.items():
            started = time.perf_counter()
            subprocess.run(command, cwd=REPO, env=run_env, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - started)
    torch_s = statistics.median(seconds["import torch"])
    return {
        name: {"median_s": round(statistics.median(s), 2), "vs_import_torch": round(statistics.median(s) / torch_s, 2)}
        for name, s in seconds.items()
    }


def _table(figures: dict) -> str:
    corpus = figures["corpus"]
    lines = [
        f"Text model all-MiniLM-L6-v2, {corpus['timed']} of {corpus['chunks']} stored chunks timed "
        f"(mean {corpus['mean_tokens']} tokens).",
        "",
        "| runtime | texts/s | speedup | cosine to torch min / mean | first-use export |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for runtime, f in figures["runtimes"].items():
        export = f"{f['export_s']} s" if "export_s" in f else ""
        lines.append(f"| {runtime} | {f['texts_per_s']} | {f['speedup']}× | {f['cos_min']} / {f['cos_mean']} | {export} |")
    if "retrieval" in figures:
        lines += ["", "| vectors | right first source | answerable refused | off-topic refused | ask p50 "
                      "| dense MRR | dense Recall@1 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in figures["retrieval"].items():
            lines.append(
                f"| {name} | {_share(r['right_first'], r['answerable'])} | {_share(r['answerable_refused'], r['answerable'])}"
                f" | {_share(r['off_topic_refused'], r['off_topic'])} | {r['ask_p50_ms']} ms"
                f" | {r.get('dense_mrr', '')} | {r.get('dense_recall_at_1', '')} |"
            )
    if "clip" in figures:
        c = figures["clip"]
        lines += ["", f"CLIP ViT-B-32 (random weights), {c['sentences']} sentences, {c['images']} images.", "",
                  "| runtime | sentences/s | × torch 77 tokens | text cosine to torch min / mean | images/s "
                  "| × torch | image cosine min | first-use export |",
                  "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for name, f in c["runtimes"].items():
            export = f"{f['export_s']} s" if "export_s" in f else ""
            lines.append(
                f"| {name} | {f['sentences_per_s']} | {f['text_speedup']}× | {f['text_cos_min']} / {f['text_cos_mean']}"
                f" | {f.get('images_per_s', '')} | {str(f['image_speedup']) + '×' if 'image_speedup' in f else ''}"
                f" | {f.get('image_cos_min', '')} | {export} |"
            )
    lines += ["", "| cold start | median | ÷ import torch |", "| --- | ---: | ---: |"]
    for name, c in figures["cold"].items():
        lines.append(f"| {name} | {c['median_s']} s | {c['vs_import_torch']} |")
    return "\n".join(lines)


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}% ({count}/{total})" if total else "n/a"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
