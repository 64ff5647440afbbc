"""Verification and identification metrics, computed from one scoring pass.

A network scores each pair once; every metric here works on those ``labels`` and ``scores``
arrays, so sweeping a threshold costs a sort and a binary search instead of re-running the
network per threshold (a student's sweep that did took nine days). ``labels`` follow
``siamlib``'s convention (1 = same person), scores are "higher = more likely the same person",
and a pair counts as accepted ("same") when ``score >= threshold``.

The words, once: TAR (true accept rate) is the share of same-person pairs accepted, FAR (false
accept rate) the share of different-person pairs accepted, and FRR = 1 - TAR the share of
same-person pairs rejected, which the EER and the DET plot need. Other texts say GAR for TAR;
ISO/IEC 19795-1 and pyeer say FMR for FAR and FNMR for FRR ("FMR100" is the FRR at FAR 1%).
Thresholds are chosen on *validation* scores and applied to *test* scores: a threshold tuned on
the test set reports an accuracy no one could have had in advance. A rate one asks for is a
*target* (``target_far``); ``far`` in a result is the rate actually reached.

Test pairs share people (and photos), so they are not independent draws: ``bootstrap_ci`` and
``paired_auc_difference`` take ``groups`` (see ``person_clusters``) to resample whole clusters
of pairs instead, and two models scored on the same pairs are compared pair by pair
(``mcnemar``, ``paired_auc_difference``), not by two separate intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import binomtest, norm, rankdata
from sklearn import metrics as sk_metrics

from siamlib import DIFFERENT, SAME

BOOTSTRAP_METRICS = ("accuracy", "auc", "eer")
# Fewest independent clusters a cluster bootstrap may rest on; see ``bootstrap_ci``.
MIN_CLUSTERS = 20


@dataclass(frozen=True)
class Roc:
    """One point per distinct score, from the strictest threshold (+inf: accept nothing) to the
    most lenient (the lowest score: accept everything)."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float


