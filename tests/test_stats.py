"""Tests for siamlib.stats: intervals that resample people, paired tests, by hand and by
simulation."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from toy_scores import SIX_LABELS, SIX_SCORES, overlapping, separable

from siamlib import metrics, stats

# --- bootstrap ------------------------------------------------------------------------------


def ALONE(labels):  # noqa: N802
    """Every pair a cluster of its own: what resampling pairs, ignoring shared people, would do."""
    return np.arange(len(labels))


@pytest.mark.parametrize("metric", stats.BOOTSTRAP_METRICS)
def test_bootstrap_ci_contains_estimate_and_narrows_with_more_pairs(metric):
    widths = []
    for n_per_class in (100, 2000):
        labels, scores = overlapping(n_per_class, seed=6)
        interval = stats.bootstrap_ci(labels, scores, metric, ALONE(labels), n_boot=300,
                                      threshold=0.5)
        assert interval.low <= interval.estimate <= interval.high
        widths.append(interval.high - interval.low)
    assert widths[1] < widths[0] / 2


@pytest.mark.parametrize("metric", stats.BOOTSTRAP_METRICS)
def test_bootstrap_estimate_is_the_metric_itself(metric):
    # Rounded scores tie within and across classes: the rank AUC must count ties as sklearn does.
    labels, scores = overlapping(300, seed=7)
    scores = np.round(scores, 1)
    expected = {"accuracy": metrics.accuracy_at(labels, scores, 0.4),
                "auc": roc_auc_score(labels, scores), "eer": metrics.eer(labels, scores).eer}
    interval = stats.bootstrap_ci(labels, scores, metric, ALONE(labels), n_boot=50, threshold=0.4)
    assert interval.estimate == pytest.approx(expected[metric], abs=1e-12)


def test_bootstrap_is_seeded_and_fast():
    labels, scores = overlapping(500, seed=8)
    started = time.perf_counter()
    for metric in stats.BOOTSTRAP_METRICS:
        interval = stats.bootstrap_ci(labels, scores, metric, ALONE(labels), n_boot=1000,
                                      threshold=0.5)
    assert time.perf_counter() - started < 5.0
    assert interval == stats.bootstrap_ci(labels, scores, "eer", ALONE(labels), n_boot=1000)
    assert interval != stats.bootstrap_ci(labels, scores, "eer", ALONE(labels), n_boot=1000,
                                          seed=1)


# --- cluster (person) bootstrap -------------------------------------------------------------


def test_person_clusters_by_hand():
    # Pairs: (A, A), (B, C), (C, D), (E, E), (F, G), (A, A). B-C and C-D chain B, C, D together;
    # components by first appearance: {A} 0, {B, C, D} 1, {E} 2, {F, G} 3.
    name_a = ["A", "B", "C", "E", "F", "A"]
    name_b = ["A", "C", "D", "E", "G", "A"]
    assert stats.person_clusters(name_a, name_b).tolist() == [0, 1, 1, 2, 3, 0]
    # A later pair (G, A) merges {F, G} into A's component.
    merged = stats.person_clusters([*name_a, "G"], [*name_b, "A"])
    assert merged.tolist() == [0, 1, 1, 2, 0, 0, 0]


def test_person_clusters_join_exactly_the_pairs_that_share_people():
    rng = np.random.default_rng(15)
    name_a, name_b = rng.integers(0, 80, 120).astype(str), rng.integers(0, 80, 120).astype(str)
    ids = stats.person_clusters(name_a, name_b)
    # Every pair of a person is in one cluster; clusters are numbered by first appearance.
    for person in np.union1d(name_a, name_b):
        assert len(set(ids[(name_a == person) | (name_b == person)])) == 1
    assert ids[0] == 0 and np.all(np.diff(np.maximum.accumulate(ids)) <= 1)
    # No cluster splits into parts that share no one: grow each from its first pair.
    for cluster in np.unique(ids):
        members = np.flatnonzero(ids == cluster)
        reached, people = {members[0]}, {name_a[members[0]], name_b[members[0]]}
        while True:
            more = {i for i in members if {name_a[i], name_b[i]} & people} - reached
            if not more:
                break
            reached |= more
            people |= {name for i in more for name in (name_a[i], name_b[i])}
        assert reached == set(members)


def clustered(n_clusters: int = 40, per_class: int = 5, seed: int = 9):
    """Clusters whose pairs are perfectly correlated: in each, all same-person pairs share one
    score ~ N(1, 1) and all different-person pairs another ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    genuine, impostor = rng.normal(1, 1, n_clusters), rng.normal(0, 1, n_clusters)
    labels = np.tile(np.repeat([1, 0], per_class), n_clusters)
    scores = np.concatenate([np.repeat([g, i], per_class) for g, i in zip(genuine, impostor)])
    groups = np.repeat(np.arange(n_clusters), 2 * per_class)
    return labels, scores, groups


