"""AskRequest → AskPlan: defaults from [ask], validation naming the setting and its origin."""

from __future__ import annotations

import pytest

from engine.ask.request import STYLES, AskRequest, Filters, resolve
from engine.config import AskConfig
from engine.errors import ConfigError


def test_defaults_come_from_the_ask_settings():
    plan = resolve(AskRequest("  coffee  "), AskConfig(k=6, max_images=2, max_sentences=4, style="paragraph"), False)
    assert (plan.question, plan.k, plan.max_images, plan.max_sentences, plan.style) == ("coffee", 6, 2, 4, "paragraph")
    assert plan.min_score == "auto" and plan.min_score_origin == "config" and plan.abstractive is False


def test_the_request_wins_over_the_settings():
    plan = resolve(AskRequest("coffee", k=3, max_images=0, style="brief", min_score="0.4", max_uncovered=0.5), AskConfig(), True)
    assert (plan.k, plan.max_images, plan.style, plan.min_score, plan.max_uncovered) == (3, 0, "brief", 0.4, 0.5)
    assert plan.min_score_origin == "request" and plan.abstractive is True


def test_styles_set_length_and_detailed_reads_twice_the_passages():
    settings = AskConfig(k=5, max_sentences=4)
    assert resolve(AskRequest("q", style="brief"), settings, False).max_sentences == 2
    detailed = resolve(AskRequest("q", style="detailed"), settings, False)
    assert (detailed.max_sentences, detailed.k) == (8, 10)


def test_an_extractive_answer_in_a_language_quotes_only_documents_in_it():
    assert resolve(AskRequest("q", language="de"), AskConfig(), False).filters == Filters(language="de")
    assert resolve(AskRequest("q", language="de", abstractive=True), AskConfig(), False).filters == Filters()


@pytest.mark.parametrize(
    ("request_", "settings", "message"),
    [
        (AskRequest("   "), AskConfig(), "the question is empty"),
        (AskRequest("q", min_score="high"), AskConfig(), r"min_score \(from the request\) must be a number, auto or off, not 'high'"),
        (AskRequest("q"), AskConfig(min_score="high"), r"ask.min_score \(from the configuration\) must be a number, auto or off"),
        (AskRequest("q", style="poem"), AskConfig(), r"style \(from the request\) must be one of bullets, paragraph, brief, detailed"),
        (AskRequest("q"), AskConfig(style="poem"), r"ask.style \(from the configuration\)"),
        (AskRequest("q", min_alignment="auto"), AskConfig(), r"min_alignment \(from the request\) must be a number or off"),
        (AskRequest("q", max_uncovered=2), AskConfig(), r"max_uncovered \(from the request\) must be a number from 0 to 1"),
        (AskRequest("q", k=0), AskConfig(), r"k \(from the request\) must be a whole number of at least 1"),
        (AskRequest("q", max_images=-1), AskConfig(), r"max_images \(from the request\) must be a whole number of at least 0"),
    ],
)
def test_bad_values_name_the_setting_and_where_it_came_from(request_, settings, message):
    with pytest.raises(ConfigError, match=message):
        resolve(request_, settings, False)


def test_thresholds_accept_numbers_and_off():
    plan = resolve(AskRequest("q", min_score="off", min_alignment="0.2"), AskConfig(), False)
    assert plan.min_score is None and plan.min_alignment == 0.2


def test_requests_from_json_refuse_unknown_fields():
    request = AskRequest.from_mapping({"question": "q", "k": 3, "filters": {"topic": "coffee"}})
    assert request == AskRequest("q", k=3, filters=Filters(topic="coffee"))
    assert AskRequest.from_mapping(request.to_dict()) == request
    with pytest.raises(ConfigError, match="unknown request field.*colour"):
        AskRequest.from_mapping({"question": "q", "colour": "red"})
    with pytest.raises(ConfigError, match="unknown filter.*colour"):
        AskRequest.from_mapping({"question": "q", "filters": {"colour": "red"}})
    with pytest.raises(ConfigError, match="no question"):
        AskRequest.from_mapping({"k": 3})


def test_the_cli_offers_exactly_the_defined_styles():
    from cli.app import Style

    assert [s.value for s in Style] == list(STYLES)
