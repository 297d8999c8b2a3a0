"""ONNX files of the CLIP model: exported from the weights ClipEncoder loads, cached, re-exported when stale.

Torch and open_clip are imported only while exporting; a cached export is found and checked without
them. Its folder is named by the configuration (model, pretrained tag, checkpoint) and its files by
a key over what decides the export and can be read without loading anything: the checkpoint file's
size and mtime, the exporter's version and the exporting libraries' installed versions. A sidecar
JSON, written last, describes the export (identity, width, image preprocessing, tokenizer cleanup)
and names the weights file (size, mtime) it was made from: no sidecar, or a changed weights file,
means export again. Files are written whole or not at all (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from engine.config import ClipConfig
from engine.encoders.onnx_export import OPSET, _quantize, _quiet, _remove_stale, _version
from engine.errors import ModelUnavailableError
from engine.store.atomic import atomic_path, write_atomic

# Bump when export, tokenizer building or quantization changes what is written: cached files go stale.
EXPORTER_VERSION = 1
# Their versions are part of the key: a new exporter, quantizer or tokenizer cleaner exports afresh.
LIBRARIES = ("torch", "open_clip_torch", "onnxruntime", "onnx", "ftfy")
TOWERS = ("text", "image")
# How far an export may be from torch on the check it runs before it is kept.
EXPORT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ClipExport:
    """A whole export: the folder, its key and what its sidecar says."""

    home: Path
    key: str
    manifest: dict

    @property
    def tokenizer(self) -> Path:
        return self.home / f"{self.key}.tokenizer.json"

    def tower(self, tower: str, quantized: bool = False) -> Path:
        """The ONNX file of ``tower`` (text or image); an int8 one is quantized from the fp32 one on
        first use (per-channel dynamic quantization, as onnx_export: 10–20 s a tower)."""
        fp32 = self.home / f"{self.key}.{tower}.onnx"
        int8 = self.home / f"{self.key}.{tower}.int8.onnx"
        if quantized and not int8.exists():
            with atomic_path(int8) as tmp:
                _quantize(fp32, tmp, "clip.runtime")
        return int8 if quantized else fp32


def exported_clip(config: ClipConfig, cache_dir: Path) -> ClipExport:
    """The cached export of ``config``'s CLIP model, exported first when missing, half-written or stale.

    Args:
        config: model, pretrained tag, checkpoint and random_weights say which weights (as ClipEncoder).
        cache_dir: where exports are kept, one ``clip-<slug>`` folder per configured model.
    """
    home = cache_dir / f"clip-{_slug(config)}"
    key = export_key(config)
    manifest = _valid_manifest(home, key)
    if manifest is None:
        home.mkdir(parents=True, exist_ok=True)
        _remove_key(home, key)  # a half-written export, or one from other weights: int8 files too
        manifest = {"key": key, "exporter": EXPORTER_VERSION, **_export(config, home, key)}
        # Last: a sidecar says its export is whole.
        write_atomic(home / f"{key}.json", json.dumps(manifest).encode())
        _remove_stale(home, key)
    return ClipExport(home, key, manifest)


def export_key(config: ClipConfig) -> str:
    """A short hash of what decides the export, read without importing torch or open_clip."""
    checkpoint = _weights_stat(Path(config.checkpoint).expanduser()) if config.checkpoint else None
    versions = {name: _version(name) for name in LIBRARIES}
    payload = [EXPORTER_VERSION, OPSET, config.model, config.pretrained, config.random_weights, checkpoint, versions]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def _slug(config: ClipConfig) -> str:
    source = Path(config.checkpoint).name if config.checkpoint else config.pretrained or "random"
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{config.model}-{source}")
    where = str(Path(config.checkpoint).expanduser().resolve()) if config.checkpoint else ""
    identity = json.dumps([config.model, config.pretrained, where, config.random_weights])
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def _weights_stat(path: Path) -> dict | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _valid_manifest(home: Path, key: str) -> dict | None:
    """The sidecar of ``key`` when its export is whole and its weights file is unchanged, else None."""
    try:
        manifest = json.loads((home / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    weights = manifest.get("weights")
    if weights is not None and _weights_stat(Path(weights["path"])) != weights:
        return None
    needed = [f"{key}.{tower}.onnx" for tower in TOWERS] + [f"{key}.tokenizer.json"]
    if manifest.get("key") != key or not all((home / name).exists() for name in needed):
        return None
    return manifest


def _remove_key(home: Path, key: str) -> None:
    (home / f"{key}.json").unlink(missing_ok=True)  # first: the rest is never taken for whole meanwhile
    for path in home.glob(f"{key}.*"):
        if path.suffix != ".tmp":  # another process may be writing it
            path.unlink(missing_ok=True)


def _export(config: ClipConfig, home: Path, key: str) -> dict:
    """Export both towers and the tokenizer of ``config``'s model into ``home``; return the sidecar's facts."""
    try:
        import torch

        from engine.encoders.clip import ClipEncoder
        from engine.encoders.clip_text import can_trim
        from engine.encoders.clip_tokenizer import build
    except ImportError as exc:
        raise ModelUnavailableError(
            f"exporting CLIP to ONNX needs torch and open_clip ({exc}): pip install open_clip_torch, "
            "or set clip.runtime = torch"
        ) from exc
    # The torch encoder's own loading: the same weights, found the same way, on the CPU in fp32.
    encoder = ClipEncoder(replace(config, device="cpu"))
    model, preprocess, tokenizer = encoder._loaded
    image = _image_preprocessing(preprocess)
    if not can_trim(model):
        raise ModelUnavailableError(
            f"CLIP {config.model}'s text tower has no ONNX path here; set clip.runtime = torch"
        )
    files = {"text": home / f"{key}.text.onnx", "image": home / f"{key}.image.onnx"}
    with _quiet(), torch.no_grad():
        check = _reference(model, tokenizer, image["size"])  # before the swap below: torch's own numbers
        _make_attention_traceable(model)  # this encoder's own copy of the model, dropped after export
        sample_ids = tokenizer(["a photo", "a longer caption of a photo"])[:, :9]
        sample_pixels = torch.zeros((2, 3, image["size"], image["size"]))
        text_axes, image_axes = {0: "batch", 1: "sequence"}, {0: "batch"}
        _export_tower(_text_tower(model), sample_ids, "input_ids", "text_embeds", text_axes, files["text"])
        _export_tower(model.visual, sample_pixels, "pixel_values", "image_embeds", image_axes, files["image"])
    for tower, (feed, expected) in check.items():
        _check_export(files[tower], feed, expected)
    with atomic_path(home / f"{key}.tokenizer.json") as tmp:
        try:
            cleanup = build(tokenizer, tmp)
        except ValueError as exc:
            raise ModelUnavailableError(f"CLIP {config.model}'s tokenizer: {exc}; set clip.runtime = torch") from exc
    weights = str(Path(config.checkpoint).expanduser()) if config.checkpoint else encoder._cached_weights()
    return {
        "identity": encoder.identity,
        "dim": encoder.dim,
        "context_length": int(model.context_length),
        "image": image,
        "weights": _weights_stat(Path(weights)) if weights else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "text_cleanup": cleanup,
    }


def _image_preprocessing(preprocess) -> dict:  # noqa: ANN001 - torchvision Compose
    """open_clip's eval transform as data: resize the short side, center crop, to RGB, normalise.

    Read from the transform the torch runtime runs, so the two cannot drift apart; any other
    transform (letterboxing, squashing, a non-square crop) has no ONNX path here.
    """
    from open_clip.transform import MaybeConvertMode, MaybeToTensor
    from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize

    steps = list(getattr(preprocess, "transforms", []))
    kinds = [Resize, CenterCrop, MaybeConvertMode, MaybeToTensor, Normalize]
    if len(steps) == len(kinds) and all(type(step) is kind for step, kind in zip(steps, kinds)):
        resize, crop, convert, _, normalize = steps
        size = resize.size if isinstance(resize.size, int) else resize.size[0] if len(resize.size) == 1 else None
        modes = {InterpolationMode.BICUBIC: "bicubic", InterpolationMode.BILINEAR: "bilinear"}
        interpolation = modes.get(resize.interpolation)
        square = tuple(crop.size) == (size, size)
        if size and interpolation and resize.max_size is None and square and convert.mode == "RGB":
            return {"size": size, "interpolation": interpolation,
                    "mean": [float(m) for m in normalize.mean], "std": [float(s) for s in normalize.std]}
    raise ModelUnavailableError(
        f"this CLIP's image preprocessing ({preprocess}) has no ONNX path here; set clip.runtime = torch"
    )


def _export_tower(module, sample, input_name: str, output_name: str, axes: dict, out: Path) -> None:  # noqa: ANN001
    import torch

    with atomic_path(out) as tmp:
        try:
            # dynamo=False: the TorchScript exporter, as onnx_export (no onnxscript needed).
            torch.onnx.export(
                module.eval(), (sample,), str(tmp), dynamo=False, opset_version=OPSET,
                input_names=[input_name], output_names=[output_name],
                dynamic_axes={input_name: axes, output_name: {0: "batch"}},
            )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise ModelUnavailableError(
                f"CLIP could not be exported to ONNX ({exc}); set clip.runtime = torch"
            ) from exc


def _reference(model, tokenizer, size: int) -> dict:  # noqa: ANN001 - open_clip model and tokenizer
    """Inputs of other shapes than the traced ones, and torch's outputs for them."""
    import torch

    from engine.encoders.clip_text import encode_tokens

    ids = tokenizer(["a", "three short words", "a caption of a cat sitting on a mat in the sun"])
    ids = ids[:, : int(ids.argmax(dim=-1).max()) + 1]
    pixels = torch.rand((3, 3, size, size), generator=torch.Generator().manual_seed(0))
    return {
        "text": (ids.numpy(), encode_tokens(model, ids)),
        "image": (pixels.numpy(), model.encode_image(pixels).float().numpy()),
    }


