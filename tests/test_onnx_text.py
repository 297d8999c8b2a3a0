"""The ONNX Runtime text encoder: torch's vectors and token counts, its own name for int8, a cache that is
reused, refreshed when stale and never half-written, and a cold ask without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.config import Config, TextModelConfig
from engine.encoders import onnx_export
from engine.encoders.factory import build_text_encoder, text_runtime
from engine.encoders.onnx_text import INT8_SUFFIX, OnnxTextEncoder, _pool, execution_providers, read_layout
from engine.encoders.text import TextEncoder, torch_device
from engine.errors import ConfigError, ModelMismatchError, ModelUnavailableError
from engine.store.schema import TEXT_SPACE
from engine.store.store import Store

MODEL = "all-MiniLM-L6-v2"
MODEL_LIBRARIES = ("torch", "transformers", "sentence_transformers", "open_clip")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def onnx_fp32(onnx_cache) -> OnnxTextEncoder:
    """The fp32 model, exported once for the session (about 20 s)."""
    encoder = OnnxTextEncoder(MODEL, cache_dir=onnx_cache)
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def onnx_int8(onnx_cache, onnx_fp32) -> OnnxTextEncoder:
    encoder = OnnxTextEncoder(MODEL, quantized=True, cache_dir=onnx_cache)
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def sentences(examples_dir) -> list[str]:
    """Real sentences of the example pages, and a few ~180-token chunks and one past the model's limit."""
    from engine.sentences import split_sentences
    from indexer.extract import extract

    found = []
    for page in sorted((examples_dir / "pages").glob("*.html")):
        found += [s for s, _, _ in split_sentences(extract(page.read_bytes(), "", page.name).text)]
    chunks = [" ".join(found[i : i + 8]) for i in range(0, 48, 8)]
    return found[::3] + chunks + [" ".join(found[:40])]


# -- vectors -------------------------------------------------------------------------------


@pytest.mark.slow
def test_fp32_vectors_are_torchs(onnx_fp32, text_encoder, sentences):
    expected = text_encoder.encode(sentences)
    found = onnx_fp32.encode(sentences)
    assert found.dtype == np.float32 and found.shape == expected.shape == (len(sentences), onnx_fp32.dim)
    assert np.abs(found - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    assert onnx_fp32.name == text_encoder.name  # one space: a torch store takes ONNX queries


@pytest.mark.slow
def test_int8_vectors_are_close_to_fp32(onnx_int8, onnx_fp32, sentences):
    cosines = np.sum(onnx_int8.encode(sentences) * onnx_fp32.encode(sentences), axis=1)
    assert cosines.min() >= 0.98 and cosines.mean() >= 0.99


@pytest.mark.slow
def test_a_text_alone_and_in_a_batch_get_the_same_vector(onnx_fp32, sentences):
    # Padding to the batch's longest text must not leak into the shorter ones.
    alone = np.stack([onnx_fp32.encode([s])[0] for s in sentences[:5]])
    assert np.abs(onnx_fp32.encode(sentences[:5]) - alone).max() < 1e-5


def test_nothing_to_encode_is_an_empty_array(tmp_path):
    encoder = OnnxTextEncoder(MODEL, cache_dir=tmp_path)
    assert encoder.encode([]).shape == (0, 384) and encoder.count_tokens([]) == []
    assert not any(tmp_path.iterdir())  # nothing was exported for that


def test_token_counts_and_limit_are_torchs(tmp_path, text_encoder, sentences):
    encoder = OnnxTextEncoder(MODEL, cache_dir=tmp_path)  # counting needs the tokenizer only
    assert encoder.count_tokens(sentences) == text_encoder.count_tokens(sentences)
    assert encoder.max_tokens == text_encoder.max_tokens
    assert encoder.dim == 384


def test_pooling_follows_sentence_transformers_modes():
    tokens = np.array([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]], np.float32)  # last token is padding
    mask = np.array([[1, 1, 0]])
    assert _pool(tokens, mask, ("mean",)).tolist() == [[2.0, 4.0]]
    assert _pool(tokens, mask, ("cls", "max")).tolist() == [[1.0, 2.0, 3.0, 6.0]]
    assert np.allclose(_pool(tokens, mask, ("mean_sqrt_len_tokens",)), [[4 / np.sqrt(2), 8 / np.sqrt(2)]])


def test_a_model_with_a_module_onnx_cannot_run_is_refused(tmp_path):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelUnavailableError, match="Dense.*text.runtime = torch"):
        read_layout(tmp_path)


# -- the store's model guard ---------------------------------------------------------------


