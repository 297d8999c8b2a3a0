"""`engine ask --server` and `engine status --server`: the same request sent to `engine serve`, the same result back.

Only the standard library's HTTP client and the result dataclasses load here, never a model
library: the point of a server is that the CLI's answer costs a request, not a model load.
(httpx, which the crawler uses, would add 0.1–0.35 s of imports to every call.)
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape

from engine.ask.request import AskRequest
from engine.config import ServeConfig
from engine.results import ASK_SCHEMA_VERSION, AskResult, StatusReport

# An ask may wait behind others on the server (it answers one at a time).
TIMEOUT_S = 300.0


class RemoteError(Exception):
    """A request to the server failed; ``name`` is the error's name (the server's own, when it sent one)."""

    def __init__(self, name: str, message: str, status: int | None = None):
        super().__init__(message)
        self.name = name
        self.status = status


class RemoteKnowledgeBase:
    """The KnowledgeBase methods the CLI calls, answered by ``engine serve`` at ``url``.

    Args:
        url: the server, e.g. http://127.0.0.1:8000 (``http://`` is assumed without a scheme).
        token: a bearer token to send (reads need none; sent if given, harmlessly).
    """

    notices: tuple[str, ...] = ()  # the server reports its notices inside each result

    def __init__(self, url: str, token: str | None = None):
        self.url = server_url(url)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __enter__(self) -> "RemoteKnowledgeBase":
        return self

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        pass  # one connection per request: nothing stays open

    def ask(self, request: AskRequest) -> AskResult:
        answer = self._call("POST", "/v1/ask", request.to_dict())
        if answer.get("schema_version") != ASK_SCHEMA_VERSION:
            raise RemoteError(
                "ServerError",
                f"{self.url} answers in schema version {answer.get('schema_version')!r} and this engine reads "
                f"version {ASK_SCHEMA_VERSION}; use the same engine version on both sides",
            )
        return self._read(AskResult.from_dict, answer)

    def image_bytes(self, image_id: int) -> tuple[bytes, str] | None:
        """A stored image's thumbnail and its content type, for an HTML answer; None when the server has none."""
        try:
            with self._open("GET", f"/v1/images/{int(image_id)}?size=thumb") as response:
                return response.read(), response.headers.get_content_type()
        except (OSError, urllib.error.URLError):  # HTTPError is one too
            return None

    def status(self) -> StatusReport:
        return self._read(StatusReport.from_dict, self._call("GET", "/v1/status"))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict:
        """The JSON the server answers ``method path`` with; its errors and a failed connection as RemoteError."""
        status = None
        try:
            with self._open(method, path, body) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except (TimeoutError, socket.timeout):
            raise RemoteError("ServerTimeout", f"{self.url} did not answer within {TIMEOUT_S:.0f} s") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteError("ServerUnavailable", f"cannot reach {self.url} ({_reason(exc)}); start it with `engine serve`") from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if 200 <= status < 300 and isinstance(answer, dict):
            return answer
        if isinstance(answer, dict) and {"error", "detail"} <= answer.keys():
            raise RemoteError(str(answer["error"]), str(answer["detail"]), status)
        raise RemoteError(
            "ServerError",
            f"{self.url}{path} answered HTTP {status} with something other than the engine's JSON "
            f"({text[:120]!r}); is `engine serve` what listens there?",
            status,
        )

    def _open(self, method: str, path: str, body: dict[str, Any] | None = None):  # noqa: ANN202 - an HTTP response
        data = None if body is None else json.dumps(body).encode()
        headers = {**self._headers, **({"Content-Type": "application/json"} if data is not None else {})}
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - server_url allows http(s) only

    def _read(self, parse, body: dict):  # noqa: ANN001, ANN202 - a from_dict and what it makes
        try:
            return parse(body)
        except (KeyError, TypeError) as exc:
            raise RemoteError("ServerError", f"{self.url} answered with JSON this engine cannot read ({exc!r})") from None


def server_url(url: str) -> str:
    """``url`` with a scheme and no trailing slash; raises RemoteError (a usage error) unless it is http(s)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise RemoteError("ConfigError", f"--server {url!r} is not an http(s) URL such as http://127.0.0.1:8000", 400)
    return url


@contextmanager
def remote_knowledge_base(url: str, err: Console) -> Iterator[RemoteKnowledgeBase]:
    """The server at ``url``; its errors become the CLI's `Name: message` line and exit code (2 for a 400)."""
    try:
        with RemoteKnowledgeBase(url, os.environ.get(ServeConfig.token_env) or None) as kb:
            yield kb
    except RemoteError as exc:
        err.print(f"[bold red]{escape(exc.name)}[/]: {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(2 if exc.status == 400 else 1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _reason(exc: OSError) -> str:
    """The operating system's words for it ("connection refused"), else the exception's."""
    reason = getattr(exc, "reason", exc)  # a URLError wraps the socket's error
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason) or type(exc).__name__
