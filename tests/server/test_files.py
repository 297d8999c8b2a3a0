"""/v1/images/{id} and /v1/documents/{id} against a real server: the stored bytes, caching, thumbnails, refusals."""

from __future__ import annotations

import io
import shutil
import sqlite3
import time

import httpx
import pytest
from PIL import Image

from engine.kb import KnowledgeBase
from engine.server.image_files import THUMBNAIL_SIDE, ThumbnailCache
from tests.server.conftest import ServerThread, serve_config


def rows(root, query: str, *args) -> list[sqlite3.Row]:
    """Rows straight from the store's SQLite file: what the API must agree with."""
    with sqlite3.connect(root / "engine.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(query, args).fetchall()


def stored_images(served) -> list[sqlite3.Row]:
    return rows(served.config.store.path, "SELECT * FROM images ORDER BY id")


def test_an_image_is_its_stored_file_with_its_type_and_year_long_caching(served):
    images = stored_images(served)
    assert images
    for image in images:
        response = served.client.get(f"/v1/images/{image['id']}")
        assert response.status_code == 200
        assert response.content == (served.config.store.path / image["path"]).read_bytes()
        assert response.headers["content-type"] == f"image/{image['format'].lower()}"
        assert response.headers["etag"] == f'"{image["content_hash"]}"'
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-disposition" not in response.headers  # shown inline


def test_a_thumbnail_is_a_smaller_jpeg_that_decodes(served):
    image = next(i for i in stored_images(served) if max(i["width"], i["height"]) > THUMBNAIL_SIDE)
    response = served.client.get(f"/v1/images/{image['id']}", params={"size": "thumb"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert len(response.content) < image["byte_size"]
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    assert max(picture.size) == THUMBNAIL_SIDE
    assert response.headers["etag"] != f'"{image["content_hash"]}"'  # not the original's validator
    assert response.headers["cache-control"].endswith("immutable")
    again = served.client.get(f"/v1/images/{image['id']}", params={"size": "thumb"})
    assert again.content == response.content


@pytest.mark.parametrize("size", ["full", "thumb"])
def test_a_known_etag_is_a_304_without_a_body(served, size):
    image = stored_images(served)[0]
    first = served.client.get(f"/v1/images/{image['id']}", params={"size": size})
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"something-else", {etag}', "*"):
        response = served.client.get(f"/v1/images/{image['id']}", params={"size": size}, headers={"If-None-Match": header})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] == etag
    assert served.client.get(f"/v1/images/{image['id']}", headers={"If-None-Match": '"other"'}).status_code == 200


def test_an_unknown_image_is_a_json_404(served):
    response = served.client.get("/v1/images/999999")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "detail": "no image 999999 is stored"}


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/v1/images/abc", "image_id"),
        ("/v1/images/1.5", "image_id"),
        ("/v1/images/0", "image_id"),
        ("/v1/images/-3", "image_id"),
        ("/v1/images/99999999999999999999999", "image_id"),
        ("/v1/images/1?size=huge", "size"),
        ("/v1/documents/abc", "document_id"),
        ("/v1/documents/0", "document_id"),
    ],
)
def test_a_bad_id_or_size_is_a_400_naming_the_parameter(served, path, parameter):
    response = served.client.get(path)
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "RequestValidationError"
    assert f"parameter {parameter}:" in error["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/images/..%2F..%2Fetc%2Fpasswd",
        "/v1/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v1/images/1%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/images/..",
        "/v1/images/%2e%2e",
        "/v1/images/1/../../../etc/passwd",
        "/v1/documents/..%2F..%2Fengine.db",
    ],
)
def test_an_id_cannot_reach_a_file(served, path):
    # Sent as written: httpx would otherwise resolve the dot segments itself.
    response = served.client.send(served.client.build_request("GET", httpx.URL(served.url).copy_with(raw_path=path.encode())))
    assert response.status_code in (400, 404)
    assert response.headers["content-type"] == "application/json"
    assert "root:" not in response.text and "SQLite" not in response.text


def test_a_document_is_its_metadata_passages_and_images_as_stored(served):
    root = served.config.store.path
    document_id = rows(root, "SELECT document_id FROM document_images ORDER BY document_id LIMIT 1")[0][0]
    response = served.client.get(f"/v1/documents/{document_id}")
    assert response.status_code == 200
    document = response.json()
    stored = rows(root, "SELECT * FROM documents WHERE id = ?", document_id)[0]
    assert document["id"] == document_id
    for name in ("title", "author", "published", "language"):
        assert document[name] == stored[name]
    urls = [r["url"] for r in rows(root, "SELECT url FROM sources WHERE document_id = ? ORDER BY updated_at", document_id)]
    assert document["url"] == urls[-1]
    passages = rows(root, "SELECT id, position, text FROM chunks WHERE document_id = ? ORDER BY position", document_id)
    assert [(p["chunk_id"], p["text"]) for p in document["passages"]] == [(p["id"], p["text"]) for p in passages]
    shown = rows(root, "SELECT image_id, alt, caption FROM document_images WHERE document_id = ?", document_id)
    assert sorted((i["image_id"], i["alt"], i["caption"]) for i in document["images"]) == sorted(tuple(r) for r in shown)
    assert document["topics"] and all(isinstance(t, str) for t in document["topics"])
    for image in document["images"]:
        assert image["url"] == f"/v1/images/{image['image_id']}"
        assert served.client.get(image["url"]).status_code == 200