@dataclass(frozen=True)
class EerPoint:
    """Where FAR equals FRR, and the threshold that gets there."""

    eer: float
    threshold: float


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold fitted for a target FAR, and the TAR and FAR it gives (``operating_point``);
    ``low, high`` bound the TAR; ``n_impostors`` counts the impostor pairs it was fitted on."""

    threshold: float
    tar: float
    far: float
    low: float
    high: float
    n_impostors: int
    estimable: bool


@dataclass(frozen=True)
class McNemarResult:
    """Where two methods disagree on the same items, and whether that is more than chance.

    ``n10``: items A got right and B wrong; ``n01``: A wrong and B right. Items both got right
    or both got wrong say nothing about which is better, so only these two counts enter the
    test. ``accuracy_difference`` is accuracy(A) - accuracy(B) = (n10 - n01) / items.
    """

    n01: int
    n10: int
    p_value: float
    accuracy_difference: float


@dataclass(frozen=True)
class PairedDifference(ConfidenceInterval):
    """A difference between two methods on the same pairs, with its paired bootstrap interval
    and two-sided bootstrap p-value (for "no difference")."""

    p_value: float


# --- input checks ---------------------------------------------------------------------------


def _finite(values, name: str) -> np.ndarray:
    """Scores as floats; NaN or +-inf is refused, since neither ranks against other scores (the
    mean of +inf and -inf templates is NaN, and a NaN compares as neither higher nor lower)."""
    values = np.asarray(values, dtype=float)
    counts = {"NaN": int(np.isnan(values).sum()), "infinite": int(np.isinf(values).sum())}
    if any(counts.values()):
        found = " and ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        raise ValueError(f"{name} contain {found} value(s); every score must be a finite number")
    return values


def _checked(labels, scores, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as floats, or a ValueError that says what is wrong.

    ROC-based metrics need both classes (FAR divides by the different-person pairs, TAR by the
    same-person pairs); counting outcomes at a fixed threshold does not.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.ndim != 1 or scores.ndim != 1:
        raise ValueError(f"labels and scores must be one-dimensional, got shapes {labels.shape} "
                         f"and {scores.shape}")
    if len(labels) != len(scores):
        raise ValueError(f"labels and scores must have the same length, got {len(labels)} "
                         f"labels and {len(scores)} scores")
    if len(labels) == 0:
        raise ValueError("no pairs given: labels and scores are empty")
    scores = _finite(scores, "scores")
    strays = ~np.isin(labels, (DIFFERENT, SAME))
    if strays.any():
        raise ValueError(f"labels must be {SAME} (same person) or {DIFFERENT} (different "
                         f"people), found {np.unique(labels[strays])[:5].tolist()}")
    labels = labels.astype(int)
    if both_classes and len(np.unique(labels)) < 2:
        raise ValueError(f"both same-person ({SAME}) and different-person ({DIFFERENT}) pairs "
                         f"are needed, but every label is {labels[0]}")
    return labels, scores


def _checked_threshold(threshold, name: str = "threshold") -> np.ndarray:
    """Thresholds may be +-inf (accept nothing / everything) but not NaN."""
    threshold = np.asarray(threshold, dtype=float)
    if np.isnan(threshold).any():
        raise ValueError(f"{name} is NaN: fit it on validation scores "
                         "(threshold_for_max_accuracy or operating_point)")
    return threshold


# --- ROC, error rates, EER ------------------------------------------------------------------


def _roc_points(labels: np.ndarray, scores: np.ndarray):
    """FAR, TAR and threshold at +inf and at every distinct score, strictest first.

    This is sklearn's ``roc_curve(..., drop_intermediate=False)`` (tested equal), without its
    per-call input validation, which costs ten times the work itself: a bootstrap of the EER
    computes a thousand ROCs. Intermediate points are kept, since the EER is interpolated
    between neighbours and dropping some would move it.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last pair of each score
    true_accepts = np.cumsum(labels[order] == SAME)[last]
    false_accepts = last + 1 - true_accepts
    return (np.r_[0.0, false_accepts / false_accepts[-1]],
            np.r_[0.0, true_accepts / true_accepts[-1]], np.r_[np.inf, ranked[last]])


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney: the chance a same-person pair outscores a different-person pair, ties
    counting half. One ``rankdata`` is about twenty times faster than sklearn's
    ``roc_auc_score``, which matters when a bootstrap computes it thousands of times."""
    is_same = labels == SAME
    n_same = int(is_same.sum())
    wins = rankdata(scores)[is_same].sum() - n_same * (n_same + 1) / 2
    return float(wins / (n_same * (len(labels) - n_same)))


def roc(labels, scores) -> Roc:
    """The ROC of one scoring pass; plot ``tar`` against ``far`` to compare models at a glance."""
    labels, scores = _checked(labels, scores)
    return Roc(*_roc_points(labels, scores), _auc(labels, scores))


def error_rates(labels, scores, thresholds) -> pd.DataFrame:
    """FAR, TAR, FRR and accuracy at many thresholds at once, one row per threshold in order.

    Each class is sorted once and each threshold is a binary search into it, so 10^6 scores
    against 10^3 thresholds take well under a second.
    """
    labels, scores = _checked(labels, scores)
    thresholds = _checked_threshold(np.atleast_1d(thresholds), "thresholds")
    genuine, impostor = np.sort(scores[labels == SAME]), np.sort(scores[labels == DIFFERENT])
    # Scores >= t are accepted: everything from the first position where t would go.
    genuine_accepted = len(genuine) - np.searchsorted(genuine, thresholds, side="left")
    impostor_accepted = len(impostor) - np.searchsorted(impostor, thresholds, side="left")
    tar, far = genuine_accepted / len(genuine), impostor_accepted / len(impostor)
    correct = genuine_accepted + len(impostor) - impostor_accepted
    return pd.DataFrame({"threshold": thresholds, "far": far, "tar": tar, "frr": 1.0 - tar,
                         "accuracy": correct / len(scores)})


def _eer(labels: np.ndarray, scores: np.ndarray) -> EerPoint:
    far, tar, thresholds = _roc_points(labels, scores)
    # FRR - FAR is 1 at +inf (accept nothing) and -1 when everything is accepted: find the
    # first point where it is <= 0 and interpolate along the segment before it.
    gap = (1.0 - tar) - far
    after = int(np.argmax(gap <= 0))
    before = after - 1
    fraction = gap[before] / (gap[before] - gap[after])
    rate = far[before] + fraction * (far[after] - far[before])
    upper, lower = thresholds[before], thresholds[after]
    threshold = lower if np.isinf(upper) else upper + fraction * (lower - upper)
    return EerPoint(float(rate), float(threshold))


def eer(labels, scores) -> EerPoint:
    """The equal error rate, a single threshold-free number to rank models by.

    The ROC is a set of points; FAR = FRR usually falls between two of them, so both the rate
    and the threshold are interpolated linearly along that segment. When the crossing lies on
    the first segment (from "accept nothing", threshold +inf) the threshold is the lower end's.
    """
    return _eer(*_checked(labels, scores))


# --- thresholds fitted on validation ----------------------------------------------------------


def _threshold_below(thresholds: np.ndarray, index: int) -> float:
    """Halfway from ``thresholds[index]`` to the next, more lenient, ROC threshold.

    Both accept exactly the same fitting pairs; the midpoint leaves a margin on both sides, so
    a test score a hair below the lowest accepted validation score is not rejected by luck.
    """
    if index + 1 == len(thresholds):
        return float(thresholds[index])
    return float((thresholds[index] + thresholds[index + 1]) / 2)


def threshold_for_max_accuracy(labels, scores) -> float:
    """The threshold with the highest accuracy, to fit on VALIDATION scores and apply to test.
    Among equally accurate thresholds the strictest is taken (see ``_threshold_below``)."""
    labels, scores = _checked(labels, scores)
    far, tar, thresholds = _roc_points(labels, scores)
    n_same = int((labels == SAME).sum())
    correct = tar * n_same + (1.0 - far) * (len(labels) - n_same)
    return _threshold_below(thresholds, int(np.argmax(correct)))


def operating_point(labels, scores, target_far: float, test_labels=None,
                    test_scores=None) -> OperatingPoint:
    """The most accepting threshold whose FAR on ``labels, scores`` is at most ``target_far``,
    and the TAR and FAR it gives.

    Alone, it describes these pairs' own ROC: the "TAR at FAR 1%" papers quote, at a threshold
    no one could have deployed, as it was tuned on the pairs it is scored on. The honest number
    fits on VALIDATION and counts on TEST (``test_labels, test_scores``); the test FAR then
    differs from the target, and that difference is the honest part.

    The threshold is +inf (accept nothing: TAR 0) when even the strictest finite one lets in
    too many impostors. ``low, high`` is the Wilson 95% interval of the TAR (scipy's
    ``binomtest``), which treats genuine pairs as independent: LFW pairs share people, so read
    it as the least uncertainty there is. A FAR of ``target_far`` is one false accept in
    ``1 / target_far`` impostor pairs; with fewer fitting impostors no threshold can show that
    rate, staying under it means no false accept at all, and the point is flagged
    ``estimable=False`` (a target of 0 only needs one impostor pair).
    """
    labels, scores = _checked(labels, scores)
    target_far = float(target_far)
    if not 0.0 <= target_far <= 1.0:
        raise ValueError(f"target_far must be a rate between 0 and 1, got {target_far}")
    if (test_labels is None) != (test_scores is None):
        raise ValueError("give both test_labels and test_scores, or neither")
    far, _, thresholds = _roc_points(labels, scores)
    threshold = _threshold_below(thresholds, int(np.flatnonzero(far <= target_far)[-1]))
    n_impostors = int(np.sum(labels == DIFFERENT))
    if test_labels is not None:
        labels, scores = _checked(test_labels, test_scores)
    accepted, same = scores >= threshold, labels == SAME
    true_accepts = int(np.sum(accepted & same))
    interval = binomtest(true_accepts, int(same.sum())).proportion_ci(method="wilson")
    return OperatingPoint(
        threshold=threshold, tar=true_accepts / int(same.sum()), far=float(accepted[~same].mean()),
        low=float(interval.low), high=float(interval.high), n_impostors=n_impostors,
        # The 1e-9 absorbs rounding, so that 100 pairs at 1% count as one expected false accept.
        estimable=bool(target_far == 0.0 or n_impostors * target_far >= 1.0 - 1e-9),
    )


def decidability(labels, scores) -> float:
    """Daugman's d' = |mu_genuine - mu_impostor| / sqrt((var_genuine + var_impostor) / 2).

    It ignores shifts and scales of the scores, and unlike AUC keeps growing once the classes
    stop overlapping, so it still ranks models whose AUC is 1. Variances are population ones
    (``ddof=0``), as pyeer's. Both classes constant: inf if they differ, else 0.
    """
    labels, scores = _checked(labels, scores)
    genuine, impostor = scores[labels == SAME], scores[labels == DIFFERENT]
    gap = abs(genuine.mean() - impostor.mean())
    spread = np.sqrt((genuine.var() + impostor.var()) / 2)
    if spread == 0:
        return np.inf if gap > 0 else 0.0
    return float(gap / spread)


# --- outcomes at one threshold, DET -----------------------------------------------------------


def outcome(labels, scores, threshold: float) -> np.ndarray:
    """Each pair's outcome as "TP", "FP", "FN" or "TN", to pick examples of each to look at."""
    labels, scores = _checked(labels, scores, both_classes=False)
    accepted, same = scores >= _checked_threshold(threshold), labels == SAME
    return np.select([same & accepted, ~same & accepted, same & ~accepted], ["TP", "FP", "FN"],
                     default="TN")


