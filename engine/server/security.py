"""Who may reach the server: where it listens, which Host names it answers, who may write."""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping

from fastapi import Request
from starlette.exceptions import HTTPException

from engine.config import ServeConfig
from engine.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine; a host name other than localhost counts as not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServeConfig, env: Mapping[str, str] | None = None) -> None:
    """Refuse a non-loopback ``host`` unless the token variable (``serve.token_env``) is set.

    Raises:
        ConfigError: naming the variable and the setting.
    """
    env = os.environ if env is None else env
    if is_loopback(host) or env.get(settings.token_env, "").strip():
        return
    raise ConfigError(
        f"refusing to listen on {host}, which is not a loopback address, without an API token: "
        f"set the environment variable {settings.token_env} (named by serve.token_env) to a secret, "
        f"or listen on 127.0.0.1"
    )


@dataclass(frozen=True)
class Access:
    """Who may do what: the bearer token writes need (None: writes are open, loopback only),
    and whether the server listens on loopback, where Host headers are checked against rebinding."""

    token: str | None
    loopback: bool

    @classmethod
    def for_bind(cls, host: str, settings: ServeConfig, env: Mapping[str, str] | None = None) -> "Access":
        env = os.environ if env is None else env
        return cls(token=env.get(settings.token_env, "").strip() or None, loopback=is_loopback(host))


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def host_allowed(access: Access, host_header: str) -> bool:
    """On loopback, only requests addressed to a loopback name: a web page that re-points its own
    domain at 127.0.0.1 (DNS rebinding) must not read or write the knowledge base."""
    if not access.loopback:
        return True
    name = host_header.strip().lower()
    if name.startswith("["):
        name = name.split("]")[0] + "]"
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name in LOOPBACK_NAMES or name.startswith("127.")


def write_refusal(access: Access, headers: Mapping[str, str], form_token: str | None = None) -> tuple[int, str] | None:
    """Why a writing request is refused, as (status, detail), or None when it may write.

    A cross-site request (another web page posting to this server from the user's browser) is
    refused whatever the token; the token is checked whenever one is configured, from the
    ``Authorization: Bearer`` header or, for the web UI's forms, a ``token`` form field.
    """
    site = headers.get("sec-fetch-site", "").lower()
    origin = headers.get("origin", "")
    host = headers.get("host", "")
    if site == "cross-site" or (origin and origin.split("://", 1)[-1].lower() != host.lower()):
        return 403, f"cross-site write refused (Origin {origin or '-'}, Sec-Fetch-Site {site or '-'})"
    if access.token is None:
        return None
    given = headers.get("authorization", "")
    given = given[7:].strip() if given.lower().startswith("bearer ") else (form_token or "")
    if not given:
        return 401, "this server needs a bearer token to write: send 'Authorization: Bearer <token>'"
    if not hmac.compare_digest(given.encode(), access.token.encode()):
        return 403, "the bearer token is wrong"
    return None


def require_writer(request: Request) -> None:
    """FastAPI dependency of every writing route: raises 401/403 (JSON error) unless it may write."""
    refusal = write_refusal(request.app.state.access, request.headers)
    if refusal is not None:
        status, detail = refusal
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, detail, headers)
