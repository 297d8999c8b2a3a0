"""The UI's pages: each parses its query, calls the KnowledgeBase method its /v1 twin calls, and renders that JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

from engine.ask.request import STYLES, AskRequest
from engine.errors import ConfigError
from engine.server.ui import docs, index_pages
from engine.server.ui.render import HERE, answer_view, page
from engine.server.warm import WarmKnowledgeBase

router = APIRouter(include_in_schema=False)
router.include_router(docs.router)
router.include_router(index_pages.router)
STATIC = {"style.css": "text/css", "icon.svg": "image/svg+xml"}


def _warm(request: Request) -> WarmKnowledgeBase:
    return request.app.state.warm


@router.get("/")
def ask_page(
    request: Request, q: str = "", style: str = "", max_sentences: str = "", max_images: str = "", new: str = ""
) -> HTMLResponse:
    """The question box; with ``q``, the answer, rendered here so the URL can be shared and JavaScript is not needed.
    ``new=1``: only what the store learned since the question was last asked (`engine ask --new`)."""
    defaults = _warm(request).kb.config.ask
    form = {"q": q, "style": style or defaults.style, "max_sentences": max_sentences, "max_images": max_images, "new": bool(new)}
    context = {"form": form, "styles": list(STYLES), "defaults": defaults}
    if not q.strip():
        return page("ask.html", **context)
    try:
        ask = AskRequest(
            q,
            style=style or None,
            max_sentences=_whole("max_sentences", max_sentences),
            max_images=_whole("max_images", max_images),
            new=bool(new),
        )
        with _warm(request).use() as kb:
            result = kb.ask(ask)
    except ConfigError as exc:
        return page("ask.html", 400, error=str(exc), **context)
    except HTTPException as exc:
        return unavailable("ask.html", exc, **context)
    return page("ask.html", **context, **answer_view(result))


@router.get("/status")
def status_page(request: Request) -> HTMLResponse:
    """What is stored, per topic, with the crawl schedule and errors: the JSON of /v1/status."""
    try:
        with _warm(request).use() as kb:
            report = kb.status().to_dict()
    except HTTPException as exc:
        return unavailable("status.html", exc, report=None)
    return page("status.html", report=report)


@router.get("/ui/{name}")
def static(name: str) -> FileResponse:
    """The UI's style sheet and icon (a fixed list: no other path can be read)."""
    if name not in STATIC:
        raise HTTPException(404, f"no such file: {name}")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})


def unavailable(template: str, exc: HTTPException, **context) -> HTMLResponse:  # noqa: ANN003 - the template's
    """``template`` with the error of a knowledge base that is loading (refreshing itself) or failed to load."""
    retry = (exc.headers or {}).get("Retry-After")  # only while loading: a failed load stays failed
    return page(template, exc.status_code, exc.headers, error=str(exc.detail), refresh=retry, **context)


def _whole(name: str, value: str) -> int | None:
    """A whole-number query parameter; empty means the configured default."""
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
