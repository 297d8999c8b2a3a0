"""Extraction: block-level elements stay apart in the text, inline markup does not split words."""

from __future__ import annotations

import re

import pytest

from indexer.extract import extract

FILLER = (
    "Coffee roasting turns green beans into the brown beans that are ground and brewed. "
    "The roaster watches the colour, the smell and the cracks to decide when the roast is done."
)


def page(body: str) -> bytes:
    """An article page that trafilatura takes as main content, with ``body`` inside it."""
    return (
        "<html><head><title>Roasting notes</title></head><body><article>"
        f"<h1>Roasting notes</h1><p>{FILLER}</p>{body}<p>{FILLER}</p>"
        "</article></body></html>"
    ).encode()


def text_of(body: str) -> str:
    return extract(page(body), "https://example.com/notes", "notes.html").text


def test_list_items_are_separate_lines():
    text = text_of("<p>Tools of the trade:</p><ul><li>Drum roaster</li><li>Air roaster</li><li>Pan</li></ul>")
    assert "Drum roaster\nAir roaster\nPan" in text
    assert "roasterAir" not in text


def test_nested_lists_and_paragraphs_in_items_are_separate_lines():
    text = text_of(
        "<ul><li><p>Light roast</p><p>Keeps the acidity</p></li>"
        "<li>Dark roast<ul><li>French</li><li>Italian</li></ul></li></ul>"
    )
    assert "Light roast\nKeeps the acidity\nDark roast\nFrench\nItalian" in text


def test_table_rows_are_lines_and_cells_are_apart():
    text = text_of(
        "<table><tr><th>Roast</th><th>Temperature</th></tr>"
        "<tr><td>Light</td><td>196 C</td></tr><tr><td>Dark</td><td>225 C</td></tr></table>"
    )
    lines = text.splitlines()
    assert "Roast | Temperature" in lines
    assert "Light | 196 C" in lines
    assert "Dark | 225 C" in lines


def test_line_breaks_become_newlines():
    text = text_of("<p>First crack at nine minutes<br>Second crack at twelve minutes<br/>Cool at once</p>")
    assert "First crack at nine minutes\nSecond crack at twelve minutes\nCool at once" in text


def test_inline_markup_and_source_newlines_do_not_break_lines():
    text = text_of(
        "<p>The beans are <b>un</b>believably <a href='/x'>fragrant</a> when\n    they\n"
        "leave the <em>drum</em>, <code>roast()</code> says.</p>"
    )
    assert "The beans are unbelievably fragrant when they leave the drum, roast() says." in text


def test_blocks_are_still_paragraphs():
    text = text_of("<h2>Cooling</h2><p>Beans are cooled in a tray.</p>")
    assert "\n\nCooling\n\nBeans are cooled in a tray.\n\n" in text


def test_real_pages_keep_list_items_apart(shared_data):
    pages = shared_data / "real-pages"
    github = extract((pages / "github.blog.spiceland.html").read_bytes(), "https://github.blog/", "github")
    assert re.search(r"CloudBees\s+Rachel White", github.text)
    assert "CloudBeesRachel" not in github.text
    pluralsight = extract((pages / "pluralsight.com.python.html").read_bytes(), "https://pluralsight.com/", "ps")
    assert re.search(r"exist\)\s+somewhat convoluted", pluralsight.text)
    lemire = extract((pages / "lemire.me.json.html").read_bytes(), "https://lemire.me/", "lemire")
    assert "apache_builds | 2.3 GB/s | 0.098 GB/s" in lemire.text.splitlines()


@pytest.mark.parametrize("name", ["github.blog.spiceland.html", "pluralsight.com.python.html"])
def test_image_offsets_still_point_into_the_text(shared_data, name):
    doc = extract((shared_data / "real-pages" / name).read_bytes(), "https://example.com/", name)
    for image in doc.images:
        assert 0 <= image.char_offset <= len(doc.text)
        assert "\n" not in image.context


def test_a_srcset_value_in_src_gives_one_image_url_and_commas_in_paths_are_kept():
    html = (
        b"<html><body><article><h1>Roasting coffee</h1>"
        b"<p>Green coffee beans are roasted in a drum at about two hundred degrees until they turn brown and fragrant.</p>"
        b"<p>The Maillard reaction creates aroma compounds and brown pigments during the roast of coffee beans.</p>"
        b'<img src="img/d.jpg 1x, img/d2.jpg 2x" alt="d"><img src="https://cdn.example.org/w_300,h_200/e.jpg" alt="e">'
        b"<p>First crack is heard when steam escapes from the beans and light roasts are stopped soon after it.</p>"
        b"</article></body></html>"
    )
    page = extract(html, "https://example.org/coffee/p.html", "test")
    assert [(i.src, i.url, i.alt) for i in page.images] == [
        ("img/d.jpg", "https://example.org/coffee/img/d.jpg", "d"),
        ("https://cdn.example.org/w_300,h_200/e.jpg", "https://cdn.example.org/w_300,h_200/e.jpg", "e"),
    ]
