"""The assembled pipeline end to end: request in, AskResult out."""

from __future__ import annotations

import shutil

import pytest

from engine.ask import AskRequest
from engine.config import ClipConfig, Config, StoreConfig
from engine.kb import KnowledgeBase
from tests.ask.conftest import open_kb

TOPICS = ["space exploration", "coffee", "domestic cats", "ancient coins"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, text_encoder, examples_dir):
    root = tmp_path_factory.mktemp("store")
    with KnowledgeBase(Config(store=StoreConfig(path=root), clip=ClipConfig(enabled=False)), text_encoder=text_encoder) as kb:
        kb.index(TOPICS, [examples_dir / "pages"])
    return root


@pytest.fixture
def kb(store, text_encoder, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(store, root)
    with KnowledgeBase(Config(store=StoreConfig(path=root), clip=ClipConfig(enabled=False)), text_encoder=text_encoder) as base:
        yield base


def test_source_one_is_the_most_relevant_document_and_the_summary_quotes_it(kb):
    result = kb.ask(AskRequest("what does a fluid-bed roaster do", max_images=0))
    assert not result.nothing_relevant
    first = result.sources[0]
    assert first.number == 1 and "roast" in first.url
    assert result.summary[0].citations == [1]  # grouped by source, most relevant first
    numbers = [s.citations[0] for s in result.summary]
    assert numbers == sorted(numbers)
    assert [s.number for s in result.sources] == list(range(1, len(result.sources) + 1))


def test_every_stage_is_timed_and_the_decision_is_reported(kb):
    result = kb.ask("why do cats knead", max_images=0)
    assert {"encode_query", "filter", "dense", "bm25", "fuse", "evidence", "summarize"} <= set(result.timings_ms)
    relevance = result.relevance
    assert relevance["origin"] == "calibrated" and relevance["nothing_relevant"] is False
    assert {"threshold", "best_score", "agreement", "uncovered_words", "uncovered_share", "max_uncovered"} <= set(relevance)
    assert result.to_dict()["schema_version"] == 3


def test_a_question_on_the_subject_but_about_something_unstored_is_refused_with_the_reason(kb):
    # The espresso page is relevant (it scores well above the chance level) but says nothing of calories.
    result = kb.ask("how many calories are in an espresso", max_images=0)
    assert result.relevance["best_score"] > result.relevance["threshold"]
    assert result.nothing_relevant and result.summary == [] and result.sources == []
    assert result.relevance["uncovered_words"] == ["calories"]
    assert any("never mention 'calories'" in n for n in result.notices)
    assert not kb.ask("how many calories are in an espresso", max_uncovered=1.0, max_images=0).nothing_relevant


def test_the_keyword_argument_and_request_forms_agree(kb):
    by_keywords = kb.ask("coffee crema", k=4, style="brief", max_images=0)
    by_request = kb.ask(AskRequest("coffee crema", k=4, style="brief", max_images=0))
    assert [s.text for s in by_keywords.summary] == [s.text for s in by_request.summary]
    assert by_keywords.settings == by_request.settings and by_keywords.settings["k"] == 4


def test_a_syndicated_article_is_one_source_cited_from_one_copy(stores, text_encoder, tmp_path):
    _, copies = stores
    root = tmp_path / "copies"
    shutil.copytree(copies, root)
    with open_kb(root, text_encoder) as kb:
        result = kb.ask("how is coffee roasted and how does espresso get its crema", max_images=0, max_sentences=6)
    paths = [s.url.split("/", 3)[3] for s in result.sources]  # the page's path, whatever the host
    assert len(result.sources) >= 2 and len(paths) == len(set(paths)), [s.url for s in result.sources]


def test_explain_names_the_decision_and_a_refusal_names_its_reason(kb):
    from cli.render import explain_retrieval, nothing_found

    answered = explain_retrieval(kb.ask("why do cats knead", max_images=0))
    assert "relevance cutoff 0." in answered and "(calibrated)" in answered and "coverage: words the best passages lack" in answered
    refused = kb.ask("how many calories are in an espresso", max_images=0)
    assert nothing_found(refused) == "Nothing relevant is stored for this question."
    assert "words the best passages lack: calories (2" in explain_retrieval(refused)
