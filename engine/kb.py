"""KnowledgeBase: the composition root. Config → store → encoders → indexes, closed in one place.

Every CLI command is one method here; the CLI parses, calls, and renders.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Config
from engine.encoders.clip import ClipEncoder
from engine.encoders.text import TextEncoder
from engine.errors import ConfigError, ModelUnavailableError
from engine.results import AskResult, ImageHit, SourceRef, SummarySentence
from engine.store.health import CheckReport, StatusReport, check_store, store_status
from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, TEXT_SPACE
from engine.store.store import Store


class KnowledgeBase:
    """A persistent multimodal knowledge base.

    Args:
        config: the settings; ``Config.load()`` reads the usual layers.

    Use as a context manager (or call :meth:`close`)::

        with KnowledgeBase(Config.load()) as kb:
            kb.index(["coffee"], [Path("saved_pages/")])
            print(kb.ask("how is coffee roasted?").summary)
    """

    def __init__(
        self,
        config: Config | None = None,
        text_encoder: TextEncoder | None = None,
        clip_encoder: ClipEncoder | None = None,
    ):
        """Encoders may be passed in to share one loaded model between knowledge bases."""
        self.config = config or Config.load()
        # Things a user should hear once (e.g. "CLIP weights missing"); the CLI prints them.
        self.notices: list[str] = []
        self._clip_failed: str | None = None
        self._clip = clip_encoder
        if text_encoder is not None:
            self.__dict__["text_encoder"] = text_encoder

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        self.close()

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    # -- parts, built on first use -------------------------------------------------------

    @cached_property
    def store(self) -> Store:
        return Store(self.config.store.path)

    @cached_property
    def text_encoder(self) -> TextEncoder:
        return TextEncoder(self.config.text.model, self.config.text.batch_size)

    def clip_encoder(self) -> ClipEncoder | None:
        """The CLIP encoder if its weights can be had; else None, with a notice given once."""
        if not self.config.clip.enabled or self._clip_failed:
            return None
        if self._clip is None:
            encoder = ClipEncoder(self.config.clip)
            try:
                encoder.load()
            except ModelUnavailableError as exc:
                self._clip_failed = str(exc)
                self.notices.append(
                    f"CLIP is unavailable, so images are stored and ranked by their text context only "
                    f"(run `engine reindex --images` once weights are configured): {exc}"
                )
                return None
            self._clip = encoder
        return self._clip

    # -- commands ----------------------------------------------------------------------------

    def index(
        self,
        topics: list[str],
        paths: list[Path],
        on_progress: Callable | None = None,
    ):
        """Index saved pages, HTML files and WARC archives under ``paths`` for ``topics``.

        Returns:
            indexer.pipeline.IndexReport: counts of pages, chunks and images, and failures.
        """
        from indexer.embed import BatchEmbedder
        from indexer.pipeline import run_index
        from indexer.write import ensure_topics

        topics = [t.strip() for t in topics if t.strip()]
        if not paths:
            raise ConfigError("nothing to index: give at least one --from PATH")
        store = self.store
        store.acquire_write_lock()
        topic_ids = ensure_topics(store, topics) if topics else {}

        def make_embedder(ids: dict[str, int]) -> BatchEmbedder:
            text = self.text_encoder
            store.bind_model((TEXT_SPACE,), text.name, text.dim)
            store.index(TEXT_SPACE, text.dim)
            clip = self.clip_encoder()
            if clip is not None:
                store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
                store.index(CLIP_IMAGE_SPACE, clip.dim)
                store.index(CLIP_TEXT_SPACE, clip.dim)
            vectors = text.encode(list(ids)) if ids else np.zeros((0, text.dim), np.float32)
            return BatchEmbedder(
                text,
                clip,
                dict(zip(ids.values(), vectors)),
                self.config.text.chunk_tokens,
                self.config.text.chunk_overlap_tokens,
            )

        try:
            return run_index(store, self.config, make_embedder, topic_ids, list(paths), on_progress)
        finally:
            store.release_write_lock()

    def ask(
        self,
        query: str,
        k: int | None = None,
        max_images: int | None = None,
        max_sentences: int | None = None,
    ) -> AskResult:
        """Answer ``query`` with a cited extractive summary and the best-aligned images."""
        from engine import query as q
        from engine.summarize import candidate_sentences, mmr, reading_order

        query = query.strip()
        if not query:
            raise ConfigError("the question is empty")
        settings = self.config.ask
        k = k or settings.k
        max_images = settings.max_images if max_images is None else max_images
        max_sentences = max_sentences or settings.max_sentences
        result = AskResult(
            query=query,
            summary=[],
            sources=[],
            images=[],
            settings={"k": k, "max_images": max_images, "max_sentences": max_sentences, "mmr_lambda": settings.mmr_lambda},
        )
        if self.store.vector_version(TEXT_SPACE) == 0:
            result.notices.append("the store is empty: index something first (engine index --topics FILE --from PATH)")
            return result
        text = self.text_encoder
        self.store.bind_model((TEXT_SPACE,), text.name, text.dim)  # refuses vectors of another model
        query_vector = text.encode([query])[0]
        scores, ids = self.store.index(TEXT_SPACE, text.dim).search(query_vector[None, :], k)
        evidence = q.evidence_chunks(self.store, ids[0], scores[0])
        candidates = candidate_sentences(evidence)
        sentence_vectors = text.encode([c.text for c in candidates])
        picked = reading_order(candidates, mmr(query_vector, sentence_vectors, max_sentences, settings.mmr_lambda))

        doc_order = list(dict.fromkeys(candidates[i].document_id for i in picked))
        info = q.document_sources(self.store, doc_order)
        numbers = {d: n + 1 for n, d in enumerate(doc_order)}
        result.sources = [
            SourceRef(numbers[d], d, info[d]["title"], info[d]["url"], info[d]["published"]) for d in doc_order if d in info
        ]
        result.summary = [
            SummarySentence(
                candidates[i].text,
                [numbers[candidates[i].document_id]],
                candidates[i].document_id,
                candidates[i].chunk_id,
                round(float(sentence_vectors[i] @ query_vector), 4),
            )
            for i in picked
        ]
        if max_images > 0:
            evidence_docs = list(dict.fromkeys(row["document_id"] for row in evidence))
            result.images = self._rank_images(
                query, query_vector, result, sentence_vectors[picked], evidence_docs, numbers, max_images
            )
        result.notices.extend(self.notices)
        return result

    def _rank_images(
        self,
        query: str,
        query_vector: np.ndarray,
        result: AskResult,
        summary_vectors: np.ndarray,
        evidence_docs: list[int],
        numbers: dict[int, int],
        max_images: int,
    ) -> list[ImageHit]:
        from engine import query as q

        clip = self.clip_encoder() if self.store.vector_version(CLIP_IMAGE_SPACE) > 0 else None
        clip_index, clip_query, extra = None, None, []
        if clip is not None:
            self.store.bind_model((CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE), clip.identity, clip.dim)
            clip_index = self.store.index(CLIP_IMAGE_SPACE, clip.dim)
            clip_query = clip.encode_texts([query])[0]
            _, found = clip_index.search(clip_query[None, :], max_images * 4)
            extra = [int(i) for i in found[0] if i >= 0]
        candidates = q.image_candidates(self.store, evidence_docs, extra)
        if not candidates:
            return []
        descriptions = self.text_encoder.encode([c.description() or c.src_url for c in candidates])
        parts = [{"context": float(d @ query_vector)} for d in descriptions]
        by_sentence = descriptions @ summary_vectors.T if len(summary_vectors) else None
        if clip is not None:
            image_vectors = self.store.read_vectors(CLIP_IMAGE_SPACE, [c.image_id for c in candidates], clip.dim)
            has_vector = np.linalg.norm(image_vectors, axis=1) > 0
            sentence_clip = clip.encode_texts([s.text for s in result.summary]) if result.summary else None
            for n, vector in enumerate(image_vectors):
                if not has_vector[n]:
                    continue
                parts[n]["clip_topic"] = float(vector @ clip_query)
                if sentence_clip is not None:
                    parts[n]["clip_evidence"] = float((sentence_clip @ vector).max())
            if sentence_clip is not None:
                by_sentence = np.where(has_vector[:, None], image_vectors @ sentence_clip.T, by_sentence)
        hits = [
            ImageHit(
                image_id=c.image_id,
                path=c.path,
                source=numbers.get(c.document_id),
                src_url=c.src_url,
                alt=c.alt,
                caption=c.caption,
                width=c.width,
                height=c.height,
                score=round(q.fuse(p), 4),
                parts={k: round(v, 4) for k, v in p.items()},
                sentence=int(by_sentence[n].argmax()) if by_sentence is not None else None,
            )
            for n, (c, p) in enumerate(zip(candidates, parts))
        ]
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:max_images]

    def status(self) -> StatusReport:
        """What is stored, per topic, with sizes and the last run."""
        return store_status(self.store, self.config.index.topic_min_similarity)

    def check(self) -> CheckReport:
        """Compare SQLite with the FAISS files and the image files; change nothing."""
        return check_store(self.store)

    def reindex(self, images: bool = False, text: bool = False, on_progress: Callable | None = None) -> dict:
        """Rebuild every FAISS index from SQLite; optionally (re)compute vectors first.

        Args:
            images: compute the CLIP vectors that are missing (images stored while CLIP
                was unavailable), or all of them if the CLIP model changed.
            text: re-embed every chunk with the configured text model.
        """
        from engine.reembed import fill_missing_phashes, reembed_clip, reembed_text

        store = self.store
        store.acquire_write_lock()
        try:
            done: dict[str, int] = {"image_hashes": fill_missing_phashes(store, on_progress)}
            if text:
                done["text_vectors"] = reembed_text(store, self.text_encoder, on_progress)
            if images:
                clip = self.clip_encoder()
                if clip is None:
                    raise ModelUnavailableError(self._clip_failed or "CLIP is disabled (clip.enabled = false)")
                done.update(reembed_clip(store, clip, on_progress))
            for space in (TEXT_SPACE, CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE):
                dim = store.get_meta(f"dim.{space}")
                if dim is not None:
                    store.rebuild_index(space, int(dim)).save()
                    done[f"{space}_indexed"] = len(store.loaded_indexes()[space])
            return done
        finally:
            store.release_write_lock()

    def upgrade(self) -> str:
        """Migrate the store to the newest schema; return the revision now in force."""
        from engine.store.database import current_revision

        return current_revision(self.store.engine) or "none"
