"""End to end through the Python API: index the example corpus, ask, re-index."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine.store.schema import document_images, documents

from tests.conftest import store_counts


def topics(examples_dir: Path) -> list[str]:
    return (examples_dir / "topics.txt").read_text().split("\n")


def test_index_examples_stores_pages_chunks_and_shared_images_once(kb, examples_dir):
    report = kb.index(topics(examples_dir), [examples_dir / "pages"])

    assert report.pages["added"] == 8 and report.pages["failed"] == 0
    stored = store_counts(kb)
    assert stored["documents"] == 8 and stored["sources"] == 8
    assert stored["chunks"] == report.chunks_added > 8
    # coffee, cat and coin photos each appear on two pages: stored once, linked twice.
    assert stored["images"] == 6
    assert stored["links"] == 9
    assert report.images["added"] == 6 and report.images["linked"] == 3
    # The header logo is outside the main content, so it is not an image of any page.
    with kb.store.reading() as conn:
        srcs = list(conn.execute(select(document_images.c.src_url)).scalars())
    assert not any(s.endswith("logo.png") for s in srcs)


def test_reindexing_the_same_input_adds_nothing(kb, examples_dir):
    kb.index(topics(examples_dir), [examples_dir / "pages"])
    before = store_counts(kb)
    again = kb.index(topics(examples_dir), [examples_dir / "pages"])
    assert store_counts(kb) == before
    assert again.pages["unchanged"] == 8 and again.pages["added"] == 0


def test_ask_cites_sources_and_shows_images_of_the_evidence(kb, examples_dir):
    kb.index(topics(examples_dir), [examples_dir / "pages"])
    result = kb.ask("how is coffee roasted", max_images=2)

    assert result.summary, "a question the corpus answers gets a summary"
    numbers = {s.number for s in result.sources}
    assert all(set(s.citations) <= numbers for s in result.summary)
    cited_titles = {s.title for s in result.sources}
    assert "How coffee is roasted" in cited_titles  # real MiniLM semantics
    assert result.images and Path(result.images[0].path).exists()
    assert "espresso cup" in (result.images[0].alt or "")


def index_edit_reindex(kb, pages: Path, examples_dir: Path, old: str, new: str):
    """Index ``pages``, replace ``old`` by ``new`` in one page, index again: (counts before, report)."""
    kb.index(topics(examples_dir), [pages])
    before = store_counts(kb)
    page = pages / "coffee-roasting.html"
    page.write_text(page.read_text().replace(old, new))
    return before, kb.index(topics(examples_dir), [pages])


def test_changed_bytes_with_the_same_text_count_as_unchanged(kb, pages_copy, examples_dir):
    before, again = index_edit_reindex(kb, pages_copy, examples_dir, "</body>", "<script>var ad = 2;</script></body>")
    assert again.pages["unchanged"] == 8 and again.pages["added"] == 0
    assert store_counts(kb) == before


def test_an_image_added_to_a_page_whose_text_is_unchanged_is_stored_and_linked(kb, pages_copy, examples_dir):
    import shutil

    shutil.copy(pages_copy / "cat-behaviour_files" / "chelsea.jpg", pages_copy / "coffee-roasting_files" / "cat.jpg")
    figure = '<img src="coffee-roasting_files/cat.jpg" alt="A cat beside the roaster">'
    before, again = index_edit_reindex(kb, pages_copy, examples_dir, '<img src="coffee-roasting_files/coffee.jpg"',
                                       figure + '<img src="coffee-roasting_files/coffee.jpg"')
    assert again.pages["unchanged"] == 8 and again.images["linked"] == 1, again.to_dict()
    after = store_counts(kb)
    assert after["documents"] == before["documents"] and after["chunks"] == before["chunks"]
    with kb.store.reading() as conn:
        alts = set(conn.execute(select(document_images.c.alt)).scalars())
    assert "A cat beside the roaster" in alts
    assert kb.index(topics(examples_dir), [pages_copy]).images.get("linked", 0) == 0  # stored once


def test_a_page_whose_text_changed_replaces_its_old_version(kb, pages_copy, examples_dir):
    before, again = index_edit_reindex(kb, pages_copy, examples_dir, "smell of hay", "smell of fresh straw")
    assert again.pages["updated"] == 1
    after = store_counts(kb)
    assert after["documents"] == before["documents"] and after["sources"] == before["sources"]
    assert after["chunks"] == after["text_vectors"]  # the old version's chunks and vectors are gone
    with kb.store.reading() as conn:
        texts = list(conn.execute(select(documents.c.text)).scalars())
    assert any("fresh straw" in t for t in texts) and not any("smell of hay" in t for t in texts)
    assert kb.check().ok


def test_a_run_ended_by_an_error_is_recorded_as_failed(kb, examples_dir, monkeypatch):
    import pytest

    from engine.errors import ModelMismatchError

    def refuse(*args, **kwargs):
        raise ModelMismatchError("the store's vectors come from another model")

    monkeypatch.setattr(kb.store, "bind_model", refuse)
    with pytest.raises(ModelMismatchError):
        kb.index(topics(examples_dir), [examples_dir / "pages"])
    assert kb.status().last_run["status"] == "failed"
