"""What runs on the cluster: preparing pages (tasks) and embedding them (actors that load the models once).

A row is one batch of the driver's items, pickled together (cloudpickle: a local page's resolver
is a closure over its folder), so Ray Data never splits a batch or merges batches: the pages
that were ready together are embedded together, and nothing waits for pages not produced yet.
Items a stage does not handle pass through unchanged; every row comes back to the driver with
its batch number, and the writer keeps the producer's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ray.cloudpickle as pickle

from engine.config import Config
from engine.errors import ConfigError
from indexer.embed import BatchEmbedder
from indexer.prepare import PageToPrepare, PreparedPage, prepare_or_fail


@dataclass(frozen=True)
class EmbedderSpec:
    """How an actor builds the driver's embedder: the same models, runtime and topics."""

    config: Config
    stored_text_model: str | None  # the store's text model record (text.runtime = auto follows it)
    text_model: str  # the name the driver's text encoder reports: an actor must report the same
    use_clip: bool  # False when the driver found no CLIP weights
    topic_vectors: dict[int, np.ndarray]

    def build(self) -> BatchEmbedder:
        from engine.encoders.caption import Captioner
        from engine.encoders.factory import build_text_encoder, load_clip_encoder

        text = build_text_encoder(self.config.text, self.stored_text_model)
        if text.name != self.text_model:
            raise ConfigError(f"a Ray worker's text model is {text.name!r}, the store's {self.text_model!r}: install the same engine on every node")
        clip = load_clip_encoder(self.config.clip) if self.use_clip else None
        c = self.config.caption
        captioner = Captioner(c.model, c.batch_size, c.max_new_tokens) if c.model else None
        return BatchEmbedder(
            text, clip, self.topic_vectors, self.config.text.chunk_tokens, self.config.text.chunk_overlap_tokens, captioner
        )


def prepare_rows(rows: dict[str, Any], config: Config) -> dict[str, Any]:
    """Prepare the pages in each row's batch (trafilatura, image decoding); the rest pass through."""
    return {"batch": rows["batch"], "items": [_prepare_batch(blob, config) for blob in rows["items"]]}


def _prepare_batch(blob: bytes, config: Config) -> bytes:
    items = pickle.loads(blob)
    if not any(isinstance(item, PageToPrepare) for item in items):
        return blob
    return pickle.dumps([_prepared(item, config) for item in items])


def _prepared(item: Any, config: Config) -> Any:
    if not isinstance(item, PageToPrepare):
        return item
    stored = item.stored_raw_hash
    return prepare_or_fail(item.page, config.index, lambda _url: stored)


class EmbedRows:
    """An embedding actor: builds the encoders once, then embeds each batch's prepared pages together."""

    def __init__(self, spec: EmbedderSpec):
        self.embedder = spec.build()

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        return {"batch": rows["batch"], "items": [self._embed_batch(blob) for blob in rows["items"]]}

    def _embed_batch(self, blob: bytes) -> bytes:
        items = pickle.loads(blob)
        pages = [n for n, item in enumerate(items) if isinstance(item, PreparedPage)]
        if not pages:
            return blob
        # Images the store already has are embedded again here (an actor cannot ask the store);
        # the writer keeps the stored vector.
        for n, page in zip(pages, self.embedder.embed([items[n] for n in pages], set())):
            items[n] = page
        return pickle.dumps(items)
