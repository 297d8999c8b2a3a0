"""The app's states without a real model: 503 while loading or after a failed load, 500 without a traceback."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from engine.config import Config, StoreConfig
from engine.server.app import create_app


class FakeKnowledgeBase:
    """Loads (answers its warm-up ask) when ``loaded`` is set; its status fails with a private message."""

    def __init__(self, load_error: Exception | None = None):
        self.loaded = threading.Event()
        self.load_error = load_error

    def ask(self, request, **options):  # noqa: ANN001, ANN003, ANN201
        self.loaded.wait(30)
        if self.load_error is not None:
            raise self.load_error

    def status(self):  # noqa: ANN201
        raise RuntimeError("secret detail at /home/someone/store")


def app_over(kb: FakeKnowledgeBase, tmp_path):  # noqa: ANN201
    return create_app(Config(store=StoreConfig(path=tmp_path)), kb)


def test_routes_answer_503_while_the_knowledge_base_loads(tmp_path):
    kb = FakeKnowledgeBase()
    with TestClient(app_over(kb, tmp_path), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        response = client.get("/v1/status")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json() == {"error": "Service Unavailable", "detail": "the knowledge base is loading; try again shortly"}
        assert client.get("/healthz").json() == {"ok": True}  # the process itself is alive
        kb.loaded.set()
        for _ in range(200):
            if client.get("/v1/status").status_code != 503:
                break
            threading.Event().wait(0.01)
        assert client.get("/v1/status").status_code == 500


def test_a_failed_load_is_a_503_with_the_reason(tmp_path):
    from engine.errors import SchemaTooNewError

    kb = FakeKnowledgeBase(SchemaTooNewError("the store is at revision 9"))
    kb.loaded.set()
    with TestClient(app_over(kb, tmp_path), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        for _ in range(200):
            response = client.get("/v1/search", params={"q": "coffee"})
            if "loading" not in response.json()["detail"]:
                break
            threading.Event().wait(0.01)
        assert response.status_code == 503
        assert response.json()["detail"] == "the knowledge base failed to load: SchemaTooNewError: the store is at revision 9"


def test_an_unexpected_error_is_a_500_without_traceback_or_message(tmp_path):
    kb = FakeKnowledgeBase()
    kb.loaded.set()
    with TestClient(app_over(kb, tmp_path), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        app_warm = client.app.state.warm
        for _ in range(200):
            if app_warm.ready:
                break
            threading.Event().wait(0.01)
        response = client.get("/v1/status")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "detail": "the server failed to answer; its log has the details"}
    assert "secret" not in response.text and "Traceback" not in response.text
