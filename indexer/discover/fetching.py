"""Bounded HTTP reads for discovery: every failure becomes an InputError naming the provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from engine.errors import InputError
from indexer.fetch.netguard import AddressRefused, ResolutionFailed


async def fetch_bytes(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    max_bytes: int,
    params: Mapping[str, str | int] | None = None,
    status_hints: Mapping[int, str] | None = None,
) -> bytes:
    """The body of a GET, refused past ``max_bytes`` (decoded bytes, so a gzip bomb stops too).

    ``status_hints`` adds a provider's explanation to an error status (e.g. SearxNG's 403).

    Raises:
        InputError(provider, reason): HTTP error status, timeout, connection failure,
            or a body larger than ``max_bytes``.
    """
    try:
        async with client.stream("GET", url, params=params) as response:
            if response.status_code >= 400:
                hint = (status_hints or {}).get(response.status_code)
                suffix = f" ({hint})" if hint else ""
                raise InputError(provider, f"{url} answered HTTP {response.status_code}{suffix}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise InputError(
                    provider, f"{url} announced {declared} bytes, more than the {max_bytes} bytes allowed"
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise InputError(provider, f"{url} sent more than the {max_bytes} bytes allowed")
            return bytes(body)
    except (AddressRefused, ResolutionFailed) as exc:
        raise InputError(provider, f"{url} could not be fetched: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise InputError(provider, f"{url} timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise InputError(provider, f"{url} could not be fetched: {exc}") from exc


async def fetch_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    max_bytes: int,
    params: Mapping[str, str | int] | None = None,
    status_hints: Mapping[int, str] | None = None,
) -> Any:
    """A GET whose body must be JSON; see :func:`fetch_bytes` for the errors."""
    body = await fetch_bytes(
        client, provider, url, max_bytes=max_bytes, params=params, status_hints=status_hints
    )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(provider, f"{url} did not answer JSON: {exc}") from exc


def json_path(data: Any, provider: str, *keys: str) -> Any:
    """``data[k1][k2]…``, or an InputError saying which part of the answer is missing."""
    for depth, key in enumerate(keys):
        if not isinstance(data, dict) or key not in data:
            where = ".".join(keys[: depth + 1])
            raise InputError(provider, f"unexpected answer: no {where!r}")
        data = data[key]
    return data

