"""The optional cross-encoder that reranks fused passages (off unless ask.reranker names a model)."""

from __future__ import annotations

import os
from functools import cached_property

from engine.errors import ModelUnavailableError


class Reranker:
    """A sentence-transformers CrossEncoder from a local folder or the local cache; never downloads.

    Args:
        name: the model's folder or cached name (``ask.reranker``).
    """

    def __init__(self, name: str):
        self.name = name

    @cached_property
    def model(self):  # noqa: ANN201 - sentence_transformers.CrossEncoder, imported lazily
        from sentence_transformers import CrossEncoder

        try:
            return CrossEncoder(os.path.expanduser(self.name), device="cpu", local_files_only=True)
        except Exception as exc:  # any load failure means "unavailable", with the reason
            raise ModelUnavailableError(
                f"reranker {self.name!r} could not be loaded ({exc}); set ask.reranker to a local model folder, or empty to disable"
            ) from exc

    def scores(self, query: str, passages: list[str]) -> list[float]:
        """The cross-encoder's relevance score of each passage for ``query`` (higher is better)."""
        if not passages:
            return []
        return [float(s) for s in self.model.predict([(query, p) for p in passages], batch_size=16, show_progress_bar=False)]
