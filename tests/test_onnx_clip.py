"""CLIP on ONNX Runtime, with random weights: torch's vectors (fp32) or near them (int8), open_clip's
token ids and pixels, the identities a store tells apart, an export cache that is reused, refreshed
when stale and never taken half-written, and a cached run that imports no torch. No semantic claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import ClipConfig
from engine.encoders import onnx_clip_export
from engine.encoders.clip_tokenizer import ClipTokenizer, build
from engine.encoders.onnx_clip import OnnxClipEncoder, preprocess
from engine.errors import ModelUnavailableError
from tests.conftest import RANDOM_CLIP, SHARED_DATA

# What a cached export must not import: the model libraries, and open_clip's text cleaner.
MODEL_LIBRARIES = ("torch", "torchvision", "open_clip", "transformers", "sentence_transformers", "ftfy")


@pytest.fixture(scope="session")
def clip_cache(tmp_path_factory) -> Path:
    # The folder conftest points ENGINE_CLIP_ONNX_CACHE at: exported once per test session.
    return tmp_path_factory.getbasetemp() / "onnx-cache"


@pytest.fixture(scope="session")
def onnx_clip(clip_cache) -> OnnxClipEncoder:
    """The fp32 export of random-weight ViT-B-32 (about 30 s, once)."""
    encoder = OnnxClipEncoder(replace(RANDOM_CLIP, runtime="onnx", onnx_cache=str(clip_cache)))
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def onnx_clip_int8(clip_cache, onnx_clip) -> OnnxClipEncoder:
    """The int8 towers, quantized from the cached fp32 ones (about 25 s, once)."""
    encoder = OnnxClipEncoder(replace(RANDOM_CLIP, runtime="onnx-int8", onnx_cache=str(clip_cache)))
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def sentences(examples_dir) -> list[str]:
    """Real sentences: the shared real pages' (where present) and the example pages'."""
    from engine.sentences import split_sentences
    from indexer.extract import extract

    pages = sorted((examples_dir / "pages").glob("*.html")) + sorted((SHARED_DATA / "real-pages").glob("*.html"))
    found = []
    for page in pages:
        found += [s for s, _, _ in split_sentences(extract(page.read_bytes(), "", page.name).text)]
    return found


@pytest.fixture(scope="session")
def pictures(examples_dir) -> list[Image.Image]:
    """Images of several sizes and modes: the examples' photos and logo, and variants made from them."""
    files = sorted({p.read_bytes(): p for p in (examples_dir / "pages").glob("*_files/*.*")}.values())
    photos = [Image.open(p) for p in files]
    photo = photos[0].convert("RGB")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    return photos + [
        rgba,
        photo.convert("L"),
        photo.convert("P", palette=Image.Palette.ADAPTIVE),
        photo.convert("1"),
        photo.convert("CMYK"),
        photo.crop((0, 0, photo.width, 40)),  # wide
        photo.crop((0, 0, 30, photo.height)),  # tall
        photo.resize((5, 3)),  # tiny: resized up
        photo.resize((224, 224)),  # already the model's size: not resampled
    ]


# -- vectors -------------------------------------------------------------------------------


