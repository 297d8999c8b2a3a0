"""Which FAISS index a vector space gets, from its size and a memory budget.

The rules follow autofaiss's (without depending on it: it pins numpy<2):

- below ``exact_below`` vectors: exact search (``IndexFlatIP``). A flat scan of 10⁴ vectors
  takes about a millisecond, and exact needs no training and no tuning;
- while the float32 vectors plus an HNSW graph fit the budget: ``HNSW32,Flat``. The best
  recall for its speed, and the vectors it holds are exact, so scores need no re-reading;
- beyond: an inverted file (IVF, ``nlist`` ≈ 4·√n lists, a power of two), whose vectors are
  compressed to fit: 8-bit scalar quantisation (SQ8, a quarter of float32, nearly lossless)
  when that fits, else product quantisation (PQ) with the most bytes per vector that fit.
  Compressed scores are re-scored from the exact float32 vectors kept in SQLite, which is
  also why PQ has no OPQ rotation here: re-scoring recovers most of what OPQ would, and
  OPQ's training took minutes for ten thousand vectors on two cores.

The budget is per vector space (``index.memory_budget``); the estimate is what FAISS holds
in memory (codes, graph, ids, centroids), which is also about the index file's size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.errors import ConfigError

HNSW_M = 32  # neighbours per node: autofaiss's choice, a good recall/memory balance at 384–768 dims
ID_BYTES = 8  # one int64 id per vector (the IVF lists' ids, HNSW's id map)
# Kinds, cheapest to build first. The names are what `engine status` shows.
FLAT, HNSW, IVF_SQ8, IVF_PQ = "flat", "hnsw", "ivf-sq8", "ivf-pq"
# PQ bytes per vector, largest first; each must divide the dimension.
PQ_BYTES = (64, 48, 32, 24, 16, 8)
# An IVF list trains on at least this many vectors (FAISS warns below 39 per centroid).
TRAIN_PER_LIST = 40
MIN_NLIST, MAX_NLIST = 64, 65536


@dataclass(frozen=True)
class IndexChoice:
    """A kind of index and its build parameters, for a given size."""

    kind: str
    factory: str  # the FAISS index_factory string
    vectors: int  # the size it was chosen for
    memory_bytes: int  # estimated memory at that size
    nlist: int = 0  # IVF lists
    pq_bytes: int = 0  # PQ bytes per vector
    over_budget: bool = False  # even the smallest kind does not fit the budget

    @property
    def lossy(self) -> bool:
        """Whether its scores are approximate, so candidates are re-scored from the exact vectors."""
        return self.kind in (IVF_SQ8, IVF_PQ)

    @property
    def train_size(self) -> int:
        """How many sample vectors training needs (0: no training)."""
        if self.kind in (IVF_SQ8, IVF_PQ):
            # PQ's codebooks want ~256 points per centroid of each sub-quantiser too.
            return max(TRAIN_PER_LIST * self.nlist, 256 * 40 if self.kind == IVF_PQ else 0)
        return 0


def choose(vectors: int, dim: int, budget_bytes: int, exact_below: int) -> IndexChoice:
    """The index kind for ``vectors`` vectors of ``dim`` dimensions within ``budget_bytes``."""
    if vectors < exact_below:
        return IndexChoice(FLAT, "Flat", vectors, memory_of(FLAT, vectors, dim))
    hnsw = memory_of(HNSW, vectors, dim)
    if hnsw <= budget_bytes:
        return IndexChoice(HNSW, f"HNSW{HNSW_M},Flat", vectors, hnsw)
    nlist = ivf_lists(vectors)
    sq8 = memory_of(IVF_SQ8, vectors, dim, nlist)
    if sq8 <= budget_bytes:
        return IndexChoice(IVF_SQ8, f"IVF{nlist},SQ8", vectors, sq8, nlist=nlist)
    fitting = [m for m in PQ_BYTES if dim % m == 0]
    if not fitting:
        raise ConfigError(f"no product quantiser divides the dimension {dim}")
    for m in fitting:
        size = memory_of(IVF_PQ, vectors, dim, nlist, m)
        if size <= budget_bytes:
            return IndexChoice(IVF_PQ, f"IVF{nlist},PQ{m}", vectors, size, nlist=nlist, pq_bytes=m)
    m = fitting[-1]
    size = memory_of(IVF_PQ, vectors, dim, nlist, m)
    return IndexChoice(IVF_PQ, f"IVF{nlist},PQ{m}", vectors, size, nlist=nlist, pq_bytes=m, over_budget=True)


def memory_of(kind: str, vectors: int, dim: int, nlist: int = 0, pq_bytes: int = 0) -> int:
    """Bytes an index of ``kind`` holds in memory for ``vectors`` vectors (about its file's size too)."""
    if kind == FLAT:
        return vectors * (4 * dim + ID_BYTES)
    if kind == HNSW:
        # Float32 vectors, 2·M int32 links at level 0 (upper levels add ~1/M of that), the id
        # map, and per-node level bookkeeping.
        return int(vectors * (4 * dim + 2 * HNSW_M * 4 * (1 + 1 / HNSW_M) + ID_BYTES + 16))
    centroids = nlist * dim * 4
    if kind == IVF_SQ8:
        return vectors * (dim + ID_BYTES) + centroids
    return vectors * (pq_bytes + ID_BYTES) + centroids


def ivf_lists(vectors: int) -> int:
    """About 4·√n lists, a power of two, each with enough vectors to train on.

    Measured at 1M passages (benchmarks/scale.py data): 4096 lists reach recall@10 0.955 scanning
    an eighth of them in 10.7 ms; 2048 lists need 0.965 at 16.6 ms (a fifth), for a training
    that is 30 s shorter.
    """
    wanted = 2 ** round(math.log2(max(4 * math.sqrt(vectors), 1)))
    trainable = 2 ** int(math.log2(max(vectors // TRAIN_PER_LIST, 1)))
    return int(min(max(min(wanted, trainable), MIN_NLIST), MAX_NLIST))


def rebuild_reason(kind: str, built_for: int, vectors: int, dim: int, budget_bytes: int, exact_below: int, dead: int = 0) -> str | None:
    """Why an index of ``kind`` built for ``built_for`` vectors should be rebuilt now that it holds ``vectors``.

    None when it is still right. Boundaries have slack (a store hovering around one does
    not rebuild back and forth): an index moves to a bigger kind once its size calls for
    one, and back to a smaller kind only once the store has shrunk to half that size.
    """
    wanted = choose(vectors, dim, budget_bytes, exact_below)
    order = (FLAT, HNSW, IVF_SQ8, IVF_PQ)
    if kind not in order:
        return f"unknown index kind {kind!r}"
    if order.index(wanted.kind) > order.index(kind):
        return f"{vectors} vectors call for {wanted.kind} (now {kind})"
    if order.index(wanted.kind) < order.index(kind):
        smaller = choose(vectors * 2, dim, budget_bytes, exact_below)
        if order.index(smaller.kind) < order.index(kind):
            return f"the space shrank to {vectors} vectors: {smaller.kind} suffices"
    if kind in (IVF_SQ8, IVF_PQ) and vectors > 4 * max(built_for, 1):
        return f"its {built_for}-vector lists now hold {vectors} vectors (more lists needed)"
    if kind == HNSW and dead > 0.2 * max(vectors, 1):
        return f"{dead} removed vectors still take space in the graph"
    return None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str) -> int:
    """Bytes in "512MB", "1.5GB", "2g" or a plain number of bytes (binary units)."""
    found = _SIZE.match(str(value))
    if not found:
        raise ConfigError(f"index.memory_budget must be a size like 512MB or 2GB, not {value!r}")
    return int(float(found.group(1)) * _UNIT[found.group(2).lower()])
