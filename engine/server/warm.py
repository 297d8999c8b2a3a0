"""One KnowledgeBase, loaded once in the background and used by one request at a time."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from starlette.exceptions import HTTPException

from engine.kb import KnowledgeBase

log = logging.getLogger("engine.server")
RETRY_AFTER_S = "5"


class WarmKnowledgeBase:
    """``kb`` behind a lock, with its models loaded by :meth:`load` before the first request uses it.

    Why a lock and not parallel asks: the KnowledgeBase builds its parts on first use and reloads
    FAISS indexes when the store changes, neither of which is safe across threads, and an ask is
    CPU-bound (torch and FAISS already use every core), so two at once would not finish sooner.
    Routes are plain ``def`` functions, so FastAPI runs them in its threadpool: requests queue on
    the lock there while the event loop stays free for ``/healthz`` and the 503s of a loading server.
    """

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self.failure: str | None = None

    def load(self) -> None:
        """Load everything an ask uses (store, text model, CLIP, FAISS index, calibration) by asking once."""
        try:
            with self._lock:
                self.kb.ask("warm up", remember=False)
        except Exception as exc:  # noqa: BLE001 - any failure is reported by every request until restart
            log.exception("the knowledge base failed to load")
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._loaded.set()

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self.failure is None

    @contextmanager
    def use(self) -> Iterator[KnowledgeBase]:
        """The knowledge base, for this request alone.

        Raises:
            HTTPException: 503 while it is loading, or when loading failed (with the reason).
        """
        if not self._loaded.is_set():
            raise HTTPException(503, "the knowledge base is loading; try again shortly", {"Retry-After": RETRY_AFTER_S})
        if self.failure is not None:
            raise HTTPException(503, f"the knowledge base failed to load: {self.failure}")
        with self._lock:
            yield self.kb