def test_a_store_of_fp32_vectors_refuses_int8_queries(tmp_path):
    fp32, int8 = OnnxTextEncoder(MODEL, cache_dir=tmp_path), OnnxTextEncoder(MODEL, quantized=True, cache_dir=tmp_path)
    store = Store(tmp_path / "store")
    try:
        store.bind_model((TEXT_SPACE,), fp32.name, fp32.dim)
        with store.transaction() as conn:
            store.put_vectors(conn, TEXT_SPACE, [1], np.ones((1, fp32.dim), np.float32))
        store.bind_model((TEXT_SPACE,), TextEncoder(MODEL).name, fp32.dim)  # torch and fp32 ONNX: one space
        with pytest.raises(ModelMismatchError, match=r"onnx-int8.*engine reindex --text.*set text.runtime back"):
            store.bind_model((TEXT_SPACE,), int8.name, int8.dim)
    finally:
        store.close()


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["tensorrt", "ONNX", ""])
def test_a_bad_runtime_is_a_config_error_naming_the_setting(value):
    with pytest.raises(ConfigError, match=r"text\.runtime"):
        Config.load(env={"ENGINE_TEXT_RUNTIME": value})


def test_the_factory_builds_the_configured_runtime(tmp_path):
    assert isinstance(build_text_encoder(TextModelConfig(runtime="torch")), TextEncoder)
    encoder = build_text_encoder(TextModelConfig(runtime="onnx-int8", threads=2, onnx_cache=str(tmp_path), batch_size=8))
    assert isinstance(encoder, OnnxTextEncoder)
    assert (encoder.quantized, encoder.threads, encoder.cache_dir, encoder.batch_size) == (True, 2, tmp_path, 8)
    config = Config.load(env={"ENGINE_TEXT_RUNTIME": "onnx", "ENGINE_TEXT_THREADS": "3"})
    assert (config.text.runtime, config.text.threads) == ("onnx", 3)


def test_auto_runs_the_runtime_of_the_stored_vectors_and_onnx_for_a_new_store():
    auto = TextModelConfig()
    assert auto.runtime == "auto"
    assert text_runtime(auto, None) == "onnx"  # a new store
    assert text_runtime(auto, MODEL) == "onnx"  # built with torch or onnx: one space
    assert text_runtime(auto, MODEL + INT8_SUFFIX) == "onnx-int8"  # stays in its int8 space
    assert text_runtime(TextModelConfig(runtime="torch"), MODEL + INT8_SUFFIX) == "torch"  # a setting wins
    assert isinstance(build_text_encoder(auto, MODEL + INT8_SUFFIX), OnnxTextEncoder)


def test_auto_falls_back_to_torch_for_a_model_onnx_cannot_run(tmp_path):
    folder = tmp_path / "with-dense"
    folder.mkdir()
    (folder / "modules.json").write_text(
        '[{"path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]'
    )
    assert text_runtime(TextModelConfig(model=str(folder)), None) == "torch"
    assert text_runtime(TextModelConfig(model=str(tmp_path / "no-such-model")), None) == "torch"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU"])
def test_a_bad_device_is_a_config_error_naming_the_setting(device):
    with pytest.raises(ConfigError, match=r"text\.device"):
        Config.load(env={"ENGINE_TEXT_DEVICE": device})
    with pytest.raises(ConfigError, match=r"clip\.device"):
        Config.load(env={"ENGINE_CLIP_DEVICE": device})


def test_onnx_runs_on_cuda_only_when_there_is_one_or_it_is_asked_for():
    cpu_only = ["CPUExecutionProvider"]
    with_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(cpu_only, "auto", "text.device") == ["CPUExecutionProvider"]
    assert execution_providers(with_cuda, "cpu", "text.device") == ["CPUExecutionProvider"]
    assert execution_providers(with_cuda, "auto", "text.device")[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert execution_providers(with_cuda, "cuda:1", "text.device")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    with pytest.raises(ModelUnavailableError, match=r"text\.device = cuda.*onnxruntime-gpu"):
        execution_providers(cpu_only, "cuda", "text.device")


def test_torch_runs_on_the_cpu_when_it_sees_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert torch_device("auto", 0, "text.device") == "cpu"
    with pytest.raises(ModelUnavailableError, match=r"clip\.device = cuda"):
        torch_device("cuda", 0, "clip.device")


# -- the export cache ----------------------------------------------------------------------


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A model folder whose export is faked: the cache logic without 20 s of torch."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def exports(monkeypatch) -> list[Path]:
    """Every (faked) export's output path, in order."""
    done: list[Path] = []

    def export(transformer: Path, out: Path) -> None:
        out.write_bytes(b"onnx")
        done.append(out)

    monkeypatch.setattr(onnx_export, "_export", export)
    monkeypatch.setattr(onnx_export, "_quantize", lambda fp32, out: out.write_bytes(b"int8"))
    return done


def test_an_export_is_made_once_and_reused(fake_model, exports, tmp_path):
    cache = tmp_path / "cache"
    first = onnx_export.exported_model(fake_model, fake_model, cache, quantized=False)
    stamp = first.stat().st_mtime_ns
    assert onnx_export.exported_model(fake_model, fake_model, cache, quantized=False) == first
    assert len(exports) == 1 and first.stat().st_mtime_ns == stamp and first.read_bytes() == b"onnx"
    int8 = onnx_export.exported_model(fake_model, fake_model, cache, quantized=True)
    assert int8.read_bytes() == b"int8" and len(exports) == 1  # quantized from the cached fp32 file
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, int8.name])


