"""The CLIP encoder on ONNX Runtime: ClipEncoder's vectors without torch at run time.

The towers are exported from the torch encoder's weights on first use and cached
(engine/encoders/onnx_clip_export.py); after that only numpy, PIL, ``tokenizers`` and
``onnxruntime`` run. Text goes through the padding-free path of clip_text (each batch cut to its
longest text), images through open_clip's preprocessing redone in PIL and numpy.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.config import ClipConfig
from engine.encoders.clip import CLIP_CONTEXT_TOKENS, _mean_by_owner, _normalise, passage_vectors
from engine.encoders.onnx_text import INT8_SUFFIX, execution_providers
from engine.errors import ModelUnavailableError

# Token rows per text forward pass; rows are sorted by length first, so a batch pads little.
TEXT_BATCH = 32


class OnnxClipEncoder:
    """ClipEncoder's contract on ONNX Runtime; ``config.runtime`` is onnx or onnx-int8.

    fp32 gives the torch encoder's vectors (one space, one identity); int8 is faster, and its
    vectors are near but not equal, so its identity carries ``+onnx-int8`` and a store refuses to
    mix the two. Honours ``clip.threads``, ``clip.device`` and ``clip.onnx_cache``.
    """

    def __init__(self, config: ClipConfig):
        self.config = config
        self.quantized = config.runtime == "onnx-int8"
        # Exporting and loading happen once, and a session runs one batch at a time (as OnnxTextEncoder).
        self._lock = threading.RLock()

    @property
    def identity(self) -> str:
        """The torch encoder's identity for fp32 (the same vectors); with ``+onnx-int8`` for int8."""
        return self._manifest["identity"] + (INT8_SUFFIX if self.quantized else "")

    @property
    def dim(self) -> int:
        return int(self._manifest["dim"])

    def load(self) -> None:
        """Export (first time only) and open both towers now (raises ModelUnavailableError)."""
        with self._lock:
            self._text_session  # noqa: B018 - built on first access
            self._image_session  # noqa: B018

    def encode_images(self, images: list) -> np.ndarray:  # noqa: ANN001 - PIL images
        """Embeddings of PIL images, L2-normalised, shape (len(images), dim)."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        spec = self._manifest["image"]
        out = []
        for start in range(0, len(images), self.config.batch_size):
            # Resizing is outside the lock: other threads' batches run meanwhile.
            pixels = np.stack([preprocess(im, spec) for im in images[start : start + self.config.batch_size]])
            with self._lock:
                out.append(_normalise(self._image_session.run(None, {"pixel_values": pixels})[0]))
        return np.concatenate(out)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of short texts; a text longer than CLIP's window is split into word windows
        whose embeddings are averaged (as ClipEncoder.encode_texts)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            pieces, owner = [], []
            for n, windows in enumerate(self._windows(texts)):
                pieces += windows
                owner += [n] * len(windows)
            vectors = self._run_text(self._tokenizer.ids(pieces))
        return _mean_by_owner(_normalise(vectors), np.asarray(owner), len(texts))

    def encode_passages(self, passages: list[list[str]]) -> np.ndarray:
        """One embedding per passage: the normalised mean of its sentences' embeddings."""
        return passage_vectors(self.encode_texts, passages, self.dim)

    def _windows(self, texts: list[str]) -> list[list[str]]:
        """Each text as word windows that fit CLIP's context (ClipEncoder._windows, counted in batches)."""
        budget = CLIP_CONTEXT_TOKENS - 2
        out = []
        for text, count in zip(texts, self._tokenizer.count(texts)):
            words = text.split()
            if not words or count <= budget:
                out.append([text])
                continue
            windows, current, used = [], [], 0
            for word, n in zip(words, self._tokenizer.count(words)):
                if current and used + n > budget:
                    windows.append(" ".join(current))
                    current, used = [], 0
                current.append(word)
                used += n
            out.append(windows + [" ".join(current)])
        return out

    def _run_text(self, ids: list[list[int]]) -> np.ndarray:
        """Text vectors (not normalised) of token rows, each batch padded to its own longest row.

        Padding is exact: attention is causal and the vector is read at the end-of-text token.
        """
        session = self._text_session
        out = np.zeros((len(ids), self.dim), np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), TEXT_BATCH):
            rows = order[start : start + TEXT_BATCH]
            batch = np.zeros((len(rows), max(len(ids[i]) for i in rows)), np.int64)
            for row, i in enumerate(rows):
                batch[row, : len(ids[i])] = ids[i]
            out[rows] = session.run(None, {"input_ids": batch})[0]
        return out

    @cached_property
    def _export(self):  # noqa: ANN202 - onnx_clip_export.ClipExport
        from engine.encoders import onnx_export
        from engine.encoders.onnx_clip_export import exported_clip

        c = self.config
        cache = Path(c.onnx_cache).expanduser() if c.onnx_cache else onnx_export.default_cache_dir()
        with self._lock:
            return exported_clip(self.config, cache)

    @property
    def _manifest(self) -> dict:
        with self._lock:
            return self._export.manifest

    @cached_property
    def _tokenizer(self):  # noqa: ANN202 - clip_tokenizer.ClipTokenizer
        from engine.encoders.clip_tokenizer import ClipTokenizer

        with self._lock:
            export = self._export
            return ClipTokenizer(export.tokenizer, export.manifest["text_cleanup"], export.manifest["context_length"])

    @cached_property
    def _text_session(self):  # noqa: ANN202 - onnxruntime.InferenceSession
        with self._lock:
            return self._session(self._export.tower("text", self.quantized))

    @cached_property
    def _image_session(self):  # noqa: ANN202 - onnxruntime.InferenceSession
        with self._lock:
            return self._session(self._export.tower("image", self.quantized))

    def _session(self, path: Path):  # noqa: ANN202 - onnxruntime.InferenceSession
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelUnavailableError(
                f"clip.runtime = {self.config.runtime} needs ONNX Runtime: pip install onnxruntime, "
                "or set clip.runtime = torch"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        # Idle workers sleep rather than spin: the indexer's other threads need those cores (as onnx_text).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Denormal floats flushed to zero: a Ray worker's threads otherwise run this model up to
        # 6× slower (measured, indexer/distributed); vectors unchanged to 1e-6, speed here unchanged.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.log_severity_level = 3  # errors only: its warnings would land in the CLI's output
        providers = execution_providers(onnxruntime.get_available_providers(), self.config.device, "clip.device")
        try:
            return onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise ModelUnavailableError(
                f"ONNX file {path} could not be opened ({exc}); delete it to export again"
            ) from exc


def preprocess(image, spec: dict) -> np.ndarray:  # noqa: ANN001 - PIL image
    """open_clip's eval transform in PIL and numpy: (3, size, size) float32, the same numbers.

    As torchvision does it: resize the short side (in the image's own mode, so Pillow resamples
    palette images as it does there), center crop, then convert to RGB, scale to [0, 1], normalise.
    """
    from PIL import Image

    size = spec["size"]
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    if new_size != image.size:
        resample = Image.Resampling.BICUBIC if spec["interpolation"] == "bicubic" else Image.Resampling.BILINEAR
        image = image.resize(new_size, resample)
    left, top = int(round((new_size[0] - size) / 2.0)), int(round((new_size[1] - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    mean, std = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1)
