"""FAISS indexes as rebuildable caches of the vectors kept in SQLite.

Each index file holds (id, vector) pairs only; ids are SQLite row ids. A small JSON
sidecar records which version of the database's vectors the file reflects, so an
up-to-date file opens without comparing id sets. Files are replaced atomically
(temp file, fsync, rename): a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.store.atomic import atomic_path


class VectorIndex:
    """An exact inner-product index (cosine on normalised vectors) keyed by int64 ids."""

    def __init__(self, path: Path, dim: int, version: int = -1, index=None):  # noqa: ANN001
        import faiss

        self.path = path
        self.dim = dim
        # Version of the database's vectors this index reflects; -1 means unknown.
        self.version = version
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.dirty = False

    @classmethod
    def load(cls, path: Path, dim: int) -> tuple["VectorIndex", str | None]:
        """Read ``path``; on a missing, unreadable or wrong-sized file return an empty index.

        Returns:
            The index and, when the file could not be used, the reason (else None).
        """
        import faiss

        if not path.exists():
            return cls(path, dim), None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            return cls(path, dim), f"unreadable ({str(exc).splitlines()[0]})"
        if index.d != dim:
            return cls(path, dim), f"dimension {index.d} differs from the model's {dim}"
        version = -1
        try:
            version = int(json.loads(_sidecar(path).read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return cls(path, dim, version, index), None

    def __len__(self) -> int:
        return self._index.ntotal

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self.dirty = True

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        self.dirty = True

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row; missing slots have id -1.

        ``allowed_ids`` restricts the search to those ids (a filter applied inside
        FAISS, so a narrow filter still gets its ``k`` best, not the global k minus misses).
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(k, len(self)))
        if len(self) == 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        if allowed_ids is None:
            return self._index.search(queries, k)
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
        return self._index.search(queries, k, params=faiss.SearchParameters(sel=selector))

    def save(self) -> None:
        """Write the index and its sidecar atomically."""
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            faiss.write_index(self._index, str(tmp))
        sidecar = {"version": self.version, "count": len(self), "dim": self.dim}
        with atomic_path(_sidecar(self.path)) as tmp:
            tmp.write_text(json.dumps(sidecar))
        self.dirty = False


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")
