"""The HTML report: hostile page strings stay text, no script can run, images are embedded JPEGs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import lxml.html
import pytest
from PIL import Image

from cli.render_html import render_html, safe_href
from engine.results import AskResult, ImageHit, SourceRef, SummarySentence

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"onerror="alert(2)" x="'


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (1200, 800), (200, 120, 40)).save(path)
    return path


def hostile_result(photo: Path, style: str = "bullets") -> AskResult:
    return AskResult(
        query=f"coffee {SCRIPT}",
        style=style,
        summary=[
            SummarySentence(f"Beans are roasted {SCRIPT} in drums.", [1], 10, 100, 0.8),
            SummarySentence(f"Second crack {BREAKOUT} comes later.", [1, 2], 10, 101, 0.7, supported=False, support=0.41),
        ],
        sources=[
            SourceRef(1, 10, f"Roasting {SCRIPT}", "javascript:alert(3)", "2024-01-02"),
            SourceRef(2, 11, BREAKOUT, "https://example.org/a?b=1&c=<2>", None),
            SourceRef(3, 12, "tabbed", "java\tscript:alert(4)", None),
        ],
        images=[
            ImageHit(
                image_id=1, path=str(photo), source=1, src_url="javascript:alert(5)", alt=BREAKOUT,
                caption=f"A roaster {SCRIPT}", width=1200, height=800, score=0.61,
                parts={"context": 0.5, "clip_topic": 0.7}, sentence=0, generated_caption=f"gen {SCRIPT}",
            ),
            ImageHit(
                image_id=2, path=str(photo.parent / "missing.jpg"), source=None, src_url="", alt=None,
                caption=None, width=10, height=10, score=0.2, parts={"context": 0.2}, sentence=None,
            ),
        ],
        notices=[f"note {SCRIPT}"],
        faithfulness={"generated": 3, "supported": 2, "dropped": 1, "marked": 0},
    )


def parse(html: str):  # noqa: ANN201 - lxml element
    return lxml.html.document_fromstring(html)


def test_no_script_can_run(photo):
    html = render_html(hostile_result(photo))
    doc = parse(html)
    assert doc.xpath("//script") == []
    assert [a for el in doc.iter() for a in el.attrib if a.lower().startswith("on")] == []
    hrefs = [a.get("href") for a in doc.xpath("//a")]
    assert all(h.startswith("#") or h.startswith("https://") for h in hrefs), hrefs
    assert not any("script:" in h for h in hrefs)
    csp = doc.xpath('//meta[@http-equiv="Content-Security-Policy"]/@content')[0]
    assert "default-src 'none'" in csp and "script" not in csp  # scripts fall under default-src
    assert "<script" not in html.lower()


def test_hostile_strings_appear_as_text(photo):
    doc = parse(render_html(hostile_result(photo)))
    text = doc.text_content()
    assert f"Beans are roasted {SCRIPT} in drums." in text
    assert f"Second crack {BREAKOUT} comes later." in text
    assert f"Roasting {SCRIPT}" in text and "javascript:alert(3)" in text  # shown, not linked
    assert doc.xpath("//title")[0].text == f"coffee {SCRIPT}"
    (img,) = doc.xpath("//img")
    assert img.get("alt") == BREAKOUT and set(img.attrib) == {"src", "alt", "loading"}
    assert f"generated caption: gen {SCRIPT}" in text and f"note {SCRIPT}" in text
    # Only the plain https URL is a link, with its query string intact.
    external = [a for a in doc.xpath("//a") if not a.get("href").startswith("#")]
    assert [(a.get("href"), a.text_content()) for a in external] == [("https://example.org/a?b=1&c=<2>", BREAKOUT)]


def test_images_are_bounded_jpeg_data_uris_next_to_their_sentence(photo):
    doc = parse(render_html(hostile_result(photo)))
    (img,) = doc.xpath('//div[@id="s1"]//img')
    prefix = "data:image/jpeg;base64,"
    assert img.get("src").startswith(prefix)
    decoded = Image.open(io.BytesIO(base64.b64decode(img.get("src")[len(prefix):])))
    decoded.load()
    assert decoded.format == "JPEG" and max(decoded.size) == 512 and decoded.size == (512, 341)
    figure = img.getparent()
    assert "context 0.50, clip_topic 0.70" in figure.text_content() and "score 0.610" in figure.text_content()
    assert "image file unavailable" in doc.text_content()  # the missing file is named, not fatal
    assert "(not supported by the evidence)" in doc.xpath('//div[@id="s2"]')[0].text_content()
    assert "2 of 3 generated sentences are supported" in doc.text_content()


def test_citations_link_to_sources_that_exist(photo):
    for style in ("bullets", "paragraph"):
        doc = parse(render_html(hostile_result(photo, style)))
        targets = [a.get("href")[1:] for a in doc.xpath("//a") if a.get("href").startswith("#")]
        assert {"source-1", "source-2"} <= set(targets)
        for target in targets:
            assert doc.xpath(f'//*[@id="{target}"]'), target
        cites = [a.text for a in doc.xpath('//a[@class="cite"]')]
        assert cites == ["[1]", "[1]", "[2]"]


def test_linked_images_use_file_uris(photo):
    doc = parse(render_html(hostile_result(photo), link_images=True))
    assert doc.xpath("//img/@src")[0] == photo.resolve().as_uri()
    assert len(doc.xpath("//img")) == 2  # a missing file still gets its link


def test_images_of_a_remote_answer_come_from_the_server_not_its_file_paths(tmp_path):
    asked: list[int] = []
    served = {1: (b"\xff\xd8jpeg bytes", "image/jpeg"), 2: (b"<svg onload=alert(1)>", "image/svg+xml")}

    def fetch(image_id: int):  # noqa: ANN202
        asked.append(image_id)
        return served.get(image_id)

    result = hostile_result(tmp_path / "not-on-this-machine.png")  # the server's path, absent here
    doc = parse(render_html(result, fetch_image=fetch))
    assert asked == [1, 2]
    (img,) = doc.xpath("//img")
    assert img.get("src") == "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8jpeg bytes").decode()
    assert "svg" not in "".join(doc.xpath("//img/@src"))  # an SVG could script: never inlined
    assert "image file unavailable" in doc.text_content()


@pytest.mark.parametrize(
    "url, linked",
    [
        ("https://example.org/x", True),
        ("http://example.org", True),
        ("HTTPS://EXAMPLE.ORG/", True),
        ("javascript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("//example.org/no-scheme", False),
        ("https:/missing-host", False),
        ("", False),
    ],
)
def test_only_plain_http_urls_become_links(url, linked):
    assert (safe_href(url) is not None) == linked


def test_empty_answer_renders():
    doc = parse(render_html(AskResult("nothing here", [], [], [], relevance={"nothing_relevant": True})))
    assert "Nothing relevant is stored" in doc.text_content()
