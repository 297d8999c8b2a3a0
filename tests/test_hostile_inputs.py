"""Hostile input, counted: a table of distinct ways an input can be bad, over every input kind.

Each case is one row: how to make the bad input (in the test's temporary folder, or served by a
real HTTP server on loopback), the reason the run must give for it, and what it may add to the
store. Every case runs beside a good input of its own kind; the test checks that the reason names
the cause, that the run went on (the good input is stored), and that the store's counts moved by
exactly what the good input (and the case) adds: nothing stored before is lost or changed.

Config and store-file cases go through the CLI: the error is one clear line naming the file or
key, never a traceback, and the store is left as it was.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import EXAMPLES, make_config, store_counts
from site_server import LocalSite, Route, drip, endless, fail_then, gzip_bomb, page, redirect_to
from sqlalchemy import select
from test_bad_input import BOILERPLATE, article, figure, gif_1x1, png, png_claiming
from test_crawl import crawl_kb
from typer.testing import CliRunner

from cli.app import app
from engine.kb import KnowledgeBase
from engine.store.schema import documents

TOPICS = ["coffee", "domestic cats", "ancient coins"]
GOOD_PAGES = ["coffee-roasting.html", "cat-behaviour.html"]  # the baseline each store starts from
COFFEE_JPG = (EXAMPLES / "pages" / "coffee-roasting_files" / "coffee.jpg").read_bytes()
PAGE_LIMIT = 200_000  # index.max_page_bytes of the web-input store


@dataclass(frozen=True)
class Case:
    """One hostile input. ``reason``: a substring the failure's reason must hold (None: the input is
    used safely, with no failure); ``origin``: a substring of the failure's origin ({dir} is the
    case's folder, {base} the local site). ``added``/``images``: documents and images the case
    itself stores (a page kept without its bad image, a list's good line)."""

    build: Callable
    reason: str | None
    origin: str = ""
    kind: str | None = None  # the failure's kind (page, image, archive) when it matters
    added: int = 0
    images: int = 0
    failures: int | None = None  # failures the run records (default: 1, or 0 without a reason)
    crawl: dict = field(default_factory=dict)  # crawl settings of a store of its own
    pretend_public: bool = False  # the SSRF guard sees 127.0.0.1 as a public host


def case(id: str, *args, marks=(), **kwargs):  # noqa: A002 - pytest's word
    return pytest.param(Case(*args, **kwargs), id=id, marks=marks)


def slow(cases: list) -> list:
    """The group's cases, marked slow (each needs a run of its own; deselect with -m 'not slow')."""
    return [pytest.param(*p.values, id=p.id, marks=(*p.marks, pytest.mark.slow)) for p in cases]


# -- builders: local files ------------------------------------------------------------------------


def folder_with(name: str, data: bytes) -> Callable:
    """A folder (given to --from) holding one file ``name``."""

    def build(d: Path) -> list:
        (d / "in").mkdir()
        (d / "in" / name).write_bytes(data)
        return [d / "in"]

    return build


def page_with_images(files: dict[str, bytes | None], srcs: list[str] | None = None, title: str = "Pictured page") -> Callable:
    """A folder with an article whose figures show ``files`` (saved in its _files folder)."""

    def build(d: Path) -> list:
        folder = d / "in"
        (folder / "page_files").mkdir(parents=True)
        for name, data in files.items():
            if data is not None:
                (folder / "page_files" / name).write_bytes(data)
        shown = srcs if srcs is not None else [f"page_files/{n}" for n in files]
        figures = "".join(figure(src, f"{title} figure {n}") for n, src in enumerate(shown))
        (folder / "page.html").write_bytes(article(f"{title} {d.name}", figures))
        return [folder]

    return build


def with_symlink(build: Callable, link: str, target: Callable[[Path], Path]) -> Callable:
    def wrapped(d: Path) -> list:
        inputs = build(d)
        os.symlink(target(d), d / "in" / link)
        return inputs

    return wrapped


def outside_picture(d: Path) -> Path:
    (d / "outside").mkdir(exist_ok=True)
    (d / "outside" / "secret.png").write_bytes(png(120, 120, noise=True))
    return d / "outside" / "secret.png"


def warc(*records: tuple[str, bytes, str, str], gz: bool = False) -> bytes:
    """A WARC of response records (url, body, HTTP status line, content type)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    writer = WARCWriter(out, gzip=gz)
    for url, body, status, content_type in records:
        headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers))
    return out.getvalue()


def raw_warc_record(uri: str, http: bytes) -> bytes:
    """A response record written by hand, so its HTTP part can be anything."""
    return (
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + uri.encode() + b"\r\n"
        b"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:12345678-1234-1234-1234-123456789012>\r\n"
        b"Content-Type: application/http; msgtype=response\r\nContent-Length: " + str(len(http)).encode()
        + b"\r\n\r\n" + http + b"\r\n\r\n"
    )


def arc_file(title: str) -> bytes:
    block = b"1 0 Test\nURL IP-address Archive-date Content-type Archive-length\n"
    head = b"filedesc://test.arc 0.0.0.0 20240101000000 text/plain " + str(len(block)).encode() + b"\n" + block + b"\n"
    body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + article(title)
    return head + b"http://example.com/arc.html 1.2.3.4 20240101000000 text/html " + str(len(body)).encode() + b"\n" + body + b"\n"


def corrupted_png() -> bytes:
    data = bytearray(png(64, 64, noise=True))
    start = data.index(b"IDAT") + 40
    data[start : start + 200] = bytes(200)  # the compressed pixels, zeroed; the CRC no longer fits
    return bytes(data)


def animated_gif(frames: int) -> bytes:
    from PIL import Image

    images = [Image.effect_noise((64, 64), 40 + n % 50).convert("P") for n in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=10, loop=0)
    return out.getvalue()


def ico() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(out, "ICO", sizes=[(64, 64)])
    return out.getvalue()


SVG_XXE = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200"><text>&x;</text></svg>')
NESTED = b"<html><body>" + b"<div>" * 100_000 + b"<p>" + b"deep words " * 40 + b"</p>" + b"</div>" * 100_000 + b"</body></html>"
LAUGHS_DTD = ('<!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
              + "".join(f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(9)) + "]>")


def script_only() -> bytes:
    script = "document.write('" + "a page that is all script and no text " * 20 + "');"
    return f"<html><head><title>App</title><script>{script}</script></head><body><script>{script}</script></body></html>".encode()


PAGE_CASES = [
    case("page-empty", folder_with("empty.html", b""), "empty page", "empty.html"),
    case("page-whitespace-only", folder_with("blank.html", b" \n\t\r\n  " * 100), "empty page", "blank.html"),
    case("page-binary-garbage", folder_with("garbage.html", bytes(range(256)) * 16), "not HTML: the file holds binary data", "garbage.html"),
    case("page-png-named-html", folder_with("photo.html", png(40, 40)), "not HTML: the file is a PNG image", "photo.html"),
    case("page-pdf-named-html", folder_with("paper.html", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n"), "not HTML: the file is a PDF document", "paper.html"),
    case("page-gzip-named-html", folder_with("packed.html", gzip.compress(article("Packed"))), "not HTML: the file is gzip data", "packed.html"),
    case("page-nul-after-1kb", folder_with("nul.html", article("Nul page", paragraphs=12).replace(b"part 9", b"part\x009")), None, added=1),
    case("page-boilerplate-only", folder_with("menu.html", BOILERPLATE), "no main text found", "menu.html"),
    case("page-script-only", folder_with("app.html", script_only()), "no main text found", "app.html"),
    case("page-nested-100k-deep", folder_with("deep.html", NESTED), "tags nested deeper than the parser's 256-level limit", "deep.html"),
    case("page-over-size-limit", folder_with("huge.html", b"<html><body><p>" + b"x" * 10_000_001), "bytes is over the 10000000-byte page limit", "huge.html"),
    case("page-wrong-declared-charset", folder_with("latin.html", article("Latin page").replace(b"part 1", "caf\xe9 cr\xe8me part 1".encode("latin-1"))), None, added=1),
    case("page-utf16-declared-utf8", folder_with("wide.html", article("Wide page").decode().encode("utf-16")), None, added=1),
    case("page-entity-expansion", folder_with("lol.html", LAUGHS_DTD.encode() + article("Laughing page").replace(b"part 1", b"part &j;")), "declares XML entities", "lol.html"),
    case("page-saved-from-javascript-url", folder_with("js.html", b"<!-- saved from url=(0019)javascript:alert(1) -->" + article("Saved page")), None, added=1),
    case("page-symlink-loop", with_symlink(folder_with("ok.txt", b""), "loop.html", lambda d: d / "in" / "loop.html"), "unreadable: Too many levels of symbolic links", "loop.html"),
    case("page-folder-links-to-itself", with_symlink(folder_with("ok.txt", b""), "again", lambda d: d / "in"), None),
    case("page-missing-path", lambda d: [d / "no-such-folder"], "no such file or folder", "no-such-folder"),
    case("page-unsupported-extension", lambda d: [folder_with("x", b"")(d)[0] / "x"], "not an HTML file, a folder or a WARC/ARC archive", "in/x"),
]

IMAGE_CASES = [
    case("image-truncated-jpeg", page_with_images({"cut.jpg": COFFEE_JPG[: len(COFFEE_JPG) // 2]}), "image file is truncated", "cut.jpg (in", "image", added=1),
    case("image-decompression-bomb", page_with_images({"bomb.png": png_claiming(100_000, 100_000)}), "decompression bomb", "bomb.png (in", "image", added=1),
    case("image-over-pixel-limit", page_with_images({"big.png": png_claiming(8000, 8000)}), "8000x8000 is over the 40000000-pixel limit", "big.png (in", "image", added=1),
    case("image-tracking-pixel", page_with_images({"pixel.gif": gif_1x1()}), "1x1 is smaller than 32 px", "pixel.gif (in", "image", added=1),
    case("image-html-saved-as-jpeg", page_with_images({"photo.jpg": b"<!DOCTYPE html><html><body>Not found</body></html>"}), "not an image (unrecognised data)", "photo.jpg (in", "image", added=1),
    case("image-svg-with-external-entity", page_with_images({"chart.svg": SVG_XXE}), None, added=1),  # never read: not a format kept
    case("image-svg-named-png", page_with_images({"chart.png": SVG_XXE}), "not an image (unrecognised data)", "chart.png (in", "image", added=1),
    case("image-ico-named-png", page_with_images({"logo.png": ico()}), "unsupported image format ICO", "logo.png (in", "image", added=1),
    case("image-corrupted-pixels", page_with_images({"noise.png": corrupted_png()}), "damaged image", "noise.png (in", "image", added=1),
    case("image-empty-file", page_with_images({"none.jpg": b""}), "empty file", "none.jpg (in", "image", added=1),
    case("image-over-byte-limit", page_with_images({"heavy.jpg": COFFEE_JPG[:4] + bytes(20_000_001)}), "over the 20000000-byte image limit", "heavy.jpg (in", "image", added=1),
    case("image-missing-file", page_with_images({"gone.jpg": None}), "not found in the input", "gone.jpg (in", "image", added=1),
    case("image-src-is-a-folder", with_symlink(page_with_images({}, srcs=["page_files/dir.png"]), "page_files/dir.png", lambda d: d / "in"),
         "not found in the input", "dir.png (in", "image", added=1),
    case("image-path-escapes-folder", page_with_images({}, srcs=["../../../../../../etc/passwd.png"]), "not found in the input", "etc/passwd.png (in", "image", added=1),
    case("image-symlink-out-of-folder", with_symlink(page_with_images({}, srcs=["page_files/link.png"]), "page_files/link.png", outside_picture),
         "not found in the input", "link.png (in", "image", added=1),
    case("image-animated-gif-300-frames", page_with_images({"anim.gif": animated_gif(300)}), None, added=1, images=1),
]

ARCHIVE_CASES = [
    case("archive-random-bytes", folder_with("broken.warc.gz", bytes(range(256)) * 40), "unreadable after 0 records: Unknown archive format", "broken.warc.gz", "archive"),
    case("archive-gzip-not-warc", folder_with("text.warc.gz", gzip.compress(b"just some text, not an archive\n" * 50)), "non-chunked gzip file", "text.warc.gz", "archive"),
    case("archive-empty-file", folder_with("empty.warc", b""), "no HTML page in the archive (0 readable", "empty.warc", "archive"),
    case("archive-truncated-record", folder_with("cut.warc", warc(("http://example.com/cut.html", article("Cut page"), "200 OK", "text/html"))[:-300]),
         "truncated archive record http://example.com/cut.html", "cut.warc@", "page"),
    case("archive-malformed-http-headers", folder_with("headers.warc", raw_warc_record(
        "http://example.com/bad.html", b"HTTP/1.1 banana\r\nContent-Type text/html\r\n\x00\x01garbage\r\n\r\n" + article("Bad headers"))),
         "no HTML page in the archive (1 readable", "headers.warc", "archive"),
    case("archive-png-as-html-record", folder_with("png.warc", warc(("http://example.com/p.html", png(40, 40), "200 OK", "text/html"))),
         "not HTML: the file is a PNG image", "png.warc@", "page"),
    case("archive-arc-damaged", folder_with("damaged.arc", (lambda a: a[:150] + b"\x00\xff garbage" + a[300:])(arc_file("Damaged arc"))),
         "no HTML page in the archive", "damaged.arc", "archive"),
    case("archive-arc-cut", folder_with("cut.arc", arc_file("Cut arc")[:-500]), "truncated archive record http://example.com/arc.html", "cut.arc@", "page"),
]


# -- the local-input runs ---------------------------------------------------------------------------


def stored_documents(kb) -> dict[int, str]:
    with kb.store.reading() as conn:
        return dict(conn.execute(select(documents.c.id, documents.c.content_hash)).all())


def baseline(kb: KnowledgeBase, tmp: Path) -> None:
    folder = tmp / "baseline"
    folder.mkdir()
    for name in GOOD_PAGES:
        shutil.copy(EXAMPLES / "pages" / name, folder / name)
        shutil.copytree(EXAMPLES / "pages" / name.replace(".html", "_files"), folder / name.replace(".html", "_files"))
    report = kb.index(TOPICS, [folder])
    assert report.pages["added"] == len(GOOD_PAGES), report.to_dict()


@pytest.fixture(scope="module")
def local_kb(tmp_path_factory, text_encoder):
    root = tmp_path_factory.mktemp("local-store")
    with KnowledgeBase(make_config(root), text_encoder=text_encoder) as kb:
        baseline(kb, root)
        yield kb


def good_page(d: Path, name: str) -> Path:
    path = d / "good" / f"{name}.html"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(article(f"Good page {name}"))
    return path


def run_case(kb: KnowledgeBase, c: Case, inputs: list, good: list, origin_vars: dict) -> object:
    """Index ``inputs`` and the good ones in one run; check the reason, that the run went on, the counts."""
    before = store_counts(kb)
    documents_before = stored_documents(kb)
    report = kb.index(TOPICS, [*inputs, *good])
    assert not report.interrupted
    failures = report.failures
    assert not [f for f in failures if f.reason.startswith("unexpected")], failures  # a parser's traceback
    if c.reason is not None:
        origin = c.origin.format(**origin_vars)
        found = [f for f in failures if origin in f.origin and c.reason in f.reason and (c.kind is None or f.kind == c.kind)]
        assert found, f"no failure naming {origin!r} with {c.reason!r} in {failures}"
    expected_failures = c.failures if c.failures is not None else (1 if c.reason is not None else 0)
    assert len(failures) == expected_failures, failures
    # The run went on: the good inputs are stored beside whatever the bad one was.
    assert report.pages["added"] == len(good) + c.added, report.to_dict()
    after = store_counts(kb)
    assert after["documents"] == before["documents"] + len(good) + c.added
    assert after["images"] == before["images"] + c.images
    assert after["chunks"] == before["chunks"] + report.chunks_added
    assert after["text_vectors"] == after["chunks"]
    assert set(documents_before.items()) <= set(stored_documents(kb).items()), "a stored document was lost or changed"
    return report


IMAGE_CASES = slow(IMAGE_CASES)


@pytest.mark.parametrize("c", PAGE_CASES + ARCHIVE_CASES + IMAGE_CASES)
def test_a_hostile_local_input_is_refused_with_its_reason_and_the_run_goes_on(c, local_kb, tmp_path, request):
    inputs = c.build(tmp_path)
    report = run_case(local_kb, c, inputs, [good_page(tmp_path, request.node.callspec.id)], {"dir": tmp_path, "base": ""})
    if c.kind == "image":
        assert report.images["failed"] == 1


def test_a_javascript_saved_from_stamp_is_not_stored_as_the_source_url(tmp_path, text_encoder):
    # Checked on its own store: the shared one below depends on which cases ran before it.
    from engine.store.schema import sources

    folder = folder_with("js.html", b"<!-- saved from url=(0019)javascript:alert(1) -->" + article("Saved page"))(tmp_path)[0]
    with crawl_kb(tmp_path / "kb", text_encoder) as kb:
        assert kb.index(["pottery"], [folder]).pages == {"added": 1}
        with kb.store.reading() as conn:
            [url] = conn.execute(select(sources.c.url)).scalars().all()
    assert url.startswith("file://") and url.endswith("/js.html"), url


def test_hostile_pages_store_nothing_from_outside_or_from_their_own_markup(local_kb):
    """What the cases above stored safely: no javascript: source, no entity expanded, no NUL."""
    from engine.store.schema import sources

    with local_kb.store.reading() as conn:
        urls = list(conn.execute(select(sources.c.url)).scalars())
        texts = list(conn.execute(select(documents.c.text)).scalars())
    assert urls and not [u for u in urls if not u.startswith(("file://", "http://", "https://"))], urls
    assert not [t for t in texts if "root:" in t or "aaaaaaaaaa" in t or "\x00" in t]


# -- web inputs: URLs, URL lists, feeds, sitemaps, HTTP behaviours ------------------------------------


def rss(*links: str, extra: str = "", doctype: str = "") -> str:
    items = "".join(f"<item><title>Entry {n}{extra}</title><link>{link}</link><description>about it{extra}</description></item>"
                    for n, link in enumerate(links))
    return f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>A site</title>{items}</channel></rss>'


def urlset(*locs: str, doctype: str = "") -> str:
    entries = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return f'<?xml version="1.0"?>{doctype}<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


def served(path: str, body: bytes | str, **route) -> Callable:
    def build(site: LocalSite, d: Path, good: Callable) -> list:
        text = body(site, good) if callable(body) else body
        return [site.add(path, text, **route)]

    return build


def handled(path: str, handler: Callable) -> Callable:
    def build(site: LocalSite, d: Path, good: Callable) -> list:
        site.handle(path, handler)
        return [site.url(path)]

    return build


def url_list(lines: Callable | bytes) -> Callable:
    """A .txt list; ``lines(site, good)`` gives its text (``good(name)`` serves one more good page)."""

    def build(site: LocalSite, d: Path, good: Callable) -> list:
        path = d / "urls.txt"
        path.write_bytes(lines if isinstance(lines, bytes) else lines(site, good).encode())
        return [path]

    return build


def short_body(h) -> None:  # noqa: ANN001 - a RequestHandler
    """Says 50 000 bytes, sends a few, hangs up."""
    h.sent_status = 200
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "50000")
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"<html><body><p>cut short")
    h.wfile.flush()
    h.close_connection = True


def bomb_xml_gz() -> bytes:
    return gzip.compress(b'<?xml version="1.0"?><urlset>' + b" " * 5_000_000 + b"</urlset>")


XXE = '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n"

URL_LIST_CASES = [
    case("urllist-no-urls", url_list(lambda s, g: "my reading list\nsome words\n"), "not a URL list: no line is an http(s) URL", "{dir}/urls.txt"),
    case("urllist-ftp-line", url_list(lambda s, g: f"{g('listed-ftp')}\nftp://files.example.org/a.html\n"), "not an http(s) URL: 'ftp://files.example.org/a.html'", "{dir}/urls.txt:2", added=1),
    case("urllist-file-line", url_list(lambda s, g: f"# notes\n{g('listed-file')}\nfile:///etc/passwd\n"), "not an http(s) URL: 'file:///etc/passwd'", "{dir}/urls.txt:3", added=1),
    case("urllist-line-with-spaces", url_list(lambda s, g: f"{g('listed-space')}\nhttp://example.org/a page.html\n"), "not an http(s) URL: 'http://example.org/a page.html'", "{dir}/urls.txt:2", added=1),
    case("urllist-not-utf8", url_list(b"http://example.org/caf\xe9.html\n"), "a URL list must be UTF-8 text", "{dir}/urls.txt"),
    case("urllist-missing-file", lambda site, d, good: [d / "missing.txt"], "no such URL list file", "{dir}/missing.txt"),
    case("urllist-is-a-folder", lambda site, d, good: [(d / "folder.txt").mkdir() or d / "folder.txt"], "cannot read the URL list", "{dir}/folder.txt"),
]

FEED_CASES = [
    case("feed-not-xml", served("/feeds/broken.xml", '<rss version="2.0"><channel><title>broken & <<<< </chan', content_type="application/rss+xml"),
         "not an RSS/Atom feed (", "{base}/feeds/broken.xml"),
    case("feed-no-entries", served("/feeds/empty.xml", rss(), content_type="application/rss+xml"), "the feed has no entries", "{base}/feeds/empty.xml"),
    case("feed-javascript-and-file-links", served("/feeds/js.xml", rss("javascript:alert(1)", "file:///etc/passwd"), content_type="application/rss+xml"),
         "the feed lists no page", "{base}/feeds/js.xml"),
    case("feed-billion-laughs", served("/feeds/lol.xml", lambda s, g: rss(g("lol-entry"), extra="&j;", doctype=LAUGHS_DTD), content_type="application/rss+xml"),
         None, added=1),
    case("feed-external-entity", served("/feeds/xxe.xml", lambda s, g: rss(g("xxe-entry"), extra="&xxe;", doctype=XXE), content_type="application/rss+xml"),
         None, added=1),
    case("feed-over-size-limit", served("/feeds/huge.xml", lambda s, g: rss(g("huge-entry"), extra="x" * PAGE_LIMIT), content_type="application/rss+xml"),
         "too large: ", "{base}/feeds/huge.xml"),
]

SITEMAP_CASES = [
    case("sitemap-non-http-locs", served("/maps/ftp.xml", urlset("ftp://example.org/a.html", "javascript:alert(1)", "file:///etc/passwd"), content_type="application/xml"),
         "the sitemap lists no page", "{base}/maps/ftp.xml"),
    case("sitemap-index-to-404", served("/maps/index.xml", lambda s, g: '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                        f"<sitemap><loc>{s.url('/maps/gone.xml')}</loc></sitemap></sitemapindex>", content_type="application/xml"),
         "HTTP 404: Not Found", "{base}/maps/gone.xml", failures=2),  # and the index lists no page
    case("sitemap-gzip-bomb", served("/maps/bomb.xml.gz", bomb_xml_gz(), content_type="application/gzip"),
         f"unpacks to more than the {PAGE_LIMIT} bytes allowed", "{base}/maps/bomb.xml.gz"),
    case("sitemap-not-gzip", served("/maps/fake.xml.gz", b"\x1f\x8b" + bytes(range(256)), content_type="application/gzip"),
         "is not valid gzip", "{base}/maps/fake.xml.gz"),
    case("sitemap-malformed-xml", served("/maps/bad.xml", '<?xml version="1.0"?><urlset><url><loc>http://example.org/a</loc></url', content_type="application/xml"),
         "is not an XML sitemap", "{base}/maps/bad.xml"),
    case("sitemap-wrong-root", served("/maps/catalog.xml", '<?xml version="1.0"?><!-- <urlset> --><catalog><url><loc>http://example.org/a</loc></url></catalog>', content_type="application/xml"),
         "is not a sitemap: its root element is <catalog>", "{base}/maps/catalog.xml"),
    case("sitemap-billion-laughs", served("/maps/lol.xml", urlset("http://example.org/&j;", doctype=LAUGHS_DTD.replace("lolz", "urlset")), content_type="application/xml"),
         "is not an XML sitemap", "{base}/maps/lol.xml"),
    case("sitemap-external-entity", served("/maps/xxe.xml", lambda s, g: urlset(s.url("/xxe/") + "&xxe;", doctype=XXE), content_type="application/xml"),
         "HTTP 404: Not Found", "{base}/xxe/"),  # the entity is dropped, never read
]

HTTP_CASES = [
    case("http-404", served("/h/missing-page.html", "nope", status=404), "HTTP 404: Not Found", "{base}/h/missing-page.html"),
    case("http-410", served("/h/removed.html", "gone", status=410, content_type="text/plain"), "HTTP 410: Gone", "{base}/h/removed.html"),
    case("http-500-repeatedly", served("/h/error.html", "boom", status=500, content_type="text/plain"), "HTTP 500: Internal Server Error (after 3 attempts)", "{base}/h/error.html"),
    case("http-429-retry-after-an-hour", handled("/h/busy.html", fail_then(99, 429, Route(), retry_after="3600")), "HTTP 429: Too Many Requests (asks to retry after 3600 s", "{base}/h/busy.html"),
    case("http-redirect-loop", lambda s, d, g: [s.handle("/h/loop-a", redirect_to("/h/loop-b")), s.handle("/h/loop-b", redirect_to("/h/loop-a"))][:1],
         "redirect loop: ", "{base}/h/loop-a"),
    case("http-redirect-chain-too-long", lambda s, d, g: [[s.handle(f"/h/hop{n}", redirect_to(f"/h/hop{n + 1}")) for n in range(9)][0]],
         "too many redirects (over crawl.max_redirects = 5)", "{base}/h/hop0"),
    case("http-redirect-to-file-scheme", handled("/h/to-file", redirect_to("file:///etc/passwd")), "file scheme is not fetched", "{base}/h/to-file"),
    case("http-redirect-to-loopback-guarded", lambda s, d, g: [s.handle("/h/to-internal", redirect_to(f"http://127.0.0.2:{s.base.rsplit(':', 1)[1]}/admin"))],
         "refused address: 127.0.0.2 is a loopback address", "{base}/h/to-internal", crawl={"allow_private_addresses": False}, pretend_public=True),
    case("http-loopback-url-guarded", lambda s, d, g: [g("guarded")], "127.0.0.1 is a loopback address", "{base}/good/guarded.html", crawl={"allow_private_addresses": False}),
    case("http-endless-body", handled("/h/endless.html", endless()), f"too large: page body over the {PAGE_LIMIT}-byte limit", "{base}/h/endless.html"),
    case("http-gzip-bomb", handled("/h/bomb.html", gzip_bomb(20_000_000)), "after decompression", "{base}/h/bomb.html"),
    case("http-pdf-content-type", served("/h/paper", PDF, content_type="application/pdf"), "Content-Type application/pdf", "{base}/h/paper"),
    case("http-png-declared-html", served("/h/fake.html", png(40, 40)), "declared text/html but the body is a PNG image", "{base}/h/fake.html"),
    case("http-robots-disallow", served("/private/secret.html", page("Secret", "Hidden words " * 20)), "robots.txt: disallowed", "{base}/private/secret.html"),
    case("http-200-empty-body", served("/h/empty.html", b""), "empty page", "{base}/h/empty.html"),
    case("http-body-shorter-than-length", handled("/h/short.html", short_body), "connection broken: peer closed connection without sending complete message body", "{base}/h/short.html"),
    case("http-connection-refused", lambda s, d, g: ["http://127.0.0.1:9/nothing.html"], "connection failed", "http://127.0.0.1:9/nothing.html"),
    case("http-body-drips-past-deadline", handled("/h/drip.html", drip(0.1)), "timeout: the response took over crawl.fetch_deadline_seconds = 3 s",
         "{base}/h/drip.html", marks=pytest.mark.slow),
    case("http-no-data-until-read-timeout", served("/h/slow.html", page("Slow", "Slow words " * 20), delay=1.5), "timeout: no data for 1 s",
         "{base}/h/slow.html", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def site():
    with LocalSite() as server:
        server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        yield server


@pytest.fixture(scope="module")
def web_kb(tmp_path_factory, text_encoder):
    root = tmp_path_factory.mktemp("web-store")
    with crawl_kb(root, text_encoder, max_page_bytes=PAGE_LIMIT) as kb:
        baseline(kb, root)
        yield kb


FEED_CASES, SITEMAP_CASES, HTTP_CASES = slow(FEED_CASES), slow(SITEMAP_CASES), slow(HTTP_CASES)


@pytest.mark.parametrize("c", URL_LIST_CASES + FEED_CASES + SITEMAP_CASES + HTTP_CASES)
def test_a_hostile_web_input_is_refused_with_its_reason_and_the_run_goes_on(c, site, web_kb, tmp_path, request, text_encoder, monkeypatch):
    name = request.node.callspec.id

    def good(suffix: str) -> str:
        return site.add(f"/good/{suffix}.html", page(f"Good page {suffix}", *(f"The {suffix} page says thing {n} about coffee roasting." for n in range(3))))

    inputs = c.build(site, tmp_path, good)
    variables = {"dir": tmp_path, "base": site.base}
    if not c.crawl:
        run_case(web_kb, c, inputs, [good(name)], variables)
        return
    # Loopback refused: a store of its own with the case's settings; the good input is a saved page.
    if c.pretend_public:
        from indexer.fetch import netguard

        real = netguard.address_problem
        monkeypatch.setattr(netguard, "address_problem", lambda a: None if a == "127.0.0.1" else real(a))
    with crawl_kb(tmp_path / "own", text_encoder, crawl=c.crawl) as kb:
        baseline(kb, tmp_path)
        run_case(kb, c, inputs, [good_page(tmp_path, name)], variables)


# -- config files: a clear ConfigError naming the file and key; the store is not touched ----------

CONFIG_CASES = [
    case("config-toml-syntax-error", "[index\nmax_page_bytes = 5\n", "Expected ']' at the end of a table declaration"),
    case("config-unknown-section", "[indexing]\nmax_page_bytes = 5\n", "unknown config section 'indexing'"),
    case("config-unknown-key", "[index]\nmax_pages = 5\n", "unknown key index.max_pages (known: "),
    case("config-wrong-type", "[index]\nmax_page_bytes = 'big'\n", "index.max_page_bytes: invalid literal for int()"),
    case("config-negative-size", "[index]\nmax_page_bytes = -1\n", "index.max_page_bytes must be above 0, not -1"),
    case("config-negative-timeout", "[crawl]\nfetch_deadline_seconds = -5.0\n", "crawl.fetch_deadline_seconds must be 0 or more, not -5.0"),
    case("config-zero-concurrency", "[crawl]\nconcurrency = 0\n", "crawl.concurrency must be above 0, not 0"),
    case("config-float-for-integer", "[text]\nbatch_size = 2.5\n", "text.batch_size: not an integer: 2.5"),
    case("config-not-a-boolean", "[clip]\nenabled = 'maybe'\n", "clip.enabled: not a boolean: 'maybe'"),
    case("config-section-not-a-table", "index = 5\n", "index must be a table (a section of keys), not 5"),
    case("config-out-of-range", "[index]\ntarget_recall = 2.0\n", "index.target_recall must be above 0 and at most 1, not 2.0"),
    case("config-bad-choice", "[index]\nexecutor = 'gpu-farm'\n", "index.executor must be one of local, ray, not 'gpu-farm'"),
    case("config-not-utf8", b"[index]\n# caf\xe9\nmax_page_bytes = 5\n", "'utf-8' codec can't decode byte 0xe9"),
    case("config-is-a-folder", None, "Is a directory"),
]


@pytest.fixture(scope="module")
def config_store(tmp_path_factory, text_encoder):
    root = tmp_path_factory.mktemp("config-store")
    with KnowledgeBase(make_config(root), text_encoder=text_encoder) as kb:
        baseline(kb, root)
        counts = store_counts(kb)
    return root / "store", counts


@pytest.mark.parametrize("c", CONFIG_CASES)
def test_a_hostile_config_file_is_one_clear_error_naming_file_and_key_and_the_store_is_untouched(c, config_store, tmp_path):
    store, counts = config_store
    file = tmp_path / "config.toml"
    if c.build is None:
        file.mkdir()
    elif isinstance(c.build, bytes):
        file.write_bytes(c.build)
    else:
        file.write_text(c.build)
    good = good_page(tmp_path, "config")
    result = CliRunner().invoke(app, ["--config", str(file), "--store", str(store), "index", "--topics",
                                      str(EXAMPLES / "topics.txt"), "--from", str(good)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ConfigError: "), result.output  # one line, no traceback
    assert str(file) in lines[0] and c.reason in lines[0], lines[0]
    with KnowledgeBase(make_config(store.parent)) as kb:
        assert store_counts(kb) == counts


# -- store files: damage is reported plainly; what is intact still reads -------------------------------


def truncate_db(store: Path) -> None:
    data = (store / "engine.db").read_bytes()
    (store / "engine.db").write_bytes(data[: len(data) // 3])


def garble_db(store: Path) -> None:
    (store / "engine.db").write_bytes(bytes(range(256)) * 200)


def newer_schema(store: Path) -> None:
    with sqlite3.connect(store / "engine.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")


def store_is_a_file(store: Path) -> None:
    shutil.rmtree(store)
    store.write_bytes(b"not a folder")


# (damage, the one line the CLI prints for `engine check`, its exit code)
BROKEN_STORE_CASES = [
    case("store-db-truncated", truncate_db, "StoreError: the store's database", "database disk image is malformed"),
    case("store-db-garbage", garble_db, "StoreError: the store's database", "file is not a database"),
    case("store-db-newer-schema", newer_schema, "SchemaTooNewError: ", "schema revision ffff9999, newer than this engine knows"),
    case("store-folder-is-a-file", store_is_a_file, "StoreError: cannot create the store folder", "File exists"),
]


def built_store(root: Path, text_encoder) -> tuple[Path, dict]:
    with KnowledgeBase(make_config(root), text_encoder=text_encoder) as kb:
        baseline(kb, root)
        counts = store_counts(kb)
    for extra in ("engine.db-wal", "engine.db-shm"):
        (root / "store" / extra).unlink(missing_ok=True)
    return root / "store", counts




@pytest.mark.parametrize("c", BROKEN_STORE_CASES)
def test_a_damaged_store_file_is_one_plain_error_line_not_a_traceback(c, tmp_path, text_encoder):
    store, counts = built_store(tmp_path, text_encoder)
    images_before = sorted(p.name for p in (store / "images").rglob("*") if p.is_file()) if store.is_dir() else []
    c.build(store)
    for command in (["check"], ["status"]):
        result = CliRunner().invoke(app, ["--store", str(store), *command])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(c.reason) and c.origin in lines[0], result.output
        assert "Traceback" not in result.output
    if store.is_dir():  # the untouched parts are left as they were: nothing repaired over, nothing removed
        assert sorted(p.name for p in (store / "images").rglob("*") if p.is_file()) == images_before
    if c.build is newer_schema:  # refused, not migrated or changed: its rows are all there
        with sqlite3.connect(store / "engine.db") as conn:
            assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == counts["documents"]
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "ffff9999"


def garble_faiss(store: Path) -> str:
    (store / "index" / "text.faiss").write_bytes(b"garbage" * 100)
    return "unreadable"


def garble_manifest(store: Path) -> str:
    (store / "index" / "text.faiss.json").write_text("{not json")
    return ""


def delete_faiss(store: Path) -> str:
    shutil.rmtree(store / "index")
    return "no index file"


def garble_wal(store: Path) -> str:
    (store / "engine.db-wal").write_bytes(bytes(range(256)) * 64)
    return ""


def stale_lock(store: Path) -> str:
    (store / "write.lock").write_text("pid 999999 (killed)")
    return ""


def delete_an_image(store: Path) -> str:
    next(p for p in (store / "images").rglob("*") if p.is_file()).unlink()
    return "image files are missing"


def stray_image(store: Path) -> str:
    folder = next(p for p in (store / "images").rglob("*") if p.is_dir())
    (folder / "stray.jpg").write_bytes(COFFEE_JPG)
    return "image files belong to no stored image"


# Damage the store survives: the text and its search still work, `engine check` names the problem
# (``reason``; a problem when ``kind`` is "problem", else a note), and the next run adds a page.
SURVIVED_STORE_CASES = [
    case("store-faiss-garbled", garble_faiss, "unreadable", kind="note"),
    case("store-faiss-manifest-garbled", garble_manifest, None),
    case("store-faiss-files-deleted", delete_faiss, "no index file", kind="note"),
    case("store-wal-garbage", garble_wal, None),
    case("store-stale-write-lock", stale_lock, None),
    case("store-image-file-missing", delete_an_image, "1 image files are missing", kind="problem"),
    case("store-stray-image-file", stray_image, "1 image files belong to no stored image", kind="note"),
]

SURVIVED_STORE_CASES = slow(SURVIVED_STORE_CASES)


@pytest.mark.parametrize("c", SURVIVED_STORE_CASES)
def test_store_damage_that_sqlite_survives_is_reported_and_repaired_not_fatal(c, tmp_path, text_encoder):
    store, counts = built_store(tmp_path, text_encoder)
    c.build(store)
    result = CliRunner().invoke(app, ["--store", str(store), "check"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == (1 if c.kind == "problem" else 0), result.output
    if c.reason:
        assert c.reason in result.output, result.output
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as kb:
        assert store_counts(kb) == counts
        answer = kb.ask("how is coffee roasted", max_images=0)
        assert "How coffee is roasted" in {s.title for s in answer.sources}
        report = kb.index(TOPICS, [good_page(tmp_path, "after-damage")])
        assert report.pages["added"] == 1 and not report.failures, report.to_dict()
        after = store_counts(kb)
        assert after["documents"] == counts["documents"] + 1 and after["text_vectors"] == after["chunks"]
        check = kb.check()
        assert check.ok == (c.kind != "problem"), check.problems


# -- the count --------------------------------------------------------------------------------------

ALL_CASES = (PAGE_CASES + IMAGE_CASES + ARCHIVE_CASES + URL_LIST_CASES + FEED_CASES + SITEMAP_CASES + HTTP_CASES
             + CONFIG_CASES + BROKEN_STORE_CASES + SURVIVED_STORE_CASES)


def test_the_table_holds_at_least_50_distinct_hostile_inputs_of_every_kind():
    ids = [p.id for p in ALL_CASES]
    assert len(ids) == len(set(ids)), "a case is listed twice"
    assert len(ALL_CASES) >= 50
    kinds = {i.split("-", 1)[0] for i in ids}
    assert kinds == {"page", "image", "archive", "urllist", "feed", "sitemap", "http", "config", "store"}
