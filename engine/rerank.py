"""Optional cross-encoder reranking of the fused passages (off unless a model is configured)."""

from __future__ import annotations

import os
from functools import lru_cache

from engine.errors import ModelUnavailableError


@lru_cache(maxsize=2)
def load_reranker(name: str):  # noqa: ANN201 - sentence_transformers.CrossEncoder, imported lazily
    """A CrossEncoder from a local path or the local Hugging Face cache; never downloads."""
    from sentence_transformers import CrossEncoder

    location = os.path.expanduser(name)
    try:
        return CrossEncoder(location, device="cpu", local_files_only=True)
    except Exception as exc:  # any load failure means "unavailable", with the reason
        raise ModelUnavailableError(
            f"reranker {name!r} could not be loaded ({exc}); set ask.reranker to a local model folder, or empty to disable"
        ) from exc


def rerank_scores(name: str, query: str, passages: list[str]) -> list[float]:
    """The cross-encoder's relevance score of each passage for ``query`` (higher is better)."""
    if not passages:
        return []
    model = load_reranker(name)
    return [float(s) for s in model.predict([(query, p) for p in passages], batch_size=16, show_progress_bar=False)]
