"""The provider interface every discovery source implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import httpx


@dataclass(frozen=True)
class Candidate:
    """A URL a provider thinks is about the topic."""

    url: str
    kind: Literal["page", "image"]
    provider: str  # the provider's name, e.g. "wikipedia"
    rank: int  # 0 = the provider's best
    title: str | None = None
    snippet: str | None = None
    page_url: str | None = None  # for an image: the page it appears on, when known
    published: str | None = None  # ISO date, when the provider gives one


class Provider(Protocol):
    """Turns a topic into candidates. Implementations take their settings in ``__init__``."""

    name: str
    limit: int  # the configured count; discover_topic passes it to discover()

    async def discover(self, topic: str, client: httpx.AsyncClient, limit: int) -> list[Candidate]:
        """At most ``limit`` candidates for ``topic``, best first.

        Raises ``engine.errors.InputError(provider name, reason)`` when the service fails or
        answers something unparseable; the crawl records it and goes on with other providers.
        """
        ...