def confusion_at(labels, scores, threshold: float) -> dict[str, int]:
    """Counts of true/false accepts and rejects: ``tp`` same accepted, ``fp`` false accepts,
    ``fn`` false rejects, ``tn`` different rejected."""
    kinds = outcome(labels, scores, threshold)
    return {kind.lower(): int(np.sum(kinds == kind)) for kind in ("TP", "FP", "FN", "TN")}


def accuracy_at(labels, scores, threshold: float) -> float:
    """Share of pairs decided correctly at a threshold fitted on validation."""
    return float(np.isin(outcome(labels, scores, threshold), ("TP", "TN")).mean())


def det_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """FAR and FRR for a DET plot, where low error rates get the room an ROC squeezes out."""
    return sk_metrics.det_curve(*_checked(labels, scores))[:2]


def normal_deviate(p, eps: float = 1e-6) -> np.ndarray:
    """Probit of a rate, the DET plot's axis scale. Rates of exactly 0 or 1 would map to -inf or
    +inf and vanish from the plot, so they are clipped to ``[eps, 1 - eps]`` first."""
    return norm.ppf(np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps))


# --- bootstrap ------------------------------------------------------------------------------


def person_clusters(name_a, name_b) -> np.ndarray:
    """One cluster id per pair: the connected component of the people in it.

    People are linked when they appear in a pair together (a same-person pair links a person
    to itself), so two pairs share a cluster when a chain of shared people joins them. Pairs
    in different clusters share no one, and resampling whole clusters (``groups=`` in
    ``bootstrap_ci`` and ``paired_auc_difference``) treats only those as independent. On
    LFW-a's pairsDevTest the 1000 pairs fall into 463 clusters of at most 25 pairs.

    Returns:
        Integer ids 0, 1, ... numbered in order of first appearance down the pairs.
    """
    name_a, name_b = np.asarray(name_a), np.asarray(name_b)
    if name_a.ndim != 1 or name_a.shape != name_b.shape:
        raise ValueError(f"name_a and name_b must be one-dimensional and of the same length, "
                         f"got shapes {name_a.shape} and {name_b.shape}")
    person, people = pd.factorize(np.concatenate([name_a, name_b]))
    first, second = person[: len(name_a)], person[len(name_a) :]
    links = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(people),) * 2)
    component = connected_components(links, directed=False)[1]
    return pd.factorize(component[first])[0]


