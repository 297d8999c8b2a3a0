"""CLIP text encoding without the padding: the same vectors as ``model.encode_text`` at a fraction of the cost.

open_clip pads every text to 77 tokens, and a sentence has 10–40, so most of the text tower's
work is spent on padding. In the original CLIP text tower that work is wasted exactly: attention is
causal (position i sees only positions ≤ i) and the vector is read at the end-of-text token, so
nothing after the longest text in a batch can change any output. Cutting the batch there gives the
same numbers (tests/test_clip.py checks it against ``encode_text``); models built otherwise
(SigLIP, bidirectional text towers, other pooling) go through ``encode_text`` unchanged.
"""

from __future__ import annotations

import numpy as np


def can_trim(model) -> bool:  # noqa: ANN001 - open_clip.CLIP
    """Whether ``model`` is a causal, end-of-text-pooled CLIP text tower (ViT-B-32 and kin)."""
    import torch

    mask = getattr(model, "attn_mask", None)
    if getattr(model, "text_pool_type", None) != "argmax" or mask is None or not hasattr(model, "token_embedding"):
        return False
    future = torch.ones_like(mask, dtype=torch.bool).triu(1)
    return bool((mask[future] == float("-inf")).all() and (mask[~future] == 0).all())  # strictly causal


def encode_tokens(model, tokens) -> np.ndarray:  # noqa: ANN001 - open_clip.CLIP, LongTensor (n, 77)
    """Text vectors (not normalised) of a batch of token rows, computed on the used positions only.

    Rows are grouped by length so that short texts are not padded to a long neighbour.
    """
    import torch

    tokens = tokens.to(next(model.parameters()).device)
    with torch.inference_mode():
        if not can_trim(model):
            return model.encode_text(tokens).float().cpu().numpy()
        lengths = tokens.argmax(dim=-1) + 1  # the end-of-text token has the highest id
        order = torch.argsort(lengths)
        out = torch.empty((tokens.shape[0], model.text_projection.shape[1]), dtype=torch.float32)
        for group in torch.split(order.cpu(), 16):
            used = int(lengths[group].max())
            out[group] = _encode_prefix(model, tokens[group, :used]).float().cpu()
        return out.numpy()


def _encode_prefix(model, tokens):  # noqa: ANN001, ANN202 - torch tensors
    """``model.encode_text`` on tokens cut after the longest text (the same code, shorter tensors)."""
    from open_clip.transformer import text_global_pool
    from torch import nn

    used = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:used].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:used, :used])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type)
    projection = model.text_projection
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection
