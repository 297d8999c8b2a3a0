"""A real `engine serve` app on uvicorn, on a free loopback port, over the example pages (CLIP off)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.config import ClipConfig, Config, StoreConfig
from engine.kb import KnowledgeBase

TOPICS = ["space exploration", "coffee", "domestic cats", "ancient coins"]


@dataclass(frozen=True)
class Served:
    url: str
    config: Config
    client: httpx.Client


class ServerThread:
    """uvicorn serving ``app`` from a background thread, on a socket bound before it starts."""

    def __init__(self, app):  # noqa: ANN001 - FastAPI
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def serve_config(root: Path) -> Config:
    return Config(store=StoreConfig(path=root), clip=ClipConfig(enabled=False))


@pytest.fixture(scope="module")
def served(tmp_path_factory, text_encoder, examples_dir):
    """The server, loaded (its /v1 routes answer), with an httpx client at its URL."""
    from engine.server.app import create_app

    root = tmp_path_factory.mktemp("served")
    config = serve_config(root)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        kb.index(TOPICS, [examples_dir / "pages"])
    with KnowledgeBase(config, text_encoder=text_encoder) as kb, ServerThread(create_app(config, kb)) as server:
        url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while (response := client.get("/v1/status")).status_code == 503:
                assert time.monotonic() < deadline, response.json()
                time.sleep(0.05)
            yield Served(url, config, client)