def _clusters(groups, n_pairs: int) -> np.ndarray | None:
    """Cluster ids as 0..k-1, one per pair (None without groups)."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_pairs:
        raise ValueError(f"groups must hold one cluster id per pair ({n_pairs}), got shape "
                         f"{groups.shape}")
    missing = int(pd.isna(groups).sum())
    if missing:
        raise ValueError(f"groups contain {missing} missing (NaN) cluster id(s): give every pair "
                         "its cluster, e.g. person_clusters(name_a, name_b)")
    return pd.factorize(groups)[0]


def _too_few_clusters(clusters: np.ndarray | None) -> bool:
    """Whether ``clusters`` are too few to bootstrap (see ``bootstrap_ci``); if so, warn why."""
    if clusters is None:
        return False
    sizes = np.bincount(clusters)
    effective = sizes.sum() ** 2 / np.sum(sizes**2)
    if effective >= MIN_CLUSTERS:
        return False
    warnings.warn(
        f"the {len(clusters)} pairs fall into {len(sizes)} cluster(s) of people, the largest "
        f"holding {sizes.max() / len(clusters):.0%} of them: about {effective:.1f} independent "
        f"clusters, fewer than the {MIN_CLUSTERS} a cluster bootstrap needs. The interval spans "
        "every possible value; test on more people to measure it.", UserWarning, stacklevel=3)
    return True


def _resamples(labels: np.ndarray, clusters: np.ndarray | None, n_boot: int, seed: int):
    """Yield ``n_boot`` resamples, each an array of pair indices drawn with replacement.

    Without clusters, pairs are drawn within each class, so every resample keeps the test set's
    balance and both classes. With clusters, whole clusters are drawn and the balance varies
    as it would with another draw of people; a draw that misses a class has no ROC and is
    redrawn (rare unless one class sits in only a few clusters).
    """
    rng = np.random.default_rng(seed)
    same, different = np.flatnonzero(labels == SAME), np.flatnonzero(labels == DIFFERENT)
    n_clusters = 0 if clusters is None else clusters.max() + 1
    drawn = 0
    while drawn < n_boot:
        if clusters is None:
            index = np.concatenate([rng.choice(same, len(same)),
                                    rng.choice(different, len(different))])
        else:
            # Each pair comes as often as its cluster was drawn.
            times = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
            index = np.repeat(np.arange(len(labels)), times[clusters])
            if len(np.unique(labels[index])) < 2:
                continue
        drawn += 1
        yield index


def _checked_bootstrap(n_boot: int, alpha: float) -> int:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return int(n_boot)


def _metric_of(metric: str, labels, scores, threshold) -> float:
    if metric == "accuracy":
        return float(np.mean((scores >= threshold) == (labels == SAME)))
    return _auc(labels, scores) if metric == "auc" else _eer(labels, scores).eer


def bootstrap_ci(labels, scores, metric: str, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0, threshold: float | None = None,
                 groups=None) -> ConfidenceInterval:
    """How much a metric could move with a different draw of test pairs (or of people).

    Without ``groups``, pairs are resampled as if independent, which LFW test pairs are not:
    a model that fails on one person fails on all of that person's pairs together, so the pair
    interval is too narrow. ``groups`` (e.g. ``person_clusters``) resamples whole clusters.

    A cluster bootstrap learns the spread only from which clusters a resample holds: with one
    cluster every resample is the whole set and the interval has zero width, and with a few it
    is far too narrow. Cluster-robust statistics calls fewer than about 20-50 clusters "few"
    (Cameron & Miller, 2015); we take the low end, ``MIN_CLUSTERS`` = 20, counted as the
    effective number (sum of sizes)² / (sum of squared sizes), which is k for k equal clusters
    and near 1 when one cluster holds most pairs. Below it a warning says so and the interval
    is [0, 1], every value the metric can take: the notebooks still run to the end on a small
    face set, and say the truth about it.

    ``accuracy`` uses the fixed ``threshold`` chosen on VALIDATION: refitting it per resample
    would measure a different procedure. The interval is the resamples' percentile interval.
    """
    labels, scores = _checked(labels, scores)
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {BOOTSTRAP_METRICS}, got {metric!r}")
    if metric == "accuracy" and threshold is None:
        raise ValueError("accuracy needs the threshold chosen on validation (threshold=...)")
    threshold = None if threshold is None else float(_checked_threshold(threshold))
    n_boot = _checked_bootstrap(n_boot, alpha)
    clusters = _clusters(groups, len(labels))
    estimate = _metric_of(metric, labels, scores, threshold)
    if _too_few_clusters(clusters):
        return ConfidenceInterval(estimate, 0.0, 1.0)
    values = [_metric_of(metric, labels[index], scores[index], threshold)
              for index in _resamples(labels, clusters, n_boot, seed)]
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(estimate, float(low), float(high))


# --- two methods on the same pairs ----------------------------------------------------------


def mcnemar(correct_a, correct_b) -> McNemarResult:
    """Exact two-sided McNemar test: is method A right more often than B on the SAME items?

    Two accuracies on the same test pairs are not independent samples, so two confidence
    intervals that overlap do not mean "no difference". McNemar's test looks only at the
    items where the methods disagree: if neither is better, each such item is a fair coin, so
    ``n10`` is Binomial(n01 + n10, 1/2) and the p-value is scipy's exact binomial test (1 when
    they never disagree). It works for any per-item correctness: verification pairs decided at
    a validation threshold, or paired N-way one-shot tasks (``n_way_correct``).
    """
    correct_a, correct_b = np.asarray(correct_a), np.asarray(correct_b)
    for name, values in (("correct_a", correct_a), ("correct_b", correct_b)):
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"{name} must be a non-empty one-dimensional array, got shape "
                             f"{values.shape}")
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must be True/False (or 1/0) per item")
    if len(correct_a) != len(correct_b):
        raise ValueError(f"correct_a and correct_b must cover the same items, got "
                         f"{len(correct_a)} and {len(correct_b)}")
    correct_a, correct_b = correct_a.astype(bool), correct_b.astype(bool)
    n10, n01 = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p_value = 1.0 if n01 + n10 == 0 else float(binomtest(n10, n01 + n10, 0.5).pvalue)
    return McNemarResult(n01, n10, p_value, (n10 - n01) / len(correct_a))


def paired_auc_difference(labels, scores_a, scores_b, groups=None, n_boot: int = 1000,
                          alpha: float = 0.05, seed: int = 0) -> PairedDifference:
    """AUC(A) - AUC(B) on the same pairs, with a paired bootstrap interval and p-value.

    Each resample draws one set of pairs (or, with ``groups``, of clusters, as in
    ``bootstrap_ci``, with the same rule for too few clusters: then the interval is [-1, 1] and
    p = 1) and scores BOTH methods on it, so what the two share (the same hard pairs) cancels
    in the difference; that is why it is tighter than two separate intervals. The p-value is
    two-sided for "no difference": twice the smaller share of resampled differences on either
    side of 0, with one added to each count (``2 (1 + k) / (n_boot + 1)``) so it is never
    reported as exactly 0; capped at 1.
    """
    labels, scores_a = _checked(labels, scores_a)
    scores_b = _checked(labels, scores_b)[1]
    n_boot = _checked_bootstrap(n_boot, alpha)
    clusters = _clusters(groups, len(labels))
    estimate = _auc(labels, scores_a) - _auc(labels, scores_b)
    if _too_few_clusters(clusters):
        return PairedDifference(estimate, -1.0, 1.0, 1.0)
    differences = np.array([_auc(labels[i], scores_a[i]) - _auc(labels[i], scores_b[i])
                            for i in _resamples(labels, clusters, n_boot, seed)])
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    on_one_side = min(np.sum(differences <= 0), np.sum(differences >= 0))
    p_value = min(1.0, 2 * (1 + on_one_side) / (n_boot + 1))
    return PairedDifference(estimate, float(low), float(high), float(p_value))


def reading(p_value: float, difference: float, first: str, second: str, alpha: float = 0.05) -> str:
    """What a paired test of ``first`` against ``second`` lets us say, at the ``alpha`` level.

    ``difference`` is first minus second (``McNemarResult.accuracy_difference``,
    ``PairedDifference.estimate``). Where ``p_value >= alpha`` the answer is "no measured
    difference": the test set could not tell the two apart, which does not make them equal.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0.0 <= p_value <= 1.0 or np.isnan(difference):  # NaN fails every comparison
        raise ValueError(f"a p-value between 0 and 1 and a difference are needed, got p_value "
                         f"{p_value} and difference {difference}: the test did not compute")
    if p_value >= alpha:
        return "no measured difference"
    return f"{first} better" if difference > 0 else f"{second} better"


