"""Query benchmark: per-stage latency of `engine ask` on stores of 10k and 100k passages, in one run.

    .venv/bin/python benchmarks/query.py [--sizes 10000,100000] [--clip random|off] [--queries 20]

The stores are synthetic but built from real text: sentences of the example pages (and of
../shared/data/real-pages when present) are embedded once with the real text model, then
each passage is 6 sentences drawn at random, with the normalised mean of their vectors as
its vector (close to what embedding the passage gives, at a fraction of the cost). One
image per four documents, with alt text from the pool and a random CLIP vector. Timing
depends on sizes and score distributions, not on meaning, so this is a fair load.

Printed: p50/p95 per stage over the questions (after warm-up; the relevance cutoff is
off so that every question runs every stage, the worst case), retrieval-only (encode
query + filter + dense + BM25 + fuse), and the cold `engine ask` wall time next to
`python -c "import torch"` on the same machine (median of 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "how is coffee roasted?",
    "what happens during espresso extraction",
    "how do cats see in the dark",
    "why do cats purr",
    "who minted the first greek coins",
    "how did roman coinage change",
    "what did the hubble deep field show",
    "how far away are the galaxies in deep images",
    "what is a drum roaster",
    "what senses do cats rely on",
    "best chocolate cake recipe",
    "how to fix a car transmission",
    "symptoms of diabetes",
    "football world cup winners",
    "tips for learning piano",
    "history of the french revolution",
    "quantum entanglement explained",
    "how to knit a scarf",
    "tax deductions for freelancers",
    "volcano eruption prediction",
]
RETRIEVAL_STAGES = ("encode_query", "filter", "dense", "bm25", "fuse")
STAGES = (*RETRIEVAL_STAGES, "evidence", "summarize", "images")


def sentence_pool(text_encoder) -> tuple[list[str], np.ndarray]:
    """Sentences of real pages and their text-model vectors."""
    import trafilatura

    from engine.sentences import split_sentences

    files = sorted((REPO / "examples" / "pages").glob("*.html"))
    shared = REPO.parent / "shared" / "data" / "real-pages"
    if shared.exists():
        files += sorted(shared.glob("*.html"))
    sentences: list[str] = []
    for file in files:
        text = trafilatura.extract(file.read_text(encoding="utf-8", errors="replace")) or ""
        sentences += [s for s, _, _ in split_sentences(text, "en") if len(s.split()) >= 6]
    sentences = list(dict.fromkeys(sentences))
    return sentences, text_encoder.encode(sentences)


def build_store(root: Path, passages: int, pool: list[str], vectors: np.ndarray, text_encoder, clip_dim: int | None, clip_identity: str) -> None:
    from sqlalchemy import insert

    from engine.store.schema import (
        CLIP_IMAGE_SPACE,
        CLIP_TEXT_SPACE,
        TEXT_SPACE,
        chunks,
        document_images,
        documents,
        images,
        sources,
        topic_documents,
        topics,
    )
    from engine.store.store import Store

    rng = np.random.default_rng(0)
    per_doc = 8
    now = time.time()
    with Store(root) as store:
        store.acquire_write_lock()
        store.bind_model((TEXT_SPACE,), text_encoder.name, text_encoder.dim)
        store.index(TEXT_SPACE, text_encoder.dim)
        if clip_dim:
            store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip_identity, clip_dim)
            store.index(CLIP_IMAGE_SPACE, clip_dim)
        with store.transaction() as conn:
            conn.execute(insert(topics), [{"id": i + 1, "name": n, "created_at": now} for i, n in enumerate(["coffee", "cats", "coins", "space"])])
        chunk_id = 0
        image_id = 0
        for first_doc in range(0, passages // per_doc, 500):
            docs = range(first_doc, min(first_doc + 500, passages // per_doc))
            doc_rows, src_rows, chunk_rows, link_rows, image_rows, picture_rows = [], [], [], [], [], []
            chunk_vectors = []
            for d in docs:
                doc_id = d + 1
                texts = []
                for position in range(per_doc):
                    picked = rng.choice(len(pool), 6, replace=False)
                    passage = " ".join(pool[i] for i in picked)
                    texts.append(passage)
                    chunk_id += 1
                    chunk_rows.append({"id": chunk_id, "document_id": doc_id, "position": position, "text": passage,
                                       "start_char": 0, "end_char": len(passage), "n_tokens": 180})
                    mean = vectors[picked].mean(axis=0)
                    chunk_vectors.append(mean / np.linalg.norm(mean))
                doc_rows.append({"id": doc_id, "content_hash": f"doc{doc_id}", "title": pool[int(rng.integers(len(pool)))][:60],
                                 "published": f"20{10 + d % 15}-0{1 + d % 9}-1{d % 10}", "language": "en",
                                 "text": " ".join(texts), "created_at": now})
                src_rows.append({"canonical_url": f"https://example.org/{doc_id}", "url": f"https://example.org/{doc_id}",
                                 "origin": "benchmark", "document_id": doc_id, "updated_at": now})
                link_rows.append({"topic_id": 1 + d % 4, "document_id": doc_id, "score": 0.5, "created_at": now})
                if clip_dim and d % 4 == 0:
                    image_id += 1
                    image_rows.append({"id": image_id, "content_hash": f"img{image_id}", "width": 640, "height": 480, "format": "jpeg",
                                       "byte_size": 1, "path": f"images/none/{image_id}.jpeg", "created_at": now,
                                       "phash": f"{int(rng.integers(0, 2**63)):016x}"})
                    picture_rows.append({"document_id": doc_id, "image_id": image_id, "chunk_id": chunk_id - per_doc + 1,
                                         "src_url": f"https://example.org/{image_id}.jpg", "alt": pool[int(rng.integers(len(pool)))]})
            with store.transaction() as conn:
                conn.execute(insert(documents), doc_rows)
                conn.execute(insert(sources), src_rows)
                conn.execute(insert(chunks), chunk_rows)
                conn.execute(insert(topic_documents), link_rows)
                store.put_vectors(conn, TEXT_SPACE, [r["id"] for r in chunk_rows], np.array(chunk_vectors, np.float32))
                if image_rows:
                    conn.execute(insert(images), image_rows)
                    conn.execute(insert(document_images), picture_rows)
                    random = rng.standard_normal((len(image_rows), clip_dim)).astype(np.float32)
                    random /= np.linalg.norm(random, axis=1, keepdims=True)
                    store.put_vectors(conn, CLIP_IMAGE_SPACE, [r["id"] for r in image_rows], random)
            store.apply_committed()
            print(f"  {chunk_id} passages written", end="\r", flush=True)
        store.save_indexes()
    print()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def time_questions(root: Path, text_encoder, clip_encoder, clip_config, rounds: int) -> dict[str, list[float]]:
    from engine.config import Config, StoreConfig
    from engine.kb import KnowledgeBase

    config = Config(store=StoreConfig(path=root), clip=clip_config)
    per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "retrieval", "total")}
    with KnowledgeBase(config, text_encoder=text_encoder, clip_encoder=clip_encoder) as kb:
        started = time.perf_counter()
        first = kb.ask(QUESTIONS[0])  # loads the FAISS index and calibrates the evidence decision (once per store)
        print(f"  first ask (index load + calibration): {time.perf_counter() - started:.2f} s "
              f"(calibrated cutoff {first.relevance.get('threshold')})")
        kb.ask(QUESTIONS[1], min_score="off")
        for _ in range(rounds):
            for question in QUESTIONS:
                started = time.perf_counter()
                # Cutoff off: every question runs every stage (the worst case for latency).
                result = kb.ask(question, min_score="off")
                per_stage["total"].append(1000 * (time.perf_counter() - started))
                for stage in STAGES:
                    if stage in result.timings_ms:
                        per_stage[stage].append(result.timings_ms[stage])
                per_stage["retrieval"].append(sum(result.timings_ms.get(s, 0.0) for s in RETRIEVAL_STAGES))
    return per_stage


def cold_runs(root: Path, clip: str) -> tuple[float, float]:
    env = {**os.environ, "ENGINE_CLIP_ENABLED": "false" if clip == "off" else "true",
           "ENGINE_CLIP_RANDOM_WEIGHTS": "true", "ENGINE_CLIP_PRETRAINED": ""}
    engine = str(Path(sys.executable).with_name("engine"))

    def wall(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    asks = [wall([engine, "--store", str(root), "ask", QUESTIONS[n]]) for n in range(3)]
    torch = [wall([sys.executable, "-c", "import torch"]) for _ in range(3)]
    return statistics.median(asks), statistics.median(torch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="passage counts, comma-separated")
    parser.add_argument("--clip", choices=["random", "off"], default="random",
                        help="random: ViT-B-32 with random weights (real compute, no meaning)")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the 20 questions")
    args = parser.parse_args()

    from engine.config import ClipConfig
    from engine.encoders.clip import ClipEncoder
    from engine.encoders.text import TextEncoder

    text_encoder = TextEncoder("all-MiniLM-L6-v2")
    clip_config = ClipConfig(enabled=False)
    clip_encoder = None
    if args.clip == "random":
        clip_config = ClipConfig(model="ViT-B-32", pretrained="", random_weights=True)
        clip_encoder = ClipEncoder(clip_config)
        clip_encoder.load()
    pool, vectors = sentence_pool(text_encoder)
    print(f"sentence pool: {len(pool)} real sentences; CLIP: {args.clip}; {len(QUESTIONS)} questions x {args.rounds}")
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="engine-query-bench-") as tmp:
            root = Path(tmp) / "store"
            started = time.perf_counter()
            build_store(root, size, pool, vectors, text_encoder,
                        clip_encoder.dim if clip_encoder else None, clip_encoder.identity if clip_encoder else "")
            print(f"{size} passages: built in {time.perf_counter() - started:.1f} s")
            timings = time_questions(root, text_encoder, clip_encoder, clip_config, args.rounds)
            print(f"  {'stage':<14}{'p50 ms':>10}{'p95 ms':>10}")
            for stage, values in timings.items():
                if values:
                    print(f"  {stage:<14}{percentile(values, 50):>10.1f}{percentile(values, 95):>10.1f}")
            ask, torch = cold_runs(root, args.clip)
            print(f"  cold `engine ask`: {ask:.2f} s; `python -c 'import torch'`: {torch:.2f} s; ratio {ask / torch:.2f}")


if __name__ == "__main__":
    main()
