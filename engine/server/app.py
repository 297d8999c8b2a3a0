"""The FastAPI app of ``engine serve``: one KnowledgeBase, loaded in the background at startup."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from engine.config import Config
from engine.kb import KnowledgeBase
from engine.server.errors import install_error_handlers
from engine.server.routes import router
from engine.server.warm import WarmKnowledgeBase


def create_app(config: Config, kb: KnowledgeBase | None = None) -> FastAPI:
    """The HTTP API over one knowledge base.

    Args:
        config: the settings (its store is the one served).
        kb: an open knowledge base to serve instead (its caller closes it); by default the app
            opens one from ``config`` and closes it at shutdown.

    Returns:
        FastAPI: at startup it loads the models in a background thread; until they are loaded,
        the /v1 routes answer 503.
    """
    owned = kb is None
    warm = WarmKnowledgeBase(kb if kb is not None else KnowledgeBase(config))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=warm.load, name="engine-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            loader.join()  # closing the store under a load in progress would break it
            if owned:
                warm.kb.close()

    app = FastAPI(
        title="engine",
        summary="A persistent multimodal knowledge base: ask with cited, illustrated answers.",
        version="1",
        lifespan=lifespan,
    )
    app.state.warm = warm
    install_error_handlers(app)
    app.include_router(router)
    return app
