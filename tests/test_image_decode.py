"""One image decode for index, reindex and reports: a stored image gets the same thumbnail,
and so the same CLIP vector, whichever of them decodes it.

The two images are the cases where decodes part ways: a JPEG large enough to be decoded at
reduced scale, and a PNG whose transparent pixels hide a colour (a page shows them white).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from engine.kb import KnowledgeBase
from engine.store.schema import CLIP_IMAGE_SPACE, images
from indexer.images import THUMBNAIL_SIDE, load_image, read_thumbnail
from tests.conftest import RANDOM_CLIP, make_config


@pytest.fixture
def pictures_page(tmp_path) -> Path:
    """A saved page showing a 1600x1000 JPEG and a 300x200 PNG, transparent but for a square."""
    folder = tmp_path / "pages"
    files = folder / "pictures_files"
    files.mkdir(parents=True)
    large = Image.merge("RGB", [Image.effect_noise((1600, 1000), 40 + 20 * n).convert("L") for n in range(3)])
    large.save(files / "large.jpg", quality=90)
    transparent = Image.new("RGBA", (300, 200), (200, 30, 30, 0))  # red, but invisible
    transparent.paste((20, 60, 200, 255), (100, 50, 200, 150))
    transparent.save(files / "transparent.png")
    text = " ".join(
        f"<p>Paragraph {n} describes the pictures: a field of coloured noise and a blue square, "
        f"how they were made, and why a reader should look at them twice.</p>"
        for n in range(4)
    )
    (folder / "pictures.html").write_text(
        "<!DOCTYPE html><html lang='en'><head><title>Pictures</title></head><body><article>"
        f"<h1>Pictures</h1>{text}"
        "<img src='pictures_files/large.jpg' alt='noise'><img src='pictures_files/transparent.png' alt='square'>"
        "</article></body></html>"
    )
    return folder


def test_a_stored_file_reads_back_as_the_thumbnail_indexing_made(pictures_page):
    for path in sorted((pictures_page / "pictures_files").iterdir()):
        indexed = load_image(path.read_bytes(), path.name, 40_000_000, 20_000_000, 32).thumbnail
        again = read_thumbnail(path)
        assert max(again.size) <= THUMBNAIL_SIDE and again.mode == "RGB"
        assert np.array_equal(np.asarray(again), np.asarray(indexed))
    square = read_thumbnail(pictures_page / "pictures_files" / "transparent.png")
    assert square.getpixel((0, 0)) == (255, 255, 255)  # transparent shows white, as on the page


def clip_vectors_by_hash(kb: KnowledgeBase) -> dict[str, np.ndarray]:
    with kb.store.reading() as conn:
        rows = conn.execute(select(images.c.id, images.c.content_hash)).all()
    vectors = kb.store.read_vectors(CLIP_IMAGE_SPACE, [r.id for r in rows], 512)
    return {r.content_hash: v for r, v in zip(rows, vectors)}


@pytest.mark.slow
def test_reindex_computes_the_vector_indexing_computed(tmp_path, text_encoder, clip_encoder, pictures_page):
    with KnowledgeBase(
        make_config(tmp_path / "with_clip", RANDOM_CLIP), text_encoder=text_encoder, clip_encoder=clip_encoder
    ) as kb:
        kb.index(["pictures"], [pictures_page])
        indexed = clip_vectors_by_hash(kb)
    # The same page stored while CLIP was unavailable, then `engine reindex --images`.
    with KnowledgeBase(make_config(tmp_path / "without_clip"), text_encoder=text_encoder) as kb:
        kb.index(["pictures"], [pictures_page])
    with KnowledgeBase(
        make_config(tmp_path / "without_clip", RANDOM_CLIP), text_encoder=text_encoder, clip_encoder=clip_encoder
    ) as kb:
        assert kb.reindex(images=True)["image_vectors"] == 2
        reindexed = clip_vectors_by_hash(kb)
    assert len(indexed) == 2 and indexed.keys() == reindexed.keys()
    for content_hash, vector in indexed.items():
        assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-5)  # a real vector, not a missing one's zeros
        np.testing.assert_allclose(reindexed[content_hash], vector, rtol=0, atol=1e-5)