@pytest.mark.parametrize("metric", stats.BOOTSTRAP_METRICS)
def test_cluster_ci_is_wider_than_pair_ci_on_correlated_pairs(metric):
    # 400 pairs but only 40 independent clusters: resampling pairs pretends to ten times as many
    # independent units, so its interval is about sqrt(5) ~ 2.2 times too narrow.
    labels, scores, groups = clustered()
    pair = stats.bootstrap_ci(labels, scores, metric, ALONE(labels), n_boot=500, threshold=0.5)
    cluster = stats.bootstrap_ci(labels, scores, metric, n_boot=500, threshold=0.5, groups=groups)
    assert cluster.estimate == pair.estimate
    assert cluster.low <= cluster.estimate <= cluster.high
    assert cluster.high - cluster.low > 1.5 * (pair.high - pair.low)


def test_cluster_ci_is_seeded():
    labels, scores, groups = clustered()
    first = stats.bootstrap_ci(labels, scores, "auc", n_boot=200, seed=3, groups=groups)
    assert first == stats.bootstrap_ci(labels, scores, "auc", n_boot=200, seed=3, groups=groups)
    assert first != stats.bootstrap_ci(labels, scores, "auc", n_boot=200, seed=4, groups=groups)


def test_cluster_resamples_keep_each_cluster_whole():
    # 25 identical clusters, each same 0.9, 0.4 and different 0.7, 0.1 (AUC 3/4: 0.9 beats both,
    # 0.4 only 0.1). Any draw of whole clusters is copies of that cluster: AUC 3/4 every time.
    # Drawing pairs one by one mixes them, and the AUC moves.
    labels = np.tile([1, 1, 0, 0], 25)
    scores = np.tile([0.9, 0.4, 0.7, 0.1], 25)
    groups = np.repeat(np.arange(25), 4)
    whole = stats.bootstrap_ci(labels, scores, "auc", n_boot=200, groups=groups)
    assert (whole.estimate, whole.low, whole.high) == pytest.approx((0.75,) * 3)
    pairs = stats.bootstrap_ci(labels, scores, "auc", ALONE(labels), n_boot=200)
    assert pairs.high - pairs.low > 0.05


def test_resamples_missing_a_class_are_redrawn():
    # 19 clusters hold one same-person pair each and one holds the only impostor pair (0.1,
    # below every genuine score). A draw of 20 clusters misses that one about a third of the
    # time; such a draw has no AUC and is redrawn, so every kept resample has AUC 1.
    labels = np.r_[np.ones(19, dtype=int), 0]
    scores = np.r_[np.linspace(0.5, 0.9, 19), 0.1]
    interval = stats.bootstrap_ci(labels, scores, "auc", n_boot=200, groups=np.arange(20))
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)


# Issue 22, item 1: a test set too small for a cluster bootstrap says so, instead of reporting
# a zero-width interval or a "significant" 0.001 AUC gap because everything is one cluster.


