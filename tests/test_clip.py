"""CLIP with random weights: what random weights can show — shapes, normalisation,
determinism, no truncation, persistence and id mapping. No semantic claims."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from engine.encoders.clip import CLIP_CONTEXT_TOKENS, ClipEncoder
from engine.errors import ModelUnavailableError
from engine.config import ClipConfig
from engine.kb import KnowledgeBase
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE, chunks, document_images, images
from tests.conftest import RANDOM_CLIP, make_config


@pytest.fixture
def coffee_pages(tmp_path, examples_dir):
    """The two coffee pages only: CLIP on CPU is slow, and two pages show everything."""
    import shutil

    target = tmp_path / "coffee"
    for name in ("coffee-roasting", "espresso-chemistry"):
        shutil.copytree(examples_dir / "pages" / f"{name}_files", target / f"{name}_files")
        shutil.copy(examples_dir / "pages" / f"{name}.html", target)
    return target


def test_shapes_and_unit_norms(clip_encoder, examples_dir):
    pictures = [Image.open(p).convert("RGB") for p in sorted((examples_dir / "pages").glob("*_files/*.jpg"))[:3]]
    image_vectors = clip_encoder.encode_images(pictures)
    text_vectors = clip_encoder.encode_texts(["a cup of coffee", "an astronaut"])
    assert image_vectors.shape == (3, 512) and text_vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(image_vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(text_vectors, axis=1), 1, atol=1e-5)


def test_an_image_gets_one_vector_whatever_its_batch(clip_encoder, examples_dir):
    files = sorted({p.read_bytes(): p for p in (examples_dir / "pages").glob("*_files/*.jpg")}.values())[:3]
    pictures = [Image.open(p).convert("RGB") for p in files]  # three different images
    together = clip_encoder.encode_images(pictures + pictures[:1])
    alone = np.concatenate([clip_encoder.encode_images([p]) for p in pictures])
    assert np.allclose(together[:3], alone, atol=1e-5)  # batching does not change a vector
    assert np.allclose(together[0], together[3], atol=1e-5)  # the same image twice, the same vector
    distances = np.abs(alone[:, None, :] - alone[None, :, :]).max(axis=2)
    assert (distances[~np.eye(3, dtype=bool)] > 1e-3).all()  # different images, different vectors


def test_random_weights_are_the_same_in_every_load(clip_encoder):
    again = ClipEncoder(RANDOM_CLIP)
    a = clip_encoder.encode_texts(["the same sentence"])
    b = again.encode_texts(["the same sentence"])
    assert np.allclose(a, b, atol=1e-5)
    assert again.identity == clip_encoder.identity == "ViT-B-32/random-seed0"


def test_long_text_is_windowed_not_truncated(clip_encoder):
    long_text = " ".join(f"word{n}" for n in range(200))
    windows = clip_encoder._windows(long_text)
    tokenizer = clip_encoder._loaded[2]
    assert len(windows) > 1
    assert all(len(tokenizer.encode(w)) <= CLIP_CONTEXT_TOKENS - 2 for w in windows)
    assert " ".join(windows) == long_text  # every word is in some window
    expected = clip_encoder.encode_texts(windows).mean(axis=0)
    expected /= np.linalg.norm(expected)
    assert np.allclose(clip_encoder.encode_texts([long_text])[0], expected, atol=1e-5)


def test_text_vectors_cut_after_the_longest_text_equal_the_padded_ones(clip_encoder):
    import torch

    from engine.encoders.clip_text import can_trim, encode_tokens

    model, _, tokenizer = clip_encoder._loaded
    assert can_trim(model)  # ViT-B-32: otherwise the fast path is never taken
    # Lengths from 1 word to a full window, in more than one length group, in mixed order.
    texts = ["cats"] + [" ".join(["roasted coffee beans"] * n) for n in range(1, 25)] + ["how is coffee roasted?"]
    tokens = tokenizer(texts)
    with torch.inference_mode():
        padded = model.encode_text(tokens).float().numpy()
    assert np.allclose(encode_tokens(model, tokens), padded, rtol=0, atol=1e-5)


def test_missing_weights_say_how_to_fix_it(tmp_path):
    encoder = ClipEncoder(ClipConfig(pretrained="laion2b_s34b_b79k"))
    if encoder._cached_weights():
        pytest.skip("real CLIP weights are cached on this machine")
    with pytest.raises(ModelUnavailableError, match="clip.checkpoint.*ENGINE_CLIP_CHECKPOINT"):
        encoder.load()
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        ClipEncoder(ClipConfig(checkpoint=str(tmp_path / "nope.pt"))).load()


@pytest.mark.slow
def test_clip_vectors_are_stored_under_row_ids_and_survive_reopening(kb_clip, coffee_pages):
    report = kb_clip.index(["coffee"], [coffee_pages])
    assert report.clip_used
    with kb_clip.store.reading() as conn:
        image_ids = sorted(conn.execute(select(images.c.id)).scalars())
        chunk_ids = sorted(conn.execute(select(chunks.c.id)).scalars())
        holders = sorted(set(conn.execute(select(document_images.c.chunk_id)).scalars()) - {None})
    store = kb_clip.store
    assert sorted(store.index(CLIP_IMAGE_SPACE, 512).ids().tolist()) == image_ids
    # Only the chunks an image sits in get a CLIP vector: the passage clip_context scores it against.
    assert sorted(store.index(CLIP_TEXT_SPACE, 512).ids().tolist()) == holders
    assert len(holders) < len(chunk_ids)
    stored = store.read_vectors(CLIP_IMAGE_SPACE, image_ids, 512)
    kb_clip.close()

    with KnowledgeBase(kb_clip.config, text_encoder=kb_clip.text_encoder) as reopened:
        index = reopened.store.index(CLIP_IMAGE_SPACE, 512)
        assert reopened.store.reconciled[-1].added == 0  # the saved file was current
        scores, ids = index.search(stored, 1)
        assert ids[:, 0].tolist() == image_ids  # each image finds itself
        assert np.allclose(scores[:, 0], 1, atol=1e-4)


@pytest.mark.slow
def test_ask_reports_clip_score_parts_when_clip_vectors_exist(kb_clip, clip_encoder, coffee_pages):
    kb_clip.index(["coffee"], [coffee_pages])
    result = kb_clip.ask("coffee roasting", max_images=3)
    assert result.images
    question = clip_encoder.encode_texts(["coffee roasting"])[0]
    stored = kb_clip.store.read_vectors(CLIP_IMAGE_SPACE, [im.image_id for im in result.images], 512)
    for image, vector in zip(result.images, stored):
        assert {"context", "clip_topic", "clip_evidence", "clip_context", "alignment"} == set(image.parts)
        # The parts are the cosines they claim to be (rounded to 4 places), not just any number in [-1, 1].
        assert image.parts["clip_topic"] == pytest.approx(float(vector @ question), abs=1e-4)
        assert image.parts["alignment"] == max(image.parts["clip_topic"], image.parts["clip_evidence"])


@pytest.mark.slow
def test_an_ask_encodes_the_question_with_clip_once(kb_clip, clip_encoder, coffee_pages, monkeypatch):
    kb_clip.index(["coffee"], [coffee_pages])
    encoded: list[list[str]] = []
    real = clip_encoder.encode_texts
    monkeypatch.setattr(clip_encoder, "encode_texts", lambda texts: encoded.append(list(texts)) or real(texts))
    result = kb_clip.ask("coffee roasting", max_images=3)
    assert result.images and result.summary
    assert sum(texts == ["coffee roasting"] for texts in encoded) == 1, encoded


@pytest.mark.slow
def test_reindex_images_adds_clip_vectors_stored_without_them(tmp_path, text_encoder, clip_encoder, coffee_pages):
    config_off = make_config(tmp_path)
    with KnowledgeBase(config_off, text_encoder=text_encoder) as kb:
        kb.index(["coffee"], [coffee_pages])
        assert kb.status().images_without_clip == 1
    config_on = make_config(tmp_path, RANDOM_CLIP)
    with KnowledgeBase(config_on, text_encoder=text_encoder, clip_encoder=clip_encoder) as kb:
        done = kb.reindex(images=True)
        assert done["image_vectors"] == 1
        assert kb.status().images_without_clip == 0
        with kb.store.reading() as conn:
            holders = set(conn.execute(select(document_images.c.chunk_id)).scalars()) - {None}
            assert done["clip_text_vectors"] == len(holders) > 0
            assert sorted(kb.store.ids_with_vectors(CLIP_TEXT_SPACE, conn).tolist()) == sorted(holders)
        assert kb.check().ok
