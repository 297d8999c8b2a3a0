"""The HTTP API against a real server: every route, the errors, and the same answers as in-process."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app as cli
from engine.kb import KnowledgeBase

QUESTION = "how is coffee roasted"


def test_healthz(served):
    response = served.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_status_is_what_engine_status_json_prints(served):
    response = served.client.get("/v1/status")
    assert response.status_code == 200
    printed = CliRunner().invoke(cli, ["--store", str(served.config.store.path), "status", "--json"])
    assert printed.exit_code == 0, printed.output
    assert response.json() == json.loads(printed.stdout)
    assert response.json()["documents"] > 0


def test_ask_answers_with_a_cited_summary(served):
    response = served.client.post("/v1/ask", json={"question": QUESTION, "style": "brief", "filters": {"topic": "coffee"}})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["schema_version"] == 3 and answer["style"] == "brief"
    assert answer["summary"] and answer["sources"]
    assert answer["settings"]["filters"] == {"topic": "coffee"}
    numbers = {s["number"] for s in answer["sources"]}
    assert all(sentence["citations"] and set(sentence["citations"]) <= numbers for sentence in answer["summary"])
    assert any("coffee" in s["url"] for s in answer["sources"])


def test_ask_over_http_is_the_in_process_answer(served, text_encoder):
    over_http = served.client.post("/v1/ask", json={"question": QUESTION}).json()
    with KnowledgeBase(served.config, text_encoder=text_encoder) as kb:
        local = kb.ask(QUESTION).to_dict()
    assert [s["text"] for s in over_http["summary"]] == [s["text"] for s in local["summary"]]
    assert over_http["sources"] == local["sources"]
    assert over_http["settings"] == local["settings"]


def test_an_off_topic_question_is_refused(served):
    answer = served.client.post("/v1/ask", json={"question": "best chocolate cake recipe"}).json()
    assert answer["relevance"]["nothing_relevant"] is True
    assert answer["summary"] == [] and answer["notices"]


def test_search_returns_ranked_passages_with_sources(served):
    response = served.client.get("/v1/search", params={"q": QUESTION, "k": 3})
    assert response.status_code == 200
    found = response.json()
    assert "summary" not in found and found["k"] == 3
    passages = found["passages"]
    assert [p["rank"] for p in passages] == [1, 2, 3]
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)
    assert all(p["url"].startswith("http") and p["text"] for p in passages)
    assert "coffee" in passages[0]["url"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": QUESTION, "colour": "red"}, "colour"),
        ({"question": QUESTION, "style": "haiku"}, "style"),
        ({"question": "   "}, "question"),
        ({"style": "brief"}, "question"),
        ({"question": QUESTION, "k": 0}, "k"),
        ({"question": QUESTION, "filters": {"colour": "red"}}, "colour"),
        ({"question": QUESTION, "filters": "coffee"}, "filters"),
        ({"question": 42}, "question"),
    ],
    ids=["unknown-field", "bad-style", "empty-question", "no-question", "bad-k", "unknown-filter", "filters-not-object", "question-not-string"],
)
def test_a_bad_ask_is_a_400_naming_the_field(served, body, field):
    response = served.client.post("/v1/ask", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "ConfigError" and field in error["detail"]


@pytest.mark.parametrize(
    ("params", "field"), [({"q": QUESTION, "k": 0}, "k"), ({"q": QUESTION, "k": "many"}, "k"), ({}, "q"), ({"q": ""}, "q")]
)
def test_a_bad_search_is_a_400_naming_the_parameter(served, params, field):
    response = served.client.get("/v1/search", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "RequestValidationError"
    assert f"query parameter {field}:" in response.json()["detail"]


def test_a_body_that_is_not_an_object_is_a_400(served):
    response = served.client.post("/v1/ask", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "request body" in response.json()["detail"]


def test_an_unknown_route_is_a_json_404(served):
    response = served.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "detail": "not found: GET /v1/nothing-here (the API is described at /docs)"}
    assert served.client.delete("/v1/ask").json()["error"] == "Method Not Allowed"


def test_the_openapi_schema_lists_the_routes(served):
    paths = served.client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/status", "/v1/ask", "/v1/search"} <= set(paths)


def test_concurrent_requests_are_served_one_at_a_time_without_errors(served):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def call(n: int) -> int:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            if n % 2:
                return client.get("/v1/search", params={"q": "cat senses", "k": 2}).status_code
            return client.post("/v1/ask", json={"question": "why do cats purr", "max_images": 0}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(call, range(6))) == [200] * 6