# --- one-shot tasks and identification --------------------------------------------------------


def _above_and_tied(scores_matrix: np.ndarray, correct_index: np.ndarray):
    """Per task, how many candidates score above the correct one, and how many level with it
    (itself included)."""
    correct = scores_matrix[np.arange(len(scores_matrix)), correct_index][:, None]
    return np.sum(scores_matrix > correct, axis=1), np.sum(scores_matrix == correct, axis=1)


def _credit(scores_matrix: np.ndarray, correct_index: np.ndarray, k: int = 1) -> np.ndarray:
    """Per task, the chance the correct column lands in the top ``k`` when ties are broken at
    random: it takes each of ranks above+1 .. above+tied equally often. A scorer that gives
    every candidate the same score therefore earns exactly k/N, the chance level, instead of 0
    (ties as wrong) or 1 (ties as right)."""
    above, tied = _above_and_tied(scores_matrix, correct_index)
    return np.clip((k - above) / tied, 0.0, 1.0)


def _checked_tasks(scores_matrix, correct_index) -> tuple[np.ndarray, np.ndarray]:
    scores_matrix = np.asarray(scores_matrix, dtype=float)
    if scores_matrix.ndim != 2 or scores_matrix.shape[1] < 2 or len(scores_matrix) == 0:
        raise ValueError(f"scores_matrix must be (tasks, N) with at least one task and N >= 2, "
                         f"got shape {scores_matrix.shape}")
    scores_matrix = _finite(scores_matrix, "scores_matrix")
    n_tasks, n_way = scores_matrix.shape
    correct_index = np.broadcast_to(np.asarray(correct_index), (n_tasks,))
    if (not np.issubdtype(correct_index.dtype, np.integer)
            or not ((correct_index >= 0) & (correct_index < n_way)).all()):
        raise ValueError(f"correct_index must be integer column(s) in 0..{n_way - 1}")
    return scores_matrix, correct_index


