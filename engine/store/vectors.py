"""FAISS indexes as rebuildable caches of the vectors kept in SQLite.

Each index file holds (id, vector) pairs only; ids are SQLite row ids. A small JSON
sidecar (``<space>.faiss.json``) is the index's manifest: which file holds it, which
version of the database's vectors it reflects (so an up-to-date file opens without
comparing id sets), its kind, the search parameters tuned at build time and the recall
they measured. Files are written atomically (temp file, fsync, rename) and the manifest
last, so a crash leaves the old index or the new one, never half: a rebuilt index goes to
a new file, and only the manifest's rename makes it the current one.

Kinds (engine/ann/choice.py): ``flat`` (exact), ``hnsw`` and the IVF kinds. FAISS's HNSW
cannot remove vectors, so a removed one is marked dead and searched around (its graph
node stays until the next rebuild). The IVF kinds hold compressed vectors: their
candidates are re-scored from the exact float32 vectors in SQLite (``exact_vectors``),
so every kind returns exact cosine scores.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.ann.choice import FLAT, HNSW, IVF_PQ, IVF_SQ8, IndexChoice
from engine.store.atomic import atomic_path

# A filter that allows at most this many vectors is searched exactly, over those vectors
# alone: an ANN search filtered that hard would walk past most of what it finds. HNSW keeps
# its float32 vectors in memory, so its exact pass is cheap. The IVF kinds read theirs from
# SQLite, 900 of them in 18 ms at 1M passages, while their widened search (every list, the
# filter a bitmap) took 16 ms whatever the filter's size: past ~500 the widened search wins.
EXACT_FILTER_MAX = {FLAT: 0, HNSW: 20_000, IVF_SQ8: 500, IVF_PQ: 500}
# A filtered ANN search widens its effort by 1/selectivity, up to these caps.
MAX_EF_SEARCH = 2048


@dataclass
class IndexInfo:
    """What an index is and how well it finds what exact search finds (the manifest's ``info``)."""

    kind: str = FLAT
    factory: str = "Flat"
    params: dict = field(default_factory=dict)  # search parameters: efSearch | nprobe, refine
    recall_at_10: float | None = None  # measured at build time on the store's own vectors; exact: None
    recall_queries: int = 0
    built_vectors: int = 0  # how many vectors it was built (and tuned) for
    built_at: float | None = None
    build_seconds: float | None = None
    nlist: int = 0
    pq_bytes: int = 0
    target_recall: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "IndexInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def lossy(self) -> bool:
        return self.kind in (IVF_SQ8, IVF_PQ)


class VectorIndex:
    """An inner-product index (cosine on normalised vectors) keyed by int64 ids, of any kind."""

    def __init__(self, path: Path, dim: int, version: int = -1, index=None, info: IndexInfo | None = None,  # noqa: ANN001
                 file: str | None = None, dead: list[int] | None = None):
        import faiss

        self.path = path  # <root>/index/<space>.faiss: names the manifest
        self.dim = dim
        # Version of the database's vectors this index reflects; -1 means unknown.
        self.version = version
        self.info = info or IndexInfo()
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.file = file or path.name
        # Reads the exact float32 vectors of ids (the Store sets it): re-scoring and exact filtered search.
        self.exact_vectors: Callable[[np.ndarray], np.ndarray] | None = None
        self.dirty = False
        self._labels = np.zeros(0, np.int64)  # HNSW: position in the graph -> id
        self._alive = np.zeros(0, bool)  # HNSW: False for removed vectors
        if self.info.kind == HNSW:
            self._labels = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            self._alive = np.ones(len(self._labels), bool)
            if dead:
                self._alive[np.asarray(dead, np.int64)] = False

    # -- making and reading --------------------------------------------------------

    @classmethod
    def empty(cls, path: Path, dim: int, choice: IndexChoice, file: str | None = None) -> "VectorIndex":
        """A new, untrained index of ``choice``'s kind."""
        import faiss

        if choice.kind == FLAT:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif choice.kind == HNSW:
            from engine.ann.choice import HNSW_M

            index = faiss.IndexIDMap(faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT))
        else:
            index = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
            # Ten k-means rounds instead of 25: the lists barely move after that, and training is
            # the longest part of a build on two cores.
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            ivf.cp.niter = 10
            if isinstance(ivf, faiss.IndexIVFPQ):
                # index_factory turns on polysemous training: 30 s for 10⁴ vectors, for a
                # Hamming filter that search here never uses.
                ivf.do_polysemous_training = False
                ivf.pq.cp.niter = 10
        info = IndexInfo(kind=choice.kind, factory=choice.factory, nlist=choice.nlist, pq_bytes=choice.pq_bytes)
        return cls(path, dim, -1, index, info, file=file)

    @classmethod
    def load(cls, path: Path, dim: int) -> tuple["VectorIndex", str | None]:
        """Read the index the manifest beside ``path`` names; on a missing, unreadable or
        wrong-sized file return an empty exact index.

        Returns:
            The index and, when the file could not be used, the reason (else None).
        """
        import faiss

        manifest = read_manifest(path)
        file = manifest.get("file") or path.name
        target = path.with_name(file)
        if not target.exists():
            return cls(path, dim), None
        try:
            index = faiss.read_index(str(target))
        except RuntimeError as exc:
            return cls(path, dim), f"unreadable ({str(exc).splitlines()[0]})"
        if index.d != dim:
            return cls(path, dim), f"dimension {index.d} differs from the model's {dim}"
        info = IndexInfo.from_dict(manifest.get("info") or {})
        if info.kind == FLAT and not isinstance(faiss.downcast_index(index), faiss.IndexIDMap2):
            return cls(path, dim), "the manifest does not describe the file (written by another engine?)"
        version = manifest.get("version", -1)
        try:
            loaded = cls(path, dim, int(version) if isinstance(version, int) else -1, index, info, file, manifest.get("dead"))
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            return cls(path, dim), f"the manifest does not describe the file ({exc})"
        return loaded, None

    def train(self, sample: np.ndarray) -> None:
        if not self._index.is_trained:
            self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    # -- contents ------------------------------------------------------------------

    def __len__(self) -> int:
        if self.info.kind == HNSW:
            return int(self._alive.sum())
        return self._index.ntotal

    @property
    def dead(self) -> int:
        """Removed vectors still in the graph (HNSW only)."""
        return int(len(self._alive) - self._alive.sum()) if self.info.kind == HNSW else 0

    def ids(self) -> np.ndarray:
        import faiss

        if self.info.kind == HNSW:
            return self._labels[self._alive]
        if self.info.kind == FLAT:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = faiss.extract_index_ivf(self._index).invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
            for n in range(lists.nlist)
            if lists.list_size(n)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, ids)
        if self.info.kind == HNSW:
            self._labels = np.concatenate([self._labels, ids])
            self._alive = np.concatenate([self._alive, np.ones(len(ids), bool)])
        self.dirty = True

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.info.kind == HNSW:
            self._alive &= ~np.isin(self._labels, ids)
        else:
            self._index.remove_ids(ids)
        self.dirty = True

    # -- search --------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None, params: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row, best first; missing slots have id -1.

        ``allowed_ids`` restricts the search to those ids: a few are searched exactly, many
        by an ANN search widened by how few they are, so a narrow filter still gets its
        ``k`` best, not the global k minus misses. ``params`` overrides the tuned search
        parameters (tuning tries them this way).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        size = len(self)
        k = max(1, min(k, size))
        if size == 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        kind = self.info.kind
        if kind == FLAT:
            return self._search_flat(queries, k, allowed_ids)
        exact_source = kind == HNSW or self.exact_vectors is not None
        if allowed_ids is not None and len(allowed_ids) <= EXACT_FILTER_MAX[kind] and exact_source:
            return self._search_exactly_among(queries, k, allowed_ids)
        params = {**self.info.params, **(params or {})}
        widen = 1.0 if allowed_ids is None else size / max(len(allowed_ids), 1)
        fetch = k * int(params.get("refine", 1)) if self.info.lossy else k
        if kind == HNSW:
            scores, ids = self._search_hnsw(queries, fetch, allowed_ids, params, widen)
        else:
            scores, ids = self._search_ivf(queries, fetch, allowed_ids, params, widen)
        if self.info.lossy and self.exact_vectors is not None:
            scores, ids = self._rescore(queries, ids)
        return scores[:, :k], ids[:, :k]

    def _search_flat(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if allowed_ids is None:
            return self._index.search(queries, k)
        selector, keep = id_bitmap(allowed_ids)
        result = self._index.search(queries, k, params=faiss.SearchParameters(sel=selector))
        del keep  # the bitmap must outlive the search
        return result

    def _search_hnsw(self, queries, fetch, allowed_ids, params, widen):  # noqa: ANN001, ANN202
        import faiss

        inner = faiss.downcast_index(self._index.index)
        ef = int(min(max(params.get("efSearch", 64) * widen, fetch), max(MAX_EF_SEARCH, fetch)))
        mask = self._alive if allowed_ids is None else self._alive & np.isin(self._labels, allowed_ids)
        search_params = faiss.SearchParametersHNSW(efSearch=ef)
        keep = None
        if not mask.all():
            keep = np.packbits(mask, bitorder="little")
            search_params.sel = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(keep))
        scores, positions = inner.search(queries, fetch, params=search_params)
        del keep
        ids = np.where(positions >= 0, self._labels[np.maximum(positions, 0)], -1)
        return scores, ids

    def _search_ivf(self, queries, fetch, allowed_ids, params, widen):  # noqa: ANN001, ANN202
        import faiss

        nlist = faiss.extract_index_ivf(self._index).nlist
        nprobe = int(min(nlist, math.ceil(params.get("nprobe", 16) * widen)))
        ivf_params = faiss.SearchParametersIVF(nprobe=nprobe)
        keep = None
        if allowed_ids is not None:
            ivf_params.sel, keep = id_bitmap(allowed_ids)
        search_params = ivf_params
        if isinstance(faiss.downcast_index(self._index), faiss.IndexPreTransform):
            search_params = faiss.SearchParametersPreTransform()
            search_params.index_params = ivf_params
        result = self._index.search(queries, fetch, params=search_params)
        del keep
        return result

    def _search_exactly_among(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self.info.kind == HNSW:
            positions = np.flatnonzero(self._alive & np.isin(self._labels, allowed_ids))
            storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
            every = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dim).reshape(-1, self.dim)
            ids, vectors = self._labels[positions], every[positions]
        else:
            ids = np.unique(np.asarray(allowed_ids, np.int64))
            vectors = self.exact_vectors(ids)
            stored = np.any(vectors != 0, axis=1)  # ids without a stored vector come back as zeros
            ids, vectors = ids[stored], vectors[stored]
        return top_k(queries @ vectors.T, ids, k)

    def _rescore(self, queries: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores for the candidates in ``ids`` (per query), re-sorted."""
        wanted = np.unique(ids[ids >= 0])
        vectors = self.exact_vectors(wanted)
        row = {int(i): n for n, i in enumerate(wanted)}
        out_scores = np.full(ids.shape, -np.inf, np.float32)
        for q in range(len(queries)):
            picked = [j for j, i in enumerate(ids[q]) if i >= 0]
            if picked:
                exact = vectors[[row[int(ids[q, j])] for j in picked]] @ queries[q]
                out_scores[q, picked] = exact
        order = np.argsort(-out_scores, axis=1, kind="stable")
        scores = np.take_along_axis(out_scores, order, axis=1)
        ranked = np.take_along_axis(ids, order, axis=1)
        ranked[~np.isfinite(scores)] = -1
        return np.where(np.isfinite(scores), scores, 0.0).astype(np.float32), ranked

    # -- saving --------------------------------------------------------------------

    def save(self) -> None:
        """Write the index file, then the manifest naming it (both atomically)."""
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path.with_name(self.file)) as tmp:
            faiss.write_index(self._index, str(tmp))
        manifest = {
            "version": self.version,
            "count": len(self),
            "dim": self.dim,
            "file": self.file,
            "info": asdict(self.info),
            "dead": np.flatnonzero(~self._alive).tolist() if self.info.kind == HNSW else [],
            "saved_at": time.time(),
        }
        with atomic_path(_manifest_path(self.path)) as tmp:
            tmp.write_text(json.dumps(manifest))
        self.dirty = False


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``scores`` (ids padded with -1)."""
    n = len(scores)
    out_scores = np.zeros((n, k), np.float32)
    out_ids = np.full((n, k), -1, np.int64)
    if scores.shape[1] == 0:
        return out_scores, out_ids
    take = min(k, scores.shape[1])
    best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    best_scores = np.take_along_axis(scores, best, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    out_scores[:, :take] = np.take_along_axis(best_scores, order, axis=1)
    out_ids[:, :take] = ids[np.take_along_axis(best, order, axis=1)]
    return out_scores, out_ids


def id_bitmap(ids: np.ndarray):  # noqa: ANN201 - (faiss.IDSelectorBitmap, the bytes it reads)
    """A selector of ``ids`` as a bitmap: one bit per id up to the largest, O(1) per test.

    The caller keeps the returned array alive while FAISS searches with the selector.
    """
    import faiss

    ids = np.asarray(ids, np.int64)
    ids = ids[ids >= 0]
    mask = np.zeros(int(ids.max()) + 1 if len(ids) else 1, bool)
    mask[ids] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits


def read_manifest(path: Path) -> dict:
    """The manifest beside index ``path``; {} when missing or unreadable (then the index is rebuilt or reconciled)."""
    try:
        data = json.loads(_manifest_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")
