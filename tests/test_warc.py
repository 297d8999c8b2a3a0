"""WARC/ARC ingestion end to end: pages and the images they show, from the same archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.store.schema import document_images, documents, images, sources

from tests.conftest import store_counts

MAIN_PAGE = "http://en.wikipedia.org/wiki/Main_Page"
INDEX_PHP = "http://www.archive.org/index.php"
LOGO = "http://www.archive.org/images/logoc.jpg"
POST_BLACKOUT = Path("webarchive-test-corpus/wikipedia-sopa-blackout-2012/wikipedia-post-blackout")
SMALL = Path("webarchive-test-corpus/small-arcs-and-warcs")
TRUNCATED = [
    "IAH-20080430204825-00000-blackbook-truncated.arc",
    "IAH-20080430204825-00000-blackbook-truncated.arc.gz",
    "IAH-20080430204825-00000-blackbook-truncated.warc",
    "IAH-20080430204825-00000-blackbook-truncated.warc.gz",
]




def timestamp(warc_date: str) -> float:
    return datetime.fromisoformat(warc_date.replace("Z", "+00:00")).timestamp()


def records(path: Path) -> list[dict]:
    """The response/resource records of an archive, read independently with warcio."""
    from warcio.archiveiterator import ArchiveIterator

    found = []
    with open(path, "rb") as f:
        iterator = ArchiveIterator(f, arc2warc=True)
        for record in iterator:
            if record.rec_type not in ("response", "resource"):
                continue
            payload = record.content_stream().read()
            found.append(
                {
                    "uri": record.rec_headers.get_header("WARC-Target-URI"),
                    "date": timestamp(record.rec_headers.get_header("WARC-Date")),
                    "offset": iterator.get_record_offset(),
                    "length": iterator.get_record_length(),
                    "sha256": hashlib.sha256(payload).hexdigest(),
                }
            )
    return found


def stored_sources(kb) -> dict[str, dict]:
    with kb.store.reading() as conn:
        rows = conn.execute(
            select(
                sources.c.url,
                sources.c.origin,
                sources.c.fetched_at,
                sources.c.http_status,
                sources.c.content_type,
                documents.c.title,
            ).join(documents, documents.c.id == sources.c.document_id)
        ).mappings()
        return {row["url"]: dict(row) for row in rows}


def stored_images(kb) -> list[dict]:
    with kb.store.reading() as conn:
        rows = conn.execute(
            select(
                sources.c.url.label("page"),
                document_images.c.src_url,
                document_images.c.alt,
                images.c.content_hash,
                images.c.path,
            )
            .join(images, images.c.id == document_images.c.image_id)
            .join(sources, sources.c.document_id == document_images.c.document_id)
        ).mappings()
        return [dict(row) for row in rows]


# -- real archives (../shared) -----------------------------------------------------------------


def test_wikipedia_archives_store_pages_and_their_images_from_the_archive(kb, shared_data):
    archives = [shared_data / POST_BLACKOUT / name for name in ("post-blackout.warc.gz", "main-page.warc.gz")]
    in_archive = {path: {r["uri"]: r for r in records(path)} for path in archives}

    report = kb.index(["wikipedia", "internet censorship"], archives)

    assert report.pages["added"] == 2 and report.pages["failed"] == 0
    stored = stored_sources(kb)
    assert set(stored) == {MAIN_PAGE, "http://wikimediafoundation.org/wiki/SOPA/Blackoutpage"}
    for path in archives:
        for url, source in stored.items():
            record = in_archive[path].get(url)
            if record is None:
                continue
            # Stored under its archive URL, read from its record, dated by its WARC-Date.
            assert source["origin"] == f"{path}@{record['offset']}"
            assert source["fetched_at"] == record["date"]
            assert source["http_status"] == 200 and source["content_type"].startswith("text/html")
    assert stored[MAIN_PAGE]["fetched_at"] == timestamp("2012-01-19T10:02:03Z")
    assert stored[MAIN_PAGE]["title"] == "Main Page"

    # The Main Page's content images come from the same archive, byte for byte.
    main_page = in_archive[archives[1]]
    shown = [i for i in stored_images(kb) if i["page"] == MAIN_PAGE]
    assert len(shown) >= 5
    assert report.images["added"] == len(shown)
    for image in shown:
        assert image["src_url"].startswith("http://upload.wikimedia.org/")
        assert image["src_url"] in main_page
        assert image["content_hash"] == main_page[image["src_url"]]["sha256"]
        assert (kb.config.store.path / image["path"]).read_bytes()
    assert any("Nick Drake" in (i["alt"] or "") for i in shown)
    # What was refused are the logos too small to be pictures, each with its reason.
    assert report.images["failed"] == len(report.failures) > 0
    assert all("smaller than 32 px" in f.reason and archives[1].name in f.origin for f in report.failures)

    before = store_counts(kb)
    again = kb.index(["wikipedia", "internet censorship"], archives)
    assert again.pages["unchanged"] == 2 and again.pages["added"] == 0 and again.pages["failed"] == 0
    assert store_counts(kb) == before


@pytest.mark.parametrize("name", TRUNCATED)
def test_truncated_small_archives_index_what_they_hold(kb, shared_data, name):
    path = shared_data / SMALL / name
    report = kb.index(["internet archive"], [path])

    assert not report.interrupted and report.pages["failed"] == 0
    stored = stored_sources(kb)
    # (The other page, http://www.archive.org/, is a meta-refresh to this one.)
    assert report.pages["added"] == len(stored) and INDEX_PHP in stored
    assert stored[INDEX_PHP]["title"] == "Institutional Support"
    assert stored[INDEX_PHP]["fetched_at"] == timestamp("2008-04-30T20:48:26Z")
    assert all(s["origin"].startswith(f"{path}@") for s in stored.values())
    # The page's pictures are mostly not in these few records; each miss is said, none crashes.
    assert report.images["failed"] == len(report.failures) > 0
    reasons = {f.reason for f in report.failures}
    assert reasons <= {"not found in the input", "14x12 is smaller than 32 px (an icon or spacer)"}


@pytest.mark.parametrize("name", TRUNCATED)
@pytest.mark.parametrize("cut_in", [INDEX_PHP, LOGO])
def test_an_archive_cut_inside_a_record_keeps_what_comes_before(kb, shared_data, tmp_path, name, cut_in):
    """Cut inside the page's record, or in the picture's after it: that record is refused, with why."""
    source = shared_data / SMALL / name
    record = next(r for r in records(source) if r["uri"] == cut_in)
    cut = tmp_path / name
    cut.write_bytes(source.read_bytes()[: record["offset"] + record["length"] // 2])

    report = kb.index(["internet archive"], [cut])

    stored = stored_sources(kb)
    [damaged] = [f for f in report.failures if f.kind != "image"]
    assert damaged.origin == f"{cut}@{record['offset']}"
    assert damaged.reason.startswith(f"truncated archive record {cut_in}:")
    assert damaged.reason.endswith("bytes are missing")
    assert report.pages["failed"] == 1 and report.pages["added"] == len(stored)
    if cut_in == INDEX_PHP:
        assert damaged.kind == "page" and INDEX_PHP not in stored
    else:
        assert damaged.kind == "archive"
        assert stored[INDEX_PHP]["title"] == "Institutional Support"


def test_a_binary_file_named_like_an_archive_is_a_failure_not_a_crash(kb, shared_data, tmp_path):
    good = shared_data / SMALL / TRUNCATED[3]
    fake = tmp_path / "photo.warc.gz"
    fake.write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40))
    report = kb.index(["internet archive"], [fake, good])

    assert report.pages["failed"] == 1 and INDEX_PHP in stored_sources(kb)
    [failure] = [f for f in report.failures if f.kind == "archive"]
    assert failure.origin == str(fake) and failure.reason.startswith("unreadable after 0 records")


# -- a WARC made here ------------------------------------------------------------------------


def write_warc(path: Path, examples_dir: Path) -> dict:
    """A gzipped WARC as a crawler writes it: the page (gzip-encoded), its photo, a 404 page."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    page_url = "http://example.org/coffee/how-coffee-is-roasted.html"
    photo_url = "http://example.org/coffee/coffee-roasting_files/coffee.jpg"
    html = (examples_dir / "pages" / "coffee-roasting.html").read_bytes()
    photo = (examples_dir / "pages" / "coffee-roasting_files" / "coffee.jpg").read_bytes()
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)

        def response(url: str, body: bytes, date: str, status: str = "200 OK", **fields: str) -> None:
            named = {"Content-Type": "text/html; charset=utf-8", **{k.replace("_", "-"): v for k, v in fields.items()}}
            headers = StatusAndHeaders(status, list(named.items()), protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=headers, warc_headers_dict={"WARC-Date": date}
            )
            writer.write_record(record)

        response(page_url, gzip.compress(html), "2023-05-01T12:00:00Z", Content_Encoding="gzip")
        response(photo_url, photo, "2023-05-01T12:00:01Z", Content_Type="image/jpeg")
        missing = b"<html><body><p>Not found here.</p></body></html>"
        response("http://example.org/missing.html", missing, "2023-05-01T12:00:02Z", "404 Not Found")
    photo_hash = hashlib.sha256(photo).hexdigest()
    return {"page_url": page_url, "photo_url": photo_url, "photo": photo, "photo_hash": photo_hash}