def n_way_accuracy(scores_matrix, correct_index: int | np.ndarray = 0) -> float:
    """Accuracy on N-way one-shot tasks (Koch et al.): pick the candidate that scores highest.

    ``scores_matrix`` is (tasks, N), e.g. ``scoring.one_shot_scores``; ``correct_index`` the
    column of the matching candidate, one for all tasks or one per task. Ties are broken at
    random in expectation (see ``_credit``), so a constant scorer gets 1/N, the chance level.
    """
    return float(np.mean(_credit(*_checked_tasks(scores_matrix, correct_index))))


def n_way_correct(scores_matrix, seed=0, correct_index: int | np.ndarray = 0) -> np.ndarray:
    """Per task, whether the matching candidate scored highest: what ``mcnemar`` compares.

    ``n_way_accuracy`` credits a tie in expectation (1/k among k tied maxima); a paired test
    needs a yes or no per task, so here each tie is broken by a draw from
    ``np.random.default_rng(seed)`` (an int or a Generator): with the same seed, two methods
    that tie on a task get the same draw there. The mean over many tasks approaches
    ``n_way_accuracy``.
    """
    above, tied = _above_and_tied(*_checked_tasks(scores_matrix, correct_index))
    # Among the ``tied`` level candidates (the match included), the match wins one draw in tied.
    drawn = np.random.default_rng(seed).integers(0, tied)
    return (above == 0) & (drawn == 0)


