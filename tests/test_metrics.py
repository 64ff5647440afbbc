"""Tests for siamlib.metrics: hand-computed tiny cases, closed forms, and cross-checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from siamlib import metrics

# Six pairs used throughout. Same-person scores 0.9, 0.8, 0.4; different-person 0.7, 0.3, 0.1.
SIX_LABELS = np.array([1, 1, 1, 0, 0, 0])
SIX_SCORES = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.1])


def separable():
    return np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.3, 0.2])


def overlapping(n_per_class: int, seed: int = 0, gap: float = 1.0):
    """Same-person scores ~ N(gap, 1), different-person ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], n_per_class)
    scores = np.concatenate([rng.normal(gap, 1, n_per_class), rng.normal(0, 1, n_per_class)])
    return labels, scores


# --- error_rates, ROC, AUC ------------------------------------------------------------------


def test_error_rates_on_six_pairs_by_hand():
    # t = 0.5: accepts 0.9, 0.8 (same) and 0.7 (different) -> tp 2 of 3, fp 1 of 3:
    #   FAR 1/3, FRR 1/3, GAR 2/3, GRR 2/3, accuracy (2 + 2) / 6 = 2/3.
    # t = 0.8: accepts 0.9, 0.8 (>= is inclusive)     -> tp 2, fp 0:
    #   FAR 0, FRR 1/3, GAR 2/3, GRR 1, accuracy (2 + 3) / 6 = 5/6.
    # t = 0.35: accepts 0.9, 0.8, 0.4 and 0.7          -> tp 3, fp 1:
    #   FAR 1/3, FRR 0, GAR 1, GRR 2/3, accuracy (3 + 2) / 6 = 5/6.
    table = metrics.error_rates(SIX_LABELS, SIX_SCORES, [0.5, 0.8, 0.35])
    assert list(table.columns) == ["threshold", "far", "frr", "gar", "grr", "accuracy"]
    np.testing.assert_allclose(table["threshold"], [0.5, 0.8, 0.35])
    np.testing.assert_allclose(table["far"], [1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(table["frr"], [1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(table["gar"], [2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(table["grr"], [2 / 3, 1, 2 / 3])
    np.testing.assert_allclose(table["accuracy"], [2 / 3, 5 / 6, 5 / 6])


def test_error_rates_accuracy_matches_a_naive_loop():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(labels, 1.0), 1)  # rounding makes ties
    thresholds = np.concatenate([np.unique(scores), rng.normal(0.5, 1.5, 50), [np.inf, -np.inf]])
    naive = [np.mean((scores >= t) == (labels == 1)) for t in thresholds]
    table = metrics.error_rates(labels, scores, thresholds)
    np.testing.assert_allclose(table["accuracy"], naive)


def test_error_rates_is_fast_on_a_million_scores():
    labels, scores = overlapping(500_000)
    thresholds = np.linspace(-3, 4, 1000)
    started = time.perf_counter()
    metrics.error_rates(labels, scores, thresholds)
    assert time.perf_counter() - started < 2.0


def test_auc_matches_sklearn_and_hand_count():
    # Same-person scores beat different-person ones in 3 + 3 + 2 = 8 of 9 comparisons.
    assert metrics.roc(SIX_LABELS, SIX_SCORES).auc == pytest.approx(8 / 9)
    labels, scores = overlapping(300, seed=2)
    scores = np.round(scores, 1)
    assert metrics.roc(labels, scores).auc == pytest.approx(roc_auc_score(labels, scores))


def test_roc_runs_from_accept_nothing_to_accept_everything():
    curve = metrics.roc(SIX_LABELS, SIX_SCORES)
    assert np.isinf(curve.thresholds[0])
    assert (curve.far[0], curve.gar[0], curve.far[-1], curve.gar[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(curve.far) >= 0) and np.all(np.diff(curve.gar) >= 0)


# --- closed forms ---------------------------------------------------------------------------


def test_perfectly_separable_scores():
    labels, scores = separable()
    assert metrics.eer(labels, scores).eer == 0
    assert metrics.roc(labels, scores).auc == 1
    threshold = metrics.threshold_for_max_accuracy(labels, scores)
    assert metrics.accuracy_at(labels, scores, threshold) == 1
    assert metrics.tar_at_far(labels, scores, 0.001) == 1


def test_identical_distributions_are_at_chance():
    rng = np.random.default_rng(3)
    labels = np.repeat([1, 0], 20_000)
    scores = rng.normal(0, 1, len(labels))
    assert metrics.eer(labels, scores).eer == pytest.approx(0.5, abs=0.03)
    assert metrics.roc(labels, scores).auc == pytest.approx(0.5, abs=0.02)


# --- EER ------------------------------------------------------------------------------------


def test_eer_interpolates_between_roc_points():
    # Same 0.9, 0.7, 0.3; different 0.8, 0.6, 0.5, 0.1. ROC points (threshold: FAR, FRR):
    #   0.9: 0, 2/3    0.8: 1/4, 2/3    0.7: 1/4, 1/3    0.6: 1/2, 1/3
    # FRR - FAR goes from +1/12 at 0.7 to -1/6 at 0.6, so the crossing is 1/3 of the way along:
    #   EER = 1/4 + (1/2 - 1/4) / 3 = 1/3 (FRR is 1/3 all along), threshold = 0.7 - 0.1 / 3.
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.7, 0.3, 0.8, 0.6, 0.5, 0.1])
    point = metrics.eer(labels, scores)
    assert point.eer == pytest.approx(1 / 3)
    assert point.threshold == pytest.approx(0.7 - 0.1 / 3)


def test_eer_exactly_on_a_roc_point():
    # On the six pairs FAR = FRR = 1/3 at threshold 0.7 itself.
    point = metrics.eer(SIX_LABELS, SIX_SCORES)
    assert (point.eer, point.threshold) == (pytest.approx(1 / 3), pytest.approx(0.7))


def test_eer_of_a_constant_scorer_uses_the_finite_threshold():
    point = metrics.eer([1, 0, 1, 0], [0.2, 0.2, 0.2, 0.2])
    assert (point.eer, point.threshold) == (pytest.approx(0.5), pytest.approx(0.2))


# --- thresholds fitted on validation --------------------------------------------------------


def test_threshold_for_max_accuracy_by_hand():
    # Accuracy at each score as threshold: 0.9 -> 4/6, 0.8 -> 5/6, 0.7 -> 4/6, 0.4 -> 5/6.
    # The strictest best (0.8) is moved halfway to the next score down (0.7).
    threshold = metrics.threshold_for_max_accuracy(SIX_LABELS, SIX_SCORES)
    assert threshold == pytest.approx(0.75)
    assert metrics.accuracy_at(SIX_LABELS, SIX_SCORES, threshold) == pytest.approx(5 / 6)


def test_threshold_at_far_by_hand():
    # FAR stays 0 down to 0.8 (next score 0.7 is different-person), 1/3 down to 0.4.
    assert metrics.threshold_at_far(SIX_LABELS, SIX_SCORES, 0.0) == pytest.approx(0.75)
    assert metrics.threshold_at_far(SIX_LABELS, SIX_SCORES, 1 / 3) == pytest.approx(0.35)
    assert metrics.tar_at_far(SIX_LABELS, SIX_SCORES, 0.0) == pytest.approx(2 / 3)
    assert metrics.tar_at_far(SIX_LABELS, SIX_SCORES, 1 / 3) == pytest.approx(1.0)


def test_threshold_at_far_when_the_top_score_is_an_impostor():
    assert metrics.threshold_at_far([0, 1, 1], [0.9, 0.5, 0.4], 0.0) == np.inf


@pytest.mark.parametrize("target", [0.001, 0.01, 0.1, 0.5])
def test_threshold_at_far_is_the_most_permissive_within_target(target):
    labels, scores = overlapping(2000, seed=4)
    scores = np.round(scores, 2)
    threshold = metrics.threshold_at_far(labels, scores, target)
    far_at = metrics.error_rates(labels, scores, threshold)["far"].iloc[0]
    assert far_at <= target
    next_score_down = scores[scores < threshold].max()
    assert metrics.error_rates(labels, scores, next_score_down)["far"].iloc[0] > target
    gar_at = metrics.error_rates(labels, scores, threshold)["gar"].iloc[0]
    assert metrics.tar_at_far(labels, scores, target) == pytest.approx(gar_at)


# --- outcomes at one threshold --------------------------------------------------------------


def test_outcome_and_confusion_by_hand():
    # At 0.5: 0.9, 0.8 same accepted (TP); 0.4 same rejected (FN); 0.7 different accepted (FP).
    kinds = metrics.outcome(SIX_LABELS, SIX_SCORES, 0.5)
    assert kinds.tolist() == ["TP", "TP", "FN", "FP", "TN", "TN"]
    assert metrics.confusion_at(SIX_LABELS, SIX_SCORES, 0.5) == {"tp": 2, "fp": 1, "fn": 1, "tn": 2}
    assert metrics.accuracy_at(SIX_LABELS, SIX_SCORES, 0.5) == pytest.approx(4 / 6)


def test_outcomes_work_on_a_single_class():
    assert metrics.confusion_at([1, 1], [0.9, 0.1], 0.5) == {"tp": 1, "fp": 0, "fn": 1, "tn": 0}
    assert metrics.accuracy_at([0, 0], [0.9, 0.1], 0.5) == 0.5


# --- DET ------------------------------------------------------------------------------------


def test_det_points_lie_on_the_roc():
    labels, scores = overlapping(200, seed=5)
    far, frr = metrics.det_curve(labels, scores)
    curve = metrics.roc(labels, scores)
    roc_points = set(zip(np.round(curve.far, 12), np.round(1 - curve.gar, 12), strict=True))
    assert set(zip(np.round(far, 12), np.round(frr, 12), strict=True)) <= roc_points


def test_normal_deviate():
    np.testing.assert_allclose(metrics.normal_deviate([0.5, norm.cdf(1.0)]), [0.0, 1.0])
    ends = metrics.normal_deviate([0.0, 1.0])
    assert np.all(np.isfinite(ends)) and ends[0] == pytest.approx(-ends[1])


# --- bootstrap ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", metrics.BOOTSTRAP_METRICS)
def test_bootstrap_ci_contains_estimate_and_narrows_with_more_pairs(metric):
    widths = []
    for n_per_class in (100, 2000):
        labels, scores = overlapping(n_per_class, seed=6)
        interval = metrics.bootstrap_ci(labels, scores, metric, n_boot=300, threshold=0.5)
        assert interval.low <= interval.estimate <= interval.high
        widths.append(interval.high - interval.low)
    assert widths[1] < widths[0] / 2


def metric_value(metric, labels, scores, threshold):
    if metric == "accuracy":
        return metrics.accuracy_at(labels, scores, threshold)
    if metric == "auc":
        return roc_auc_score(labels, scores)
    return metrics.eer(labels, scores).eer


@pytest.mark.parametrize("metric", metrics.BOOTSTRAP_METRICS)
def test_resample_weights_equal_the_metric_on_the_repeated_pairs(metric):
    # The bootstrap weights sorted scores by draw counts instead of copying them; expanding the
    # counts back into repeated pairs must give the same metric.
    rng = np.random.default_rng(7)
    genuine = np.round(rng.normal(1, 1, 40), 1)
    impostor = np.round(rng.normal(0, 1, 60), 1)
    genuine_counts = rng.multinomial(40, np.full(40, 1 / 40), size=5)
    impostor_counts = rng.multinomial(60, np.full(60, 1 / 60), size=5)
    values = metrics._per_resample(
        metric, genuine, impostor, genuine_counts, impostor_counts, threshold=0.4
    )
    labels = np.repeat([1, 0], [40, 60])
    for value, g_counts, i_counts in zip(values, genuine_counts, impostor_counts, strict=True):
        scores = np.concatenate([np.repeat(genuine, g_counts), np.repeat(impostor, i_counts)])
        assert value == pytest.approx(metric_value(metric, labels, scores, 0.4))


def test_bootstrap_is_seeded_and_fast():
    labels, scores = overlapping(500, seed=8)
    started = time.perf_counter()
    for metric in metrics.BOOTSTRAP_METRICS:
        interval = metrics.bootstrap_ci(labels, scores, metric, n_boot=1000, threshold=0.5)
    assert time.perf_counter() - started < 5.0
    assert interval == metrics.bootstrap_ci(labels, scores, "eer", n_boot=1000)


# --- N-way one-shot tasks -------------------------------------------------------------------


@pytest.mark.parametrize("n_way", [2, 5, 10, 20])
def test_n_way_accuracy_perfect_random_and_constant(n_way):
    perfect = np.zeros((50, n_way))
    perfect[:, 0] = 1.0
    assert metrics.n_way_accuracy(perfect) == 1.0
    random_scores = np.random.default_rng(n_way).random((20_000, n_way))
    assert metrics.n_way_accuracy(random_scores) == pytest.approx(1 / n_way, abs=0.015)
    assert metrics.n_way_accuracy(np.ones((7, n_way))) == pytest.approx(1 / n_way)


def test_n_way_ties_and_per_task_correct_column():
    # Task 1: correct column 0 tied with one other at the top -> 1/2. Task 2: column 2 wins -> 1.
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.3, 0.9]])
    assert metrics.n_way_accuracy(scores, correct_index=[0, 2]) == pytest.approx(0.75)
    assert metrics.n_way_accuracy(scores, correct_index=1) == pytest.approx(0.25)


# --- identification -------------------------------------------------------------------------

# Columns are templates: alice, bob, alice, bob, carol.
GALLERY = np.array(["alice", "bob", "alice", "bob", "carol"])
PROBES = np.array(["alice", "bob"])
PROBE_SCORES = np.array(
    [
        # alice: max 0.9, mean 0.5; bob: max 0.6, mean 0.6; carol 0.7
        #   -> max picks alice (right); mean ranks alice third (carol, bob ahead).
        [0.9, 0.6, 0.1, 0.6, 0.7],
        # alice: max 0.2, mean 0.15; bob: max 0.8, mean 0.75; carol 0.3 -> both pick bob.
        [0.2, 0.8, 0.1, 0.7, 0.3],
    ]
)


def test_identification_max_and_mean_disagree():
    assert metrics.identification_accuracy(PROBE_SCORES, PROBES, GALLERY, "max") == 1.0
    assert metrics.identification_accuracy(PROBE_SCORES, PROBES, GALLERY, "mean") == 0.5


def test_identification_rank_k():
    assert metrics.identification_accuracy(PROBE_SCORES, PROBES, GALLERY, "mean", k=2) == 0.5
    assert metrics.identification_accuracy(PROBE_SCORES, PROBES, GALLERY, "mean", k=3) == 1.0


def test_identification_of_a_constant_scorer_is_chance():
    accuracy = metrics.identification_accuracy(np.zeros((2, 5)), PROBES, GALLERY)
    assert accuracy == pytest.approx(1 / 3)


# --- ValueError paths -----------------------------------------------------------------------

BAD_PAIRS = {
    "lengths differ": ([1, 0, 1], [0.1, 0.2], "same length"),
    "label not 0/1": ([1, 0, 2], [0.1, 0.2, 0.3], "found \\[2\\]"),
    "one class": ([1, 1, 1], [0.1, 0.2, 0.3], "both same-person"),
    "NaN score": ([1, 0, 1], [0.1, np.nan, 0.3], "NaN"),
    "infinite score": ([1, 0, 1], [0.1, np.inf, 0.3], "infinite"),
    "empty": ([], [], "empty"),
    "two-dimensional": ([[1, 0]], [[0.1, 0.2]], "one-dimensional"),
}

NEEDS_BOTH_CLASSES = {
    "roc": metrics.roc,
    "error_rates": lambda y, s: metrics.error_rates(y, s, [0.5]),
    "eer": metrics.eer,
    "threshold_for_max_accuracy": metrics.threshold_for_max_accuracy,
    "threshold_at_far": lambda y, s: metrics.threshold_at_far(y, s, 0.01),
    "tar_at_far": lambda y, s: metrics.tar_at_far(y, s, 0.01),
    "det_curve": metrics.det_curve,
    "bootstrap_ci": lambda y, s: metrics.bootstrap_ci(y, s, "auc", n_boot=5),
    "summary": lambda y, s: metrics.summary(y, s, 0.5),
}

AT_A_THRESHOLD = {
    "accuracy_at": lambda y, s: metrics.accuracy_at(y, s, 0.5),
    "confusion_at": lambda y, s: metrics.confusion_at(y, s, 0.5),
    "outcome": lambda y, s: metrics.outcome(y, s, 0.5),
}


@pytest.mark.parametrize("function", NEEDS_BOTH_CLASSES.values(), ids=NEEDS_BOTH_CLASSES.keys())
@pytest.mark.parametrize("labels, scores, message", BAD_PAIRS.values(), ids=BAD_PAIRS.keys())
def test_bad_pairs_are_rejected(function, labels, scores, message):
    with pytest.raises(ValueError, match=message):
        function(labels, scores)


@pytest.mark.parametrize("function", AT_A_THRESHOLD.values(), ids=AT_A_THRESHOLD.keys())
@pytest.mark.parametrize(
    "labels, scores, message",
    [case for name, case in BAD_PAIRS.items() if name != "one class"],
    ids=[name for name in BAD_PAIRS if name != "one class"],
)
def test_bad_pairs_are_rejected_at_a_threshold(function, labels, scores, message):
    with pytest.raises(ValueError, match=message):
        function(labels, scores)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.threshold_at_far(SIX_LABELS, SIX_SCORES, 1.5), "target_far"),
        (lambda: metrics.tar_at_far(SIX_LABELS, SIX_SCORES, -0.1), "far must be a rate"),
        (lambda: metrics.accuracy_at(SIX_LABELS, SIX_SCORES, np.nan), "threshold is NaN"),
        (lambda: metrics.error_rates(SIX_LABELS, SIX_SCORES, [0.5, np.nan]), "thresholds"),
        (lambda: metrics.bootstrap_ci(SIX_LABELS, SIX_SCORES, "f1"), "metric must be"),
        (lambda: metrics.bootstrap_ci(SIX_LABELS, SIX_SCORES, "accuracy"), "threshold chosen"),
        (lambda: metrics.bootstrap_ci(SIX_LABELS, SIX_SCORES, "auc", n_boot=0), "n_boot"),
        (lambda: metrics.bootstrap_ci(SIX_LABELS, SIX_SCORES, "auc", alpha=1.0), "alpha"),
    ],
    ids=[
        "target_far",
        "far",
        "threshold",
        "thresholds",
        "metric",
        "no threshold",
        "n_boot",
        "alpha",
    ],
)
def test_bad_arguments_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "scores_matrix, correct_index, message",
    [
        (np.ones(5), 0, "shape"),
        (np.ones((3, 1)), 0, "N >= 2"),
        (np.array([[0.1, np.nan]]), 0, "NaN"),
        (np.ones((3, 4)), 4, "correct_index"),
        (np.ones((3, 4)), 0.5, "correct_index"),
    ],
)
def test_n_way_rejects_bad_input(scores_matrix, correct_index, message):
    with pytest.raises(ValueError, match=message):
        metrics.n_way_accuracy(scores_matrix, correct_index)


@pytest.mark.parametrize(
    "scores, probes, kwargs, message",
    [
        (PROBE_SCORES[:, :4], PROBES, {}, "shape"),
        (PROBE_SCORES, PROBES, {"reduce": "median"}, "reduce"),
        (PROBE_SCORES, PROBES, {"k": 4}, "k must be"),
        (PROBE_SCORES, np.array(["alice", "dave"]), {}, "dave"),
        (np.where(PROBE_SCORES > 0.8, np.nan, PROBE_SCORES), PROBES, {}, "NaN"),
    ],
)
def test_identification_rejects_bad_input(scores, probes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.identification_accuracy(scores, probes, GALLERY, **kwargs)


def test_summary_row():
    row = metrics.summary(SIX_LABELS, SIX_SCORES, threshold=0.5)
    assert row == pytest.approx(
        {
            "accuracy": 4 / 6,
            "auc": 8 / 9,
            "eer": 1 / 3,
            "tar_at_far_1pct": 2 / 3,
            "tar_at_far_0_1pct": 2 / 3,
            "threshold": 0.5,
        }
    )
