"""Evaluation inputs and parts that need no model: dataset files, the embedding cache,
the index-quality measurement (on vectors written straight into a store)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from engine.evaluate import ArticleDataset, PairDataset, load_dataset
from engine.evaluate.cache import EmbeddingCache, text_key
from engine.evaluate.embed import TextSide
from engine.evaluate.strategies import article_views, windows


def test_the_example_datasets_load(examples_dir):
    pairs = load_dataset(examples_dir / "eval" / "captions.csv")
    assert isinstance(pairs, PairDataset)
    assert len(pairs.pairs) == 30 and len(pairs.images()) == 6 and len(pairs.captions()) == 30
    assert all(p.image.is_file() for p in pairs.pairs)
    assert pairs.pairs[0].where == "captions.csv:2"
    articles = load_dataset(examples_dir / "eval" / "articles.jsonl")
    assert isinstance(articles, ArticleDataset)
    assert [a.id for a in articles.articles][:2] == ["shuttle-pilot", "night-launch"]
    assert len(articles.images()) == 6


def test_bad_rows_are_named_by_file_line_and_reason(tmp_path, examples_dir):
    (tmp_path / "a.jpg").write_bytes((examples_dir / "eval" / "images" / "coffee.jpg").read_bytes())
    bad = tmp_path / "pairs.csv"
    bad.write_text('image,caption\na.jpg,fine\nmissing.jpg,no such image\na.jpg,\n"a.jpg","multi\nline"\n,x\n')
    with pytest.raises(InputError) as caught:
        load_dataset(bad)
    message = str(caught.value)
    assert "3 bad record(s)" in message
    assert "pairs.csv:3: image 'missing.jpg' not found" in message
    assert "pairs.csv:4: missing caption" in message
    assert "pairs.csv:7: missing image" in message  # line numbers count the quoted two-line row

    jsonl = tmp_path / "articles.jsonl"
    good = {"id": "1", "title": "T", "text": "S.", "image": "a.jpg"}
    jsonl.write_text(json.dumps(good) + "\n{oops\n" + json.dumps(good) + "\n[1]\n")
    with pytest.raises(InputError) as caught:
        load_dataset(jsonl)
    message = str(caught.value)
    assert "articles.jsonl:2: not JSON" in message and "articles.jsonl:4: not a JSON object" in message
    jsonl.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    with pytest.raises(InputError, match=r"articles.jsonl:3: id '1' repeats line 1"):
        load_dataset(jsonl)


def test_unusable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "data.txt").write_text("image,caption\n")
    with pytest.raises(ConfigError, match="expected .csv or .jsonl"):
        load_dataset(tmp_path / "data.txt")
    (tmp_path / "other.csv").write_text("name,value\na,b\n")
    with pytest.raises(ConfigError, match="neither pairs"):
        load_dataset(tmp_path / "other.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="no records"):
        load_dataset(tmp_path / "empty.csv")


def test_cache_persists_per_model_and_survives_damage(tmp_path):
    calls = []

    def encode(texts):
        calls.extend(texts)
        return np.stack([np.full(4, len(t), np.float32) for t in texts])

    first = TextSide("model-a", encode, EmbeddingCache(tmp_path))
    vectors = first.vectors(["one", "two", "one"])  # a repeat inside one call is embedded once
    assert calls == ["one", "two"] and vectors.shape == (3, 4) and (vectors[0] == vectors[2]).all()
    assert first.stats.computed == 2 and first.stats.from_cache == 0
    first.cache.save()

    again = TextSide("model-a", encode, EmbeddingCache(tmp_path))
    assert (again.vectors(["two", "one"]) == vectors[[1, 0]]).all()
    assert calls == ["one", "two"] and again.stats.computed == 0 and again.stats.from_cache == 2

    other = TextSide("model-b", encode, EmbeddingCache(tmp_path))  # another model never sees them
    other.vectors(["one"])
    assert calls == ["one", "two", "one"]

    for file in tmp_path.glob("model-a-*.npz"):
        file.write_bytes(b"not an npz")
    damaged = TextSide("model-a", encode, EmbeddingCache(tmp_path))
    damaged.vectors(["one"])
    assert calls[-1] == "one"
    damaged.cache.save()
    assert EmbeddingCache(tmp_path).lookup("model-a", [text_key("one")])


def test_article_views(examples_dir):
    article = load_dataset(examples_dir / "eval" / "articles.jsonl").articles[0]
    assert article_views(article, "title").texts == ["The first woman to pilot the Space Shuttle"]
    lead = article_views(article, "title_lead", lead_sentences=1).texts[0]
    assert lead.startswith("The first woman to pilot the Space Shuttle. In February 1995")
    assert lead.endswith("mission STS-63.")
    sentences = article_views(article, "sentence_max")
    assert sentences.pooling == "max" and len(sentences.texts) == 5
    chunks = article_views(article, "chunked", chunk_words=30)
    assert chunks.pooling == "mean" and " ".join(chunks.texts) == " ".join(sentences.texts)
    assert windows(["a b c", "d e", "f g h i j k"], 5) == ["a b c d e", "f g h i j k"]
    with pytest.raises(ValueError, match="unknown strategy"):
        article_views(article, "everything")


# -- index quality ---------------------------------------------------------------------


def _store_with_vectors(root, n=300, dim=16):
    from engine.store.schema import TEXT_SPACE
    from engine.store.store import Store

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[1] = vectors[0]  # exact duplicates: ties that must not count as misses
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = Store(root)
    store.bind_model((TEXT_SPACE,), "test-model", dim)
    with store.transaction() as conn:
        store.put_vectors(conn, TEXT_SPACE, list(range(1, n + 1)), vectors)
    store.apply_committed()
    return store, vectors


def _header():
    return {
        "task": "index",
        "dataset": {"name": "test", "kind": "store", "space": "text"},
        "settings": {},
        "models": {},
    }


def test_exact_index_has_full_recall_even_with_ties(tmp_path):
    from engine.evaluate.index_quality import evaluate_index

    store, _ = _store_with_vectors(tmp_path / "store")
    with store:
        result = evaluate_index(store, "text", _header(), sample=300, k=10)
    assert result.vectors == 300 and result.queries == 300
    assert result.index_type == "IndexIDMap2(IndexFlatIP)"
    assert result.recall == {"1-recall@1": 1.0, "1-recall@10": 1.0, "10-recall@10": 1.0}
    for side in ("index", "exact"):
        assert 0 < result.latency_ms[side]["p50"] <= result.latency_ms[side]["p95"]


def test_an_approximate_index_is_measured_against_brute_force(tmp_path):
    import faiss

    from engine.evaluate.index_quality import evaluate_index
    from engine.store.schema import TEXT_SPACE
    from engine.store.vectors import VectorIndex

    store, vectors = _store_with_vectors(tmp_path / "store")
    with store:
        exact = store.index(TEXT_SPACE, 16)
        quantizer = faiss.IndexFlatIP(16)
        ivf = faiss.IndexIVFFlat(quantizer, 16, 30, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors)
        ivf.nprobe = 1
        approximate = VectorIndex(exact.path, 16, exact.version, faiss.IndexIDMap2(ivf))
        approximate.add(np.arange(1, 301), vectors)
        store._indexes[TEXT_SPACE] = approximate  # what an ANN-backed store would hold
        result = evaluate_index(store, "text", _header(), sample=300, k=10)
        approximate.dirty = False  # a test double: never written over the real file

    assert result.index_type == "IndexIDMap2(IndexIVFFlat)"
    # Brute force by hand: of each vector's exact top 10 others (itself left out, as the
    # evaluation does), how many are in the IVF's top 10 others.
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    truth = np.argsort(-scores, axis=1)[:, :10] + 1
    _, found = approximate.search(vectors, 11)
    found = [[i for i in row if i != n + 1][:10] for n, row in enumerate(found)]
    by_hand = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert result.recall["10-recall@10"] == pytest.approx(by_hand, abs=0.01)  # ties (row 0/1) may differ slightly
    assert result.recall["10-recall@10"] < 0.95  # one probe of 30 lists misses neighbours


def test_index_of_an_empty_space_says_what_to_do(tmp_path):
    from engine.evaluate.index_quality import evaluate_index
    from engine.store.store import Store

    with Store(tmp_path / "store") as store, pytest.raises(InputError, match="run `engine index` first"):
        evaluate_index(store, "clip_image", _header())


def _fake_sides(cache=None):
    """Encoders without a model: a fixed random unit vector per item (no skill, no torch)."""
    from engine.evaluate.embed import ImageSide

    def unit(seed_text):
        import hashlib

        rng = np.random.default_rng(int(hashlib.sha256(seed_text.encode()).hexdigest()[:8], 16))
        v = rng.normal(size=8).astype(np.float32)
        return v / np.linalg.norm(v)

    cache = cache or EmbeddingCache()
    images = ImageSide(
        "fake#image", lambda pictures: np.stack([unit(str(p.size) + str(p.getpixel((0, 0)))) for p in pictures]), cache
    )
    texts = TextSide("fake#text", lambda items: np.stack([unit(t) for t in items]), cache)
    return images, texts


def _pairs_header(task):
    return {
        "task": task,
        "dataset": {"name": "tiny", "kind": "pairs"},
        "settings": {"negatives": 20, "seed": 0},
        "models": {},
    }


def test_a_single_image_gives_undefined_figures_not_a_crash(tmp_path, examples_dir):
    from engine.evaluate.pairs import evaluate_pairs
    from engine.evaluate.report import tables, write_outputs

    (tmp_path / "a.jpg").write_bytes((examples_dir / "eval" / "images" / "coffee.jpg").read_bytes())
    (tmp_path / "pairs.csv").write_text("image,caption\na.jpg,one\na.jpg,two\n")
    images, texts = _fake_sides()
    result = evaluate_pairs(load_dataset(tmp_path / "pairs.csv"), images, texts, _pairs_header("pairs"))
    assert result.counts["negatives"] == 0 and result.counts["negatives_missing"] == 40
    assert any("negatives missing" in note for note in result.notes)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["figures"]["roc_auc"] is None and data["figures"]["roc_auc_ci95"] == [None, None]
    written = write_outputs(result, tmp_path / "out")
    assert {p.name for p in written} == {"result.json", "scores.csv", "roc.png", "scores.png"}
    assert tables(result)


def test_identical_files_under_two_names_are_one_image(tmp_path, examples_dir):
    from engine.evaluate.pairs import evaluate_pairs

    photo = (examples_dir / "eval" / "images" / "coffee.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(photo)
    (tmp_path / "b.jpg").write_bytes(photo)
    (tmp_path / "c.jpg").write_bytes((examples_dir / "eval" / "images" / "coins.jpg").read_bytes())
    (tmp_path / "pairs.csv").write_text("image,caption\na.jpg,espresso\nb.jpg,a coffee cup\nc.jpg,coins\n")
    images, texts = _fake_sides()
    result = evaluate_pairs(load_dataset(tmp_path / "pairs.csv"), images, texts, _pairs_header("pairs"), negatives=2)
    # "a coffee cup" is not a negative for a.jpg: it describes the same picture.
    assert result.counts["images"] == 2 and result.counts["negatives"] == 4
    negatives_of_coffee = {caption for image, caption, _ in result.pair_rows if image.endswith(("a.jpg", "b.jpg"))}
    assert negatives_of_coffee == {"espresso", "a coffee cup", "coins"}
    assert [label for (_, caption, _), label in zip(result.pair_rows, result.labels) if caption == "coins"] == [
        False,
        False,
        True,
    ]
    assert images.stats.computed == 2
