"""Embeddings by content hash, so no image or text is embedded twice.

A key is the sha256 of the image file's bytes or of the text's UTF-8 bytes; vectors
are kept per model identity (CLIP model + weights, text model), so changing either
never serves a stale vector. With a folder the cache persists as one ``.npz`` per
model, rewritten atomically; an unreadable file is ignored and replaced.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from engine.store.atomic import atomic_path

FORMAT = 1


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bytes_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """In memory, and under ``folder`` when given (loaded per model on first use)."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else None
        self._vectors: dict[str, dict[str, np.ndarray]] = {}
        self._new: dict[str, int] = {}

    def lookup(self, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``."""
        stored = self._model(model)
        return {k: stored[k] for k in keys if k in stored}

    def add(self, model: str, keys: list[str], vectors: np.ndarray) -> None:
        stored = self._model(model)
        for key, vector in zip(keys, np.asarray(vectors, np.float32)):
            if key not in stored:
                stored[key] = vector
                self._new[model] = self._new.get(model, 0) + 1

    def __len__(self) -> int:
        return sum(len(v) for v in self._vectors.values())

    def save(self) -> list[Path]:
        """Write every model's file that gained vectors; return the files written."""
        if self.folder is None:
            return []
        written = []
        for model, count in list(self._new.items()):
            if not count:
                continue
            path = self._path(model)
            merged = {**_read(path, model), **self._vectors[model]}  # another run may have added some
            keys = sorted(merged)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(
                        f,
                        format=np.array(FORMAT),
                        model=np.array(model),
                        keys=np.array(keys),
                        vectors=np.stack([merged[k] for k in keys]).astype(np.float32),
                    )
            self._new[model] = 0
            written.append(path)
        return written

    def _model(self, model: str) -> dict[str, np.ndarray]:
        if model not in self._vectors:
            self._vectors[model] = _read(self._path(model), model) if self.folder is not None else {}
        return self._vectors[model]

    def _path(self, model: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[:60]
        return self.folder / f"{slug}-{hashlib.sha256(model.encode()).hexdigest()[:12]}.npz"


def _read(path: Path, model: str) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT or str(data["model"]) != model:
                return {}
            return dict(zip((str(k) for k in data["keys"]), data["vectors"]))
    except (OSError, ValueError, KeyError, EOFError):
        return {}  # damaged or foreign: recompute, and the next save replaces it
