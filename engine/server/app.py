"""The FastAPI app of ``engine serve``: one KnowledgeBase, loaded in the background at startup."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request

from engine.config import Config
from engine.errors import EngineError
from engine.kb import KnowledgeBase
from engine.server.errors import error_response, install_error_handlers
from engine.server.jobs import JobQueue
from engine.server.routes import router
from engine.server.routes_files import files_router
from engine.server.routes_jobs import router as jobs_router
from engine.server.security import Access, host_allowed
from engine.server.ui.routes import router as ui_router
from engine.server.warm import WarmKnowledgeBase
from engine.server.watch import WatchScheduler


def create_app(
    config: Config, kb: KnowledgeBase | None = None, access: Access | None = None, watch_every: float | None = None
) -> FastAPI:
    """The HTTP API over one knowledge base.

    Args:
        config: the settings (its store is the one served).
        kb: an open knowledge base to serve instead (its caller closes it); by default the app
            opens one from ``config`` and closes it at shutdown.
        access: the write token and whether it listens on loopback (default: from ``serve.host``
            and the variable ``serve.token_env`` names).
        watch_every: crawl every stored topic again this many seconds after its last round,
            as index jobs (``engine serve --watch``); None: only the jobs clients submit.

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

        def shared_encoders():  # noqa: ANN202 - (TextEncoder, ClipEncoder | None)
            loader.join()  # a job uses the models the reader loads, so they load once
            if warm.failure is not None:
                raise EngineError(f"the knowledge base failed to load: {warm.failure}")
            with warm.use() as reader:
                return reader.text_encoder, reader.clip_encoder()

        app.state.jobs = JobQueue(config, shared_encoders)
        watch = WatchScheduler(app.state.jobs, watch_every).start() if watch_every else None
        try:
            yield
        finally:
            if watch is not None:
                watch.close()
            app.state.jobs.close()
            loader.join()  # closing the store under a load in progress would break it
            if owned:
                warm.kb.close()

    app = FastAPI(
        title="engine",
        summary="A persistent multimodal knowledge base: ask with cited, illustrated answers.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by engine.server.ui.docs from the swagger-ui-bundle package, not a CDN
    )
    app.state.warm = warm
    app.state.access = access or Access.for_bind(config.serve.host, config.serve)
    install_error_handlers(app)

    @app.middleware("http")
    async def refuse_foreign_hosts(request: Request, call_next):  # noqa: ANN001, ANN202
        if not host_allowed(app.state.access, request.headers.get("host", "")):
            detail = f"this server answers requests to localhost only, not to Host {request.headers.get('host', '')!r}"
            return error_response(421, "Misdirected Request", detail)
        return await call_next(request)

    app.include_router(router)
    app.include_router(jobs_router)
    app.include_router(files_router())
    app.include_router(ui_router)
    return app