@pytest.mark.parametrize("change", ["weights", "exporter"])
def test_a_stale_export_is_replaced(fake_model, exports, tmp_path, monkeypatch, change):
    cache = tmp_path / "cache"
    old = onnx_export.exported_model(fake_model, fake_model, cache, quantized=True)
    if change == "weights":
        (fake_model / "model.safetensors").write_bytes(b"retrained weights")
    else:
        monkeypatch.setattr(onnx_export, "EXPORTER_VERSION", onnx_export.EXPORTER_VERSION + 1)
    new = onnx_export.exported_model(fake_model, fake_model, cache, quantized=True)
    assert new != old and len(exports) == 2
    assert not old.exists() and len(list(new.parent.iterdir())) == 2  # the old key's files are gone


def test_an_interrupted_export_leaves_no_file_that_is_used(fake_model, monkeypatch, tmp_path):
    cache = tmp_path / "cache"

    def interrupted(transformer: Path, out: Path) -> None:
        out.write_bytes(b"half an onn")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "_export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.exported_model(fake_model, fake_model, cache, quantized=False)
    home = next(cache.iterdir())
    assert list(home.iterdir()) == []
    # A process killed mid-export leaves its temp file: never taken for the model, removed once old.
    key = onnx_export.model_key(fake_model)
    leftover = home / f"{key}.onnx.abc123.tmp"
    leftover.write_bytes(b"half an onn")
    old = time.time() - onnx_export.TMP_GRACE_SECONDS - 1
    os.utime(leftover, (old, old))
    monkeypatch.setattr(onnx_export, "_export", lambda transformer, out: out.write_bytes(b"onnx"))
    path = onnx_export.exported_model(fake_model, fake_model, cache, quantized=False)
    assert path.read_bytes() == b"onnx" and not leftover.exists()


@pytest.mark.slow
def test_the_cached_model_is_opened_without_exporting(onnx_fp32, onnx_cache, monkeypatch, sentences):
    def refuse(*args) -> None:  # noqa: ANN002
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "_export", refuse)
    again = OnnxTextEncoder(MODEL, cache_dir=onnx_cache)
    assert np.array_equal(again.encode(sentences[:3]), onnx_fp32.encode(sentences[:3]))


# -- cold start ----------------------------------------------------------------------------

# The CLI as `engine` runs it, with the model libraries made unimportable.
WITHOUT_MODEL_LIBRARIES = (
    "import sys\n"
    f"for name in {MODEL_LIBRARIES!r}:\n"
    "    sys.modules[name] = None\n"
    "from cli.app import main\n"
    "sys.argv = ['engine', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.slow
def test_a_cold_onnx_ask_imports_no_model_library(tmp_path, examples_dir, onnx_fp32, onnx_cache):
    from engine.config import ClipConfig, StoreConfig
    from engine.kb import KnowledgeBase

    config = Config(store=StoreConfig(path=tmp_path / "kb"), clip=ClipConfig(enabled=False))
    with KnowledgeBase(config, text_encoder=onnx_fp32) as kb:
        kb.index(["coffee"], [examples_dir / "pages" / "coffee-roasting.html"])
    env = {**os.environ, "ENGINE_CLIP_ENABLED": "false", "ENGINE_TEXT_RUNTIME": "onnx",
           "ENGINE_TEXT_ONNX_CACHE": str(onnx_cache)}
    asked = subprocess.run(
        [sys.executable, "-c", WITHOUT_MODEL_LIBRARIES, "--store", str(tmp_path / "kb"), "ask",
         "how is coffee roasted", "--format", "json"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["summary"] and answer["sources"][0]["url"].endswith("how-coffee-is-roasted.html")
