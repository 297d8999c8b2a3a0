"""Ingest benchmark: `engine index` throughput against the bare encoders, in one run.

    .venv/bin/python benchmarks/ingest.py [--copies 6] [--clip random|off]

Builds a fixed corpus (the example pages, each copy made unique by a numbered
paragraph), indexes it once to warm torch's kernels, then indexes it into a fresh
store with the same loaded encoders, then times the bare encoders on exactly the
chunks and images that were stored. The ratio
bare/pipeline is the share of the run the encoders account for (target ≥ 0.9).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FILLER = (
    "Copy {n} adds this paragraph so that its text is unique. Readers of copy {n} will find the same "
    "article as before, with this note about edition {n} of the page. The note says nothing else of interest."
)


def build_corpus(target: Path, copies: int) -> int:
    pages = sorted((REPO / "examples" / "pages").glob("*.html"))
    for n in range(copies):
        for page in pages:
            stem = f"{page.stem}-{n}"
            shutil.copytree(page.with_name(page.stem + "_files"), target / f"{stem}_files")
            html = page.read_text(encoding="utf-8").replace(f"{page.stem}_files/", f"{stem}_files/")
            html = re.sub(r"saved from url=\(\d+\)(\S+?)\.html", lambda m: _saved_from(m.group(1) + f"-{n}.html"), html)
            html = html.replace("</article>", f"<p>{FILLER.format(n=n)}</p></article>", 1)
            (target / f"{stem}.html").write_text(html, encoding="utf-8")
    return copies * len(pages)


def _saved_from(url: str) -> str:
    return f"saved from url=({len(url):04d}){url}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="copies of the 8 example pages")
    parser.add_argument("--clip", choices=["random", "off"], default="random",
                        help="random: ViT-B-32 with random weights (real compute, no meaning)")
    args = parser.parse_args()

    from PIL import Image
    from sqlalchemy import select

    from engine.config import ClipConfig, Config, StoreConfig
    from engine.encoders.clip import ClipEncoder
    from engine.encoders.text import TextEncoder
    from engine.kb import KnowledgeBase
    from engine.sentences import split_sentences
    from engine.store.schema import chunks, images

    work = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    n_pages = build_corpus(corpus, args.copies)
    clip_config = ClipConfig(pretrained="", random_weights=True) if args.clip == "random" else ClipConfig(enabled=False)
    config = Config(store=StoreConfig(work / "store"), clip=clip_config)

    text = TextEncoder(config.text.model, config.text.batch_size)
    text.encode(["warm up"])
    clip = None
    if args.clip == "random":
        clip = ClipEncoder(clip_config)
        clip.encode_texts(["warm up"])

    # torch builds its kernels for each new input shape on first use: a first pass over the
    # corpus (into a scratch store) warms them, so the timed pipeline and the bare encoders
    # below both run warm. The cold first pass is printed too.
    scratch = Config(store=StoreConfig(work / "scratch"), clip=clip_config)
    with KnowledgeBase(scratch, text_encoder=text, clip_encoder=clip) as kb:
        started = time.perf_counter()
        kb.index(["coffee", "space exploration"], [corpus])
        cold = time.perf_counter() - started

    with KnowledgeBase(config, text_encoder=text, clip_encoder=clip) as kb:
        started = time.perf_counter()
        report = kb.index(["coffee", "space exploration"], [corpus])
        pipeline = time.perf_counter() - started
        with kb.store.reading() as conn:
            chunk_rows = conn.execute(select(chunks.c.text)).scalars().all()
            image_paths = [kb.store.root / p for p in conn.execute(select(images.c.path)).scalars()]

    started = time.perf_counter()
    text.encode(list(chunk_rows))
    bare_text = time.perf_counter() - started
    bare_clip = 0.0
    if clip is not None:
        pictures = [Image.open(p).convert("RGB") for p in image_paths]
        passages = [[s for s, _, _ in split_sentences(t)] for t in chunk_rows]
        started = time.perf_counter()
        clip.encode_images(pictures)
        clip.encode_passages(passages)
        bare_clip = time.perf_counter() - started

    bare = bare_text + bare_clip
    n_chunks, n_images = len(chunk_rows), len(image_paths)
    print(f"corpus: {n_pages} pages, {n_chunks} chunks, {n_images} distinct images (clip: {args.clip})")
    print(f"pipeline: {pipeline:.2f} s  = {n_pages / pipeline:.2f} pages/s, "
          f"{n_chunks / pipeline:.2f} chunks/s, {n_images / pipeline:.2f} images/s")
    print(f"cold first pass (kernels not yet built): {cold:.2f} s = {n_pages / cold:.2f} pages/s")
    print(f"bare encoders: text {bare_text:.2f} s ({n_chunks / bare_text:.2f} chunks/s)"
          + (f", clip {bare_clip:.2f} s (images + chunk sentences)" if clip else ""))
    print(f"ratio bare/pipeline: {bare / pipeline:.3f}  (pipeline adds {100 * (pipeline / bare - 1):.1f}% over the encoders)")
    print(f"report: pages {dict(report.pages)}, images {dict(report.images)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
