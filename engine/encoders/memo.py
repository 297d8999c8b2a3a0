"""An encoder that remembers the vectors of the texts it has encoded, so a warm process never encodes a text twice."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

# 20,000 vectors of 384–512 floats: 30–40 MB, the sentences of a few thousand answers.
MAX_ENTRIES = 20_000


class Memo:
    """``encoder`` with its ``method`` (texts → one vector per text) memoised, least recently used first out.

    Everything else is the encoder's own. Asks in one process (``engine serve``) meet the same
    sentences and image descriptions again and again: asking the same question with another
    style or length, or a related one on the same topic. Vectors are a pure function of the text
    and the loaded model, so a remembered one is exactly what encoding again would give.
    """

    def __init__(self, encoder, method: str = "encode", max_entries: int = MAX_ENTRIES):  # noqa: ANN001 - any encoder
        self._encoder = encoder
        self._encode = getattr(encoder, method)
        self._max_entries = max_entries
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        setattr(self, method, self._memoised)

    def __getattr__(self, name: str):  # noqa: ANN204 - whatever the encoder has
        return getattr(self._encoder, name)

    def _memoised(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            known = {t: self._vectors[t] for t in dict.fromkeys(texts) if t in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = dict(zip(missing, self._encode(missing)))
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self._max_entries:
                    self._vectors.popitem(last=False)
            known.update(fresh)
        if not texts:
            return self._encode(texts)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)
