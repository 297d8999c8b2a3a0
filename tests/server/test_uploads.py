"""Uploads to POST /v1/index-jobs: stored under the store and indexed; refused by size (413), name or
content (400) with nothing left behind; client file names never choose where a file goes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from engine.config import ServeConfig

from .writing import writable_server

LIMIT = 100_000
ESPRESSO = "espresso-chemistry.html"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture(scope="module")
def served(tmp_path_factory, text_encoder):
    with writable_server(tmp_path_factory.mktemp("uploads"), text_encoder, serve=ServeConfig(max_upload_bytes=LIMIT)) as served:
        yield served


def stored_files(served) -> set[Path]:  # noqa: ANN001 - Writable
    """Every file under the store's uploads folder (the only place an upload may go)."""
    folder = served.config.store.path / "uploads"
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def upload(served, *files: tuple[str, bytes], topics: str = "coffee"):  # noqa: ANN001, ANN201
    return served.client.post("/v1/index-jobs", data={"topics": topics}, files=[("files", (n, b, "application/octet-stream")) for n, b in files])


def test_an_uploaded_page_is_stored_under_the_store_and_indexed(served, examples_dir):
    html = (examples_dir / "pages" / ESPRESSO).read_bytes()

    response = upload(served, (ESPRESSO, html), topics="coffee\n roasting \n\ncoffee")

    assert response.status_code == 202 and response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    spec = response.json()["spec"]
    assert spec["origin"] == "upload" and spec["topics"] == ["coffee", "roasting"] and spec["crawl"] is False
    [stored] = map(Path, spec["paths"])
    assert stored.parent.parent == served.config.store.path / "uploads" and stored.name == ESPRESSO
    assert len(stored.parent.name) == 16 and stored.read_bytes() == html
    done = served.wait(response.json()["id"])
    assert done["state"] == "succeeded" and done["report"]["pages"] == {"added": 1}
    hits = served.client.get("/v1/search", params={"q": "how does an espresso machine make crema", "k": 1}).json()["passages"]
    assert hits[0]["url"] == "https://example.org/coffee/espresso-chemistry.html"


def test_a_gzipped_warc_upload_is_indexed_with_its_image(served, examples_dir, tmp_path):
    from test_warc import write_warc

    archive = tmp_path / "crawl.warc.gz"
    write_warc(archive, examples_dir)

    response = upload(served, ("crawl.warc.gz", archive.read_bytes()))

    assert response.status_code == 202, response.json()
    done = served.wait(response.json()["id"])
    assert done["state"] == "succeeded" and done["report"]["images"].get("added") == 1, done


def test_an_upload_over_the_limit_is_a_413_by_its_length_and_leaves_nothing(served):
    before = stored_files(served)

    response = upload(served, ("big.html", b"<html><body>" + b"x" * LIMIT + b"</body></html>"))

    assert response.status_code == 413 and response.json()["error"] == "Request Entity Too Large"
    assert "announces" in response.json()["detail"] and f"{LIMIT}-byte limit (serve.max_upload_bytes)" in response.json()["detail"]
    assert stored_files(served) == before


def test_an_upload_without_a_length_is_counted_as_it_streams(served):
    before = stored_files(served)
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.html"\r\n'
        "Content-Type: text/html\r\n\r\n<html><body>"
    ).encode() + b"x" * (2 * LIMIT) + f"</body></html>\r\n--{boundary}--\r\n".encode()

    def chunks():  # a generator: httpx sends it chunked, without Content-Length
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = served.client.post("/v1/index-jobs", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})

    assert response.status_code == 413
    assert response.json()["detail"] == f"the request body is over the {LIMIT}-byte limit (serve.max_upload_bytes)"
    assert stored_files(served) == before


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.txt", b"<html></html>", "'notes.txt' is not a saved page or web archive: the name must end with .warc.gz, .arc.gz, .html"),
        ("archive.zip", b"PK\x03\x04", "is not a saved page or web archive"),
        (".html", b"<html></html>", "is not a saved page or web archive"),
        ("photo.html", PNG, "'photo.html' is not HTML: it must begin with '<'"),
        ("notes.htm", b"just some text, no markup", "is not HTML"),
        ("fragment.html", b"<p>a paragraph but no page</p>", "is not HTML"),
        ("crawl.warc", b"<html></html>", "'crawl.warc' is not a WARC file: it must begin with 'WARC/'"),
        ("crawl.warc.gz", b"WARC/1.0\r\n", "'crawl.warc.gz' is not gzip-compressed"),
        ("crawl.warc.gz", gzip.compress(b"<html></html>"), "is not a WARC file"),
        ("old.arc", b"WARC/1.0\r\n", "'old.arc' is not an ARC file: it must begin with 'filedesc://'"),
        ("old.arc.gz", b"\x1f\x8bnot really gzip at all", "'old.arc.gz' is not a readable gzip file"),
    ],
)
def test_a_file_of_the_wrong_name_or_content_is_a_400_and_leaves_nothing(served, name, content, reason):
    before = stored_files(served)

    response = upload(served, (name, content))

    assert response.status_code == 400
    assert response.json()["error"] == "ConfigError" and response.json()["detail"].startswith("files: ")
    assert reason in response.json()["detail"]
    assert stored_files(served) == before


def test_one_bad_file_refuses_the_whole_upload(served, examples_dir):
    before = stored_files(served)
    html = (examples_dir / "pages" / "cat-senses.html").read_bytes()

    response = upload(served, ("cat-senses.html", html), ("photo.html", PNG))

    assert response.status_code == 400 and "'photo.html' is not HTML" in response.json()["detail"]
    assert stored_files(served) == before


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([("topics", (None, b"coffee"))], "files: no file uploaded"),
        ([("path", (None, b"/etc")), ("files", ("a.html", b"<html></html>"))], "unknown form field 'path'"),
        ([("files", (None, b"/etc/passwd.html"))], "files: each 'files' field must be a file, not text"),
    ],
)
def test_a_malformed_form_is_a_400(served, parts, reason):
    before = stored_files(served)

    response = served.client.post("/v1/index-jobs", files=parts)  # (None, value): a text field, no file name

    assert response.status_code == 400 and reason in response.json()["detail"], response.json()
    assert stored_files(served) == before


@pytest.mark.parametrize(
    "name, stored_as",
    [
        ("../../../evil.html", "evil.html"),
        ("..\\..\\evil.html", "evil.html"),
        ("/etc/cron.d/evil.html", "evil.html"),
        ("..html", "upload.html"),
        ("a b;c$(rm -rf).HTML", "a_b_c_rm_-rf.html"),
        (".hidden.htm", "hidden.htm"),
        ("x" * 300 + ".html", "x" * 100 + ".html"),
    ],
)
def test_a_client_file_name_never_chooses_where_the_file_goes(served, tmp_path, name, stored_as):
    html = f"<!doctype html><html><body><p>{name}</p></body></html>".encode()

    response = upload(served, (name, html))

    assert response.status_code == 202, response.json()
    [stored] = map(Path, response.json()["spec"]["paths"])
    uploads = served.config.store.path / "uploads"
    assert stored.parent.parent == uploads and stored.name == stored_as
    assert stored.resolve().is_relative_to(uploads.resolve()) and stored.read_bytes() == html
    assert not (served.config.store.path.parent / "evil.html").exists()
    served.wait(response.json()["id"])
