"""The query layer: hybrid retrieval, filters, the relevance cutoff, styles and image selection."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import delete, text, update

from engine.config import AskConfig, ClipConfig, Config, StoreConfig
from engine.errors import ConfigError
from engine.ask.request import Filters
from engine.ask.retrieval import RRF_K, fuse, query_words
from engine.store.schema import documents, images
from tests.conftest import RANDOM_CLIP
from tests.test_bad_input import article, figure

TOPICS = ["space exploration", "coffee", "domestic cats", "ancient coins"]


def make_kb(root: Path, text_encoder, clip=None, **ask):
    from engine.kb import KnowledgeBase

    config = Config(
        store=StoreConfig(path=root),
        clip=RANDOM_CLIP if clip is not None else ClipConfig(enabled=False),
        ask=AskConfig(**ask),
    )
    return KnowledgeBase(config, text_encoder=text_encoder, clip_encoder=clip)


@pytest.fixture(scope="module")
def examples_store(tmp_path_factory, text_encoder, examples_dir) -> Path:
    """The example corpus plus one page with a rare part number only BM25 can pin down."""
    pages = tmp_path_factory.mktemp("pages")
    shutil.copytree(examples_dir / "pages", pages / "examples")
    (pages / "gasket.html").write_bytes(
        b"<!DOCTYPE html><html lang='en'><head><title>Spare parts notice</title></head><body><article>"
        b"<h1>Spare parts notice</h1><p>The replacement gasket for the grinder is sold as part QX-4471. "
        b"Order it from the service desk with the serial number of the machine ready.</p>"
        b"<p>The service desk answers within two working days and ships the gasket by post.</p>"
        b"</article></body></html>"
    )
    root = tmp_path_factory.mktemp("store")
    with make_kb(root, text_encoder) as kb:
        kb.index(TOPICS, [pages])
    return root


@pytest.fixture
def kb(examples_store, text_encoder, tmp_path):
    """A private copy of the examples store (tests may change settings or contents)."""
    root = tmp_path / "store"
    shutil.copytree(examples_store, root)
    with make_kb(root, text_encoder) as base:
        yield base


# -- units ----------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_adds_weighted_reciprocal_ranks():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    bm25 = [(3, 12.0), (4, 9.0)]
    hits = {h.chunk_id: h for h in fuse(dense, bm25, dense_weight=1.0, bm25_weight=2.0)}
    assert hits[1].rrf == pytest.approx(1 / (RRF_K + 1))
    assert hits[3].rrf == pytest.approx(1 / (RRF_K + 3) + 2 / (RRF_K + 1))
    assert hits[4].rrf == pytest.approx(2 / (RRF_K + 2)) and hits[4].dense is None
    assert [h.chunk_id for h in fuse(dense, bm25, 1.0, 2.0)][0] == 3  # in both lists, BM25 weighted up


def test_keyword_search_treats_operators_and_quotes_as_plain_words(tmp_path):
    from engine.store import fulltext
    from engine.store.store import Store

    words = query_words('coffee "roast" AND NEAR(x) -bean*')
    assert words == ["coffee", "roast", "and", "near", "x", "bean"]
    assert query_words("?! ...") == []
    with Store(tmp_path) as store, store.reading() as conn:
        assert fulltext.best_passages(conn, words, 5) == []  # FTS5 parses the quoted words: no syntax error


# -- retrieval --------------------------------------------------------------------------------------


def test_bm25_finds_the_exact_code_dense_search_alone_ranks_lower(kb):
    result = kb.ask("QX-4471", max_images=0, min_score="off")
    assert result.sources[0].title == "Spare parts notice"
    first = result.summary[0]
    assert "QX-4471" in first.text and first.retrieval["bm25_rank"] == 0


def test_hybrid_answers_cite_sources_and_explain_retrieval(kb):
    result = kb.ask("how is coffee roasted?", max_images=0)
    assert result.summary and all(s.citations for s in result.summary)
    assert {s.number for s in result.sources} == {c for s in result.summary for c in s.citations}
    assert all("coffee" in (s.url + (s.title or "")).lower() or "espresso" in s.url for s in result.sources)
    parts = result.summary[0].retrieval
    assert {"dense", "dense_rank", "bm25", "bm25_rank", "rrf"} <= set(parts)
    assert {"encode_query", "dense", "bm25", "fuse", "summarize"} <= set(result.timings_ms)


def test_fts_index_follows_inserts_updates_and_cascading_deletes(kb):
    def fts_count(word: str) -> int:
        with kb.store.reading() as conn:
            return conn.execute(text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :w"), {"w": word}).scalar()

    assert fts_count("gasket") >= 1
    with kb.store.transaction() as conn:
        conn.execute(text("UPDATE chunks SET text = 'nothing here' WHERE text LIKE '%gasket%'"))
    assert fts_count("gasket") == 0
    assert fts_count("roaster") >= 1
    with kb.store.transaction() as conn:
        conn.execute(delete(documents).where(documents.c.title.like("%roasted%")))
    with kb.store.reading() as conn:
        left = conn.execute(text("SELECT count(*) FROM chunks WHERE text LIKE '%roaster%'")).scalar()
    assert fts_count("roaster") == left
    with kb.store.reading() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM chunks_fts f WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = f.rowid)")
        ).scalar()
    assert orphans == 0


def test_filters_restrict_evidence(kb):
    cats = kb.ask("what does the animal do", filters=Filters(topic="domestic cats"), max_images=0, min_score="off")
    assert cats.sources and all("cat" in s.url for s in cats.sources)
    coins = kb.ask("history", filters=Filters(source="coin"), max_images=0, min_score="off")
    assert coins.sources and all("coin" in s.url for s in coins.sources)
    nothing = kb.ask("coffee", filters=Filters(language="fr"), max_images=0, min_score="off")
    assert nothing.summary == [] and nothing.nothing_relevant
    with kb.store.transaction() as conn:
        conn.execute(update(documents).values(published="2020-01-01"))
        conn.execute(update(documents).where(documents.c.title.like("%Hubble%")).values(published="2024-06-30T10:00:00"))
    recent = kb.ask("telescope", filters=Filters(since="2024-06-30", until="2024-06-30"), max_images=0, min_score="off")
    assert recent.sources and all("hubble" in s.url for s in recent.sources)


# -- the relevance cutoff -------------------------------------------------------------------------------


def test_off_topic_question_gets_nothing_relevant_instead_of_the_nearest_junk(kb):
    result = kb.ask("best chocolate cake recipe")
    assert result.nothing_relevant and result.summary == [] and result.images == [] and result.sources == []
    assert result.relevance["origin"] == "calibrated"
    assert any(n.startswith("nothing relevant found: ") for n in result.notices)

    on_topic = kb.ask("how is coffee roasted?", max_images=0)
    assert not on_topic.nothing_relevant and on_topic.summary
    assert on_topic.relevance["best_score"] >= on_topic.relevance["threshold"]

    forced = kb.ask("best chocolate cake recipe", min_score="off", max_images=0)
    assert forced.summary and forced.relevance["origin"] == "off"


def test_a_fixed_relevance_floor_overrides_the_calibrated_one(kb):
    explicit = kb.ask("coffee roasting", min_score=0.99, max_images=0)
    assert explicit.nothing_relevant
    assert explicit.relevance["threshold"] == 0.99 and explicit.relevance["origin"] == "request"
    assert "below the relevance cutoff 0.99 (request" in explicit.notices[0]


def test_bad_thresholds_are_config_errors_naming_the_setting(kb):
    with pytest.raises(ConfigError, match=r"min_score \(from the request\) must be a number, auto or off, not 'high'"):
        kb.ask("coffee", min_score="high")
    with pytest.raises(ConfigError, match=r"style \(from the request\) must be one of bullets, .*not 'poem'"):
        kb.ask("coffee", style="poem")


# -- styles ---------------------------------------------------------------------------------------------


def test_styles_set_the_summary_length(kb):
    brief = kb.ask("cats", style="brief", max_images=0, min_score="off")
    detailed = kb.ask("cats", style="detailed", max_images=0, min_score="off")
    assert len(brief.summary) <= 2 < len(detailed.summary)
    assert detailed.settings["k"] == 2 * kb.config.ask.k
    assert len(kb.ask("cats", max_sentences=1, max_images=0, min_score="off").summary) == 1


def test_paragraph_style_renders_one_paragraph(kb):
    from cli.render import ask_markdown

    result = kb.ask("how is coffee roasted?", style="paragraph", max_images=0)
    body = ask_markdown(result).split("\n\n")[1]
    assert "\n" not in body and body.count("[") >= len(result.summary) and not body.startswith("- ")


# -- images ---------------------------------------------------------------------------------------------


def _jpeg(picture: Image.Image, size: int, quality: int) -> bytes:
    out = io.BytesIO()
    picture.resize((size, size * 2 // 3)).save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_near_duplicate_images_are_stored_once(tmp_path, text_encoder):
    photo = Image.effect_mandelbrot((600, 400), (-2.0, -1.2, 1.0, 1.2), 80).convert("RGB")
    pages = tmp_path / "pages"
    pages.mkdir()
    for n, (size, quality) in enumerate([(600, 90), (420, 60)]):
        (pages / f"fractal-{n}.jpg").write_bytes(_jpeg(photo, size, quality))
        (pages / f"page{n}.html").write_bytes(article(f"Fractal atlas {n}", figure(f"fractal-{n}.jpg", "a fractal")))
    other = Image.effect_noise((600, 400), 80).convert("RGB")
    (pages / "noise.jpg").write_bytes(_jpeg(other, 600, 90))
    (pages / "page2.html").write_bytes(article("Noise atlas", figure("noise.jpg", "noise")))
    with make_kb(tmp_path / "store", text_encoder) as kb:
        report = kb.index(["fractals"], [pages])
        with kb.store.reading() as conn:
            stored = conn.execute(text("SELECT count(*) FROM images")).scalar()
            links = conn.execute(text("SELECT count(DISTINCT document_id) FROM document_images")).scalar()
    assert report.images["added"] == 2 and report.images["linked"] == 1
    assert stored == 2 and links == 3


def test_near_duplicates_collapse_and_keep_the_better_one():
    from engine.near_duplicates import collapse, distance

    a, b, c = "ffd8000000000000", "ffd8000000000003", "0123456789abcdef"
    assert distance(a, b) == 2
    assert collapse([a, b, c, None, b]) == [0, 2, 3]


@pytest.fixture(scope="module")
def clip_store(tmp_path_factory, text_encoder, clip_encoder, examples_dir) -> Path:
    root = tmp_path_factory.mktemp("clip-store")
    with make_kb(root, text_encoder, clip_encoder) as kb:
        kb.index(TOPICS, [examples_dir / "pages"])
    return root


@pytest.mark.slow
def test_image_scores_have_clip_parts_and_min_alignment_filters(clip_store, text_encoder, clip_encoder, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(clip_store, root)
    with make_kb(root, text_encoder, clip_encoder) as kb:
        result = kb.ask("how is coffee roasted?", max_images=5)
        assert result.images
        for image in result.images:
            assert {"context", "clip_topic", "clip_evidence", "alignment"} <= set(image.parts)
            assert image.parts["alignment"] == max(image.parts["clip_topic"], image.parts["clip_evidence"])
            assert image.sentence is not None and 0 <= image.sentence < len(result.summary)
            assert image.source in {s.number for s in result.sources}
        scores = [i.score for i in result.images]
        assert scores == sorted(scores, reverse=True)
        # Random weights mean nothing, but a floor above every cosine must drop every image.
        strict = kb.ask("how is coffee roasted?", max_images=5, min_alignment=1.01)
        assert strict.images == [] and strict.images_dropped["below_min_alignment"] >= len(result.images)
        floor = sorted(i.parts["alignment"] for i in result.images)[len(result.images) // 2]
        some = kb.ask("how is coffee roasted?", max_images=5, min_alignment=floor)
        assert all(i.parts["alignment"] >= floor for i in some.images)


@pytest.mark.slow
def test_images_only_answers_with_cited_captioned_images(clip_store, text_encoder, clip_encoder, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(clip_store, root)
    with make_kb(root, text_encoder, clip_encoder) as kb:
        with kb.store.transaction() as conn:
            conn.execute(update(images).values(caption="a generated caption"))
        result = kb.ask("cats", images_only=True, max_images=2)
    assert 1 <= len(result.images) <= 2
    assert len(result.summary) == len(result.images)
    for n, image in enumerate(result.images):
        assert image.sentence == n and image.generated_caption == "a generated caption"
        assert result.summary[n].text == "a generated caption"
        assert result.summary[n].citations == [image.source]


def _passages_of_common_words(conn) -> None:  # noqa: ANN001
    """PRUNE_FROM_PASSAGES passages: "common" in all, "usual" in two of three, "rare" in one (id 6)."""
    from engine.ask.retrieval import PRUNE_FROM_PASSAGES

    conn.execute(text("INSERT INTO documents (id, content_hash, text, created_at) VALUES (1, 'h', 'x', 0)"))
    rows = [
        {"id": n + 1, "text": "common words here" + (" usual" if n % 3 else "") + (" rare" if n == 5 else "")}
        for n in range(PRUNE_FROM_PASSAGES)
    ]
    conn.execute(
        text("INSERT INTO chunks (id, document_id, position, text, start_char, end_char, n_tokens) "
             "VALUES (:id, 1, :id, :text, 0, 1, 1)"),
        rows,
    )


def test_words_common_to_most_passages_are_left_out_of_bm25_in_a_large_store(tmp_path):
    from engine.ask.retrieval import distinctive_words
    from engine.store.store import Store

    with Store(tmp_path) as store, store.transaction() as conn:
        _passages_of_common_words(conn)
        assert distinctive_words(conn, ["common", "rare"]) == ["rare"]
        assert distinctive_words(conn, ["common", "usual"]) == ["usual"]  # all common: the rarest stays
        assert distinctive_words(conn, ["common"]) == ["common"]


def test_bm25_work_is_bounded_in_a_very_large_store(tmp_path, monkeypatch):
    """Past MAX_WORD_PASSAGES matches a word is left to the dense ranking, even if no word remains."""
    from engine.ask import retrieval
    from engine.ask.retrieval import bm25_ranking, distinctive_words
    from engine.store.store import Store

    monkeypatch.setattr(retrieval, "MAX_WORD_PASSAGES", 100)  # as if the store held 10,000× more
    with Store(tmp_path) as store, store.transaction() as conn:
        _passages_of_common_words(conn)
        assert distinctive_words(conn, ["common", "rare"]) == ["rare"]
        assert distinctive_words(conn, ["common", "usual"]) == []
        assert bm25_ranking(conn, "common usual", 10, None) == []
        assert [r[0] for r in bm25_ranking(conn, "common rare words", 10, None)] == [6]


# -- abstractive summaries through ask() ------------------------------------------------------------


class _ScriptedGenerator:
    """Stands in for the language model only: the faithfulness check that follows is real (MiniLM)."""

    name = "scripted"

    def __init__(self, answer_from_evidence):  # noqa: ANN001 - callable(user prompt) -> str
        self.answer_from_evidence = answer_from_evidence

    def complete(self, messages, max_new_tokens, temperature=0.0, seed=0):  # noqa: ANN001
        return self.answer_from_evidence(messages[-1]["content"])


def test_abstractive_answer_keeps_supported_cited_sentences_and_drops_the_rest(kb):
    import re

    from engine.config import GenerateConfig
    from engine.generate import AbstractiveSummarizer

    def answer(prompt: str) -> str:
        # Restate the last evidence line it was given, citing its source, then invent something.
        number, sentence = re.findall(r"^\[(\d+)\] (.+)$", prompt, re.MULTILINE)[-1]
        return f"{sentence} [{number}] The moon is made of green cheese and sings at night [{number}]."

    kb.__dict__["summarizer"] = AbstractiveSummarizer(GenerateConfig(model="scripted"), kb.text_encoder, _ScriptedGenerator(answer))
    result = kb.ask("how is coffee roasted?", abstractive=True, max_images=0, max_sentences=2)
    assert len(result.summary) == 1 and result.summary[0].supported is True
    assert "cheese" not in result.summary[0].text
    assert result.summary[0].citations == [1] and [s.number for s in result.sources] == [1]
    report = result.faithfulness
    assert report["model"] == "scripted" and report["generated"] == 2 and report["dropped"] == 1
    assert any("1 of 2 generated sentences" in n for n in result.notices)
    assert result.to_dict()["faithfulness"]["dropped"] == 1
    assert "generate" in result.timings_ms