def test_a_warc_written_here_links_the_page_and_its_photo(kb, tmp_path, examples_dir):
    archive = tmp_path / "crawl.warc.gz"
    made = write_warc(archive, examples_dir)

    report = kb.index(["coffee"], [archive])

    assert report.pages["added"] == 1 and report.pages["failed"] == 0  # the 404 page is not a page
    assert report.images["added"] == 1 and report.images["failed"] == 0
    stored = stored_sources(kb)
    assert set(stored) == {made["page_url"]}
    page = stored[made["page_url"]]
    assert page["title"] == "How coffee is roasted"
    assert page["fetched_at"] == timestamp("2023-05-01T12:00:00Z")
    assert page["origin"].startswith(f"{archive}@")
    [image] = stored_images(kb)
    assert image["page"] == made["page_url"] and image["src_url"] == made["photo_url"]
    assert image["content_hash"] == made["photo_hash"]
    assert "espresso cup" in image["alt"]
    assert (kb.config.store.path / image["path"]).read_bytes() == made["photo"]

    result = kb.ask("how is coffee roasted", max_images=1)
    assert [s.url for s in result.sources] == [made["page_url"]]
    assert result.images and result.images[0].src_url == made["photo_url"]

    before = store_counts(kb)
    again = kb.index(["coffee"], [archive])
    assert again.pages["unchanged"] == 1 and store_counts(kb) == before

    # The same page saved as files and archived: one document, the photo stored once.
    (tmp_path / "saved").mkdir()
    shutil.copy(examples_dir / "pages" / "coffee-roasting.html", tmp_path / "saved")
    shutil.copytree(examples_dir / "pages" / "coffee-roasting_files", tmp_path / "saved" / "coffee-roasting_files")
    kb.index(["coffee"], [tmp_path / "saved"])
    assert store_counts(kb)["documents"] == 1 and store_counts(kb)["images"] == 1
