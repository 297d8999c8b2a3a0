"""Captioning: the real transformers code path with tiny random models built from configs
(no captioning weights ship offline), so only behaviour is asserted, never meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from engine.config import CaptionConfig, ClipConfig, Config, StoreConfig
from engine.encoders.caption import Captioner
from engine.errors import ConfigError, ModelUnavailableError
from engine.store.schema import images

WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] [DEC] a an the photo of cup coffee bee flower coin red blue on".split()
# Wide random weights, so that different images get different captions and batching bugs show.
WIDE_INIT = 2.0


def tiny_blip(folder: Path) -> str:
    """A BLIP captioner (the seed's model family) with random weights, saved like a real checkpoint."""
    import torch
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.save_pretrained(folder)
    layers = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "initializer_range": WIDE_INIT}
    config = BlipConfig(
        text_config={
            "vocab_size": len(WORDS), "hidden_size": 16, "encoder_hidden_size": 16, "max_position_embeddings": 64,
            "bos_token_id": WORDS.index("[DEC]"), "pad_token_id": 0, "sep_token_id": 3, "eos_token_id": 3, **layers,
        },
        vision_config={"hidden_size": 16, "image_size": 32, "patch_size": 8, **layers},
        projection_dim=16,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def tiny_vision_encoder_decoder(folder: Path) -> str:
    """A ViT encoder + GPT-2 decoder captioner (the nlpconnect/vit-gpt2 layout) with random weights."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS[6:]])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(folder)
    encoder = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, initializer_range=WIDE_INIT,
    )
    decoder = GPT2Config(
        vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=64,
        bos_token_id=2, eos_token_id=3, pad_token_id=0, initializer_range=WIDE_INIT,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 2, 0, 3
    torch.manual_seed(0)
    VisionEncoderDecoderModel(config=config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def blip_path(tmp_path_factory) -> str:
    return tiny_blip(tmp_path_factory.mktemp("blip"))


def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = [Image.fromarray((rng.random((50 + 10 * n, 60, 3)) * 255).astype("uint8")) for n in range(3)]
    return [Image.new("RGB", (40, 30), "red"), Image.new("L", (64, 64), 200), *noise]


@pytest.mark.parametrize("builder", [tiny_blip, tiny_vision_encoder_decoder])
def test_captions_one_string_per_image_same_in_a_batch_as_alone(builder, tmp_path):
    captioner = Captioner(builder(tmp_path), batch_size=2, max_new_tokens=8)
    images = pictures()
    captions = captioner.caption(images)
    assert len(captions) == len(images) and all(isinstance(c, str) for c in captions)
    assert len(set(captions)) > 1  # random weights still tell these images apart
    assert all(len(c.split()) <= 8 for c in captions)  # word-level vocabularies: a word is a token
    assert captions == captioner.caption(images)  # greedy: deterministic
    assert captions == [captioner.caption([im])[0] for im in images]  # batching changes nothing
    assert captioner.caption([]) == []


def test_missing_or_unusable_model_folder_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="is not a folder"):
        Captioner(str(tmp_path / "nowhere")).load()
    with pytest.raises(ModelUnavailableError, match="could not be loaded"):
        Captioner(str(tmp_path)).load()


# -- ingestion and `engine reindex --captions` --------------------------------------------------


def captioned_kb(root: Path, text_encoder, model: str = ""):  # noqa: ANN001
    from engine.kb import KnowledgeBase

    config = Config(store=StoreConfig(path=root / "store"), clip=ClipConfig(enabled=False), caption=CaptionConfig(model=model))
    return KnowledgeBase(config, text_encoder=text_encoder)


def stored_captions(kb) -> dict[int, str | None]:  # noqa: ANN001
    with kb.store.reading() as conn:
        return dict(conn.execute(select(images.c.id, images.c.caption)).all())


def test_indexing_stores_a_caption_with_each_new_image(tmp_path, text_encoder, examples_dir, blip_path):
    with captioned_kb(tmp_path, text_encoder, blip_path) as kb:
        report = kb.index(["coffee"], [examples_dir / "pages"])
        captions = stored_captions(kb)
        assert report.images["added"] == len(captions) == 6
        assert all(isinstance(c, str) for c in captions.values())
        # The same model on the same stored files gives the same captions.
        with kb.store.transaction() as conn:
            conn.execute(update(images).values(caption=None))
        done = kb.reindex(captions=True)
        assert done["captions"] == 6 and done["unreadable_images"] == 0
        refilled = stored_captions(kb)
        # Ingestion captions the decoded thumbnail, reindex the stored file: same picture, so same words.
        assert refilled == captions


def test_reindex_captions_fills_only_missing_ones_and_needs_a_model(tmp_path, text_encoder, examples_dir, blip_path):
    with captioned_kb(tmp_path, text_encoder) as kb:
        kb.index(["coffee"], [examples_dir / "pages"])
        assert set(stored_captions(kb).values()) == {None}  # captioning off
        with pytest.raises(ConfigError, match="caption.model"):
            kb.reindex(captions=True)
    with captioned_kb(tmp_path, text_encoder, blip_path) as kb:
        first = kb.reindex(captions=True)
        assert first["captions"] == 6 and None not in stored_captions(kb).values()
        assert kb.reindex(captions=True)["captions"] == 0