def test_one_cluster_warns_and_spans_every_value():
    with pytest.warns(UserWarning, match=r"1 cluster\(s\) of people.*fewer than the 20"):
        interval = stats.bootstrap_ci(SIX_LABELS, SIX_SCORES, "auc", n_boot=50, groups=[7] * 6)
    assert (interval.estimate, interval.low, interval.high) == (pytest.approx(8 / 9), 0.0, 1.0)


def test_one_cluster_holding_most_pairs_counts_as_few():
    # 40 clusters, but one holds 361 of the 400 pairs: (400²) / (361² + 39) = 1.2 effective.
    labels, scores = overlapping(200, seed=13)
    groups = np.r_[np.zeros(361, dtype=int), np.arange(1, 40)]
    with pytest.warns(UserWarning, match=r"the largest holding 90%.*about 1\.2 independent"):
        interval = stats.bootstrap_ci(labels, scores, "eer", n_boot=50, groups=groups)
    assert (interval.low, interval.high) == (0.0, 1.0)


def test_paired_difference_on_one_cluster_is_not_significant():
    # B is A with one genuine score lowered a little: a tiny AUC gap. With everything in one
    # cluster each resample is the whole set, the gap is the same every time and would look
    # certain (p at its floor). It is not measured.
    labels, scores = overlapping(500, seed=14)
    other = scores.copy()
    other[0] -= 0.3  # pair 0 is a same-person pair
    one = np.zeros(len(labels), dtype=int)
    with pytest.warns(UserWarning, match="cluster bootstrap needs"):
        result = stats.paired_difference(labels, scores, other, groups=one, n_boot=100)
    assert 0 < result.estimate < 0.001
    assert (result.low, result.high, result.p_value) == (-1.0, 1.0, 1.0)
    assert stats.reading(result.p_value, result.estimate, "A", "B") == "no measured difference"


