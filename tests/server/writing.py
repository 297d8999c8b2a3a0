"""A served store that jobs write: a real server over its own fresh store, and helpers to follow jobs."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from engine.config import ClipConfig, Config, CrawlConfig, IndexConfig, StoreConfig
from engine.kb import KnowledgeBase
from engine.server.security import Access

from .conftest import ServerThread

OPEN = Access(token=None, loopback=True)
# Crawling the local test site: loopback allowed, no politeness delays, short timeouts.
LOCAL_CRAWL = CrawlConfig(
    allow_private_addresses=True, per_host_interval_seconds=0, retry_backoff_seconds=0.01,
    connect_timeout_seconds=2, read_timeout_seconds=2, fetch_deadline_seconds=5,
)
WORDS = "amber basalt cedar dune ember fjord glacier harbor iris juniper kelp lagoon meadow nectar orchard prairie quarry reef savanna tundra".split()


@dataclass(frozen=True)
class Writable:
    url: str
    config: Config
    client: httpx.Client
    kb: KnowledgeBase  # the reader the server serves

    def wait(self, job_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled"), timeout: float = 120) -> dict:
        """The job once its state is one of ``states``."""
        deadline = time.monotonic() + timeout
        while (job := self.client.get(f"/v1/jobs/{job_id}").json())["state"] not in states:
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        return job


def store_config(root: Path, **sections) -> Config:  # noqa: ANN003 - Config's sections
    return Config(store=StoreConfig(path=root / "store"), clip=ClipConfig(enabled=False), **sections)


@contextmanager
def writable_server(
    root: Path, text_encoder, access: Access = OPEN, watch_every: float | None = None, **sections  # noqa: ANN001, ANN003
) -> Iterator[Writable]:
    """A loaded server over a fresh store under ``root`` (CLIP off; ``sections`` override the config's)."""
    from engine.server.app import create_app

    config = store_config(root, **sections)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb, ServerThread(create_app(config, kb, access, watch_every)) as server:
        url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while client.get("/v1/status").status_code == 503:
                assert time.monotonic() < deadline, "the server did not load"
                time.sleep(0.05)
            yield Writable(url, config, client, kb)


def write_pages(folder: Path, count: int, start: int = 0) -> Path:
    """``count`` small distinct article pages (field notes on made-up sites) in ``folder``."""
    from site_server import page

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        w, v = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)]
        (folder / f"note-{i:03}.html").write_text(
            page(
                f"Field note {i} on the {w}",
                f"Observer {i} walked past the {w} near the {v} on day {i} of the survey.",
                f"The {w} of site {i} was measured at {i * 3 + 7} metres beside the {v}.",
                f"Notes numbered {i} mention a {v} and a {w} together.",
            )
        )
    return folder


def small_batches(**index) -> dict:  # noqa: ANN003
    """Config sections whose jobs write a batch every two pages, so a job can be stopped midway."""
    return {"index": IndexConfig(docs_per_batch=2, **index)}

