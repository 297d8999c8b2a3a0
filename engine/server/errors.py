"""Every error as JSON ``{"error": name, "detail": message}`` with its status; no traceback leaves the server."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.errors import ConfigError, EngineError

log = logging.getLogger("engine.server")


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map HTTP errors, request validation, engine errors and anything unexpected to JSON."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        reason = HTTPStatus(exc.status_code).phrase
        detail = str(exc.detail)
        if exc.status_code in (404, 405) and detail == reason:  # from routing: say which request
            detail = f"{reason.lower()}: {request.method} {request.url.path} (the API is described at /docs)"
        return error_response(exc.status_code, reason, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "RequestValidationError", "; ".join(_describe(e) for e in exc.errors()))

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        # A ConfigError from a request is the client's mistake, and its message names the field.
        status = 400 if isinstance(exc, ConfigError) else 500
        if status == 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(status, type(exc).__name__, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "Internal Server Error", "the server failed to answer; its log has the details")


def _describe(error: dict) -> str:
    """``query parameter k: Input should be ...``: where the bad value is, then what is wrong."""
    where, *field = error.get("loc", ()) or ("request",)
    name = ".".join(str(part) for part in field)
    place = {"query": "query parameter", "body": "body field", "path": "path parameter"}.get(where, str(where))
    if where == "body" and not name:
        place = "request body"
    return f"{place} {name}: {error.get('msg', 'invalid')}".replace(" :", ":")