@pytest.mark.slow
def test_fp32_text_vectors_are_torchs(onnx_clip, clip_encoder, sentences):
    texts = sentences[::30] + ["", "a", " ".join(sentences[:30])]  # an empty one, one word, one over CLIP's window
    expected = clip_encoder.encode_texts(texts)
    found = onnx_clip.encode_texts(texts)
    assert found.dtype == np.float32 and found.shape == expected.shape == (len(texts), 512)
    assert np.abs(found - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(found, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_fp32_image_vectors_are_torchs(onnx_clip, clip_encoder, pictures):
    expected = clip_encoder.encode_images(pictures)
    found = onnx_clip.encode_images(pictures)
    assert found.dtype == np.float32 and found.shape == expected.shape == (len(pictures), 512)
    assert np.abs(found - expected).max() < 1e-4


@pytest.mark.slow
def test_passages_and_long_texts_are_windowed_as_torch_does(onnx_clip, clip_encoder, sentences):
    long_text = " ".join(sentences[:40])
    assert onnx_clip._windows([long_text]) == [clip_encoder._windows(long_text)]
    assert len(clip_encoder._windows(long_text)) > 1
    passages = [sentences[:3], [long_text], []]
    assert np.abs(onnx_clip.encode_passages(passages) - clip_encoder.encode_passages(passages)).max() < 1e-4


@pytest.mark.slow
def test_a_text_alone_and_in_a_batch_get_the_same_vector(onnx_clip, sentences):
    # Each batch is padded to its own longest text: the padding must not reach the shorter ones.
    texts = sentences[:40]
    alone = np.concatenate([onnx_clip.encode_texts([t]) for t in texts[:6]])
    assert np.abs(onnx_clip.encode_texts(texts)[:6] - alone).max() < 1e-5


@pytest.mark.slow
def test_int8_vectors_are_near_fp32(onnx_clip_int8, onnx_clip, sentences, pictures):
    # Quantization error only (random weights carry no meaning). Measured: text min 0.993, mean 0.998;
    # images min 0.982, mean 0.988 here (0.978 / 0.986 on 30 Wikipedia images).
    texts = sentences[::30]
    text_cosines = np.sum(onnx_clip_int8.encode_texts(texts) * onnx_clip.encode_texts(texts), axis=1)
    image_cosines = np.sum(onnx_clip_int8.encode_images(pictures) * onnx_clip.encode_images(pictures), axis=1)
    assert text_cosines.min() > 0.985 and text_cosines.mean() > 0.99
    assert image_cosines.min() > 0.96 and image_cosines.mean() > 0.975


@pytest.mark.slow
def test_identities_say_which_space(onnx_clip, onnx_clip_int8, clip_encoder):
    assert onnx_clip.identity == clip_encoder.identity == "ViT-B-32/random-seed0"  # one space with torch
    assert onnx_clip_int8.identity == "ViT-B-32/random-seed0+onnx-int8"  # a store refuses to mix these
    assert onnx_clip.dim == onnx_clip_int8.dim == 512


@pytest.mark.slow
def test_nothing_to_encode_is_an_empty_array(onnx_clip):
    assert onnx_clip.encode_texts([]).shape == onnx_clip.encode_images([]).shape == (0, 512)
    assert onnx_clip.encode_passages([[], []]).shape == (2, 512)


@pytest.mark.slow
def test_threads_and_device_are_honoured(onnx_clip, clip_cache):
    config = replace(onnx_clip.config, threads=2, device="cpu")
    session = OnnxClipEncoder(config)._text_session
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 2
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ModelUnavailableError, match=r"clip\.device = cuda:1"):
            OnnxClipEncoder(replace(config, device="cuda:1")).encode_texts(["a"])


def test_missing_weights_say_which_setting_to_change(tmp_path):
    config = ClipConfig(runtime="onnx", checkpoint=str(tmp_path / "nope.pt"), onnx_cache=str(tmp_path))
    encoder = OnnxClipEncoder(config)
    with pytest.raises(ModelUnavailableError, match="clip.checkpoint .* does not exist"):
        encoder.load()


# -- open_clip's tokens and pixels, without torch ------------------------------------------------

# Punctuation, numbers, HTML, ftfy's fixes (curly quotes, ligatures, widths, controls), scripts, emoji.
HARD_TEXTS = [
    "Hello, World!!! ... (yes) [no] {maybe} — “quoted” ‘single’ don't WON'T it’s",
    "3.14159 1,000,000 2024-01-01 10:30pm $5 €12,50 #1 @user 50% x^2 a+b=c",
    "Café naïve façade résumé coöperate ÆSIR Øresund Straße ŁÓDŹ İstanbul ΟΔΟΣ Σίσυφος",
    "日本語のテキスト 中文 한국어 русский текст العربية עברית हिन्दी",
    "emoji 😀👍🏽 👩‍👩‍👧 flags 🇫🇷 ✔ ♥",
    "&amp; &lt;b&gt; &eacute; &EACUTE; &#233; &#x41; &#65 &notanentity; AT&T",
    "<b>markup</b> &amp; a line with markup\n&amp; the next line",
    "ﬁne ﬂour Ĳssel ǅemal ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ ｶﾀｶﾅ",
    "tabs\tand\nnew\r\nlines\u2028and\u2029separators\x85next  \u00a0 nbsp",
    "controls\x00\x07\x1b[1mbold\x1b[0m\x7f \ufeffbom \x91curly\x92 \x93double\x94",
    "combining e\u0301 and n\u0303 compose; 'ſ 'S 'LL 'Re",
    "<start_of_text> and <end_of_text> as words",
    "antidisestablishmentarianism " * 30,
    "x" * 400,
    "",
    "   ",
]
# What ClipTokenizer does not reproduce (clip_tokenizer's docstring): ftfy's mojibake repair, a
# special-token string right after another "<", a character of Unicode 15+ (CJK Extension J).
KNOWN_DIFFERENCES = ["cafÃ© with mojibake", "a<<end_of_text>", "x\U000323b0y"]


@pytest.fixture(scope="session")
def clip_tokenizer(tmp_path_factory, clip_encoder) -> ClipTokenizer:
    path = tmp_path_factory.mktemp("clip-tokenizer") / "tokenizer.json"
    return ClipTokenizer(path, build(clip_encoder._loaded[2], path), 77)


def _open_clip_ids(tokenizer, texts: list[str]) -> list[list[int]]:  # noqa: ANN001
    rows = tokenizer(texts).tolist()
    return [row[: max(i for i, t in enumerate(row) if t) + 1] for row in rows]  # the padding cut off


def test_token_ids_are_open_clips(clip_tokenizer, clip_encoder, sentences):
    tokenizer = clip_encoder._loaded[2]
    texts = sentences + HARD_TEXTS
    assert clip_tokenizer.ids(texts) == _open_clip_ids(tokenizer, texts)
    assert clip_tokenizer.count(texts) == [len(tokenizer.encode(t)) for t in texts]
    assert max(len(ids) for ids in clip_tokenizer.ids(texts)) == 77  # cut, end marker kept


def test_the_known_token_differences_are_the_documented_ones(clip_tokenizer, clip_encoder):
    import ftfy

    mojibake, special, _ = KNOWN_DIFFERENCES
    tokenizer = clip_encoder._loaded[2]
    ours, theirs = clip_tokenizer.ids(KNOWN_DIFFERENCES), _open_clip_ids(tokenizer, KNOWN_DIFFERENCES)
    assert all(a != b for a, b in zip(ours, theirs))
    assert ftfy.fix_text(mojibake) != ftfy.fix_text(mojibake, fix_encoding=False)  # ftfy's repair, nothing else
    assert clip_tokenizer.ids([ftfy.fix_text(mojibake)]) == _open_clip_ids(tokenizer, [mojibake])
    assert clip_tokenizer.ids([special])[0][-2:] == [49407, 49407]  # taken as the marker here, as text there


def test_pixels_are_open_clips(clip_encoder, pictures):
    transform = clip_encoder._loaded[1]
    spec = onnx_clip_export._image_preprocessing(transform)
    assert spec["size"] == 224 and spec["interpolation"] == "bicubic"
    for picture in pictures:
        expected = transform(picture).numpy()
        found = preprocess(picture, spec)
        assert found.dtype == np.float32 and found.shape == expected.shape == (3, 224, 224)
        assert np.abs(found - expected).max() <= 1e-5, (picture.mode, picture.size)


# -- the export cache ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_cached_export_is_opened_without_exporting(onnx_clip, monkeypatch, sentences):
    def refuse(*args) -> None:  # noqa: ANN002
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_clip_export, "_export", refuse)
    again = OnnxClipEncoder(onnx_clip.config)
    assert np.array_equal(again.encode_texts(sentences[:3]), onnx_clip.encode_texts(sentences[:3]))


