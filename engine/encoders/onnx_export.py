"""ONNX files of a text model: exported from its local weights on first use, cached, re-exported when stale.

Torch and transformers are imported only while exporting; a cached file needs neither. A file's
name is a key over the model folder's files (path, size, mtime) and the exporting code's
versions, so an edited or reinstalled model, or a new exporter, gets a fresh export and the old
files of that folder are removed. Files are written whole or not at all (temp file + rename).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import tempfile
import time
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from engine.errors import ModelUnavailableError
from engine.store.atomic import atomic_path

# Bump when export, fusion or quantization changes what is written: cached files go stale.
EXPORTER_VERSION = 1
OPSET = 17
# A temp file younger than this may be another process's export in progress: left alone.
TMP_GRACE_SECONDS = 3600


def default_cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("engine", appauthor=False) / "onnx"


def exported_model(folder: Path, transformer: Path, cache_dir: Path, quantized: bool) -> Path:
    """The cached ONNX file of the model in ``folder``, exported first when missing or stale.

    Args:
        folder: the sentence-transformers model folder (its files make the cache key).
        transformer: the folder of its Transformer module (usually ``folder`` itself).
        cache_dir: where exports are kept, one subfolder per model folder.
        quantized: the int8 file (per-channel dynamic quantization of the fp32 one).

    Returns:
        The path of a complete ONNX file whose output is the token embeddings.
    """
    home = cache_dir / _folder_slug(folder)
    key = model_key(folder)
    fp32 = home / f"{key}.onnx"
    target = home / f"{key}.int8.onnx" if quantized else fp32
    if target.exists():
        return target
    home.mkdir(parents=True, exist_ok=True)
    if not fp32.exists():
        with atomic_path(fp32) as tmp:
            _export(transformer, tmp)
    if quantized and not target.exists():
        with atomic_path(target) as tmp:
            _quantize(fp32, tmp)
    _remove_stale(home, key)
    return target


def model_key(folder: Path) -> str:
    """A short hash of the model folder's files and of the exporting libraries' versions."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    versions = [_version(name) for name in ("torch", "transformers", "onnxruntime", "onnx")]
    payload = json.dumps([EXPORTER_VERSION, OPSET, versions, str(folder.resolve()), stats])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _folder_slug(folder: Path) -> str:
    # The bundled model's folder is just "model": its parent's name says which one.
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(folder.resolve().parts[-2:]))
    return f"{readable}-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def _export(transformer: Path, out: Path) -> None:
    """Write the transformer (inputs as its tokenizer names them → token embeddings) to ``out``."""
    from engine.encoders.text import quiet_transformers

    quiet_transformers()  # no loading bars in the middle of the first command that exports
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ModelUnavailableError(
            f"exporting the text model to ONNX needs torch and transformers ({exc}): pip install torch transformers"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(transformer, local_files_only=True)
        # Eager attention traces to the MatMul/Softmax pattern ONNX Runtime fuses into one
        # Attention op; SDPA's trace does not fuse (about 10% slower on CPU).
        model = AutoModel.from_pretrained(transformer, attn_implementation="eager", local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - any load failure means "cannot export"
        raise ModelUnavailableError(f"text model at {transformer} could not be loaded for export ({exc})") from exc
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in tokenizer.model_input_names if n in accepted]
    # Two texts of different lengths, so the traced graph is the one that applies a padding mask.
    sample = tokenizer(["an example", "a longer example sentence for the trace"], padding=True, return_tensors="pt")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs):  # noqa: ANN002, ANN202
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    with tempfile.TemporaryDirectory(prefix="engine-onnx-") as tmp, _quiet(), torch.no_grad():
        raw = Path(tmp) / "raw.onnx"
        # dynamo=False: the TorchScript exporter, deprecated in torch 2.9 but still there in 2.14;
        # the dynamo one needs onnxscript and gives nothing more for an encoder like this.
        torch.onnx.export(
            TokenEmbeddings(),
            tuple(sample[n] for n in names),
            str(raw),
            dynamo=False,
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "token_embeddings"]},
            opset_version=OPSET,
        )
        _fuse(raw, out, model.config)


def _fuse(raw: Path, out: Path, config) -> None:  # noqa: ANN001 - transformers PretrainedConfig
    """``raw`` with attention, layer norms and GELU fused by ONNX Runtime's transformer optimizer
    (numerically the same; 5–10% faster, and int8 quantizes the fused ops); a model type it does
    not know is written unfused."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    if config.model_type not in MODEL_TYPES:
        out.write_bytes(raw.read_bytes())
        return
    optimized = optimize_model(
        str(raw),
        model_type=config.model_type,
        num_heads=getattr(config, "num_attention_heads", 0),
        hidden_size=getattr(config, "hidden_size", 0),
    )
    optimized.save_model_to_file(str(out))


def _quantize(fp32: Path, out: Path, setting: str = "text.runtime") -> None:
    """Int8 weights, one scale per output channel; activations quantized on the fly.

    Per-tensor scales run faster but cost too much accuracy (mean cosine to fp32 about 0.95
    against 0.994 for MiniLM).
    """
    try:
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelUnavailableError(f"{setting} = onnx-int8 needs onnx to quantize ({exc}): pip install onnx") from exc

    with _quiet():
        quantize_dynamic(
            fp32,
            out,
            per_channel=True,
            weight_type=QuantType.QInt8,
            # Fused ops are from ONNX Runtime's domain; shape inference cannot type their outputs.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def _remove_stale(home: Path, key: str) -> None:
    """Remove the folder's files of other keys, and temp files that no export still writes."""
    for path in home.iterdir():
        if path.suffix == ".tmp":
            if time.time() - path.stat().st_mtime > TMP_GRACE_SECONDS:
                path.unlink(missing_ok=True)
        elif not path.name.startswith(f"{key}."):
            path.unlink(missing_ok=True)


@contextmanager
def _quiet():
    # The exporter's deprecation and tracer warnings, and the quantizer's advice on the root
    # logger, would land in the CLI's output; they say nothing a user can act on.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
