"""Statistics that respect people: LFW's test pairs are not independent (a model that fails on
one photo of a person fails on all that person's pairs), so intervals resample whole clusters of
people and two methods are compared on the same pairs.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import binomtest, rankdata

from siamlib import SAME, metrics

BOOTSTRAP_METRICS = ("accuracy", "auc", "eer")
MIN_CLUSTERS = 20  # "few" is below 20-50 (Cameron & Miller, 2015)

ConfidenceInterval = namedtuple("ConfidenceInterval", "estimate low high")
McNemarResult = namedtuple("McNemarResult", "n01 n10 p_value accuracy_difference")
PairedDifference = namedtuple("PairedDifference", "estimate low high p_value")


def person_clusters(name_a, name_b) -> np.ndarray:
    """Per pair, the connected component of its people: pairs of two clusters share no one."""
    name_a, name_b = np.asarray(name_a), np.asarray(name_b)
    if name_a.ndim != 1 or name_a.shape != name_b.shape:
        raise ValueError(f"name_a and name_b must be one-dimensional and of the same length, "
                         f"got shapes {name_a.shape} and {name_b.shape}")
    person, people = pd.factorize(np.concatenate([name_a, name_b]))
    first, second = person[: len(name_a)], person[len(name_a) :]
    links = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(people),) * 2)
    return pd.factorize(connected_components(links, directed=False)[1][first])[0]


def _bootstrap(labels: np.ndarray, scores: tuple, groups, metric: str, threshold: float | None,
               n_boot: int, alpha: float, seed: int):
    """``metric`` of the first ``scores`` (minus that of the second, if given) on all pairs, its
    percentile interval over resamples of whole ``groups`` and the values; no interval, with a
    warning, from too few clusters: a small face set runs to the end and says so."""
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {BOOTSTRAP_METRICS}, got {metric!r}")
    if metric == "accuracy" and threshold is None:
        raise ValueError("accuracy needs the threshold chosen on validation (threshold=...)")
    value = {"accuracy": lambda y, s: metrics.accuracy_at(y, s, threshold), "auc": _rank_auc,
             "eer": lambda y, s: metrics.eer(y, s).eer}[metric]

    def statistic(index):
        return sum(sign * value(labels[index], s[index]) for sign, s in zip((1, -1), scores))

    groups = np.asarray(groups)
    if int(n_boot) < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"n_boot must be at least 1 and alpha between 0 and 1, got n_boot "
                         f"{n_boot} and alpha {alpha}")
    if groups.shape != labels.shape:
        raise ValueError(f"groups must hold one cluster id per pair ({len(labels)}), got shape "
                         f"{groups.shape}")
    if pd.isna(groups).any():
        raise ValueError(f"groups contain {int(pd.isna(groups).sum())} missing (NaN) cluster "
                         "id(s): give every pair its cluster, e.g. person_clusters(name_a, name_b)")
    estimate, clusters = statistic(slice(None)), pd.factorize(groups)[0]
    sizes = np.bincount(clusters)
    effective = sizes.sum() ** 2 / np.sum(sizes**2)
    if effective < MIN_CLUSTERS:
        warnings.warn(
            f"the {len(clusters)} pairs fall into {len(sizes)} cluster(s) of people, the largest "
            f"holding {sizes.max() / len(clusters):.0%} of them: about {effective:.1f} "
            f"independent clusters, fewer than the {MIN_CLUSTERS} a cluster bootstrap needs. The "
            "interval spans every possible value; test on more people to measure it.",
            UserWarning, stacklevel=3)
        return estimate, None, None, None
    rng, values = np.random.default_rng(seed), []
    while len(values) < n_boot:
        # Each pair comes as often as its cluster was drawn.
        times = np.bincount(rng.integers(0, len(sizes), len(sizes)), minlength=len(sizes))
        index = np.repeat(np.arange(len(labels)), times[clusters])
        if len(np.unique(labels[index])) == 2:
            values.append(statistic(index))
    return estimate, *np.quantile(values, [alpha / 2, 1 - alpha / 2]), np.array(values)


def _rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney's U: a sixteenth of ``metrics.roc``'s cost, and a bootstrap takes thousands."""
    ranks, same = rankdata(scores), labels == SAME
    n_same = same.sum()
    return float((ranks[same].sum() - n_same * (n_same + 1) / 2) / (n_same * (~same).sum()))