@pytest.fixture
def exports(monkeypatch) -> list[Path]:
    """Fake exports (the cache logic without 30 s of torch): the folders written, in order."""
    done: list[Path] = []

    def export(config: ClipConfig, home: Path, key: str) -> dict:
        for name in ("text.onnx", "image.onnx", "tokenizer.json"):
            (home / f"{key}.{name}").write_bytes(b"x")
        done.append(home / key)
        weights = Path(config.checkpoint or home.parent / "pretrained.bin")
        return {"identity": "fake", "weights": onnx_clip_export._weights_stat(weights)}

    monkeypatch.setattr(onnx_clip_export, "_export", export)
    monkeypatch.setattr(onnx_clip_export, "_quantize", lambda fp32, out, setting: out.write_bytes(b"int8"))
    return done


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"weights")
    return path


def _names(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir())


def test_an_export_is_made_once_and_reused(exports, tmp_path, checkpoint):
    config = ClipConfig(checkpoint=str(checkpoint))
    first = onnx_clip_export.exported_clip(config, tmp_path / "cache")
    stamp = first.tower("text").stat().st_mtime_ns
    again = onnx_clip_export.exported_clip(config, tmp_path / "cache")
    assert again == first and len(exports) == 1 and first.tower("text").stat().st_mtime_ns == stamp
    assert first.tower("image", quantized=True).read_bytes() == b"int8" and len(exports) == 1  # from the cached fp32
    suffixes = ["image.int8.onnx", "image.onnx", "json", "text.onnx", "tokenizer.json"]  # text int8: not asked for
    assert _names(first.home) == [f"{first.key}.{s}" for s in suffixes]
    assert first.home.name.startswith("clip-ViT-B-32-weights.pt-")


