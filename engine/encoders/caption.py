"""Image captioning: a transformers image-to-text model (BLIP, GIT, VisionEncoderDecoder) from a local folder.

Captions are stored with each image (``images.caption``); they describe what an image
shows when its page says little, and so help align images with questions and text.
Only local weights are read: point ``caption.model`` at a checkpoint folder such as a
saved copy of Salesforce/blip-image-captioning-base.
"""

from __future__ import annotations

import os
from functools import cached_property

from engine.errors import ModelUnavailableError


class Captioner:
    """Greedy captions for PIL images, a batch at a time.

    Args:
        path: a local folder holding the model, its image processor and tokenizer.
        batch_size: images per forward pass.
        max_new_tokens: the longest caption, in tokens.
    """

    def __init__(self, path: str, batch_size: int = 8, max_new_tokens: int = 30):
        self.path = os.path.expanduser(path)
        self.name = path
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    @cached_property
    def _loaded(self):  # noqa: ANN202 - (model, image processor, tokenizer), transformers types
        from engine.encoders.text import quiet_transformers

        quiet_transformers()
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        if not os.path.isdir(self.path):
            raise ModelUnavailableError(f"caption.model {self.name!r} is not a folder (a local image-to-text checkpoint)")
        try:
            # Processor parts are loaded one by one: a VisionEncoderDecoder folder has
            # no processor file of its own, only an image processor and a tokenizer.
            image_processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(self.path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            raise ModelUnavailableError(f"caption model {self.name!r} could not be loaded: {exc}") from exc
        model.eval()
        return model, image_processor, tokenizer

    def load(self) -> None:
        """Load now (raises ModelUnavailableError); otherwise loading waits for first use."""
        self._loaded  # noqa: B018

    def caption(self, images: list) -> list[str]:  # noqa: ANN001 - PIL images
        """One caption per image, in order; greedy decoding, so the same image gets the same caption."""
        import torch

        model, image_processor, tokenizer = self._loaded
        out: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
                pixels = image_processor(images=batch, return_tensors="pt")["pixel_values"]
                tokens = model.generate(pixel_values=pixels, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
                out.extend(" ".join(text.split()) for text in tokenizer.batch_decode(tokens, skip_special_tokens=True))
        return out