def test_enough_equal_clusters_do_not_warn():
    labels, scores, groups = clustered(n_clusters=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interval = stats.bootstrap_ci(labels, scores, "auc", n_boot=50, groups=groups)
    assert interval.low < interval.high


# --- two methods on the same pairs ----------------------------------------------------------


def test_mcnemar_by_hand():
    # A right / B wrong on items 0-4 (n10 = 5), A wrong / B right on item 6 (n01 = 1); items 5
    # and 7 agree. Exact two-sided: 2 * P(X <= 1 | n = 6, p = 1/2) = 2 * (1 + 6) / 64 = 14/64.
    correct_a = [1, 1, 1, 1, 1, 0, 0, 1]
    correct_b = [0, 0, 0, 0, 0, 0, 1, 1]
    result = stats.mcnemar(correct_a, correct_b)
    assert (result.n01, result.n10) == (1, 5)
    assert result.p_value == pytest.approx(14 / 64)
    assert result.accuracy_difference == pytest.approx(6 / 8 - 2 / 8)
    swapped = stats.mcnemar(correct_b, correct_a)
    assert (swapped.n01, swapped.n10, swapped.p_value) == (5, 1, pytest.approx(14 / 64))
    assert swapped.accuracy_difference == pytest.approx(-0.5)


def test_mcnemar_edges():
    # Never disagreeing: nothing to test, p = 1. Ten discordant items all one way: 2 / 2**10.
    assert stats.mcnemar([True, False], [True, False]).p_value == 1.0
    lopsided = stats.mcnemar([1] * 10 + [0] * 5, [0] * 10 + [0] * 5)
    assert (lopsided.n10, lopsided.p_value) == (10, pytest.approx(2 / 1024))


def test_mcnemar_on_paired_n_way_tasks():
    # Both methods answer the same three 3-way tasks (correct candidate in column 0).
    a = np.array([[0.9, 0.1, 0.2], [0.8, 0.9, 0.1], [0.7, 0.6, 0.5]])  # right, wrong, right
    b = np.array([[0.1, 0.9, 0.2], [0.9, 0.8, 0.1], [0.4, 0.6, 0.5]])  # wrong, right, wrong
    result = stats.mcnemar(a.argmax(axis=1) == 0, b.argmax(axis=1) == 0)
    assert (result.n01, result.n10) == (1, 2)
    assert result.accuracy_difference == pytest.approx(metrics.n_way_accuracy(a) - 1 / 3)


@pytest.mark.parametrize(
    "p_value, difference, alpha, expected",
    [
        (0.01, 0.2, 0.05, "A better"),
        (0.01, -0.2, 0.05, "B better"),
        (0.05, 0.2, 0.05, "no measured difference"),  # p must be below alpha, not at it
        (0.2, 0.2, 0.05, "no measured difference"),
        (0.07, -0.2, 0.1, "B better"),
    ],
)
def test_reading_of_a_paired_test(p_value, difference, alpha, expected):
    assert stats.reading(p_value, difference, "A", "B", alpha=alpha) == expected


def test_reading_of_a_real_mcnemar_result():
    # 10 items only A got right, none only B: p = 2 / 2**10, difference +10/15.
    result = stats.mcnemar([1] * 10 + [0] * 5, [0] * 15)
    reading = stats.reading(result.p_value, result.accuracy_difference, "network", "LBP")
    assert reading == "network better"
    with pytest.raises(ValueError, match="alpha"):
        stats.reading(0.01, 0.1, "A", "B", alpha=0.0)


def test_paired_auc_difference_by_hand():
    # A: AUC 8/9 (see above). B: same 0.9, 0.2, 0.1 vs different 0.8, 0.7, 0.3 -> 0.9 beats
    # all three, 0.2 and 0.1 beat none: 3/9. Difference 5/9.
    scores_b = np.array([0.9, 0.2, 0.1, 0.8, 0.7, 0.3])
    with pytest.warns(UserWarning, match="cluster bootstrap needs"):  # six pairs, six clusters
        result = stats.paired_difference(SIX_LABELS, SIX_SCORES, scores_b, ALONE(SIX_LABELS))
    assert result.estimate == pytest.approx(5 / 9)
    assert result.low <= result.estimate <= result.high
    assert 0 < result.p_value <= 1


def test_paired_auc_difference_is_paired():
    labels, scores = overlapping(200, seed=11)
    # A monotone transform ranks every resample's pairs the same way: the difference is exactly
    # 0 in each, so the interval is (0, 0) and p = 1. Unpaired intervals would overlap widely.
    same = stats.paired_difference(labels, scores, 3 * scores + 1, ALONE(labels), n_boot=200)
    assert (same.estimate, same.low, same.high, same.p_value) == (0, 0, 0, 1)
    # A perfect scorer against its reverse: +1 in every resample, p at its floor 2 / (n + 1).
    labels, scores = (np.tile(values, 10) for values in separable())
    flipped = stats.paired_difference(labels, scores, -scores, ALONE(labels), n_boot=99)
    assert (flipped.estimate, flipped.low, flipped.high) == (1, 1, 1)
    assert flipped.p_value == pytest.approx(2 / 100)
    # One-sided ("is A better?"): no resample at or below 0, p at its floor 1 / (n + 1); the
    # reverse question gets every resample against it.
    better = stats.paired_difference(labels, scores, -scores, ALONE(labels), n_boot=99,
                                     one_sided=True)
    assert better.p_value == pytest.approx(1 / 100)
    worse = stats.paired_difference(labels, -scores, scores, ALONE(labels), n_boot=99,
                                    one_sided=True)
    assert worse.p_value == 1


def test_paired_auc_difference_with_groups():
    labels, scores, groups = clustered()
    other = scores + np.random.default_rng(12).normal(0, 0.5, len(scores))
    pairs = stats.paired_difference(labels, scores, other, ALONE(labels), n_boot=300)
    clusters = stats.paired_difference(labels, scores, other, groups=groups, n_boot=300)
    assert clusters.estimate == pairs.estimate
    assert clusters.high - clusters.low > pairs.high - pairs.low