@pytest.mark.parametrize("change", ["checkpoint", "exporter"])
def test_a_stale_export_is_replaced_and_its_files_removed(exports, tmp_path, checkpoint, monkeypatch, change):
    config = ClipConfig(checkpoint=str(checkpoint))
    old = onnx_clip_export.exported_clip(config, tmp_path / "cache")
    old.tower("text", quantized=True)
    if change == "checkpoint":
        checkpoint.write_bytes(b"retrained weights")
    else:
        monkeypatch.setattr(onnx_clip_export, "EXPORTER_VERSION", onnx_clip_export.EXPORTER_VERSION + 1)
    new = onnx_clip_export.exported_clip(config, tmp_path / "cache")
    assert len(exports) == 2 and new.key != old.key and new.home == old.home
    assert all(name.startswith(f"{new.key}.") for name in _names(new.home))  # the old key's files are gone
    assert len(_names(new.home)) == 4


def test_changed_pretrained_weights_are_exported_again(exports, tmp_path):
    # Pretrained weights are found by open_clip, which the cached path does not import: the
    # sidecar names the file they were read from, and a change there means export again.
    weights = tmp_path / "cache" / "pretrained.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"v1")
    old = onnx_clip_export.exported_clip(ClipConfig(), tmp_path / "cache")
    int8 = old.tower("text", quantized=True)
    assert onnx_clip_export.exported_clip(ClipConfig(), tmp_path / "cache") == old and len(exports) == 1
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))
    new = onnx_clip_export.exported_clip(ClipConfig(), tmp_path / "cache")
    assert len(exports) == 2 and new.key == old.key and new.manifest != old.manifest  # same key, made again
    assert not int8.exists()  # the int8 files of the old weights are gone


def test_a_half_written_export_is_made_again(exports, tmp_path, checkpoint):
    config = ClipConfig(checkpoint=str(checkpoint))
    first = onnx_clip_export.exported_clip(config, tmp_path / "cache")
    sidecar = first.home / f"{first.key}.json"
    sidecar.unlink()  # the towers are there, but nothing says they are whole
    onnx_clip_export.exported_clip(config, tmp_path / "cache")
    assert len(exports) == 2 and sidecar.exists()


def test_an_interrupted_export_leaves_nothing_that_is_used(monkeypatch, tmp_path, checkpoint):
    def interrupted(config: ClipConfig, home: Path, key: str) -> dict:
        (home / f"{key}.text.onnx").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_clip_export, "_export", interrupted)
    config = ClipConfig(checkpoint=str(checkpoint))
    with pytest.raises(KeyboardInterrupt):
        onnx_clip_export.exported_clip(config, tmp_path / "cache")
    home = next((tmp_path / "cache").iterdir())
    assert not list(home.glob("*.json"))  # no sidecar: the next run exports again


