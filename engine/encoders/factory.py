"""The text encoder the configuration asks for: sentence-transformers on torch, or ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

from engine.config import TextModelConfig


def build_text_encoder(text: TextModelConfig):  # noqa: ANN201 - TextEncoder | OnnxTextEncoder, one contract
    """An encoder for ``text.model`` on ``text.runtime``; nothing is loaded until first use.

    Each module is imported only when chosen, so the ONNX path never imports the torch one's
    libraries (and neither imports its model library before first use).
    """
    if text.runtime == "torch":
        from engine.encoders.text import TextEncoder

        return TextEncoder(text.model, text.batch_size)
    from engine.encoders.onnx_text import OnnxTextEncoder

    return OnnxTextEncoder(
        text.model,
        text.batch_size,
        quantized=text.runtime == "onnx-int8",
        threads=text.threads,
        cache_dir=Path(text.onnx_cache).expanduser() if text.onnx_cache else None,
    )
