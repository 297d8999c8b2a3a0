"""The encoders the configuration asks for: on torch, or on ONNX Runtime."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.config import ClipConfig, TextModelConfig
from engine.errors import ModelUnavailableError

# What `text.runtime = auto` runs for a store that has no text vectors yet: ONNX Runtime fp32 gives
# torch's vectors (within 2e-7) 1.3× faster and starts without torch; int8 is faster still but
# wrongly refused more answerable questions (README, "Text encoder runtimes").
DEFAULT_TEXT_RUNTIME = "onnx"


def text_runtime(text: TextModelConfig, stored_model: str | None) -> str:
    """The runtime to run: ``text.runtime``, or for ``auto`` the one the store's vectors were made
    with (``stored_model``, the store's recorded model name), so changing the default never turns
    an existing store's vectors into another space."""
    from engine.encoders.onnx_text import INT8_SUFFIX

    if text.runtime != "auto":
        return text.runtime
    if stored_model == text.model + INT8_SUFFIX:
        return "onnx-int8"
    return DEFAULT_TEXT_RUNTIME if _runs_on_onnx(text.model) else "torch"


def build_text_encoder(text: TextModelConfig, stored_model: str | None = None):  # noqa: ANN201 - TextEncoder | OnnxTextEncoder
    """An encoder for ``text.model`` on its runtime; nothing is loaded until first use.

    Each module is imported only when chosen, so the ONNX path never imports the torch one's
    libraries (and neither imports its model library before first use).
    """
    runtime = text_runtime(text, stored_model)
    if runtime == "torch":
        from engine.encoders.text import TextEncoder

        return TextEncoder(text.model, text.batch_size, device=text.device, threads=text.threads)
    from engine.encoders.onnx_text import OnnxTextEncoder

    return OnnxTextEncoder(
        text.model,
        text.batch_size,
        quantized=runtime == "onnx-int8",
        threads=text.threads,
        device=text.device,
        cache_dir=Path(text.onnx_cache).expanduser() if text.onnx_cache else None,
    )


def build_clip_encoder(clip: ClipConfig):  # noqa: ANN201 - ClipEncoder | OnnxClipEncoder, one contract
    """The CLIP encoder on ``clip.runtime`` (auto: onnx); weights are found (or exported) on first use."""
    if clip.runtime == "torch":
        from engine.encoders.clip import ClipEncoder

        return ClipEncoder(clip)
    from engine.encoders.onnx_clip import OnnxClipEncoder

    return OnnxClipEncoder(replace(clip, runtime="onnx") if clip.runtime == "auto" else clip)


def load_clip_encoder(clip: ClipConfig):  # noqa: ANN201 - ClipEncoder | OnnxClipEncoder
    """The CLIP encoder, loaded (raises ModelUnavailableError). With ``auto``, a model the ONNX
    exporter cannot take runs on torch: the same vectors, so the store cannot tell."""
    encoder = build_clip_encoder(clip)
    try:
        encoder.load()
    except ModelUnavailableError:
        if clip.runtime != "auto":
            raise
        encoder = build_clip_encoder(replace(clip, runtime="torch"))
        encoder.load()  # its error (e.g. no weights on this machine) is the one to report
    return encoder


def _runs_on_onnx(model: str) -> bool:
    """Whether the ONNX runtime can compute ``model``'s embeddings (a layout it knows, a fast tokenizer)."""
    from engine.encoders.onnx_text import model_folder, read_layout

    try:
        layout = read_layout(model_folder(model))
    except ModelUnavailableError:
        return False
    return (layout.transformer / "tokenizer.json").exists()
