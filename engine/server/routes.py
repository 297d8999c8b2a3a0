"""The API's routes: each one parses, calls one KnowledgeBase method, and returns its ``to_dict()``."""

from __future__ import annotations

from typing import Any, Mapping

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from engine.ask.request import AskRequest
from engine.errors import ConfigError
from engine.server.warm import WarmKnowledgeBase

router = APIRouter()
MAX_SEARCH_K = 100


def _warm(request: Request) -> WarmKnowledgeBase:
    return request.app.state.warm


@router.get("/healthz")
async def healthz() -> dict[str, bool]:
    """The process answers (it may still be loading: /v1 routes say 503 until it is ready)."""
    return {"ok": True}


@router.get("/v1/status")
def status(request: Request) -> JSONResponse:
    """What ``engine status --json`` prints."""
    with _warm(request).use() as kb:
        return JSONResponse(kb.status().to_dict())


@router.post("/v1/ask")
def ask(request: Request, body: dict[str, Any] = Body(..., examples=[{"question": "how is coffee roasted", "style": "brief"}])) -> JSONResponse:
    """An AskRequest as JSON (the fields and defaults of ``engine ask``'s flags) → the AskResult JSON."""
    ask_request = request_from_json(body)
    with _warm(request).use() as kb:
        return JSONResponse(kb.ask(ask_request).to_dict())


@router.get("/v1/search")
def search(
    request: Request,
    q: str = Query(..., min_length=1, description="The question or words to search for."),
    k: int | None = Query(None, ge=1, le=MAX_SEARCH_K, description="Passages to return (default: ask.k)."),
) -> JSONResponse:
    """The passages ``ask`` would retrieve, ranked, with their sources; no summary."""
    with _warm(request).use() as kb:
        return JSONResponse(kb.search(q, k).to_dict())


def request_from_json(body: Mapping[str, Any]) -> AskRequest:
    """An AskRequest from the JSON body; JSON of the wrong type is a ConfigError naming the field."""
    if not isinstance(body.get("question", ""), str):
        raise ConfigError(f"question must be a string, not {body['question']!r}")
    filters = body.get("filters")
    if filters is not None:
        if not isinstance(filters, Mapping):
            raise ConfigError(f"filters must be an object such as {{\"topic\": \"coffee\"}}, not {filters!r}")
        for name, value in filters.items():
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"filters.{name} must be a string, not {value!r}")
    else:
        body = {k: v for k, v in body.items() if k != "filters"}
    return AskRequest.from_mapping(body)
