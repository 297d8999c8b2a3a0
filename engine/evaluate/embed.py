"""Batched, cached embedding of evaluation images and texts, with throughput counts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import InputError
from engine.evaluate.cache import EmbeddingCache, bytes_key, text_key
from engine.results import Progress


@dataclass
class EmbedStats:
    computed: int = 0
    from_cache: int = 0
    seconds: float = 0.0  # spent in the encoder

    @property
    def per_second(self) -> float | None:
        return self.computed / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        rate = self.per_second
        return {
            "computed": self.computed,
            "from_cache": self.from_cache,
            "encoder_seconds": round(self.seconds, 3),
            "per_second": None if rate is None else round(rate, 2),
        }


class _CachedSide:
    """Inputs → unit vectors through ``encode``, each distinct input (by key) embedded once."""

    def __init__(
        self,
        model: str,
        encode: Callable[[list], np.ndarray],
        cache: EmbeddingCache,
        batch: int,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        self.model = model
        self._encode = encode
        self.cache = cache
        self.batch = batch
        self.on_progress = on_progress
        self.stats = EmbedStats()

    def _embed(self, keys: list[str], load: Callable[[str], object], label: str) -> np.ndarray:
        """Vectors for ``keys`` in order: from the cache, else ``encode([load(key), ...])`` in batches."""
        found = self.cache.lookup(self.model, list(dict.fromkeys(keys)))
        self.stats.from_cache += len(found)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        for start in range(0, len(missing), self.batch):
            batch = missing[start : start + self.batch]
            inputs = [load(k) for k in batch]
            began = time.perf_counter()
            vectors = self._encode(inputs)
            self.stats.seconds += time.perf_counter() - began
            self.stats.computed += len(batch)
            self.cache.add(self.model, batch, vectors)
            found.update(zip(batch, vectors))
            if self.on_progress:
                self.on_progress(Progress(start + len(batch), len(missing), label))
        return _stack(found, keys)


class TextSide(_CachedSide):
    """Texts → unit vectors through ``encode``; each distinct text is embedded once."""

    def __init__(
        self,
        model: str,
        encode: Callable[[list[str]], np.ndarray],
        cache: EmbeddingCache,
        batch: int = 256,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        super().__init__(model, encode, cache, batch, on_progress)

    def vectors(self, texts: list[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        return self._embed(keys, dict(zip(keys, texts)).__getitem__, f"texts ({self.model})")


class ImageSide(_CachedSide):
    """Image files → unit vectors through a CLIP encoder, keyed by the files' bytes."""

    def __init__(
        self,
        model: str,
        encode: Callable[[list], np.ndarray],
        cache: EmbeddingCache,
        batch: int = 32,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        super().__init__(model, encode, cache, batch, on_progress)
        self._keys: dict[Path, str] = {}

    def keys(self, paths: list[Path], where: dict[Path, str] | None = None) -> list[str]:
        """Content hashes of the files (read once per path)."""
        for path in paths:
            if path not in self._keys:
                try:
                    self._keys[path] = bytes_key(path.read_bytes())
                except OSError as exc:
                    raise InputError(_name(path, where), f"cannot be read: {exc.strerror or exc}") from exc
        return [self._keys[p] for p in paths]

    def vectors(self, paths: list[Path], where: dict[Path, str] | None = None) -> np.ndarray:
        keys = self.keys(paths, where)
        path_of = dict(zip(keys, paths))
        return self._embed(keys, lambda key: _open(path_of[key], where), "images")


def _stack(found: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
    if not keys:
        return np.zeros((0, 0), np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)


def _name(path: Path, where: dict[Path, str] | None) -> str:
    return f"{where[path]}: {path}" if where and path in where else str(path)


def _open(path: Path, where: dict[Path, str] | None):  # noqa: ANN202 - PIL image
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(_name(path, where), f"cannot be decoded as an image: {exc}") from exc
