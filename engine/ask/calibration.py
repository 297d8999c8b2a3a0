"""The relevance test's chance level, measured on each store with questions about other things.

A fixed cosine threshold means different things for different models and stores: a bigger
or broader store has a closer passage for *any* question. So the store is asked the probe
questions in ``probes.txt`` — 150 ordinary questions spread over 60 everyday subjects,
phrased the way people ask — and the chance level is the ``QUANTILE`` of their best
passage scores: what a question the store was not built for typically reaches here.

Why this sample: it has the form of real questions (short, interrogative) and subjects
chosen independently of the store, which pseudo-questions cut from the store's own text
have not. Those (the first version of this module) are long and lexically dense, and
their "unrelated" pairs had to be guessed from topics: a near-duplicate or syndicated
copy of a page counted as unrelated to it and pushed the cutoff to 0.72, refusing most
answerable questions. The probes need no guess. Near-duplicates, documents without a
topic, one-topic stores, tiny and large stores change the probes' scores only as they
change any unanswerable question's score — which is what the chance level must follow.
A store that happens to answer a few probes moves a 90th percentile little: no subject
has more than 4 of the 150.

Cost: one FAISS search of the probes, whatever the store's size (the KnowledgeBase encodes
the probes once per process). The result is a cache (``calibration.json``), measured again
when the text model changes or the number of passages has changed by a tenth — cheap enough
to follow a store that grows while it is asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from engine.store.atomic import atomic_path
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store

PROBES = Path(__file__).with_name("probes.txt")
QUANTILE = 90.0
CACHE_FILE = "calibration.json"
# The cache is measured again once the store has grown or shrunk by this share.
STALE_CHANGE = 0.1
VERSION = 2  # a cache of another version (e.g. the pseudo-question calibration) is measured again


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: an empty store, nothing to calibrate from
    model: str
    chunks: int  # passage count when measured
    probes: int
    probe_median: float | None = None  # the probes' median best score, for `--explain` and benchmarks
    version: int = VERSION

    def stale(self, model: str, chunk_count: int) -> bool:
        changed = abs(chunk_count - self.chunks) > STALE_CHANGE * max(self.chunks, 1)
        return self.version != VERSION or model != self.model or changed


def relevance_cutoff(store: Store, model: str, probe_vectors: Callable[[], np.ndarray]) -> Calibration:
    """The cached calibration, measured again when stale.

    Args:
        model: the text model's name (a calibration belongs to one model).
        probe_vectors: the probes encoded by that model, asked for only when measuring.
    """
    path = store.root / CACHE_FILE
    # The passages with a text vector, as the loaded index counts them: a count(*) over the
    # chunks table took tens of milliseconds per question at a million passages.
    dim = store.get_meta(f"dim.{TEXT_SPACE}")
    chunk_count = len(store.index(TEXT_SPACE, int(dim))) if dim else 0
    cached = _read(path)
    if cached is not None and not cached.stale(model, chunk_count):
        return cached
    calibration = calibrate(store, model, probe_vectors(), chunk_count)
    _write(path, calibration)
    return calibration


def calibrate(store: Store, model: str, probe_vectors: np.ndarray, chunk_count: int) -> Calibration:
    """Ask the probes; the chance level is the ``QUANTILE`` of their best dense scores."""
    if chunk_count == 0:
        return Calibration(None, model, 0, len(probe_vectors))
    scores, ids = store.index(TEXT_SPACE, probe_vectors.shape[1]).search(probe_vectors, 1)
    best = scores[ids[:, 0] >= 0, 0] if scores.size else np.zeros(0)
    if not len(best):
        return Calibration(None, model, chunk_count, len(probe_vectors))
    return Calibration(
        threshold=round(float(np.percentile(best, QUANTILE)), 4),
        model=model,
        chunks=chunk_count,
        probes=len(probe_vectors),
        probe_median=round(float(np.median(best)), 4),
    )


def probe_questions() -> list[str]:
    lines = (line.strip() for line in PROBES.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _read(path: Path) -> Calibration | None:
    try:
        return Calibration(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # missing or from another version: measure again


def _write(path: Path, calibration: Calibration) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(calibration)))
    except OSError:
        pass  # a read-only store still answers; it just measures again next time
