"""`engine eval` throughput: the scoring and metrics at full size, the embedding at a size this machine can afford.

    .venv/bin/python benchmarks/eval.py [--images 16] [--full-images 1000]

Part 1, no model: 1,000 images × 5 captions with K = 20 negatives (105,000 scored
pairs) as synthetic unit vectors; times negative sampling, scoring, the metrics
(bootstrap included) and a 5,000 × 1,000 ranking. Part 2, random-weight CLIP
(ViT-B-32; random weights cost what real ones do): ``--images`` drawn images × 5
captions through ``Evaluator.pairs``, first with an empty cache, then again from
the cache (zero embeddings), and the rates extrapolated to 1,000 × 5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
SHAPES = ["circle", "square", "triangle", "star"]
PHRASES = [
    "A {c} {s} on a grey background.",
    "Drawing of a {c} {s}, number {n}.",
    "Picture {n}: one {s}, coloured {c}.",
    "A single {c} {s} in the middle.",
    "Item {n} shows a {s} painted {c}.",
]


def part_one(n_images: int, captions_per_image: int, negatives: int) -> None:
    from engine.evaluate import metrics as m
    from engine.evaluate.pairs import pair_scores, sample_pairs

    rng = np.random.default_rng(0)
    dim = 512
    images = rng.normal(size=(n_images, dim)).astype(np.float32)
    texts = images.repeat(captions_per_image, axis=0) + rng.normal(size=(n_images * captions_per_image, dim)) * 15
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts = (texts / np.linalg.norm(texts, axis=1, keepdims=True)).astype(np.float32)
    image_of = list(np.arange(n_images).repeat(captions_per_image))
    caption_of = list(range(n_images * captions_per_image))

    timings = {}
    began = time.perf_counter()
    rows_i, rows_c, labels, groups, _ = sample_pairs(image_of, caption_of, len(caption_of), negatives, 0)
    timings["sample negatives"] = time.perf_counter() - began
    began = time.perf_counter()
    scores = pair_scores(images, texts, rows_i, rows_c)
    timings["score pairs"] = time.perf_counter() - began
    began = time.perf_counter()
    auc, ap = m.roc_auc(labels, scores), m.average_precision(labels, scores)
    m.best_threshold(labels, scores, "f1"), m.best_threshold(labels, scores, "accuracy")
    timings["ROC-AUC, AP, best thresholds"] = time.perf_counter() - began
    began = time.perf_counter()
    m.bootstrap_interval(lambda i: m.roc_auc(labels[i], scores[i]), groups, 200, 0)
    timings["bootstrap CI (200 resamples)"] = time.perf_counter() - began
    began = time.perf_counter()
    relevant = np.zeros((len(texts), n_images), bool)
    relevant[np.arange(len(texts)), image_of] = True
    ranks = m.first_relevant_ranks(texts @ images.T, relevant)
    m.mean_reciprocal_rank(ranks)
    timings[f"rank {len(texts)} × {n_images}"] = time.perf_counter() - began
    print(
        f"part 1: {n_images} images × {captions_per_image} captions, K={negatives}: {len(labels):,} pairs "
        f"(synthetic vectors; ROC-AUC {auc:.3f}, AP {ap:.3f})"
    )
    for name, seconds in timings.items():
        print(f"  {name:32s} {seconds:8.3f} s")
    print(f"  pairs scored per second: {len(labels) / timings['score pairs']:,.0f}")


def draw(path: Path, n: int) -> tuple[str, str]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(n)
    colour, shape = COLOURS[n % len(COLOURS)], SHAPES[(n // len(COLOURS)) % len(SHAPES)]
    picture = Image.new("RGB", (224, 224), tuple(int(v) for v in rng.integers(90, 160, 3)))
    pen = ImageDraw.Draw(picture)
    box = tuple(
        int(v) for v in (rng.integers(20, 70), rng.integers(20, 70), rng.integers(150, 200), rng.integers(150, 200))
    )
    if shape == "circle":
        pen.ellipse(box, fill=colour)
    elif shape == "square":
        pen.rectangle(box, fill=colour)
    else:
        pen.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    picture.save(path, "JPEG", quality=90)
    return colour, shape


def part_two(n_images: int, full: int) -> None:
    from engine.config import ClipConfig, Config, StoreConfig
    from engine.evaluate import Evaluator, load_dataset
    from engine.kb import KnowledgeBase

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = ["image,caption"]
        for n in range(n_images):
            colour, shape = draw(root / f"{n}.jpg", n)
            lines += [f'{n}.jpg,"{p.format(c=colour, s=shape, n=n)}"' for p in PHRASES]
        (root / "pairs.csv").write_text("\n".join(lines) + "\n")
        dataset = load_dataset(root / "pairs.csv")
        clip = ClipConfig(model="ViT-B-32", pretrained="", random_weights=True, batch_size=16)
        config = Config(store=StoreConfig(path=root / "store"), clip=clip)
        with KnowledgeBase(config) as kb:
            kb.clip_encoder().load()
            Evaluator(kb).pairs(load_dataset(REPO / "examples" / "eval" / "captions.csv"), negatives=5)  # warm-up
            first = Evaluator(kb, cache_dir=root / "cache").pairs(dataset)
            second = Evaluator(kb, cache_dir=root / "cache").pairs(dataset)
    images, texts = first.throughput["image_embeddings"], first.throughput["clip_text_embeddings"]
    print(f"part 2: {n_images} images × 5 captions, K=20, random-weight CLIP: {first.counts['pairs']:,} pairs")
    print(
        f"  first run  {first.throughput['total_seconds']:7.2f} s: images {images['computed']} at "
        f"{images['per_second']:.2f}/s, captions {texts['computed']} at {texts['per_second']:.2f}/s"
    )
    again = second.throughput["image_embeddings"]["computed"] + second.throughput["clip_text_embeddings"]["computed"]
    print(f"  second run {second.throughput['total_seconds']:7.2f} s from the cache, {again} embeddings computed")
    estimate = full / images["per_second"] + 5 * full / texts["per_second"]
    print(f"  at these rates {full} images × 5 captions would take about {estimate / 60:.0f} min to embed, once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="drawn images for the CLIP part")
    parser.add_argument("--full-images", type=int, default=1000, help="images in the model-free part")
    args = parser.parse_args()
    part_one(args.full_images, 5, 20)
    part_two(args.images, args.full_images)


if __name__ == "__main__":
    main()
