"""The evaluation API: one method per `engine eval` command, on a KnowledgeBase's models.

from engine import Config, KnowledgeBase
from engine.evaluate import Evaluator, load_dataset

with KnowledgeBase(Config.load()) as kb:
    evaluator = Evaluator(kb, cache_dir=Path("eval-cache"))
    result = evaluator.pairs(load_dataset(Path("examples/eval/captions.csv")), negatives=20)
    print(result.to_dict()["figures"]["roc_auc"])
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from engine.errors import ConfigError, ModelUnavailableError
from engine.evaluate.cache import EmbeddingCache
from engine.evaluate.datasets import ArticleDataset, Dataset, PairDataset, store_dataset
from engine.evaluate.embed import EmbedStats, ImageSide, TextSide
from engine.evaluate.results import EvalResult, IndexResult, MatrixResult, PairsResult, RetrievalResult
from engine.evaluate.retrieval import DEFAULT_KS, DIRECTIONS, Sides, article_rankings, pair_rankings
from engine.evaluate.strategies import STRATEGIES
from engine.results import Progress

# Words per window for the "chunked" strategy: CLIP reads 77 tokens, MiniLM 256.
CHUNK_WORDS = {"clip": 50, "text": 150}
RANDOM_CLIP_WARNING = (
    "CLIP weights are RANDOM (clip.random_weights): every image–text figure can only be near chance; "
    "it shows the pipeline runs, not how well any model aligns images and text"
)


class Evaluator:
    """Runs evaluations with ``kb``'s encoders (and store, for ``--from-store`` and ``index``).

    Args:
        kb: an open KnowledgeBase; its CLIP encoder is needed only for image tasks.
        cache_dir: where embeddings persist between runs (None: in memory only).
        cache: an existing cache to share (overrides ``cache_dir``).
        on_progress: called as embeddings are computed.
    """

    def __init__(
        self,
        kb,  # noqa: ANN001 - engine.kb.KnowledgeBase
        cache_dir: Path | None = None,
        cache: EmbeddingCache | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        self.kb = kb
        self.cache = cache if cache is not None else EmbeddingCache(cache_dir)
        self.on_progress = on_progress
        self._sides: dict[str, Any] = {}

    # -- datasets -----------------------------------------------------------------------

    def store_pairs(self) -> PairDataset:
        """The store's images against their alt text and captions; stored CLIP vectors
        are reused when they come from the configured model."""
        dataset = store_dataset(self.kb.store)
        self._prime_from_store(dataset)
        return dataset

    # -- tasks ----------------------------------------------------------------------------

    def pairs(
        self,
        dataset: Dataset,
        negatives: int = 20,
        seed: int = 0,
        min_alignment: float | str | None = None,
        resamples: int = 200,
    ) -> PairsResult:
        """Pair classification: ROC-AUC, PR-AUC, F1 and accuracy at the best threshold and
        at ``min_alignment`` (default: the configured ``ask.min_alignment``), with baselines."""
        from engine.evaluate.pairs import evaluate_pairs

        if not isinstance(dataset, PairDataset):
            raise ConfigError("pair classification needs an (image, caption) dataset, not articles")
        if negatives < 1:
            raise ConfigError(f"--negatives must be at least 1, not {negatives}")
        threshold, origin = self._min_alignment(min_alignment)
        settings = {
            "negatives": negatives,
            "seed": seed,
            "min_alignment": threshold,
            "min_alignment_origin": origin,
            "bootstrap_resamples": resamples,
            "score": "cosine(CLIP image, CLIP text)",
        }
        began = self._begin()
        image, text = self._clip_sides()
        result = evaluate_pairs(
            dataset,
            image,
            text,
            self._header("pairs", dataset, settings, clip=True),
            negatives,
            seed,
            threshold,
            resamples,
        )
        return self._finish(result, began, image=image, clip_text=text)

    def retrieval(
        self,
        dataset: Dataset,
        directions: tuple[str, ...] = DIRECTIONS,
        strategies: tuple[str, ...] = STRATEGIES,
        ks: tuple[int, ...] = DEFAULT_KS,
        lead_sentences: int = 2,
        seed: int = 0,
    ) -> RetrievalResult:
        """Text→image, image→text (CLIP) and text→text (text model) rankings: MRR,
        Recall@K, match in 100, with chance beside each."""
        unknown = [d for d in directions if d not in DIRECTIONS]
        if unknown or not directions:
            raise ConfigError(f"unknown direction(s) {unknown}: choose from {', '.join(DIRECTIONS)}")
        bad = [s for s in strategies if s not in STRATEGIES]
        if bad or not strategies:
            raise ConfigError(f"unknown strategy(ies) {bad}: choose from {', '.join(STRATEGIES)}")
        ks = tuple(sorted(set(ks)))
        if not ks or ks[0] < 1:
            raise ConfigError("recall cut-offs must be positive integers")
        articles = isinstance(dataset, ArticleDataset)
        settings = {"directions": list(directions), "recall_at": list(ks), "seed": seed}
        if articles:
            settings.update(strategies=list(strategies), lead_sentences=lead_sentences, chunk_words=CHUNK_WORDS)
        began = self._begin()
        needs_clip = any(d in directions for d in ("text-image", "image-text"))
        image, clip_text = self._clip_sides() if needs_clip else (None, None)
        text = self._text_side() if "text-text" in directions else None
        sides = Sides(image, clip_text, text)
        result = RetrievalResult(
            **self._header("retrieval", dataset, settings, clip=needs_clip, text="text-text" in directions)
        )
        if articles:
            result.rankings = article_rankings(
                dataset, sides, directions, strategies, ks, seed, lead_sentences, CHUNK_WORDS
            )
        else:
            result.rankings = pair_rankings(dataset, sides, directions, ks, seed)
        if any(r.candidates <= max(ks) for r in result.rankings):
            result.notes.append(
                "Recall@K is trivially 1 where K reaches the number of candidates; "
                "compare every figure with its chance value"
            )
        return self._finish(result, began, image=image, clip_text=clip_text, text=text)

    def matrix(
        self, dataset: Dataset, max_images: int = 40, strategy: str = "title", lead_sentences: int = 2
    ) -> MatrixResult:
        """The full image × text similarity matrix of a small set, top-1 accuracy and
        the top-3 confusions per image."""
        from engine.evaluate.matrix import evaluate_matrix

        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")
        settings = {"max_images": max_images, "score": "cosine(CLIP image, CLIP text)"}
        if isinstance(dataset, ArticleDataset):
            settings.update(strategy=strategy, lead_sentences=lead_sentences, chunk_words=CHUNK_WORDS["clip"])
        began = self._begin()
        image, text = self._clip_sides()
        result = evaluate_matrix(
            dataset,
            image,
            text,
            self._header("matrix", dataset, settings, clip=True),
            max_images,
            strategy,
            lead_sentences,
            CHUNK_WORDS["clip"],
        )
        return self._finish(result, began, image=image, clip_text=text)

    def index(self, space: str = "clip_image", sample: int = 200, k: int = 10, seed: int = 0) -> IndexResult:
        """Recall of the store's vector index against exact search, and per-query latency."""
        from engine.evaluate.index_quality import evaluate_index

        if sample < 1 or k < 1:
            raise ConfigError("--sample and --k must be at least 1")
        store = self.kb.store
        model = store.get_meta(f"model.{space}")
        header = {
            "task": "index",
            "dataset": {"name": f"store {store.root}", "kind": "store", "space": space},
            "settings": {"space": space, "sample": sample, "k": k, "seed": seed},
            "models": {space: {"identity": model}},
        }
        if model and "/random-seed" in model:
            header["warnings"] = [
                f"the {space!r} vectors come from random CLIP weights; recall and latency are "
                "still real (they measure the index, not the model)"
            ]
        began = time.perf_counter()
        result = evaluate_index(store, space, header, sample, k, seed)
        result.throughput["total_seconds"] = round(time.perf_counter() - began, 3)
        return result

    # -- parts --------------------------------------------------------------------------------

    def _clip(self):  # noqa: ANN202 - ClipEncoder
        clip = self.kb.clip_encoder()
        if clip is None:
            reason = getattr(self.kb, "_clip_failed", None) or "CLIP is disabled (clip.enabled = false)"
            raise ModelUnavailableError(
                f"this evaluation compares images with text and needs CLIP: {reason}. "
                "Text-only: engine eval retrieval --direction text-text"
            )
        return clip

    def _clip_sides(self) -> tuple[ImageSide, TextSide]:
        if "clip" not in self._sides:
            clip = self._clip()
            self._sides["clip"] = (
                ImageSide(
                    f"{clip.identity}#image",
                    clip.encode_images,
                    self.cache,
                    clip.config.batch_size * 4,
                    self.on_progress,
                ),
                TextSide(f"{clip.identity}#text", clip.encode_texts, self.cache, 256, self.on_progress),
            )
        return self._sides["clip"]

    def _text_side(self) -> TextSide:
        if "text" not in self._sides:
            encoder = self.kb.text_encoder
            self._sides["text"] = TextSide(f"text:{encoder.name}", encoder.encode, self.cache, 256, self.on_progress)
        return self._sides["text"]

    def _min_alignment(self, value: float | str | None) -> tuple[float | None, str]:
        origin = "flag"
        if value is None:
            value = getattr(self.kb.config.ask, "min_alignment", "off")
            origin = "config ask.min_alignment"
        if isinstance(value, str):
            if value.strip().lower() in ("off", "none", ""):
                return None, f"{origin}: off (every pair kept, i.e. predicted a match)"
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"min_alignment {value!r} is neither a number nor 'off'") from None
        return float(value), origin

    def _header(self, task: str, dataset: Dataset, settings: dict, clip: bool = False, text: bool = False) -> dict:
        models: dict[str, Any] = {}
        warnings = []
        if clip:
            encoder = self._clip()
            random = "/random-seed" in encoder.identity
            models["clip"] = {"identity": encoder.identity, "random_weights": random}
            if random:
                warnings.append(RANDOM_CLIP_WARNING)
        if text:
            models["text"] = {"identity": self.kb.text_encoder.name}
        return {
            "task": task,
            "dataset": dataset.describe(),
            "settings": settings,
            "models": models,
            "warnings": warnings,
        }

    def _begin(self) -> float:
        """Start a task: embedding counts are per task, so reset them."""
        for side in self._sides.values():
            for one in side if isinstance(side, tuple) else (side,):
                one.stats = EmbedStats()
        return time.perf_counter()

    def _finish(self, result: EvalResult, began: float, **sides) -> EvalResult:  # noqa: ANN003
        for name, side in sides.items():
            if side is not None:
                result.throughput[f"{name}_embeddings"] = side.stats.to_dict()
        result.throughput["total_seconds"] = round(time.perf_counter() - began, 3)
        self.cache.save()
        return result

    def _prime_from_store(self, dataset: PairDataset) -> None:
        """Seed the cache with the store's CLIP image vectors when the configured CLIP made them."""
        import numpy as np
        from sqlalchemy import select

        from engine.store.schema import CLIP_IMAGE_SPACE, images

        store = self.kb.store
        clip = self.kb.clip_encoder()
        dim = store.get_meta(f"dim.{CLIP_IMAGE_SPACE}")
        if clip is None or dim is None or store.get_meta(f"model.{CLIP_IMAGE_SPACE}") != clip.identity:
            return
        wanted = set(dataset.content_hashes.values())
        with store.reading() as conn:
            rows = conn.execute(select(images.c.id, images.c.content_hash)).all()
        rows = [(i, h) for i, h in rows if h in wanted]
        vectors = store.read_vectors(CLIP_IMAGE_SPACE, [i for i, _ in rows], int(dim))
        present = np.linalg.norm(vectors, axis=1) > 0
        image, _ = self._clip_sides()
        self.cache.add(image.model, [h for (_, h), ok in zip(rows, present) if ok], vectors[present])
