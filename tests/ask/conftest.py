"""Stores for the ask stages' tests: the example pages once, and each page three times."""

from __future__ import annotations

import shutil

import pytest

from engine.config import ClipConfig, Config, StoreConfig
from engine.kb import KnowledgeBase

TOPICS = ["space exploration", "coffee", "domestic cats", "ancient coins"]


def open_kb(root, text_encoder) -> KnowledgeBase:
    return KnowledgeBase(Config(store=StoreConfig(path=root), clip=ClipConfig(enabled=False)), text_encoder=text_encoder)


def reprint(page: str, n: int) -> str:
    """The page as a syndicated copy: another URL, one word of the article changed."""
    copy = page.replace("https://example.org/", f"https://reprint-{n}.example.net/")
    start = copy.index("<p>", copy.index("<main"))
    for _ in range(n):  # reprint n changes the n-th "the" of the article's text
        start = copy.index(" the ", start + 1)
    return copy[:start] + " this " + copy[start + len(" the ") :]


@pytest.fixture(scope="session")
def stores(tmp_path_factory, text_encoder, examples_dir):
    """(plain, copies): the example pages once, and each page three times (the original and two reprints)."""
    plain = tmp_path_factory.mktemp("plain")
    copies = tmp_path_factory.mktemp("copies")
    pages = tmp_path_factory.mktemp("pages")
    shutil.copytree(examples_dir / "pages", pages / "original")
    for n in (1, 2):
        folder = pages / f"reprint-{n}"
        shutil.copytree(examples_dir / "pages", folder)
        for html in folder.glob("*.html"):
            html.write_text(reprint(html.read_text(encoding="utf-8"), n), encoding="utf-8")
    with open_kb(plain, text_encoder) as kb:
        kb.index(TOPICS, [pages / "original"])
    with open_kb(copies, text_encoder) as kb:
        report = kb.index(TOPICS, [pages])
        assert report.pages["added"] == 24, report.pages
    return plain, copies
