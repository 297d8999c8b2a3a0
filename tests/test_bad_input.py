"""Hostile and broken inputs: each is recorded with its reason, counted, and the run goes on.

The bad inputs are made here, in the test's temporary folder, from a few bytes or from the
example pages; nothing binary is kept in the repository for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from engine.store.schema import (
    documents,
    failures,
    images,
    runs,
)
from tests.conftest import make_config, store_counts

# -- tiny data ---------------------------------------------------------------------------------


def png(width: int, height: int, noise: bool = False, padding: int = 0) -> bytes:
    """A real PNG; ``noise`` makes every one unique, ``padding`` adds a text chunk of that size."""
    from PIL.PngImagePlugin import PngInfo

    if noise:
        image = Image.effect_noise((width, height), 60).convert("RGB")
    else:
        image = Image.new("RGB", (width, height), (40, 90, 160))
    info = PngInfo()
    if padding:
        info.add_text("padding", "x" * padding)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height``: a decompression bomb's shape."""
    data = png(64, 64)
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # signature (8) + length (4) + IHDR chunk (17) + CRC (4) = 33 bytes replaced.
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def gif_1x1() -> bytes:
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, "GIF")
    return out.getvalue()


def article(title: str, figures: str = "", paragraphs: int = 4) -> bytes:
    """An article page with enough distinct text to be stored; ``figures`` go after the intro."""
    body = "\n".join(
        f"<p>{title} is described here in part {n}. The {title.lower()} notes say that a careful reader "
        f"learns how the {title.lower()} works, why it matters to people, and what was measured "
        f"in the field during season {n} of the survey, with numbers checked twice.</p>"
        for n in range(1, paragraphs + 1)
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{body[: body.index('</p>') + 4]}{figures}{body[body.index('</p>') + 4 :]}</article>"
        f"<footer>Copyright 2024</footer></body></html>"
    ).encode()


def figure(src: str, alt: str) -> str:
    return f'<figure><img src="{src}" alt="{alt}" width="300" height="200"><figcaption>{alt}</figcaption></figure>'


BOILERPLATE = b"""<!DOCTYPE html><html><head><title>Menu</title></head><body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li></ul></nav></header>
<footer><a href="/privacy">Privacy</a> | <a href="/terms">Terms</a> | &copy; 2024</footer>
</body></html>"""


# -- store inspection --------------------------------------------------------------------------




def stored_documents(kb) -> dict[int, str]:
    with kb.store.reading() as conn:
        return dict(conn.execute(select(documents.c.id, documents.c.content_hash)).all())


def failure_rows(kb) -> tuple[int, list[tuple[str, str, str]]]:
    """(id of the last run, its rows in the failures table, sorted)."""
    with kb.store.reading() as conn:
        run_id = conn.execute(select(func.max(runs.c.id))).scalar_one()
        rows = conn.execute(
            select(failures.c.kind, failures.c.input, failures.c.reason).where(failures.c.run_id == run_id)
        ).all()
    return run_id, sorted(tuple(r) for r in rows)


def reason_for(report, origin_part: str) -> str:
    """The one failure whose origin names ``origin_part``."""
    found = [f for f in report.failures if origin_part in f.origin]
    assert len(found) == 1, f"expected one failure naming {origin_part!r}, got {found} in {report.failures}"
    return found[0].reason


def topics(examples_dir: Path) -> list[str]:
    return (examples_dir / "topics.txt").read_text().split("\n")


# -- the mixed run -------------------------------------------------------------------------------


