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

Cost: one batched encoding of the probes and one FAISS search, whatever the store's size
(benchmarks/answers.py prints it). The result is a cache (``calibration.json``), measured
again when the text model changes or the number of passages has changed by a tenth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from engine.store.atomic import atomic_path
from engine.store.schema import TEXT_SPACE, chunks
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


def relevance_cutoff(store: Store, encoder) -> Calibration:  # noqa: ANN001 - engine.encoders.text.TextEncoder
    """The cached calibration, measured again when stale."""
    path = store.root / CACHE_FILE
    with store.reading() as conn:
        chunk_count = conn.execute(select(func.count()).select_from(chunks)).scalar_one()
    cached = _read(path)
    if cached is not None and not cached.stale(encoder.name, chunk_count):
        return cached
    calibration = calibrate(store, encoder, chunk_count)
    _write(path, calibration)
    return calibration


def calibrate(store: Store, encoder, chunk_count: int) -> Calibration:  # noqa: ANN001
    """Ask the probes; the chance level is the ``QUANTILE`` of their best dense scores."""
    probes = probe_questions()
    if chunk_count == 0:
        return Calibration(None, encoder.name, 0, len(probes))
    vectors = encoder.encode(probes)
    scores, ids = store.index(TEXT_SPACE, encoder.dim).search(vectors, 1)
    best = scores[ids[:, 0] >= 0, 0] if scores.size else np.zeros(0)
    if not len(best):
        return Calibration(None, encoder.name, chunk_count, len(probes))
    return Calibration(
        threshold=round(float(np.percentile(best, QUANTILE)), 4),
        model=encoder.name,
        chunks=chunk_count,
        probes=len(probes),
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
