"""Who may write: the bearer token whenever one is set (401 without, 403 wrong), never a cross-site
request (403), never a request to a foreign Host name (421); reading needs no token."""

from __future__ import annotations

import pytest

from engine.server.security import Access

from .writing import writable_server, write_pages

TOKEN = "t0ken-for-tests"
RIGHT = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, text_encoder):
    """A server that needs the token to write, and a folder of two pages to index."""
    root = tmp_path_factory.mktemp("guarded")
    with writable_server(root, text_encoder, access=Access(token=TOKEN, loopback=True)) as served:
        yield served, write_pages(root / "notes", 2)


def post_job(served, folder, headers=None):  # noqa: ANN001, ANN201
    return served.client.post("/v1/index-jobs", json={"topics": ["notes"], "paths": [str(folder)]}, headers=headers or {})


def test_a_write_without_the_token_is_a_401_asking_for_it(guarded):
    served, folder = guarded

    response = post_job(served, folder)

    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "Unauthorized", "detail": "this server needs a bearer token to write: send 'Authorization: Bearer <token>'"}
    assert served.client.get("/v1/jobs").json()["jobs"] == []


def test_a_wrong_token_is_a_403_and_the_right_one_a_202(guarded):
    served, folder = guarded

    wrong = post_job(served, folder, {"authorization": "Bearer nope"})
    right = post_job(served, folder, RIGHT)

    assert wrong.status_code == 403 and wrong.json() == {"error": "Forbidden", "detail": "the bearer token is wrong"}
    assert right.status_code == 202
    assert served.wait(right.json()["id"])["state"] == "succeeded"


def test_cancelling_needs_the_token_too(guarded):
    served, folder = guarded
    job = post_job(served, folder, RIGHT).json()

    assert served.client.delete(f"/v1/jobs/{job['id']}").status_code == 401
    assert served.client.delete(f"/v1/jobs/{job['id']}", headers={"authorization": "Bearer nope"}).status_code == 403
    assert served.client.delete(f"/v1/jobs/{job['id']}", headers=RIGHT).status_code in (202, 409)  # 409 if it already ended
    served.wait(job["id"])


def test_an_upload_without_the_token_is_refused_before_anything_is_stored(guarded):
    served, _ = guarded

    response = served.client.post("/v1/index-jobs", files=[("files", ("page.html", b"<html><body>hi</body></html>"))])

    assert response.status_code == 401
    assert not (served.config.store.path / "uploads").exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://localhost.evil.example"},
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_a_cross_site_write_is_a_403_even_with_the_token(guarded, headers):
    served, folder = guarded

    response = post_job(served, folder, {**RIGHT, **headers})

    assert response.status_code == 403 and response.json()["detail"].startswith("cross-site write refused")


def test_a_same_origin_write_with_the_token_is_taken(guarded):
    served, folder = guarded

    response = post_job(served, folder, {**RIGHT, "origin": served.url, "sec-fetch-site": "same-origin"})

    assert response.status_code == 202
    served.wait(response.json()["id"])


def test_reads_never_need_the_token(guarded):
    served, folder = guarded
    job = post_job(served, folder, RIGHT).json()

    for path in ("/v1/jobs", f"/v1/jobs/{job['id']}", "/v1/status", "/healthz"):
        assert served.client.get(path).status_code == 200, path
    assert served.client.get("/v1/search", params={"q": "field notes"}).status_code == 200
    served.wait(job["id"])


@pytest.mark.parametrize("method, path", [("GET", "/v1/jobs"), ("POST", "/v1/index-jobs"), ("DELETE", "/v1/jobs/0123456789ab")])
def test_a_foreign_host_name_is_a_421(guarded, method, path):
    served, folder = guarded

    response = served.client.request(method, path, headers={**RIGHT, "host": "rebound.evil.example"}, json={"topics": ["x"], "paths": [str(folder)]} if method == "POST" else None)

    assert response.status_code == 421 and response.json()["error"] == "Misdirected Request"


def test_without_a_token_loopback_writes_are_open_but_cross_site_ones_are_not(tmp_path, text_encoder):
    folder = write_pages(tmp_path / "notes", 1)
    with writable_server(tmp_path, text_encoder) as served:
        assert post_job(served, folder, {"origin": "https://evil.example"}).status_code == 403
        response = post_job(served, folder)
        assert response.status_code == 202
        served.wait(response.json()["id"])
