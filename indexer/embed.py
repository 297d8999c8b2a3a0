"""Embedding: chunk a batch of prepared pages and encode it in as few model calls as possible."""

from __future__ import annotations

import numpy as np

from engine.encoders.caption import Captioner
from engine.encoders.clip import ClipEncoder
from engine.encoders.text import TextEncoder
from indexer.chunk import Chunk, chunk_holding, chunk_text
from indexer.prepare import PreparedPage
from indexer.write import EmbeddedPage


class BatchEmbedder:
    """Turns prepared pages into pages ready to write.

    Args:
        text: the text encoder (always used).
        clip: the CLIP encoder, or None when its weights are unavailable.
        topic_vectors: {topic id: text-space vector} to score each page against.
        chunk_tokens, overlap_tokens: chunking budget (capped by the model's limit).
        captioner: captions newly stored images when set (caption.model).
    """

    def __init__(
        self,
        text: TextEncoder,
        clip: ClipEncoder | None,
        topic_vectors: dict[int, np.ndarray],
        chunk_tokens: int,
        overlap_tokens: int,
        captioner: Captioner | None = None,
    ):
        self.text = text
        self.clip = clip
        self.captioner = captioner
        self.topic_ids = list(topic_vectors)
        self.topic_matrix = np.stack(list(topic_vectors.values())) if topic_vectors else None
        self.max_tokens = min(chunk_tokens, text.max_tokens)
        self.overlap_tokens = min(overlap_tokens, self.max_tokens // 2)

    def embed(self, pages: list[PreparedPage], stored_image_hashes: set[str]) -> list[EmbeddedPage]:
        """Encode ``pages``; images whose hash is in ``stored_image_hashes`` are not re-encoded."""
        chunked = [
            chunk_text(
                p.extracted.text,
                self.text.count_tokens,
                self.max_tokens,
                self.overlap_tokens,
                p.extracted.language,
            )
            for p in pages
        ]
        flat = [c for chunks in chunked for c in chunks]
        text_vectors = self.text.encode([c.text for c in flat])
        clip_text = self._clip_passages(pages, chunked)
        new_images = self._new_images(pages, stored_image_hashes)
        thumbnails = list(new_images.values())
        image_vectors = dict(zip(new_images, self.clip.encode_images(thumbnails))) if self.clip and thumbnails else {}
        captions = dict(zip(new_images, self.captioner.caption(thumbnails))) if self.captioner and thumbnails else {}

        out, start = [], 0
        for n, (page, chunks) in enumerate(zip(pages, chunked)):
            stop = start + len(chunks)
            vectors = text_vectors[start:stop]
            out.append(
                EmbeddedPage(
                    page=page.page,
                    canonical_url=page.canonical_url,
                    raw_hash=page.raw_hash,
                    content_hash=page.content_hash,
                    extracted=page.extracted,
                    chunks=chunks,
                    text_vectors=vectors,
                    clip_text_vectors=clip_text.get(n, {}),
                    images=page.images,
                    image_vectors={
                        data.content_hash: image_vectors[data.content_hash]
                        for _, data in page.images
                        if data.content_hash in image_vectors
                    },
                    image_captions={
                        data.content_hash: captions[data.content_hash] for _, data in page.images if data.content_hash in captions
                    },
                    topic_scores=self.topic_scores(vectors),
                    failures=list(page.failures),
                )
            )
            start = stop
        return out

    def _clip_passages(self, pages: list[PreparedPage], chunked: list[list[Chunk]]) -> dict[int, dict[int, np.ndarray]]:
        """{page number: {chunk position: CLIP vector}} for the chunks that hold an image.

        CLIP text is the costly half of CLIP at ingest, and only ``clip_context`` (an image
        against the passage it sits in) reads a chunk's CLIP vector; other chunks get none.
        """
        if self.clip is None:
            return {}
        holders = [
            (n, position)
            for n, (page, chunks) in enumerate(zip(pages, chunked))
            if chunks
            for position in sorted({chunk_holding(chunks, ref.char_offset) for ref, _ in page.images})
        ]
        if not holders:
            return {}
        vectors = self.clip.encode_passages([list(chunked[n][position].sentences) for n, position in holders])
        out: dict[int, dict[int, np.ndarray]] = {}
        for (n, position), vector in zip(holders, vectors):
            out.setdefault(n, {})[position] = vector
        return out

    def _new_images(self, pages: list[PreparedPage], stored: set[str]) -> dict[str, object]:
        """{content hash: thumbnail} of the images not stored yet, each once."""
        if self.clip is None and self.captioner is None:
            return {}
        todo = {}
        for page in pages:
            for _, data in page.images:
                if data.content_hash not in stored:
                    todo.setdefault(data.content_hash, data.thumbnail)
        return todo

    def topic_scores(self, chunk_vectors: np.ndarray) -> dict[int, float]:
        """{topic id: best cosine similarity between the topic and any of the chunks}."""
        if self.topic_matrix is None or len(chunk_vectors) == 0:
            return {}
        best = (self.topic_matrix @ chunk_vectors.T).max(axis=1)
        return {topic_id: float(score) for topic_id, score in zip(self.topic_ids, best)}
