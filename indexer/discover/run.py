"""One topic through every provider at once: merged, de-duplicated, limited candidates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from engine.config import DiscoverConfig
from engine.errors import InputError
from indexer.discover.base import Candidate, Provider
from indexer.prepare import canonical_url


@dataclass(frozen=True)
class DiscoveryResult:
    """What discovery found for one topic, and why any provider contributed nothing."""

    topic: str
    candidates: list[Candidate]
    failures: list[InputError]  # one per failed provider: source = provider name, reason

    @property
    def pages(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == "page"]

    @property
    def images(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == "image"]


async def discover_topic(
    topic: str,
    providers: list[Provider],
    client: httpx.AsyncClient,
    config: DiscoverConfig,
) -> DiscoveryResult:
    """Run every provider for ``topic`` concurrently and merge what they find.

    Each provider gets its own count as ``limit``. Candidates are merged round-robin by
    rank across providers (every provider's best first, in ``providers`` order), kept once
    per canonical URL (the first, with its provider and rank), and cut to
    ``config.max_pages_per_topic`` pages and ``config.max_images_per_topic`` images.

    A provider's failure is recorded in ``failures`` (an InputError naming it, with the real
    cause, never an exception group) and the others' results are kept.

    Raises:
        InputError("topic", reason): the topic is empty.
    """
    topic = " ".join(topic.split())
    if not topic:
        raise InputError("topic", "the topic is empty")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_run(provider, topic, client)) for provider in providers]
    found, failures = [], []
    for task in tasks:
        outcome = task.result()
        (failures if isinstance(outcome, InputError) else found).append(outcome)
    candidates = merge(found, config.max_pages_per_topic, config.max_images_per_topic)
    return DiscoveryResult(topic, candidates, failures)


def merge(per_provider: list[list[Candidate]], max_pages: int, max_images: int) -> list[Candidate]:
    """Round-robin by rank over the providers' lists, first of each canonical URL, within the caps.

    An image is crawled with the page it appears on, so that page counts against ``max_pages``
    too: an image whose page would exceed it is left out.
    """
    queues = [sorted(candidates, key=lambda c: c.rank) for candidates in per_provider]
    seen: set[str] = set()
    pages: set[str] = set()  # pages the merged candidates will crawl, named or behind an image
    images = 0
    merged: list[Candidate] = []
    for position in range(max((len(q) for q in queues), default=0)):
        for queue in queues:
            if position >= len(queue):
                continue
            candidate = queue[position]
            key = canonical_url(candidate.url)
            if key in seen:
                continue
            if candidate.kind == "page":
                if key not in pages and len(pages) >= max_pages:
                    continue
                pages.add(key)
            else:
                page = canonical_url(candidate.page_url) if candidate.page_url else None
                if images >= max_images or (page is not None and page not in pages and len(pages) >= max_pages):
                    continue
                images += 1
                if page is not None:
                    pages.add(page)
            seen.add(key)
            merged.append(candidate)
    return merged


async def _run(provider: Provider, topic: str, client: httpx.AsyncClient) -> list[Candidate] | InputError:
    try:
        found = await provider.discover(topic, client, provider.limit)
    except InputError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported as this provider's own failure, the others go on
        return InputError(provider.name, f"unexpected {type(exc).__name__}: {exc}")
    return found[: provider.limit]  # a provider that over-delivers does not crowd out the others