def bootstrap_ci(labels, scores, metric: str, groups, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0, threshold: float | None = None) -> ConfidenceInterval:
    """``accuracy`` is at the ``threshold`` fitted on VALIDATION: refitting it per resample
    would measure a different procedure. Too few clusters in ``groups`` give [0, 1]."""
    labels, scores = metrics.checked(labels, scores)
    estimate, low, high, _ = _bootstrap(labels, (scores,), groups, metric, threshold, n_boot,
                                        alpha, seed)
    return ConfidenceInterval(estimate, *((0.0, 1.0) if low is None else (low, high)))


def mcnemar(correct_a, correct_b) -> McNemarResult:
    """Exact two-sided McNemar test: two accuracies on the SAME items are not independent, and
    only the items where the methods disagree (``n10``: A right, B wrong) say which is better."""
    correct_a, correct_b = np.asarray(correct_a), np.asarray(correct_b)
    if (correct_a.ndim != 1 or correct_a.shape != correct_b.shape or len(correct_a) == 0
            or not np.isin(np.r_[correct_a, correct_b], (0, 1)).all()):
        raise ValueError(f"correct_a and correct_b must be non-empty True/False (or 1/0) arrays "
                         f"over the same items, got shapes {correct_a.shape} and "
                         f"{correct_b.shape}")
    correct_a, correct_b = correct_a.astype(bool), correct_b.astype(bool)
    n10, n01 = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p_value = 1.0 if n01 + n10 == 0 else float(binomtest(n10, n01 + n10, 0.5).pvalue)
    return McNemarResult(n01, n10, p_value, (n10 - n01) / len(correct_a))


def paired_difference(labels, a, b, groups, n_boot: int = 1000, alpha: float = 0.05,
                      seed: int = 0, one_sided: bool = False, metric: str = "auc",
                      threshold: float | None = None) -> PairedDifference:
    """``metric`` of ``a`` minus that of ``b``, both scored on each resample of ``groups`` so what
    they share cancels; too few clusters give [-1, 1] and p = 1 (the p-value's 1 + keeps it > 0)."""
    labels, a = metrics.checked(labels, a)
    estimate, low, high, differences = _bootstrap(labels, (a, metrics.checked(labels, b)[1]),
                                                  groups, metric, threshold, n_boot, alpha, seed)
    if differences is None:
        return PairedDifference(estimate, -1.0, 1.0, 1.0)
    below = np.sum(differences <= 0)  # one-sided: "is A better?"
    rarer = below if one_sided else min(below, np.sum(differences >= 0))
    p_value = min(1.0, (1 if one_sided else 2) * (1 + rarer) / (n_boot + 1))
    return PairedDifference(estimate, float(low), float(high), float(p_value))


def p_text(p_value: float, n_boot: int) -> str:
    """At the smallest two-sided p-value ``n_boot`` resamples can give, only "≤" it is known."""
    floor = 2 / (n_boot + 1)
    return f"≤ {floor:.2g}" if p_value <= floor * (1 + 1e-9) else f"{p_value:.2g}"


def reading(p_value: float, difference: float, first: str, second: str, alpha: float = 0.05) -> str:
    """``difference`` = first - second. "No measured difference" does not make them equal."""
    if not 0.0 < alpha < 1.0 or not 0.0 <= p_value <= 1.0 or np.isnan(difference):
        raise ValueError(f"an alpha and a p-value between 0 and 1 and a difference are needed, "
                         f"got alpha {alpha}, p_value {p_value} and difference {difference} "
                         "(a NaN means the test did not compute)")
    if p_value >= alpha:
        return "no measured difference"
    return f"{first} better" if difference > 0 else f"{second} better"
