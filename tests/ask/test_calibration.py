"""Calibration: the chance level from the probe questions, cached, robust to near-duplicate copies."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.ask.calibration import CACHE_FILE, VERSION, calibrate, probe_questions
from tests.ask.conftest import open_kb as _kb


def test_the_chance_level_is_a_high_quantile_of_the_probes_best_scores(stores, text_encoder):
    plain, _ = stores
    with _kb(plain, text_encoder) as kb:
        calibration = calibrate(kb.store, text_encoder.name, kb.probe_vectors, 36)
    assert calibration.probes == len(probe_questions()) >= 100
    assert 0 < calibration.probe_median < calibration.threshold < 0.6
    # An on-topic question scores above the chance level, an everyday unrelated one below.
    with _kb(plain, text_encoder) as kb:
        assert kb.ask("how are coffee beans roasted", max_images=0).relevance["best_score"] > calibration.threshold
        assert kb.ask("how do I renew my passport", max_images=0).relevance["best_score"] < calibration.threshold


def test_near_duplicate_copies_do_not_move_the_chance_level(stores, text_encoder):
    plain, copies = stores
    with _kb(plain, text_encoder) as kb:
        once = kb.calibration()
    with _kb(copies, text_encoder) as kb:
        thrice = kb.calibration()
    assert thrice.chunks == 3 * once.chunks
    assert thrice.threshold == pytest.approx(once.threshold, abs=0.01)


def test_a_one_page_store_is_calibrated_and_still_refuses_the_unrelated(tmp_path, text_encoder, examples_dir):
    with _kb(tmp_path / "one", text_encoder) as kb:
        kb.index(["coffee"], [examples_dir / "pages" / "coffee-roasting.html"])
        unrelated = kb.ask("chocolate cake recipe", max_images=0)
        related = kb.ask("how long does roasting take", max_images=0)
    assert unrelated.relevance["origin"] == "calibrated" and unrelated.nothing_relevant
    assert not related.nothing_relevant and related.summary


def test_the_calibration_is_cached_and_measured_again_when_stale(stores, text_encoder, tmp_path):
    plain, _ = stores
    root = tmp_path / "store"
    shutil.copytree(plain, root)
    with _kb(root, text_encoder) as kb:
        first = kb.calibration()
        cached = json.loads((root / CACHE_FILE).read_text())
        assert cached["threshold"] == first.threshold and cached["version"] == VERSION
        (root / CACHE_FILE).write_text(json.dumps({**cached, "threshold": 0.123}))
        assert kb.calibration().threshold == 0.123  # read from the cache
        (root / CACHE_FILE).write_text(json.dumps({**cached, "threshold": 0.123, "chunks": 1}))
        assert kb.calibration().threshold == first.threshold  # stale: measured again
        (root / CACHE_FILE).write_text("{not json")
        assert kb.calibration().threshold == first.threshold


def test_an_empty_store_has_nothing_to_calibrate(tmp_path, text_encoder):
    with _kb(tmp_path / "empty", text_encoder) as kb:
        result = kb.ask("anything")
        assert calibrate(kb.store, text_encoder.name, kb.probe_vectors, 0).threshold is None
    assert result.summary == [] and "the store is empty" in result.notices[0]