def _check_export(path: Path, feed, expected) -> None:  # noqa: ANN001 - numpy arrays
    """Refuse an export that is not torch's model at other shapes than the traced ones (a size baked in)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    found = session.run(None, {session.get_inputs()[0].name: feed})[0]
    error = abs(found - expected).max() if found.shape == expected.shape else float("inf")
    if error > EXPORT_TOLERANCE * max(1.0, abs(expected).max()):
        raise ModelUnavailableError(
            f"CLIP's ONNX export {path.name} is {error:.2g} away from torch; set clip.runtime = torch"
        )


def _make_attention_traceable(model) -> None:  # noqa: ANN001 - open_clip.CLIP
    """Swap each block's nn.MultiheadAttention for the same computation written with reshapes the
    tracer keeps dynamic: torch's own bakes the traced batch and length into the graph."""
    import torch.nn.functional as F  # noqa: N812
    from open_clip.transformer import ResidualAttentionBlock
    from torch import nn

    class SelfAttention(nn.Module):
        """nn.MultiheadAttention(x, x, x), batch first: one projection, per-head attention, out projection."""

        def __init__(self, attn: nn.MultiheadAttention):
            super().__init__()
            self.attn = attn

        def forward(self, x, k=None, v=None, need_weights=False, attn_mask=None):  # noqa: ANN001, ANN202, ARG002
            a = self.attn
            qkv = F.linear(x, a.in_proj_weight, a.in_proj_bias).unflatten(-1, (3, a.num_heads, -1))
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, sequence, head width)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask).transpose(1, 2).flatten(2)
            return F.linear(out, a.out_proj.weight, a.out_proj.bias), None

    for block in model.modules():
        if isinstance(block, ResidualAttentionBlock) and isinstance(block.attn, nn.MultiheadAttention):
            attn = block.attn
            if not (attn.batch_first and attn._qkv_same_embed_dim and attn.in_proj_bias is not None
                    and attn.bias_k is None and not attn.add_zero_attn and not hasattr(block, "ln_1_kv")):
                raise ModelUnavailableError(
                    "this CLIP's attention layers have no ONNX path here; set clip.runtime = torch"
                )
            block.attn = SelfAttention(attn)


def _text_tower(model):  # noqa: ANN001, ANN202 - open_clip.CLIP → torch module
    """The text tower as clip_text runs it: ids cut to the batch's longest text → projected vectors."""
    from torch import nn

    from engine.encoders.clip_text import _encode_prefix

    class TextTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids):  # noqa: ANN001, ANN202
            return _encode_prefix(self.model, ids)

    return TextTower()
