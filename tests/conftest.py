"""Shared fixtures: temporary stores, the real text model, random-weight CLIP, test data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.config import ClipConfig, Config, IndexConfig, StoreConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_MODELS = REPO.parent / "shared" / "models"


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch, tmp_path_factory):
    """No test reads the developer's own config file or ENGINE_* settings."""
    for name in list(os.environ):
        if name.startswith("ENGINE_"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.getbasetemp() / "empty-config.toml"
    empty.touch()
    monkeypatch.setenv("ENGINE_CONFIG", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # ONNX exports go to one folder per test session, never the developer's cache: the first
    # test that needs one exports it, the rest reuse it (subprocesses through the variables).
    onnx_cache = tmp_path_factory.getbasetemp() / "onnx-cache"
    monkeypatch.setenv("ENGINE_TEXT_ONNX_CACHE", str(onnx_cache))
    monkeypatch.setenv("ENGINE_CLIP_ONNX_CACHE", str(onnx_cache))
    monkeypatch.setattr("engine.encoders.onnx_export.default_cache_dir", lambda: onnx_cache)


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def text_encoder():
    """The real all-MiniLM-L6-v2, loaded once for the whole session."""
    from engine.encoders.text import TextEncoder

    encoder = TextEncoder("all-MiniLM-L6-v2")
    assert encoder.model is not None  # load now, once
    return encoder


RANDOM_CLIP = ClipConfig(model="ViT-B-32", pretrained="", random_weights=True, batch_size=8)


@pytest.fixture(scope="session")
def clip_encoder():
    """open_clip ViT-B-32 with random weights (seeded): real code path, no meaning."""
    from engine.encoders.clip import ClipEncoder

    encoder = ClipEncoder(RANDOM_CLIP)
    encoder.load()
    return encoder


def store_counts(kb) -> dict[str, int]:
    """Rows per table of ``kb``'s store, and text vectors: what "nothing lost, nothing added" compares."""
    from sqlalchemy import func, select

    from engine.store.schema import TEXT_SPACE, chunks, document_images, documents, embeddings, images, sources

    tables = {
        "documents": documents,
        "sources": sources,
        "chunks": chunks,
        "images": images,
        "links": document_images,
        "embeddings": embeddings,
    }
    with kb.store.reading() as conn:
        found = {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in tables.items()}
        found["text_vectors"] = conn.execute(
            select(func.count()).select_from(embeddings).where(embeddings.c.space == TEXT_SPACE)
        ).scalar_one()
    return found


def make_config(root: Path, clip: ClipConfig | None = None, **index) -> Config:
    return Config(
        store=StoreConfig(path=root / "store"),
        clip=clip or ClipConfig(enabled=False),
        index=IndexConfig(**index),
    )


@pytest.fixture
def kb(tmp_path, text_encoder):
    """A knowledge base in a temporary store, CLIP off."""
    from engine.kb import KnowledgeBase

    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as base:
        yield base


@pytest.fixture
def kb_clip(tmp_path, text_encoder, clip_encoder):
    """A knowledge base in a temporary store with random-weight CLIP."""
    from engine.kb import KnowledgeBase

    with KnowledgeBase(make_config(tmp_path, RANDOM_CLIP), text_encoder=text_encoder, clip_encoder=clip_encoder) as base:
        yield base


@pytest.fixture
def pages_copy(tmp_path, examples_dir) -> Path:
    """A writable copy of the example pages."""
    target = tmp_path / "pages"
    shutil.copytree(examples_dir / "pages", target)
    return target
