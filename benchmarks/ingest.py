"""Ingest benchmark: `engine index` throughput against the bare encoders, and what CLIP costs, in one run.

    .venv/bin/python benchmarks/ingest.py [--copies 6] [--text-runtime onnx] [--clip random|off]
                                          [--clip-runtime torch] [--real-pages]

Builds a fixed corpus (the example pages, each copy made unique by a numbered paragraph; with
--real-pages, the 12 real article pages of ../shared/data/real-pages instead, saved with their
image references), indexes it once to warm the encoders' kernels, then indexes it into fresh
stores with the same loaded encoders:

- text only: the pipeline's wall time, then the bare text encoder on exactly the chunks stored.
  The ratio bare/pipeline is the share of the run the encoder accounts for (target >= 0.9).
- CLIP on (ViT-B-32 with random weights: real compute, no meaning), three ways in the same run:
  "every chunk, 77 tokens" (each chunk's sentences in CLIP space, padded to CLIP's 77 tokens:
  the engine before issue 11), "every chunk, trimmed" (padding cut, exact), and "chunks with
  images" (what the engine does now: only the chunks an image sits in, whose CLIP vector
  clip_context reads). The first two are the old behaviour re-created here by patching the
  embedder, so all three run on one machine state.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FILLER = (
    "Copy {n} adds this paragraph so that its text is unique. Readers of copy {n} will find the same "
    "article as before, with this note about edition {n} of the page. The note says nothing else of interest."
)
TOPICS = ["coffee", "space exploration"]
REAL_PAGES = REPO.parent / "shared" / "data" / "real-pages"


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


def build_real_corpus(target: Path) -> int:
    """The real pages as saved pages, with the example images standing in for theirs (the real
    pages were saved without their image files), one image per few paragraphs."""
    pictures = sorted((REPO / "examples" / "pages").glob("*_files/*.jpg"))
    pages = sorted(REAL_PAGES.glob("*.html"))
    for n, page in enumerate(pages):
        folder = target / f"{page.stem}_files"
        folder.mkdir(parents=True)
        html = page.read_text(encoding="utf-8", errors="replace")
        count = 0

        def add_image(match: re.Match) -> str:
            nonlocal count
            count += 1
            if count % 4:
                return match.group(0)
            picture = pictures[(n + count) % len(pictures)]
            shutil.copy(picture, folder / f"{count}-{picture.name}")
            return f'{match.group(0)}<figure><img src="{folder.name}/{count}-{picture.name}" alt=""></figure>'

        html = re.sub(r"</p>", add_image, html)
        (target / page.name).write_text(html, encoding="utf-8")
    return len(pages)


def _saved_from(url: str) -> str:
    return f"saved from url=({len(url):04d}){url}"


@contextmanager
def clip_text_as_before(untrimmed: bool):
    """The embedder as it was before issue 11: every chunk's sentences in CLIP space (and with
    ``untrimmed``, every sentence padded to 77 tokens)."""
    import numpy as np

    from engine.encoders import clip_text
    from indexer import embed

    def every_chunk(self, pages, chunked):  # noqa: ANN001, ANN202 - BatchEmbedder._clip_passages's signature
        flat = [(n, position) for n, chunks in enumerate(chunked) for position in range(len(chunks))]
        vectors = self.clip.encode_passages([list(chunked[n][p].sentences) for n, p in flat]) if flat else []
        out: dict[int, dict[int, np.ndarray]] = {}
        for (n, position), vector in zip(flat, vectors):
            out.setdefault(n, {})[position] = vector
        return out

    saved = embed.BatchEmbedder._clip_passages, clip_text.can_trim
    embed.BatchEmbedder._clip_passages = every_chunk
    if untrimmed:
        clip_text.can_trim = lambda model: False  # noqa: ARG005
    try:
        yield
    finally:
        embed.BatchEmbedder._clip_passages, clip_text.can_trim = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="copies of the 8 example pages")
    parser.add_argument("--text-runtime", default="onnx", choices=["torch", "onnx", "onnx-int8"],
                        help="text.runtime (default onnx, the default for a new store)")
    parser.add_argument("--clip", choices=["random", "off"], default="random",
                        help="random: also time CLIP-on ingest with ViT-B-32's random weights")
    parser.add_argument("--clip-runtime", default="torch", choices=["torch", "onnx", "onnx-int8"],
                        help="clip.runtime for the CLIP-on runs (default torch)")
    parser.add_argument("--real-pages", action="store_true", help="index the real pages instead of the examples")
    args = parser.parse_args()

    from engine.config import ClipConfig, Config, StoreConfig, TextModelConfig
    from engine.encoders.factory import build_clip_encoder, build_text_encoder
    from engine.kb import KnowledgeBase

    work = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    n_pages = build_real_corpus(corpus) if args.real_pages else build_corpus(corpus, args.copies)
    text_config = TextModelConfig(runtime=args.text_runtime, onnx_cache=str(work / "onnx"))
    clip_config = ClipConfig(pretrained="", random_weights=True, runtime=args.clip_runtime, onnx_cache=str(work / "onnx"))
    text = build_text_encoder(text_config)
    text.encode(["warm up"])
    clip = None
    if args.clip == "random":
        clip = build_clip_encoder(clip_config)
        clip.encode_texts(["warm up"])
    print(f"corpus: {n_pages} pages ({'real pages' if args.real_pages else f'{args.copies} copies of the examples'}), "
          f"text.runtime {args.text_runtime}" + (f", clip.runtime {args.clip_runtime}" if clip else ", CLIP off"))

    def index(name: str, with_clip: bool) -> tuple[float, object, object]:
        config = Config(store=StoreConfig(work / name), text=text_config,
                        clip=clip_config if with_clip else ClipConfig(enabled=False))
        kb = KnowledgeBase(config, text_encoder=text, clip_encoder=clip if with_clip else None)
        started = time.perf_counter()
        report = kb.index(TOPICS, [corpus])
        return time.perf_counter() - started, report, kb

    # Kernels are built for each new input shape on first use: a first pass over the corpus
    # (into a scratch store) warms them, so the timed runs below all run warm.
    cold, _, kb = index("scratch", clip is not None)
    kb.close()
    print(f"cold first pass (kernels not yet built): {cold:.2f} s")
    text_only(index, text, n_pages)
    if clip is not None:
        clip_on(index, n_pages)
    shutil.rmtree(work, ignore_errors=True)


def text_only(index, text, n_pages: int) -> None:  # noqa: ANN001 - the closure above, an encoder
    from sqlalchemy import select

    from engine.store.schema import chunks

    pipeline, report, kb = index("text-only", False)
    with kb.store.reading() as conn:
        rows = conn.execute(select(chunks.c.text)).scalars().all()
    kb.close()
    started = time.perf_counter()
    text.encode(list(rows))
    bare = time.perf_counter() - started
    print(f"\ntext only: pipeline {pipeline:.2f} s = {n_pages / pipeline:.2f} pages/s, {len(rows) / pipeline:.2f} chunks/s; "
          f"bare text encoder {bare:.2f} s on the {len(rows)} chunks")
    print(f"ratio bare/pipeline: {bare / pipeline:.3f} (target >= 0.9); report: pages {dict(report.pages)}")


def clip_on(index, n_pages: int) -> None:  # noqa: ANN001 - the closure in main
    from sqlalchemy import func, select

    from engine.store.schema import CLIP_TEXT_SPACE, chunks, images

    print("\n| CLIP on | pipeline s | pages/s | chunks with a CLIP vector | × 'every chunk, 77 tokens' |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = None
    for name, before, untrimmed in (("every chunk, 77 tokens", True, True), ("every chunk, trimmed", True, False),
                                    ("chunks with images (now)", False, False)):
        if before:
            with clip_text_as_before(untrimmed):
                seconds, _, kb = index(name.replace(" ", "-").replace(",", ""), True)
        else:
            seconds, _, kb = index("now", True)
        with kb.store.reading() as conn:
            n_chunks = conn.execute(select(func.count()).select_from(chunks)).scalar_one()
            n_images = conn.execute(select(func.count()).select_from(images)).scalar_one()
            with_clip = kb.store.vector_count(CLIP_TEXT_SPACE, conn)
        kb.close()
        base = base or seconds
        print(f"| {name} | {seconds:.2f} | {n_pages / seconds:.2f} | {with_clip} of {n_chunks} | {base / seconds:.2f} |")
    print(f"({n_images} distinct images, encoded in every run)")


if __name__ == "__main__":
    main()