@pytest.fixture
def bad_inputs(tmp_path, examples_dir) -> dict:
    """A folder of broken pages, images and archives, plus two good pages among them."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.html").write_bytes(b"")
    (bad / "really-a-png.html").write_bytes(png(40, 40))
    (bad / "boilerplate.html").write_bytes(BOILERPLATE)
    (bad / "garbage.html").write_bytes(bytes(range(256)) * 16)  # NULs and control bytes
    (bad / "notes.txt").write_text("a note beside the pages: not a page, so not an input")

    def page_with(name: str, title: str, files: dict[str, bytes], srcs: list[str] | None = None) -> None:
        folder = bad / f"{name}_files"
        folder.mkdir()
        for file_name, data in files.items():
            (folder / file_name).write_bytes(data)
        srcs = srcs if srcs is not None else [f"{name}_files/{f}" for f in files]
        figs = "".join(figure(src, f"{title} figure {n}") for n, src in enumerate(srcs))
        (bad / f"{name}.html").write_bytes(article(title, figs))

    coffee = (examples_dir / "pages" / "coffee-roasting_files" / "coffee.jpg").read_bytes()
    page_with("truncated-photo", "Broken photo", {"photo.jpg": coffee[: len(coffee) // 2]})
    huge = {"huge.png": png_claiming(8000, 8000), "bomb.png": png_claiming(100_000, 100_000)}
    page_with("huge-image", "Huge picture", huge)
    page_with("tracking", "Tracking pixel", {"pixel.gif": gif_1x1()})
    page_with("fake-image", "Fake picture", {"photo.jpg": b"<!DOCTYPE html><html><body>Not found</body></html>"})
    good_image = png(200, 150, noise=True)
    page_with("good", "Good page", {"chart.png": good_image})

    # A real picture outside the input folder, referenced by a relative and an absolute path.
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = png(120, 120, noise=True)
    (outside / "secret.png").write_bytes(secret)
    escape_srcs = ["../outside/secret.png", str(outside / "secret.png"), "../../etc/passwd"]
    page_with("escape", "Escaping path", {}, escape_srcs)

    # Archives: random bytes under a .warc.gz name, and a WARC cut inside its only page record.
    (bad / "broken.warc.gz").write_bytes(hashlib.sha256(b"x").digest() * 100)
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    html = article("Archived page")
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        "http://example.com/archived.html", "response", payload=io.BytesIO(html), http_headers=headers
    )
    writer.write_record(record)
    (bad / "cut.warc").write_bytes(out.getvalue()[:-300])

    (tmp_path / "notes.md").write_text("given by name, with an extension the indexer does not read")
    (tmp_path / "notes.txt").write_text("a .txt input is a list of URLs; this one names none\n")
    return {
        "folder": bad,
        "missing": tmp_path / "no-such-folder",
        "unsupported": tmp_path / "notes.md",
        "not_url_list": tmp_path / "notes.txt",
        "good_image_hash": hashlib.sha256(good_image).hexdigest(),
        "secret_hash": hashlib.sha256(secret).hexdigest(),
    }


def test_bad_inputs_are_recorded_with_reasons_and_nothing_stored_is_lost(kb, pages_copy, examples_dir, bad_inputs):
    first = kb.index(topics(examples_dir), [pages_copy])
    assert first.pages["added"] == 8 and first.pages["failed"] == 0
    before = store_counts(kb)
    documents_before = stored_documents(kb)
    assert before["text_vectors"] == before["chunks"] > 0

    report = kb.index(topics(examples_dir), [bad_inputs["folder"], bad_inputs["missing"], bad_inputs["unsupported"], bad_inputs["not_url_list"]])
    assert not report.interrupted

    # Pages that could not be used at all.
    assert reason_for(report, "empty.html") == "empty page"
    assert reason_for(report, "really-a-png.html") == "not HTML: the file is a PNG image"
    assert reason_for(report, "garbage.html") == "not HTML: the file holds binary data"
    assert "no main text" in reason_for(report, "boilerplate.html")
    broken_archive = reason_for(report, "broken.warc.gz")
    assert broken_archive.startswith("unreadable after 0 records: Unknown archive format")
    assert len(broken_archive) < 300  # not the whole binary "first line" warcio quotes
    assert "truncated archive record http://example.com/archived.html" in reason_for(report, "cut.warc@")
    assert reason_for(report, "no-such-folder") == "no such file or folder"
    assert "not an HTML file" in reason_for(report, str(bad_inputs["unsupported"]))
    assert reason_for(report, str(bad_inputs["not_url_list"])).startswith("not a URL list: no line is an http(s) URL")
    assert report.pages["failed"] == 9

    # Images that were refused, each named by its URL and the page that shows it.
    assert "truncated" in reason_for(report, "truncated-photo_files/photo.jpg")
    assert reason_for(report, "huge-image_files/huge.png") == "8000x8000 is over the 40000000-pixel limit"
    assert "decompression bomb" in reason_for(report, "huge-image_files/bomb.png")
    assert "smaller than 32 px" in reason_for(report, "tracking_files/pixel.gif")
    assert reason_for(report, "fake-image_files/photo.jpg") == "not an image (unrecognised data)"
    # Paths out of the input folder are never read, whatever is there: the relative and the
    # absolute path to the picture outside are both "not found" (trafilatura drops the
    # extension-less ../../etc/passwd before anything tries it).
    escape_failures = [f for f in report.failures if "escape.html" in f.origin]
    assert len(escape_failures) == 2
    assert all("outside/secret.png (in" in f.origin for f in escape_failures)
    assert {f.reason for f in escape_failures} == {"not found in the input"}
    assert report.images["failed"] == 7 == len([f for f in report.failures if f.kind == "image"])
    for f in report.failures:
        if f.kind == "image":
            assert f.origin.endswith(".html)"), f.origin  # "<image url> (in <page path>)"

    # The run went on: the good page and the text of pages with bad images are stored.
    assert report.pages["added"] == 6
    assert report.images["added"] == 1 and report.images["linked"] == 0
    with kb.store.reading() as conn:
        hashes = set(conn.execute(select(images.c.content_hash)).scalars())
        titles = set(conn.execute(select(documents.c.title)).scalars())
    assert bad_inputs["good_image_hash"] in hashes
    assert bad_inputs["secret_hash"] not in hashes
    assert {"Good page", "Broken photo", "Huge picture", "Tracking pixel", "Fake picture", "Escaping path"} <= titles

    # Every failure is in the failures table, under this run, and in the run's summary.
    run_id, rows = failure_rows(kb)
    assert rows == sorted((f.kind, f.origin, f.reason) for f in report.failures)
    assert len(rows) == 16
    with kb.store.reading() as conn:
        summary = json.loads(conn.execute(select(runs.c.summary).where(runs.c.id == run_id)).scalar_one())
    assert summary["pages"]["failed"] == 9 and summary["images"]["failed"] == 7
    assert len(summary["failures"]) == 16

    # Nothing stored before is lost.
    after = store_counts(kb)
    assert set(documents_before.items()) <= set(stored_documents(kb).items())
    assert after["documents"] == before["documents"] + 6
    assert after["images"] == before["images"] + 1
    assert after["chunks"] == before["chunks"] + report.chunks_added
    assert after["text_vectors"] == after["chunks"]
    check = kb.check()
    assert check.ok, check.problems
    assert not check.missing_image_files and not check.unreferenced_image_files


def test_a_page_that_turns_bad_keeps_its_stored_version(kb, pages_copy, examples_dir):
    kb.index(topics(examples_dir), [pages_copy])
    before = store_counts(kb)
    (pages_copy / "coffee-roasting.html").write_bytes(b"")
    (pages_copy / "cat-behaviour.html").write_bytes(png(50, 50))

    report = kb.index(topics(examples_dir), [pages_copy])

    assert report.pages["failed"] == 2 and report.pages["unchanged"] == 6
    assert reason_for(report, "coffee-roasting.html") == "empty page"
    assert reason_for(report, "cat-behaviour.html") == "not HTML: the file is a PNG image"
    assert store_counts(kb) == before
    result = kb.ask("how is coffee roasted", max_images=0)
    assert "How coffee is roasted" in {s.title for s in result.sources}


def test_limits_come_from_the_config(tmp_path, text_encoder, pages_copy, examples_dir):
    """Pixel, image-size and page-size limits are the configured ones."""
    from engine.kb import KnowledgeBase

    folder = tmp_path / "limits"
    files = folder / "page_files"
    files.mkdir(parents=True)
    (files / "small.png").write_bytes(png(80, 80))  # 6,400 pixels: under the limit
    (files / "wide.png").write_bytes(png(200, 100))  # 20,000 pixels
    (files / "heavy.png").write_bytes(png(90, 90, padding=60_000))  # few pixels, many bytes
    figures = "".join(figure(f"page_files/{name}.png", name) for name in ("small", "wide", "heavy"))
    (folder / "page.html").write_bytes(article("Limits page", figures))
    (folder / "long.html").write_bytes(article("Long page", paragraphs=200))
    assert len((folder / "long.html").read_bytes()) > 30_000

    config = make_config(tmp_path, max_image_pixels=10_000, max_image_bytes=50_000, max_page_bytes=30_000)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        kb.index(topics(examples_dir), [pages_copy])
        before = store_counts(kb)
        report = kb.index(["limits"], [folder])

        size = len((folder / "long.html").read_bytes())
        assert reason_for(report, "long.html") == f"{size} bytes is over the 30000-byte page limit"
        assert reason_for(report, "wide.png") == "200x100 is over the 10000-pixel limit"
        assert reason_for(report, "heavy.png") == "over the 50000-byte image limit"
        assert report.pages["added"] == 1 and report.pages["failed"] == 1
        assert report.images["added"] == 1 and report.images["failed"] == 2
        assert store_counts(kb)["images"] == before["images"] + 1
        _, rows = failure_rows(kb)
        assert len(rows) == 3


def test_paths_outside_the_input_folder_are_never_read(tmp_path):
    from indexer.sources import _local_resolver

    root = tmp_path / "input"
    (root / "page_files").mkdir(parents=True)
    (root / "page_files" / "ok.png").write_bytes(b"inside")
    (tmp_path / "secret.png").write_bytes(b"outside")
    (root / "page_files" / "link.png").symlink_to(tmp_path / "secret.png")
    resolve = _local_resolver(root, root, max_bytes=1000)

    assert resolve("page_files/ok.png") == b"inside"
    assert resolve("page_files/ok%2Epng") == b"inside"
    for src in (
        "../secret.png",
        "page_files/../../secret.png",
        "%2e%2e/secret.png",
        str(tmp_path / "secret.png"),
        f"file://{tmp_path / 'secret.png'}",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "page_files/link.png",  # a link inside pointing outside
        "http://example.com/ok.png",
        "//example.com/ok.png",
    ):
        assert resolve(src) is None, src

