"""`engine eval` end to end on examples/eval.

CLIP has random weights here, so image–text figures can only be near chance: the
tests assert that (a real check that nothing leaks the answer), plus shapes, the JSON
schema, plots, determinism and the cache. The text model is the real MiniLM, so the
text→text figures must show real skill.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections import Counter

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.evaluate import Evaluator, load_dataset
from engine.evaluate.results import EVAL_SCHEMA_VERSION
from tests.conftest import RANDOM_CLIP, make_config

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL_COMMANDS = ["pairs", "retrieval", "matrix", "index"]


class Counting:
    """An encoder that counts what it is asked to embed (everything else passes through)."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = Counter()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_images(self, images):
        self.calls["images"] += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts):
        self.calls["clip_texts"] += len(texts)
        return self.inner.encode_texts(texts)

    def encode(self, texts):
        self.calls["texts"] += len(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One persisted embedding cache for the session: each CLIP embedding is paid once."""
    return tmp_path_factory.mktemp("eval-cache")


def open_kb(root, text_encoder, clip_encoder, clip=True):
    from engine.kb import KnowledgeBase

    config = make_config(root, RANDOM_CLIP if clip else None)
    return KnowledgeBase(config, text_encoder=text_encoder, clip_encoder=clip_encoder if clip else None)


@pytest.fixture(scope="session")
def pairs_run(tmp_path_factory, examples_dir, text_encoder, clip_encoder, cache_dir):
    """The pairs evaluation of the example captions, K=20, seed 0, computed once."""
    clip = Counting(clip_encoder)
    with open_kb(tmp_path_factory.mktemp("kb"), text_encoder, clip) as kb:
        result = Evaluator(kb, cache_dir=cache_dir).pairs(load_dataset(examples_dir / "eval" / "captions.csv"))
    return result, clip.calls


# -- without models -------------------------------------------------------------------


def test_importing_the_cli_loads_no_heavy_library():
    code = (
        "import sys, cli.app, cli.eval_cmd; "
        "heavy = [m for m in ('torch', 'open_clip', 'sentence_transformers', 'faiss', 'matplotlib', 'sklearn') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", EVAL_COMMANDS)
def test_every_eval_command_has_help_with_an_example(command):
    result = runner.invoke(app, ["eval", command, "--help"])
    assert result.exit_code == 0
    assert "Example: engine eval" in result.output


def test_usage_errors_exit_2_and_bad_data_exits_1(tmp_path, examples_dir):
    store = ["--store", str(tmp_path / "kb")]
    no_dataset = runner.invoke(app, [*store, "eval", "pairs"], env={"ENGINE_CLIP_ENABLED": "false"})
    assert no_dataset.exit_code == 2 and "ConfigError" in no_dataset.output
    missing = runner.invoke(app, [*store, "eval", "pairs", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text("image,caption\nnowhere.jpg,a caption\n")
    broken = runner.invoke(app, [*store, "eval", "pairs", str(bad)])
    assert broken.exit_code == 1 and "bad.csv:2: image 'nowhere.jpg' not found" in broken.output
    no_clip = runner.invoke(
        app,
        [*store, "eval", "pairs", str(examples_dir / "eval" / "captions.csv")],
        env={"ENGINE_CLIP_ENABLED": "false"},
    )
    assert no_clip.exit_code == 1
    assert "ModelUnavailableError" in no_clip.output and "--direction text-text" in no_clip.output


# -- pair classification (random CLIP) ----------------------------------------------------


@pytest.mark.slow
def test_pairs_figures_are_at_chance_with_random_weights(pairs_run):
    result, _ = pairs_run
    assert result.counts == {
        "positives": 30,
        "negatives": 600,
        "pairs": 630,
        "images": 6,
        "captions": 30,
        "negatives_missing": 0,
    }
    # No skill: each positive's rank among its 20 negatives is ~uniform, so ROC-AUC is about the
    # mean of 30 uniform draws: standard deviation 0.29 / sqrt(30) = 0.053. ±0.2 is ~3.8 of them.
    assert abs(result.roc_auc - 0.5) < 0.2
    low, high = result.roc_auc_ci95
    assert low < result.roc_auc < high
    prevalence = 30 / 630
    assert result.pr_auc < prevalence + 0.1  # chance AP is the prevalence, 0.048
    baseline = result.baselines["always_no_match"]["accuracy"]
    assert baseline == pytest.approx(20 / 21)  # 95.2 %: accuracy alone says nothing
    assert result.best_accuracy["accuracy"] >= baseline
    assert result.best_f1["f1"] < 0.3
    # min-alignment is off by default: every pair kept, the "always match" operating point.
    assert result.at_min_alignment["threshold"] is None
    assert result.at_min_alignment["accuracy"] == pytest.approx(prevalence)


@pytest.mark.slow
def test_pairs_json_names_its_settings_and_the_random_weights(pairs_run):
    result, _ = pairs_run
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON: no NaN or Infinity
    assert data["schema_version"] == EVAL_SCHEMA_VERSION and data["task"] == "pairs"
    assert data["settings"]["negatives"] == 20 and data["settings"]["seed"] == 0
    assert data["models"]["clip"] == {"identity": "ViT-B-32/random-seed0", "random_weights": True}
    assert any("RANDOM" in w for w in data["warnings"])
    figures = data["figures"]
    assert {"roc_auc", "roc_auc_ci95", "pr_auc", "best_f1", "best_accuracy", "at_min_alignment", "baselines"} <= set(
        figures
    )
    assert {"threshold", "f1", "accuracy", "precision", "recall", "rule"} <= set(figures["best_f1"])
    assert data["throughput"]["pairs_scored"] == 630


@pytest.mark.slow
def test_nothing_is_embedded_twice(pairs_run, tmp_path, examples_dir, text_encoder, clip_encoder, cache_dir):
    _, first_calls = pairs_run
    assert first_calls["images"] <= 6 and first_calls["clip_texts"] <= 30  # each distinct item at most once
    clip = Counting(clip_encoder)
    with open_kb(tmp_path, text_encoder, clip) as kb:
        evaluator = Evaluator(kb, cache_dir=cache_dir)  # a new process would see the same files
        again = evaluator.pairs(load_dataset(examples_dir / "eval" / "captions.csv"))
    assert sum(clip.calls.values()) == 0
    assert again.throughput["image_embeddings"] == {
        "computed": 0,
        "from_cache": 6,
        "encoder_seconds": 0.0,
        "per_second": None,
    }
    assert again.roc_auc == pairs_run[0].roc_auc


@pytest.mark.slow
def test_the_seed_fixes_the_negatives(pairs_run, tmp_path, examples_dir, text_encoder, clip_encoder, cache_dir):
    dataset = load_dataset(examples_dir / "eval" / "captions.csv")
    with open_kb(tmp_path, text_encoder, clip_encoder) as kb:
        evaluator = Evaluator(kb, cache_dir=cache_dir)
        same = evaluator.pairs(dataset, seed=0)
        other = evaluator.pairs(dataset, seed=1, negatives=5, min_alignment="0.0")
    first = pairs_run[0]
    assert same.pair_rows == first.pair_rows and (same.scores == first.scores).all()
    assert same.to_dict()["figures"] == first.to_dict()["figures"]
    assert other.counts["negatives"] == 150 and other.pair_rows != first.pair_rows[:180]
    assert other.baselines["always_no_match"]["accuracy"] == pytest.approx(5 / 6)
    assert other.at_min_alignment["threshold"] == 0.0 and other.settings["min_alignment_origin"] == "flag"


# -- retrieval ---------------------------------------------------------------------------


@pytest.mark.slow
def test_caption_and_title_retrieval_with_the_text_model_show_real_skill(tmp_path, examples_dir, text_encoder):
    with open_kb(tmp_path, text_encoder, None, clip=False) as kb:  # no CLIP at all: text→text still works
        evaluator = Evaluator(kb)
        captions = evaluator.retrieval(load_dataset(examples_dir / "eval" / "captions.csv"), directions=("text-text",))
        articles = evaluator.retrieval(
            load_dataset(examples_dir / "eval" / "articles.jsonl"), directions=("text-text",)
        )
    [caption] = captions.rankings
    assert (caption.queries, caption.candidates) == (30, 29)
    # Chance: 4 right answers among 29 others, MRR 0.33 and R@1 0.14. MiniLM finds a caption of the same image first.
    assert caption.chance_mrr == pytest.approx(0.327, abs=0.001)
    assert caption.mrr > 0.8 and caption.recall[1] > 0.7
    assert caption.mrr_ci95[0] > caption.chance_mrr + 0.3
    assert [r.name for r in articles.rankings] == [
        "title→text (lead)",
        "title→text (sentence max)",
        "title→text (whole text, chunked)",
    ]
    for ranking in articles.rankings:
        assert ranking.mrr > 0.8 > ranking.chance_mrr + 0.3  # chance with 6 articles: 0.41
    assert "clip" not in captions.models and captions.models["text"]["identity"] == "all-MiniLM-L6-v2"


@pytest.mark.slow
def test_image_retrieval_with_random_weights_is_near_chance(
    tmp_path, examples_dir, text_encoder, clip_encoder, cache_dir
):
    with open_kb(tmp_path, text_encoder, clip_encoder) as kb:
        evaluator = Evaluator(kb, cache_dir=cache_dir)
        pairs = evaluator.retrieval(
            load_dataset(examples_dir / "eval" / "captions.csv"), directions=("text-image", "image-text")
        )
        articles = evaluator.retrieval(
            load_dataset(examples_dir / "eval" / "articles.jsonl"),
            directions=("text-image",),
            strategies=("title", "sentence_max"),
        )
    to_image, to_caption = pairs.rankings
    assert (to_image.queries, to_image.candidates, to_caption.queries, to_caption.candidates) == (30, 6, 6, 30)
    # 30 caption queries over 6 images: chance MRR 0.41; reciprocal ranks spread ~0.3, so ±0.25 is > 4 SE.
    assert abs(to_image.mrr - to_image.chance_mrr) < 0.25
    assert to_image.recall[10] == 1.0 and to_image.match_in_100 == 30  # K ≥ 6 candidates: trivially all
    assert [r.strategy for r in articles.rankings] == ["title", "sentence_max"]
    assert all(r.queries == 6 and 0 < r.mrr <= 1 for r in articles.rankings)


# -- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def indexed_store(tmp_path_factory, examples_dir, text_encoder):
    """The example pages indexed text-only (quick), once; tests get a copy."""
    root = tmp_path_factory.mktemp("indexed")
    with open_kb(root, text_encoder, None, clip=False) as kb:
        kb.index(["coffee"], [examples_dir / "pages"])
    return root / "store"


@pytest.fixture
def store_copy(tmp_path, indexed_store):
    import shutil

    shutil.copytree(indexed_store, tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def cli_encoders(monkeypatch, text_encoder, clip_encoder):
    """`engine …` inside this process uses the session's loaded encoders."""
    import engine.kb

    monkeypatch.setattr(
        engine.kb,
        "KnowledgeBase",
        functools.partial(engine.kb.KnowledgeBase, text_encoder=text_encoder, clip_encoder=clip_encoder),
    )


@pytest.mark.slow
def test_cli_writes_json_and_plots(tmp_path, examples_dir, cli_encoders, cache_dir, pairs_run):
    data = examples_dir / "eval"
    base = ["--store", str(tmp_path / "kb"), "eval"]
    cache = ["--cache", str(cache_dir)]
    runs = {
        "pairs": ["pairs", str(data / "captions.csv"), "--min-alignment", "0.02"],
        "retrieval": ["retrieval", str(data / "captions.csv")],
        "matrix": ["matrix", str(data / "captions.csv")],
    }
    pictures = {"pairs": ["roc.png", "scores.png"], "retrieval": ["recall_at_k.png"], "matrix": ["matrix.png"]}
    for task, args in runs.items():
        out = tmp_path / task
        result = runner.invoke(app, [*base, *args, *cache, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "WARNING" in result.output and "RANDOM" in result.output
        assert "throughput:" in result.output
        saved = json.loads((out / "result.json").read_text())
        assert saved["task"] == task and saved["schema_version"] == EVAL_SCHEMA_VERSION
        for name in pictures[task]:
            assert (out / name).read_bytes()[:8] == PNG_MAGIC
    pairs = json.loads((tmp_path / "pairs" / "result.json").read_text())
    assert pairs["settings"]["min_alignment"] == 0.02
    assert pairs["figures"]["roc_auc"] == pytest.approx(pairs_run[0].roc_auc)
    assert len((tmp_path / "pairs" / "scores.csv").read_text().splitlines()) == 631
    matrix = json.loads((tmp_path / "matrix" / "result.json").read_text())["figures"]
    assert len(matrix["matrix"]) == 6 and len(matrix["matrix"][0]) == 30 and len(matrix["per_row"][0]["top"]) == 3
    assert 0 <= matrix["top1_accuracy"] <= 1 and matrix["chance_top1"] == pytest.approx(5 / 30)

    as_json = runner.invoke(app, [*base, *runs["pairs"], *cache, "--out", str(tmp_path / "j"), "--json", "--no-plots"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["figures"]["roc_auc"] == pytest.approx(pairs["figures"]["roc_auc"])
    assert not (tmp_path / "j" / "roc.png").exists()


@pytest.mark.slow
def test_cli_evaluates_the_store_itself(tmp_path, store_copy, cli_encoders, cache_dir):
    """The store's images against their alt text and captions; its text index against exact search."""
    store = ["--store", str(store_copy)]
    result = runner.invoke(
        app,
        [
            *store,
            "eval",
            "pairs",
            "--from-store",
            "--negatives",
            "5",
            "--cache",
            str(cache_dir),
            "--out",
            str(tmp_path / "p"),
            "--no-plots",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "p" / "result.json").read_text())
    assert saved["dataset"]["kind"] == "pairs" and saved["dataset"]["name"].startswith("store ")
    assert saved["figures"]["counts"]["images"] == 6  # the six article photos; the logo has no alt text
    assert saved["figures"]["counts"]["negatives"] > 0

    index = runner.invoke(
        app, [*store, "eval", "index", "--space", "text", "--sample", "50", "--out", str(tmp_path / "i")]
    )
    assert index.exit_code == 0, index.output
    figures = json.loads((tmp_path / "i" / "result.json").read_text())["figures"]
    assert figures["recall"]["10-recall@10"] == 1.0  # the store's index is exact: 1.0 is the right figure
    assert figures["queries"] == min(50, figures["vectors"])
    assert figures["index_type"] == "IndexIDMap2(IndexFlatIP)" and figures["latency_ms"]["index"]["p50"] > 0


@pytest.mark.slow
def test_store_pairs_reuse_the_stored_clip_vectors(tmp_path, store_copy, text_encoder, clip_encoder):
    import numpy as np
    from sqlalchemy import select

    from engine.store.schema import CLIP_IMAGE_SPACE, images

    clip = Counting(clip_encoder)
    with open_kb(tmp_path, text_encoder, clip) as kb:
        store = kb.store
        with store.reading() as conn:
            ids = [row[0] for row in conn.execute(select(images.c.id))]
        # Stand-ins for what `engine index` stores with CLIP on: vectors of this CLIP identity.
        vectors = np.random.default_rng(0).normal(size=(len(ids), clip.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.bind_model((CLIP_IMAGE_SPACE,), clip.identity, clip.dim)
        with store.transaction() as conn:
            store.put_vectors(conn, CLIP_IMAGE_SPACE, ids, vectors)
        store.apply_committed()
        evaluator = Evaluator(kb)  # in memory: the stand-ins must not reach the session's cache
        result = evaluator.pairs(evaluator.store_pairs(), negatives=5)
    assert clip.calls["images"] == 0
    assert result.throughput["image_embeddings"]["from_cache"] == result.counts["images"] == 6