def identification_accuracy(probe_gallery_scores, probe_labels, gallery_labels,
                            reduce: str = "max", k: int = 1) -> float:
    """Rank-``k`` accuracy of closed-set identification against a gallery of templates.

    ``probe_gallery_scores`` is (probes, templates), ``probe_labels`` and ``gallery_labels``
    the identity of each row and column. An identity's templates (images) are combined with
    ``reduce`` ("max": the best-matching image decides, forgiving one bad photo of the right
    person; "mean": all images vote, forgiving one lucky photo of the wrong one). A probe is
    identified when its identity is among the ``k`` highest, ties broken at random in
    expectation as in ``n_way_accuracy``.
    """
    scores = np.asarray(probe_gallery_scores, dtype=float)
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    if scores.size == 0 or scores.shape != (len(probe_labels), len(gallery_labels)):
        raise ValueError(f"probe_gallery_scores must be a non-empty (probes, templates) = "
                         f"({len(probe_labels)}, {len(gallery_labels)}) array, got shape "
                         f"{scores.shape}")
    scores = _finite(scores, "probe_gallery_scores")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    identities = np.unique(gallery_labels)
    if not 1 <= k <= len(identities):
        raise ValueError(f"k must be between 1 and {len(identities)} (gallery identities), got {k}")
    unknown = ~np.isin(probe_labels, identities)
    if unknown.any():
        raise ValueError(f"probe identities missing from the gallery: "
                         f"{np.unique(probe_labels[unknown])[:5]}")
    # (identities, probes), identities sorted as np.unique sorts them.
    per_identity = pd.DataFrame(scores.T).groupby(gallery_labels).agg(reduce).to_numpy().T
    return float(np.mean(_credit(per_identity, np.searchsorted(identities, probe_labels), k)))


# --- the notebooks' table row ---------------------------------------------------------------


def summary(labels, scores, threshold: float) -> dict[str, float]:
    """The one-line results row the notebooks print for a test set.

    ``threshold`` is the one fitted on VALIDATION; accuracy uses it, while AUC, EER and TAR at
    FAR 1% / 0.1% describe the test ROC itself and need no threshold.
    """
    labels, scores = _checked(labels, scores)
    return {
        "accuracy": accuracy_at(labels, scores, threshold),
        "auc": _auc(labels, scores),
        "eer": _eer(labels, scores).eer,
        "tar_at_far_1pct": operating_point(labels, scores, 0.01).tar,
        "tar_at_far_0_1pct": operating_point(labels, scores, 0.001).tar,
        "threshold": float(threshold),
    }