def test_an_unknown_document_is_a_json_404(served):
    response = served.client.get("/v1/documents/999999")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "detail": "no document 999999 is stored"}


@pytest.fixture(scope="module")
def copy_served(served, tmp_path_factory, text_encoder):
    """A copy of the served store, served on its own, for tests that break it; yields (url, root)."""
    from engine.server.app import create_app

    root = tmp_path_factory.mktemp("copy") / "kb"
    root.mkdir()
    with sqlite3.connect(served.config.store.path / "engine.db") as source, sqlite3.connect(root / "engine.db") as target:
        source.backup(target)
    config = serve_config(root)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb, ServerThread(create_app(config, kb)) as server:
        url = f"http://127.0.0.1:{server.port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/status").status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield url, root


@pytest.fixture
def tampered(served, copy_served):
    """The copy, its image rows and files as the served store has them again after each test."""
    url, root = copy_served
    shutil.copytree(served.config.store.path / "images", root / "images", dirs_exist_ok=True)
    yield url, root
    with sqlite3.connect(root / "engine.db") as conn:
        for image in stored_images(served):
            conn.execute(
                "UPDATE images SET path = ?, format = ?, width = ?, height = ? WHERE id = ?",
                (image["path"], image["format"], image["width"], image["height"], image["id"]),
            )


def test_a_small_image_is_its_own_thumbnail(tampered):
    url, root = tampered
    image = rows(root, "SELECT id, path, content_hash FROM images LIMIT 1")[0]
    with sqlite3.connect(root / "engine.db") as conn:
        conn.execute("UPDATE images SET width = 200, height = 150 WHERE id = ?", (image["id"],))
    response = httpx.get(f"{url}/v1/images/{image['id']}", params={"size": "thumb"})
    assert response.content == (root / image["path"]).read_bytes()
    assert response.headers["etag"] == f'"{image["content_hash"]}"'


def test_a_tiff_is_served_as_it_is_and_thumbnailed_as_a_jpeg(tampered):
    url, root = tampered
    image = rows(root, "SELECT id, path FROM images LIMIT 1")[0]
    with sqlite3.connect(root / "engine.db") as conn:  # a browser cannot show TIFF, however small
        conn.execute("UPDATE images SET format = 'tiff', width = 200, height = 150 WHERE id = ?", (image["id"],))
    full = httpx.get(f"{url}/v1/images/{image['id']}")
    assert full.headers["content-type"] == "image/tiff" and full.content == (root / image["path"]).read_bytes()
    thumb = httpx.get(f"{url}/v1/images/{image['id']}", params={"size": "thumb"})
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).format == "JPEG"


def test_a_missing_file_is_a_404_that_says_to_run_check(tampered):
    url, root = tampered
    image = rows(root, "SELECT id, path FROM images LIMIT 1")[0]
    (root / image["path"]).unlink()
    for size in ("full", "thumb"):
        response = httpx.get(f"{url}/v1/images/{image['id']}", params={"size": size})
        assert response.status_code == 404
        assert response.json()["detail"] == f"image {image['id']}'s file is missing from the store; run `engine check`"


@pytest.mark.parametrize("path", ["../engine.db", "/etc/passwd", "images/../engine.db", "images", "images/../../outside"])
def test_a_stored_path_outside_the_image_folder_is_refused(tampered, path):
    url, root = tampered
    (root.parent / "outside").write_text("secret")
    image_id = rows(root, "SELECT id FROM images LIMIT 1")[0][0]
    with sqlite3.connect(root / "engine.db") as conn:
        conn.execute("UPDATE images SET path = ? WHERE id = ?", (path, image_id))
    response = httpx.get(f"{url}/v1/images/{image_id}")
    assert response.status_code == 500
    assert response.json()["error"] == "StoreError" and "leads outside" in response.json()["detail"]


def test_an_svg_is_only_ever_a_sandboxed_download(tampered):
    url, root = tampered
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    (root / "images" / "zz").mkdir(exist_ok=True)
    (root / "images" / "zz" / "evil.svg").write_bytes(svg)
    image_id = rows(root, "SELECT id FROM images LIMIT 1")[0][0]
    with sqlite3.connect(root / "engine.db") as conn:
        conn.execute("UPDATE images SET path = 'images/zz/evil.svg', format = 'svg', width = 1000 WHERE id = ?", (image_id,))
    for size in ("full", "thumb"):
        response = httpx.get(f"{url}/v1/images/{image_id}", params={"size": size})
        assert response.status_code == 200 and response.content == svg
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_thumbnail_cache_keeps_the_most_recently_used_within_its_bytes():
    cache, made = ThumbnailCache(max_bytes=10), []

    def get(key: str) -> bytes:
        return cache.get(key, lambda: made.append(key) or key.encode() * 4)

    for key in "abacbc":  # a, b; a again (cached); c evicts b; b evicts a; c cached
        get(key)
    assert made == ["a", "b", "c", "b"]
    get("a")
    assert made[-1] == "a"
    assert get("x" * 20) == b"x" * 80  # larger than the whole cache: answered, never kept