@pytest.mark.slow
def test_a_checkpoint_export_has_the_torch_identity(tmp_path, clip_encoder):
    import torch

    path = tmp_path / "random.pt"
    torch.save(clip_encoder._loaded[0].state_dict(), path)
    config = replace(RANDOM_CLIP, checkpoint=str(path), random_weights=False, runtime="onnx",
                     onnx_cache=str(tmp_path))
    encoder = OnnxClipEncoder(config)
    from engine.encoders.clip import ClipEncoder

    assert encoder.identity == ClipEncoder(config).identity  # model/checkpoint:<digest of the file>
    assert encoder._manifest["weights"]["path"] == str(path.resolve())
    assert np.abs(encoder.encode_texts(["a cat"]) - clip_encoder.encode_texts(["a cat"])).max() < 1e-4


# -- run time ------------------------------------------------------------------------------

ENCODE_IN_A_FRESH_PROCESS = """
import json, sys
from PIL import Image
from engine.config import ClipConfig
from engine.encoders.onnx_clip import OnnxClipEncoder

encoder = OnnxClipEncoder(ClipConfig(**json.loads(sys.argv[1])))
text = encoder.encode_texts(["a photo of a cat"])
image = encoder.encode_images([Image.new("RGB", (300, 200), "red")])
loaded = [name for name in {libraries!r} if name in sys.modules]
print(json.dumps({{"loaded": loaded, "text": text.tolist(), "image": image.tolist(), "identity": encoder.identity}}))
""".format(libraries=MODEL_LIBRARIES)


@pytest.mark.slow
def test_a_cached_export_runs_without_torch(onnx_clip):
    c = onnx_clip.config
    settings = {"model": c.model, "pretrained": c.pretrained, "random_weights": True, "runtime": "onnx",
                "onnx_cache": c.onnx_cache}
    run = subprocess.run([sys.executable, "-c", ENCODE_IN_A_FRESH_PROCESS, json.dumps(settings)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["loaded"] == []  # none of MODEL_LIBRARIES
    assert found["identity"] == onnx_clip.identity
    assert np.abs(np.array(found["text"]) - onnx_clip.encode_texts(["a photo of a cat"])).max() < 1e-6
    red = onnx_clip.encode_images([Image.new("RGB", (300, 200), "red")])
    assert np.abs(np.array(found["image"]) - red).max() < 1e-6


# -- the store's guard and the runtime setting ---------------------------------------------------


def test_a_store_of_fp32_clip_vectors_refuses_int8_and_names_clip_runtime(tmp_path):
    from engine.errors import ModelMismatchError
    from engine.store.schema import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE
    from engine.store.store import Store

    spaces = (CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE)
    store = Store(tmp_path / "store")
    try:
        store.bind_model(spaces, "ViT-B-32/random-seed0", 512)
        with store.transaction() as conn:
            store.put_vectors(conn, CLIP_IMAGE_SPACE, [1], np.ones((1, 512), np.float32))
        store.bind_model(spaces, "ViT-B-32/random-seed0", 512)  # torch or fp32 ONNX: one space
        with pytest.raises(ModelMismatchError, match=r"onnx-int8.*engine reindex --images.*set clip\.runtime back"):
            store.bind_model(spaces, "ViT-B-32/random-seed0+onnx-int8", 512)
    finally:
        store.close()


def test_auto_runs_clip_on_onnx_and_falls_back_to_torch_when_the_export_is_refused(monkeypatch):
    from engine.encoders import factory
    from engine.encoders.clip import ClipEncoder

    assert ClipConfig().runtime == "auto"
    auto = factory.build_clip_encoder(replace(RANDOM_CLIP, runtime="auto"))
    assert isinstance(auto, OnnxClipEncoder) and auto.config.runtime == "onnx"
    assert isinstance(factory.build_clip_encoder(replace(RANDOM_CLIP, runtime="torch")), ClipEncoder)

    def refuse(self):  # noqa: ANN001, ANN202
        raise ModelUnavailableError("this model cannot be exported; set clip.runtime = torch")

    monkeypatch.setattr(OnnxClipEncoder, "load", refuse)
    monkeypatch.setattr(ClipEncoder, "load", lambda self: None)
    assert isinstance(factory.load_clip_encoder(replace(RANDOM_CLIP, runtime="auto")), ClipEncoder)
    with pytest.raises(ModelUnavailableError, match="clip.runtime = torch"):
        factory.load_clip_encoder(replace(RANDOM_CLIP, runtime="onnx"))  # asked for by name: no fallback
