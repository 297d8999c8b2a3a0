"""The evaluation metrics against scikit-learn and against cases worked out by hand."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from sklearn import metrics as sk

from engine.evaluate import metrics as m


def datasets():
    rng = np.random.default_rng(7)
    for n, prevalence in [(50, 0.5), (300, 0.05), (1000, 1 / 21)]:
        labels = rng.random(n) < prevalence
        labels[:2] = [True, False]
        yield "continuous", labels, rng.normal(size=n) + labels
        # Tie-heavy: scores rounded to one decimal, so most thresholds hold many pairs.
        yield "ties", labels, np.round(rng.normal(size=n) * 0.5 + labels * 0.3, 1)
        yield "all tied", labels, np.zeros(n)


@pytest.mark.parametrize("kind,labels,scores", list(datasets()), ids=lambda v: v if isinstance(v, str) else "")
def test_against_scikit_learn(kind, labels, scores):
    assert m.roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert m.average_precision(labels, scores) == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)

    fpr, tpr, thresholds = m.roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_thresholds = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])

    # The best-F1 and best-accuracy thresholds: sklearn's scores at every candidate threshold.
    candidates = [math.inf, *np.unique(scores)]
    sk_f1 = [sk.f1_score(labels, scores >= t, zero_division=0) for t in candidates]
    sk_acc = [sk.accuracy_score(labels, scores >= t) for t in candidates]
    best_f1 = m.best_threshold(labels, scores, "f1")
    best_acc = m.best_threshold(labels, scores, "accuracy")
    assert best_f1.f1 == pytest.approx(max(sk_f1))
    assert best_acc.accuracy == pytest.approx(max(sk_acc))
    assert best_acc.accuracy >= 1 - labels.mean() - 1e-12  # never below "always no match"
    point = m.operating_point(labels, scores, best_f1.threshold)
    predicted = scores >= best_f1.threshold
    assert point.f1 == pytest.approx(sk.f1_score(labels, predicted, zero_division=0))
    assert point.precision == pytest.approx(sk.precision_score(labels, predicted, zero_division=0))
    assert point.recall == pytest.approx(sk.recall_score(labels, predicted))
    assert point.accuracy == pytest.approx(sk.accuracy_score(labels, predicted))


def test_hand_computed_auc_with_ties():
    # Positives 0.9, 0.5; negatives 0.5, 0.1. Pairs: (0.9>0.5) 1, (0.9>0.1) 1, (0.5=0.5) 1/2, (0.5>0.1) 1.
    labels, scores = [1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]
    assert m.roc_auc(labels, scores) == pytest.approx(3.5 / 4)
    # Thresholds 0.9: P=1, R=1/2; 0.5: P=2/3, R=1; 0.1: no recall gain. AP = 1/2*1 + 1/2*2/3.
    assert m.average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)
    best = m.best_threshold(labels, scores, "f1")
    assert best.threshold == 0.5 and (best.tp, best.fp, best.fn) == (2, 1, 0) and best.f1 == pytest.approx(0.8)


def test_perfect_and_inverted_and_constant_scores():
    labels = [0, 0, 1, 1]
    assert m.roc_auc(labels, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.roc_auc(labels, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert m.roc_auc(labels, [0.5] * 4) == 0.5
    assert m.average_precision(labels, [0.5] * 4) == 0.5  # one threshold, precision = prevalence


def test_one_class_or_empty():
    assert math.isnan(m.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(m.roc_auc([0, 0], [0.1, 0.2]))
    assert m.average_precision([1, 1, 1], [0.1, 0.2, 0.3]) == 1.0  # what sklearn gives too
    assert math.isnan(m.average_precision([0, 0], [0.1, 0.2]))
    only_negatives = m.best_threshold([0, 0], [0.1, 0.2], "accuracy")
    assert only_negatives.threshold == math.inf and only_negatives.accuracy == 1.0
    assert math.isnan(only_negatives.recall) and only_negatives.f1 == 0.0
    with pytest.raises(ValueError, match="no scores"):
        m.roc_auc([], [])
    with pytest.raises(ValueError, match="NaN"):
        m.roc_auc([0, 1], [0.1, math.nan])
    with pytest.raises(ValueError, match="0/1"):
        m.average_precision([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        m.roc_auc([0, 1, 1], [0.1, 0.2])


def test_operating_point_none_keeps_everything():
    point = m.operating_point([1, 0, 0, 0], [0.3, 0.9, 0.1, 0.2], None)
    assert (point.tp, point.fp, point.tn, point.fn) == (1, 3, 0, 0)
    assert point.accuracy == 0.25 and point.f1 == pytest.approx(2 * 0.25 / 1.25)


# -- rankings -------------------------------------------------------------------------------


def test_ranks_by_hand():
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.1],  # relevant at column 2: rank 3
            [0.5, 0.5, 0.5, 0.5],  # one relevant among 4 tied: expected rank 1 + 3/2
            [0.2, 0.9, 0.9, 0.1],  # two relevant (1, 2) tied at the top: rank 1
            [0.2, 0.9, 0.9, 0.1],  # relevant 2 ties irrelevant 1: rank 1.5
            [0.3, 0.2, 0.1, 0.0],  # nothing relevant: NaN
        ]
    )
    relevant = np.zeros_like(scores, bool)
    relevant[0, 2] = relevant[1, 0] = relevant[2, 1] = relevant[2, 2] = relevant[3, 2] = True
    ranks = m.first_relevant_ranks(scores, relevant)
    np.testing.assert_allclose(ranks[:4], [3, 2.5, 1, 1.5])
    assert math.isnan(ranks[4])
    assert m.mean_reciprocal_rank(ranks) == pytest.approx((1 / 3 + 1 / 2.5 + 1 + 1 / 1.5) / 4)
    assert m.recall_at(ranks, 1) == 0.25 and m.recall_at(ranks, 2) == 0.5 and m.recall_at(ranks, 3) == 1.0
    assert math.isnan(m.mean_reciprocal_rank(np.array([math.nan])))


def test_excluded_candidates_do_not_count():
    scores = np.array([[1.0, 0.9, 0.5]])
    relevant = np.array([[True, False, True]])
    exclude = np.array([[True, False, False]])  # the query itself
    assert m.first_relevant_ranks(scores, relevant, exclude)[0] == 2.0


def test_expected_rank_of_ties_matches_random_tie_breaking():
    # Among 3 tied irrelevant and 2 tied relevant items, average the first relevant position
    # over every ordering: the formula's 1 + 3/3 = 2.
    items = "iiirr"
    firsts = [p.index("r") + 1 for p in set(permutations(items))]
    assert np.mean(firsts) == pytest.approx(2.0)
    scores = np.zeros((1, 5))
    relevant = np.array([[False, False, False, True, True]])
    assert m.first_relevant_ranks(scores, relevant)[0] == 2.0


@pytest.mark.parametrize("n,r", [(6, 1), (30, 4), (29, 4), (100, 5)])
def test_chance_figures_match_a_simulation(n, r):
    rng = np.random.default_rng(0)
    trials = 20000
    relevant = np.zeros((trials, n), bool)
    relevant[:, :r] = True
    ranks = m.first_relevant_ranks(rng.random((trials, n)), relevant)
    assert m.chance_reciprocal_rank(n, r) == pytest.approx(m.mean_reciprocal_rank(ranks), abs=0.01)
    for k in (1, 5, 10):
        assert m.chance_first_rank_cdf(n, r, np.array([k]))[0] == pytest.approx(m.recall_at(ranks, k), abs=0.015)
    assert m.chance_reciprocal_rank(6, 1) == pytest.approx(sum(1 / k for k in range(1, 7)) / 6)


def test_bootstrap_interval_contains_the_estimate_and_repeats():
    rng = np.random.default_rng(1)
    values = rng.random(200)
    groups = [np.array([i]) for i in range(200)]
    low, high = m.bootstrap_interval(lambda idx: float(values[idx].mean()), groups, seed=3)
    assert low < values.mean() < high and high - low < 0.2
    assert (low, high) == m.bootstrap_interval(lambda idx: float(values[idx].mean()), groups, seed=3)
