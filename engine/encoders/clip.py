"""The CLIP encoder (open_clip): images and short texts in one space.

Weights are found in this order: ``clip.checkpoint`` (a local file), the local
open_clip / Hugging Face caches for ``clip.pretrained``, a download (only with
``clip.allow_download``), and random weights (only with ``clip.random_weights``,
for tests: right shapes, no meaning). Otherwise :class:`ModelUnavailableError`
says which setting to change.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.config import ClipConfig
from engine.encoders.clip_text import encode_tokens
from engine.errors import ModelUnavailableError

# CLIP reads 77 tokens, start and end markers included.
CLIP_CONTEXT_TOKENS = 77


class ClipEncoder:
    def __init__(self, config: ClipConfig):
        self.config = config

    @cached_property
    def identity(self) -> str:
        """What made the vectors: model plus weights, stable across runs and machines."""
        c = self.config
        if c.checkpoint:
            return f"{c.model}/checkpoint:{_file_digest(Path(c.checkpoint).expanduser())}"
        if c.random_weights and not self._cached_weights():
            return f"{c.model}/random-seed0"
        return f"{c.model}/{c.pretrained}"

    def _cached_weights(self) -> str | None:
        """A local file holding ``pretrained`` weights, from the open_clip or HF cache."""
        from open_clip import pretrained as op

        cfg = op.get_pretrained_cfg(self.config.model, self.config.pretrained)
        if not cfg:
            return None
        if cfg.get("hf_hub"):
            from huggingface_hub import try_to_load_from_cache

            hub = cfg["hf_hub"]
            # "org/name/" means the repo's default files; "org/name/file" names one.
            if hub.endswith("/"):
                repo_id = hub.rstrip("/")
                names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            else:
                repo_id, _, filename = hub.rpartition("/")
                names = [filename]
            for name in names:
                found = try_to_load_from_cache(repo_id, name)
                if isinstance(found, str):
                    return found
        if cfg.get("url"):
            cached = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
            if cached.exists():
                return str(cached)
        return None

    @cached_property
    def _loaded(self):  # noqa: ANN202 - (model, preprocess, tokenizer), torch types
        import logging

        import open_clip
        import torch

        c = self.config
        weights: str | None
        if c.checkpoint:
            weights = str(Path(c.checkpoint).expanduser())
            if not os.path.exists(weights):
                raise ModelUnavailableError(f"clip.checkpoint {weights} does not exist")
        else:
            weights = self._cached_weights()
            if weights is None and c.allow_download:
                weights = c.pretrained
        if weights is None and not c.random_weights:
            raise ModelUnavailableError(
                f"CLIP weights {c.model}/{c.pretrained} are not on this machine; set "
                "clip.checkpoint (ENGINE_CLIP_CHECKPOINT) to a local open_clip checkpoint, "
                "or clip.allow_download = true where the internet is reachable"
            )
        from engine.encoders.text import torch_device

        device = torch_device(c.device, c.threads, "clip.device")
        torch.manual_seed(0)  # random weights (tests) are then the same in every process
        # open_clip warns through the root logger when it builds random weights.
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
        try:
            # fp16 is a GPU's fast path; the encoders still return float32.
            model, _, preprocess = open_clip.create_model_and_transforms(
                c.model, pretrained=weights, device=device, precision="fp16" if device.startswith("cuda") else "fp32"
            )
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            raise ModelUnavailableError(f"CLIP {c.model} could not be loaded from {weights}: {exc}") from exc
        model.eval()
        return model, preprocess, open_clip.get_tokenizer(c.model)

    def load(self) -> None:
        """Load now (raises ModelUnavailableError); otherwise loading waits for first use."""
        self._loaded  # noqa: B018

    @property
    def dim(self) -> int:
        model = self._loaded[0]
        return int(model.text_projection.shape[1] if hasattr(model, "text_projection") else 512)

    def encode_images(self, images: list) -> np.ndarray:  # noqa: ANN001 - PIL images
        """Embeddings of PIL images, L2-normalised, shape (len(images), dim)."""
        import torch

        model, preprocess, _ = self._loaded
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.config.batch_size):
                batch = torch.stack([preprocess(im) for im in images[start : start + self.config.batch_size]])
                weight = next(model.visual.parameters())
                batch = batch.to(weight.device, weight.dtype)
                out.append(_normalise(model.encode_image(batch).float().cpu().numpy()))
        return np.concatenate(out)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of short texts (a sentence, a title): a text longer than CLIP's
        window is split into windows whose embeddings are averaged, never cut off."""
        import torch

        model, _, tokenizer = self._loaded
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        pieces, owner = [], []
        for n, text in enumerate(texts):
            for piece in self._windows(text):
                pieces.append(piece)
                owner.append(n)
        out = []
        with torch.inference_mode():
            for start in range(0, len(pieces), 64):
                out.append(encode_tokens(model, tokenizer(pieces[start : start + 64])))
        piece_vectors = _normalise(np.concatenate(out))
        return _mean_by_owner(piece_vectors, np.asarray(owner), len(texts))

    def encode_passages(self, passages: list[list[str]]) -> np.ndarray:
        """One embedding per passage: the normalised mean of its sentences' embeddings."""
        return passage_vectors(self.encode_texts, passages, self.dim)

    def _windows(self, text: str) -> list[str]:
        """``text`` as word windows that each fit CLIP's context."""
        tokenizer = self._loaded[2]
        budget = CLIP_CONTEXT_TOKENS - 2
        words = text.split()
        if not words or not hasattr(tokenizer, "encode") or len(tokenizer.encode(text)) <= budget:
            return [text]
        counts = [len(tokenizer.encode(w)) for w in words]
        windows, current, used = [], [], 0
        for word, count in zip(words, counts):
            if current and used + count > budget:
                windows.append(" ".join(current))
                current, used = [], 0
            current.append(word)
            used += count
        windows.append(" ".join(current))
        return windows


def passage_vectors(encode_texts, passages: list[list[str]], dim: int) -> np.ndarray:  # noqa: ANN001 - a CLIP encoder's encode_texts
    """One vector per passage, the normalised mean of its sentences' vectors (both CLIP runtimes)."""
    flat = [s for sentences in passages for s in sentences]
    owner = np.asarray([n for n, sentences in enumerate(passages) for _ in sentences])
    if not flat:
        return np.zeros((len(passages), dim), np.float32)
    return _mean_by_owner(encode_texts(flat), owner, len(passages))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _mean_by_owner(vectors: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    sums = np.zeros((n, vectors.shape[1]), np.float32)
    np.add.at(sums, owner, vectors)
    return _normalise(sums)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
