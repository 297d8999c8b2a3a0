"""The text encoder on ONNX Runtime: a sentence-transformers model, no torch at run time."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.encoders.text import resolve_text_model
from engine.errors import ModelUnavailableError

# An int8 model's vectors are not the fp32 model's (mean cosine ~0.994 between them), so a store
# records them under their own name: its model guard then refuses to mix the two spaces.
INT8_SUFFIX = "+onnx-int8"
# The pooling modes (sentence-transformers' names) this encoder computes.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
# sentence-transformers' old per-mode switches, in its concatenation order.
LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class Layout:
    """What a sentence-transformers folder says about computing its embeddings."""

    folder: Path
    transformer: Path  # the Transformer module's folder
    pooling: tuple[str, ...]  # modes, concatenated in this order
    dim: int
    max_seq_length: int  # tokens the transformer reads, special tokens included
    lowercase: bool


class OnnxTextEncoder:
    """The same vectors as :class:`engine.encoders.text.TextEncoder`, from ONNX Runtime.

    The ONNX file is exported from the local weights on first use and cached
    (engine/encoders/onnx_export.py); after that only ``tokenizers`` and ``onnxruntime`` run.

    Args:
        model: a sentence-transformers model name, hub id (in the local cache) or folder.
        batch_size: texts per forward pass; batches are cut from the texts sorted by length.
        quantized: run the int8 model (faster; vectors ~0.99 cosine to fp32, another model name).
        threads: ONNX Runtime's intra-op threads; 0 lets it choose.
        device: auto (CUDA when ONNX Runtime has it, else CPU), cpu, cuda or cuda:N.
        cache_dir: where the ONNX files are kept (default: the user's cache folder).
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        *,
        quantized: bool = False,
        threads: int = 0,
        device: str = "auto",
        cache_dir: Path | None = None,
    ):
        self.name = model + INT8_SUFFIX if quantized else model
        self.model_name = model
        self.batch_size = batch_size
        self.quantized = quantized
        self.threads = threads
        self.device = device
        self.cache_dir = cache_dir
        # One call at a time, as TextEncoder: loading must happen once, and a batch's arrays
        # are built and run as one unit.
        self._lock = threading.RLock()

    @cached_property
    def layout(self) -> Layout:
        return read_layout(model_folder(self.model_name))

    @property
    def dim(self) -> int:
        return self.layout.dim

    @property
    def max_tokens(self) -> int:
        """Most word-piece tokens the model reads, special tokens excluded."""
        with self._lock:
            adds = self._counter.post_processor  # [CLS] … [SEP] for BERT
        return self.layout.max_seq_length - (adds.num_special_tokens_to_add(False) if adds else 0)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            encoded = self._counter.encode_batch(self._prepared(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape (len(texts), dim), L2-normalised."""
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        with self._lock:
            session, inputs = self._session
            encoded = self._tokenizer.encode_batch(self._prepared(texts))
            # Longest first, so a batch pads to about its own length, not the longest text's.
            order = sorted(range(len(texts)), key=lambda i: -len(encoded[i].ids))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                feed, mask = _batch([encoded[i] for i in rows], inputs)
                tokens = session.run(None, feed)[0]
                out[rows] = _pool(tokens, mask, self.layout.pooling)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def load(self) -> None:
        """Export (first time only) and open the model now rather than at the first encode."""
        with self._lock:
            self._session  # noqa: B018 - built on first access

    def _prepared(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.layout.lowercase else list(texts)

    @cached_property
    def _counter(self):  # noqa: ANN202 - tokenizers.Tokenizer
        """The tokenizer as counting needs it: no truncation, no padding."""
        tokenizer = _load_tokenizer(self.layout.transformer)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _tokenizer(self):  # noqa: ANN202 - tokenizers.Tokenizer
        """The tokenizer as the model reads: cut to max_seq_length; padding is per batch (_batch)."""
        tokenizer = _load_tokenizer(self.layout.transformer)
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.layout.max_seq_length)
        return tokenizer

    @cached_property
    def _session(self):  # noqa: ANN202 - (onnxruntime.InferenceSession, its input names)
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelUnavailableError(
                f"text.runtime {'onnx-int8' if self.quantized else 'onnx'} needs ONNX Runtime: pip install onnxruntime"
            ) from exc
        from engine.encoders.onnx_export import default_cache_dir, exported_model

        layout = self.layout
        path = exported_model(layout.folder, layout.transformer, self.cache_dir or default_cache_dir(), self.quantized)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        # Idle workers sleep rather than spin: between batches the indexer's other threads
        # (extraction, the crawler) need those cores, and encoding measured no slower.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Denormal floats flushed to zero: a Ray worker's threads otherwise run this model up to
        # 6× slower (measured, indexer/distributed); vectors unchanged to 1e-6, speed here unchanged.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.log_severity_level = 3  # errors only: its warnings would land in the CLI's output
        providers = execution_providers(onnxruntime.get_available_providers(), self.device, "text.device")
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise ModelUnavailableError(f"ONNX file {path} could not be opened ({exc}); delete it to export again") from exc
        return session, [i.name for i in session.get_inputs()]


def execution_providers(available: list[str], device: str, setting: str) -> list:
    """ONNX Runtime's providers for ``device``: CUDA first when asked for (or, for auto, present), CPU last.

    ``setting`` names the config key in the error when CUDA is asked for and missing.
    """
    if device == "cpu" or (device == "auto" and "CUDAExecutionProvider" not in available):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise ModelUnavailableError(
            f"{setting} = {device} but this ONNX Runtime has no CUDA provider (pip install onnxruntime-gpu), "
            f"or set {setting} = cpu"
        )
    _, _, number = device.partition(":")
    return [("CUDAExecutionProvider", {"device_id": int(number or 0)}), "CPUExecutionProvider"]


def read_layout(folder: Path) -> Layout:
    """The Transformer → Pooling (→ Normalize) layout of a sentence-transformers folder.

    A folder without modules.json is a plain transformer, mean-pooled (as sentence-transformers
    loads one). Other modules (Dense, …) have no ONNX path here: use text.runtime = torch.
    """
    modules = _read_json(folder / "modules.json")
    transformer, pooling = folder, None
    for module in modules or []:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        where = folder / module.get("path", "")
        if kind == "Transformer":
            transformer = where
        elif kind == "Pooling":
            pooling = _read_json(where / "config.json") or {}
        elif kind != "Normalize":  # the encoder normalises anyway
            raise ModelUnavailableError(
                f"text model at {folder} has a {kind} module, which the ONNX runtime does not run; "
                "set text.runtime = torch"
            )
    config = _read_json(transformer / "config.json") or {}
    width = int((pooling or {}).get("embedding_dimension") or (pooling or {}).get("word_embedding_dimension")
                or config.get("hidden_size") or 0)
    modes = _pooling_modes(pooling or {})
    unsupported = [m for m in modes if m not in POOLING_MODES]
    if unsupported or not width:
        raise ModelUnavailableError(
            f"text model at {folder}: pooling {', '.join(unsupported) or 'without a width'} is not supported "
            "by the ONNX runtime; set text.runtime = torch"
        )
    settings = _read_json(transformer / "sentence_bert_config.json") or {}
    return Layout(
        folder=folder,
        transformer=transformer,
        pooling=modes,
        dim=width * len(modes),
        max_seq_length=int(settings.get("max_seq_length") or _model_limit(transformer, config)),
        lowercase=bool(settings.get("do_lower_case")),
    )


def _pooling_modes(pooling: dict) -> tuple[str, ...]:
    mode = pooling.get("pooling_mode")
    if mode:
        return (mode,) if isinstance(mode, str) else tuple(mode)
    return tuple(m for key, m in LEGACY_POOLING.items() if pooling.get(key)) or ("mean",)


def _model_limit(transformer: Path, config: dict) -> int:
    # As sentence-transformers: the tokenizer's limit, else the position embeddings'.
    limit = (_read_json(transformer / "tokenizer_config.json") or {}).get("model_max_length")
    if isinstance(limit, int) and limit < 1_000_000:
        return limit
    return int(config.get("max_position_embeddings") or 512)


def model_folder(model: str) -> Path:
    """The local folder of ``model``: a path, the bundled MiniLM, or a hub id in the local cache."""
    location = resolve_text_model(model)
    if os.path.isdir(location):
        return Path(location)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(location, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - not installed, not cached: both mean "no local copy"
        raise ModelUnavailableError(
            f"text model {model!r} has no local copy to export to ONNX ({exc}); "
            "set text.model (ENGINE_TEXT_MODEL) to a local sentence-transformers folder"
        ) from exc


def _load_tokenizer(folder: Path):  # noqa: ANN202 - tokenizers.Tokenizer
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.exists():
        raise ModelUnavailableError(
            f"text model at {folder} has no tokenizer.json (a fast tokenizer), which the ONNX runtime needs; "
            "set text.runtime = torch"
        )
    return Tokenizer.from_file(str(path))


def _batch(encodings: list, inputs: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The session's inputs for ``encodings``, right-padded to the longest; and the attention mask."""
    width = max(len(e.ids) for e in encodings)
    names = ("input_ids", "attention_mask", "token_type_ids")
    arrays = {name: np.zeros((len(encodings), width), np.int64) for name in names}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        arrays["input_ids"][row, :n] = e.ids
        arrays["attention_mask"][row, :n] = e.attention_mask
        arrays["token_type_ids"][row, :n] = e.type_ids
    return {name: arrays[name] for name in inputs}, arrays["attention_mask"]


def _pool(tokens: np.ndarray, mask: np.ndarray, modes: tuple[str, ...]) -> np.ndarray:
    """sentence-transformers' Pooling: (batch, sequence, width) token embeddings → (batch, width × modes)."""
    weights = mask[..., None].astype(np.float32)
    pooled = []
    for mode in modes:
        if mode == "cls":
            pooled.append(tokens[np.arange(len(tokens)), mask.argmax(axis=1)])
        elif mode == "max":
            pooled.append(np.where(weights > 0, tokens, -np.inf).max(axis=1))
        else:
            counts = np.maximum(weights.sum(axis=1), 1e-9)
            total = (tokens * weights).sum(axis=1)
            pooled.append(total / (counts if mode == "mean" else np.sqrt(counts)))
    return np.concatenate(pooled, axis=1).astype(np.float32, copy=False)


def _read_json(path: Path) -> dict | list | None:
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
