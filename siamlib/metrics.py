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

Test pairs share people, so they are not independent draws: intervals resample whole clusters
of people (``person_clusters``), and two models are compared pair by pair, not by two intervals.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import binomtest, norm
from sklearn import metrics as sk_metrics

from siamlib import DIFFERENT, SAME

BOOTSTRAP_METRICS = ("accuracy", "auc", "eer")
# Fewest independent clusters a cluster bootstrap may rest on; see ``bootstrap_ci``.
MIN_CLUSTERS = 20


# Results are plain records. A ROC runs from the strictest threshold (+inf: accept nothing) to
# the most lenient (the lowest score: accept everything), one point per distinct score.
Roc = namedtuple("Roc", "far tar thresholds auc")
EerPoint = namedtuple("EerPoint", "eer threshold")
ConfidenceInterval = namedtuple("ConfidenceInterval", "estimate low high")
OperatingPoint = namedtuple("OperatingPoint", "threshold tar far low high n_impostors estimable")
McNemarResult = namedtuple("McNemarResult", "n01 n10 p_value accuracy_difference")
PairedDifference = namedtuple("PairedDifference", "estimate low high p_value")


# --- input checks ---------------------------------------------------------------------------
def _finite(values, name: str) -> np.ndarray:
    """Scores as floats; NaN or +-inf is refused, since neither ranks against other scores (the
    mean of +inf and -inf templates is NaN, and a NaN compares as neither higher nor lower)."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contain {np.isnan(values).sum()} NaN and "
                         f"{np.isinf(values).sum()} infinite value(s); give finite numbers")
    return values


def _checked(labels, scores, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as floats, or a ValueError that says what is wrong. ROC
    metrics need both classes (FAR divides by the different-person pairs, TAR by the same-person
    pairs); counting outcomes at a fixed threshold does not."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.ndim != 1 or labels.shape != scores.shape or len(labels) == 0:
        raise ValueError(f"labels and scores must be non-empty, one-dimensional and of the same "
                         f"length, got shapes {labels.shape} and {scores.shape}")
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
    """FAR, TAR and threshold at +inf and at every distinct score, strictest first: sklearn's
    ``roc_curve(..., drop_intermediate=False)`` (tested equal) without its input validation,
    which costs ten times the work itself, and a bootstrap computes a thousand ROCs. No point is
    dropped: the EER interpolates between neighbours."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last pair of each score
    true_accepts = np.cumsum(labels[order] == SAME)[last]
    false_accepts = last + 1 - true_accepts
    return (np.r_[0.0, false_accepts / false_accepts[-1]],
            np.r_[0.0, true_accepts / true_accepts[-1]], np.r_[np.inf, ranked[last]])


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The trapezoids under every ROC point: the chance a same-person pair outscores a
    different-person pair, ties counting half (a tie across classes is a diagonal step)."""
    far, tar, _ = _roc_points(labels, scores)
    return float(np.diff(far) @ (tar[1:] + tar[:-1]) / 2)


def roc(labels, scores) -> Roc:
    """The ROC of one scoring pass; plot ``tar`` against ``far`` to compare models at a glance."""
    labels, scores = _checked(labels, scores)
    return Roc(*_roc_points(labels, scores), _auc(labels, scores))


def error_rates(labels, scores, thresholds) -> pd.DataFrame:
    """FAR, TAR, FRR and accuracy at many thresholds, one row per threshold in order. Each class
    is sorted once and each threshold is a binary search into it, so 10^6 scores against 10^3
    thresholds take well under a second."""
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
    # FAR - FRR rises strictly (each ROC point accepts one more pair or more) from -1 (accept
    # nothing) to 1 (accept everything), so np.interp finds where it crosses 0.
    far_minus_frr = far - (1.0 - tar)
    thresholds[0] = thresholds[1]  # +inf would make the first segment's threshold inf or NaN
    return EerPoint(float(np.interp(0.0, far_minus_frr, far)),
                    float(np.interp(0.0, far_minus_frr, thresholds)))


def eer(labels, scores) -> EerPoint:
    """The equal error rate, a single threshold-free number to rank models by. FAR = FRR
    usually falls between two ROC points, so rate and threshold are interpolated linearly along
    that segment; on the first one (from +inf, "accept nothing") the threshold is its lower end."""
    return _eer(*_checked(labels, scores))


# --- thresholds fitted on validation ----------------------------------------------------------
def _fitted(thresholds: np.ndarray) -> np.ndarray:
    """Each ROC threshold moved halfway to the next, more lenient, one: both accept the same
    fitting pairs, and the margin keeps a test score a hair below the lowest accepted
    validation score from being rejected by luck. +inf (accept nothing) stays."""
    return np.r_[(thresholds[:-1] + thresholds[1:]) / 2, thresholds[-1]]


def threshold_for_max_accuracy(labels, scores) -> float:
    """The threshold with the highest accuracy, to fit on VALIDATION scores and apply to test.
    Among equally accurate thresholds the strictest is taken (see ``_fitted``)."""
    labels, scores = _checked(labels, scores)
    far, tar, thresholds = _roc_points(labels, scores)
    n_same = int((labels == SAME).sum())
    correct = tar * n_same + (1.0 - far) * (len(labels) - n_same)
    return float(_fitted(thresholds)[np.argmax(correct)])


def operating_point(labels, scores, target_far: float, test_labels=None,
                    test_scores=None) -> OperatingPoint:
    """The most accepting threshold whose FAR on ``labels, scores`` is at most ``target_far``,
    and the TAR and FAR it gives.

    Alone, it describes these pairs' own ROC: the "TAR at FAR 1%" papers quote, at a threshold
    tuned on the pairs it is scored on. The honest number fits on VALIDATION and counts on TEST
    (``test_labels, test_scores``); that the test FAR then misses the target is the honest part.
    The threshold is +inf (TAR 0) when even the strictest finite one lets in too many impostors.
    ``low, high`` is the TAR's Wilson 95% interval, which treats genuine pairs as independent:
    LFW pairs share people, so read it as the least uncertainty there is. A FAR of
    ``target_far`` is one false accept in ``1 / target_far`` impostor pairs; with fewer fitting
    impostors (``n_impostors``) no threshold can show that rate, and the point is flagged
    ``estimable=False`` (a target of 0 only needs one impostor pair).
    """
    labels, scores = _checked(labels, scores)
    target_far = float(target_far)
    if not 0.0 <= target_far <= 1.0:
        raise ValueError(f"target_far must be a rate between 0 and 1, got {target_far}")
    if (test_labels is None) != (test_scores is None):
        raise ValueError("give both test_labels and test_scores, or neither")
    far, _, thresholds = _roc_points(labels, scores)
    threshold = float(_fitted(thresholds)[np.flatnonzero(far <= target_far)[-1]])
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
    """Daugman's d' = |mu_genuine - mu_impostor| / sqrt((var_genuine + var_impostor) / 2): blind
    to shifts and scales of the scores, and unlike AUC still growing once the classes stop
    overlapping, so it ranks models whose AUC is 1. Population variances (``ddof=0``), as pyeer's.
    Both classes constant: inf if they differ, else 0."""
    labels, scores = _checked(labels, scores)
    genuine, impostor = scores[labels == SAME], scores[labels == DIFFERENT]
    gap = abs(genuine.mean() - impostor.mean())
    spread = np.sqrt((genuine.var() + impostor.var()) / 2)
    return float(gap / spread) if spread else (np.inf if gap > 0 else 0.0)


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
    """One cluster id per pair (0, 1, ... in order of first appearance): the connected component
    of the people in it. Two pairs share a cluster when a chain of shared people joins them, so
    pairs in different clusters share no one, and resampling whole clusters (``groups=``)
    treats only those as independent. LFW-a's pairsDevTest: 463 clusters of at most 25 pairs."""
    name_a, name_b = np.asarray(name_a), np.asarray(name_b)
    if name_a.ndim != 1 or name_a.shape != name_b.shape:
        raise ValueError(f"name_a and name_b must be one-dimensional and of the same length, "
                         f"got shapes {name_a.shape} and {name_b.shape}")
    person, people = pd.factorize(np.concatenate([name_a, name_b]))
    first, second = person[: len(name_a)], person[len(name_a) :]
    links = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(people),) * 2)
    component = connected_components(links, directed=False)[1]
    return pd.factorize(component[first])[0]


def _resampled(statistic, labels: np.ndarray, groups, n_boot: int, alpha: float, seed: int):
    """``statistic(index)`` on ``n_boot`` resamples of pair indices, or None (with a warning)
    when ``groups`` are too few clusters (see ``bootstrap_ci``). Without groups, pairs are drawn
    within each class, keeping the balance; with groups, whole clusters are drawn and the
    balance varies as with another draw of people (a draw missing a class is drawn again)."""
    if int(n_boot) < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"n_boot must be at least 1 and alpha between 0 and 1, got n_boot "
                         f"{n_boot} and alpha {alpha}")
    rng = np.random.default_rng(seed)
    if groups is None:
        same, different = np.flatnonzero(labels == SAME), np.flatnonzero(labels == DIFFERENT)
        return np.array([statistic(np.r_[rng.choice(same, len(same)),
                                          rng.choice(different, len(different))])
                         for _ in range(int(n_boot))])
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"groups must hold one cluster id per pair ({len(labels)}), got shape "
                         f"{groups.shape}")
    if pd.isna(groups).any():
        raise ValueError(f"groups contain {int(pd.isna(groups).sum())} missing (NaN) cluster "
                         "id(s): give every pair its cluster, e.g. person_clusters(name_a, name_b)")
    clusters = pd.factorize(groups)[0]
    sizes = np.bincount(clusters)
    effective = sizes.sum() ** 2 / np.sum(sizes**2)
    if effective < MIN_CLUSTERS:
        warnings.warn(
            f"the {len(clusters)} pairs fall into {len(sizes)} cluster(s) of people, the largest "
            f"holding {sizes.max() / len(clusters):.0%} of them: about {effective:.1f} "
            f"independent clusters, fewer than the {MIN_CLUSTERS} a cluster bootstrap needs. The "
            "interval spans every possible value; test on more people to measure it.",
            UserWarning, stacklevel=3)
        return None
    values = []
    while len(values) < n_boot:
        # Each pair comes as often as its cluster was drawn.
        times = np.bincount(rng.integers(0, len(sizes), len(sizes)), minlength=len(sizes))
        index = np.repeat(np.arange(len(labels)), times[clusters])
        if len(np.unique(labels[index])) == 2:
            values.append(statistic(index))
    return np.array(values)


def bootstrap_ci(labels, scores, metric: str, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0, threshold: float | None = None,
                 groups=None) -> ConfidenceInterval:
    """How much a metric could move with a different draw of test pairs (or of people): the
    resamples' percentile interval.

    Without ``groups``, pairs are resampled as if independent, which LFW test pairs are not: a
    model that fails on one person fails on all of that person's pairs, so the interval is too
    narrow. ``groups`` (e.g. ``person_clusters``) resamples whole clusters. Those learn the
    spread only from which clusters a resample holds: one cluster gives zero width, a few far
    too little. Cluster-robust statistics calls fewer than about 20-50 clusters "few" (Cameron &
    Miller, 2015); below ``MIN_CLUSTERS`` = 20, counted as (sum of sizes)² / (sum of squared
    sizes) (k for k equal clusters, near 1 when one holds most pairs), a warning says so and the
    interval is [0, 1], every value the metric can take: a small face set runs to the end and
    says the truth. ``accuracy`` uses the fixed ``threshold`` chosen on VALIDATION: refitting it
    per resample would measure a different procedure.
    """
    labels, scores = _checked(labels, scores)
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {BOOTSTRAP_METRICS}, got {metric!r}")
    if metric == "accuracy" and threshold is None:
        raise ValueError("accuracy needs the threshold chosen on validation (threshold=...)")
    if threshold is not None:
        threshold = float(_checked_threshold(threshold))

    def value(index) -> float:
        if metric == "accuracy":
            return float(np.mean((scores[index] >= threshold) == (labels[index] == SAME)))
        if metric == "auc":
            return _auc(labels[index], scores[index])
        return _eer(labels[index], scores[index]).eer

    estimate, values = value(slice(None)), _resampled(value, labels, groups, n_boot, alpha, seed)
    if values is None:
        return ConfidenceInterval(estimate, 0.0, 1.0)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(estimate, float(low), float(high))


# --- two methods on the same pairs ----------------------------------------------------------
def mcnemar(correct_a, correct_b) -> McNemarResult:
    """Exact two-sided McNemar test: is method A right more often than B on the SAME items?

    Two accuracies on the same test pairs are not independent, so overlapping intervals do not
    mean "no difference". Only items where the methods disagree say which is better: ``n10`` (A
    right, B wrong) and ``n01`` (A wrong, B right). If neither is better each is a fair coin, so
    ``n10`` is Binomial(n01 + n10, 1/2): scipy's exact test (p = 1 if they never disagree).
    ``accuracy_difference`` is (n10 - n01) / items. Any per-item correctness works: pairs decided
    at a validation threshold, or N-way one-shot tasks (``n_way_correct``).
    """
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


def paired_auc_difference(labels, scores_a, scores_b, groups=None, n_boot: int = 1000,
                          alpha: float = 0.05, seed: int = 0,
                          one_sided: bool = False) -> PairedDifference:
    """AUC(A) - AUC(B) on the same pairs, with a paired bootstrap interval and p-value.

    Each resample (of pairs, or of ``groups`` as in ``bootstrap_ci``; too few clusters give
    [-1, 1] and p = 1) scores BOTH methods, so what they share (the same hard pairs) cancels in
    the difference: tighter than two separate intervals. The two-sided p-value for "no
    difference" is ``2 (1 + k) / (n_boot + 1)``, capped at 1, with k the resampled differences on
    the rarer side of 0; the one added keeps it from reading exactly 0. ``one_sided`` asks only
    "is A better?": k counts the differences at or below 0, without the 2.
    """
    labels, scores_a = _checked(labels, scores_a)
    scores_b = _checked(labels, scores_b)[1]

    def difference(index) -> float:
        return _auc(labels[index], scores_a[index]) - _auc(labels[index], scores_b[index])

    estimate = difference(slice(None))
    differences = _resampled(difference, labels, groups, n_boot, alpha, seed)
    if differences is None:
        return PairedDifference(estimate, -1.0, 1.0, 1.0)
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    if one_sided:
        p_value = (1 + np.sum(differences <= 0)) / (n_boot + 1)
    else:
        on_one_side = min(np.sum(differences <= 0), np.sum(differences >= 0))
        p_value = min(1.0, 2 * (1 + on_one_side) / (n_boot + 1))
    return PairedDifference(estimate, float(low), float(high), float(p_value))


def reading(p_value: float, difference: float, first: str, second: str, alpha: float = 0.05) -> str:
    """What a paired test of ``first`` against ``second`` lets us say at the ``alpha`` level;
    ``difference`` is first minus second. "No measured difference" (``p_value >= alpha``): the
    test set could not tell the two apart, which does not make them equal."""
    if not 0.0 < alpha < 1.0 or not 0.0 <= p_value <= 1.0 or np.isnan(difference):
        raise ValueError(f"an alpha and a p-value between 0 and 1 and a difference are needed, "
                         f"got alpha {alpha}, p_value {p_value} and difference {difference} "
                         "(a NaN means the test did not compute)")
    if p_value >= alpha:
        return "no measured difference"
    return f"{first} better" if difference > 0 else f"{second} better"


# --- one-shot tasks and identification --------------------------------------------------------
def _above_and_tied(candidates: np.ndarray, correct: np.ndarray):
    correct = correct[:, None]  # one row per task; ``tied`` counts the correct one itself
    return np.sum(candidates > correct, axis=1), np.sum(candidates == correct, axis=1)


def _credit(candidates: np.ndarray, correct: np.ndarray, k: int = 1) -> np.ndarray:
    """Per task, the chance the correct candidate lands in the top ``k`` when ties are broken at
    random (it takes ranks above+1 .. above+tied equally often): a constant scorer earns k/N,
    the chance level, not 0 (ties as wrong) or 1 (ties as right)."""
    above, tied = _above_and_tied(candidates, correct)
    return np.clip((k - above) / tied, 0.0, 1.0)


def _checked_tasks(scores_matrix) -> np.ndarray:
    scores_matrix = _finite(scores_matrix, "scores_matrix")
    if scores_matrix.ndim != 2 or scores_matrix.shape[1] < 2 or len(scores_matrix) == 0:
        raise ValueError(f"scores_matrix must be (tasks, N) with at least one task and N >= 2, "
                         f"got shape {scores_matrix.shape}")
    return scores_matrix


def n_way_accuracy(scores_matrix) -> float:
    """Accuracy on N-way one-shot tasks (Koch et al.): pick the candidate that scores highest.
    ``scores_matrix`` is (tasks, N) with the match first, as ``scoring.one_shot_scores`` gives
    it. Ties count in expectation (``_credit``)."""
    scores_matrix = _checked_tasks(scores_matrix)
    return float(np.mean(_credit(scores_matrix, scores_matrix[:, 0])))


def n_way_correct(scores_matrix, seed=0) -> np.ndarray:
    """Per task, whether the match (column 0) scored highest: what ``mcnemar`` compares. A
    paired test needs a yes or no per task, so a tie is broken by a draw from
    ``np.random.default_rng(seed)`` (an int or a Generator): two methods tying on a task get the
    same draw with the same seed. Over many tasks the mean approaches ``n_way_accuracy``."""
    scores_matrix = _checked_tasks(scores_matrix)
    above, tied = _above_and_tied(scores_matrix, scores_matrix[:, 0])
    # Among the ``tied`` level candidates (the match included), the match wins one draw in tied.
    drawn = np.random.default_rng(seed).integers(0, tied)
    return (above == 0) & (drawn == 0)


def identification_accuracy(probe_gallery_scores, probe_labels, gallery_labels,
                            reduce: str = "max", k: int = 1) -> float:
    """Rank-``k`` accuracy of closed-set identification against a gallery of templates.

    ``probe_gallery_scores`` is (probes, templates), labelled by ``probe_labels`` and
    ``gallery_labels``. An identity's templates are combined with ``reduce`` ("max": the best
    image decides, forgiving one bad photo of the right person; "mean": all vote, forgiving one
    lucky photo of the wrong one). Ties count in expectation, as in ``n_way_accuracy``.
    """
    scores = _finite(probe_gallery_scores, "probe_gallery_scores")
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    identities = np.unique(gallery_labels)
    unknown = np.unique(probe_labels[~np.isin(probe_labels, identities)])
    if scores.size == 0 or scores.shape != (len(probe_labels), len(gallery_labels)):
        raise ValueError(f"probe_gallery_scores must be a non-empty (probes, templates) = "
                         f"({len(probe_labels)}, {len(gallery_labels)}) array, got shape "
                         f"{scores.shape}")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    if not 1 <= k <= len(identities):
        raise ValueError(f"k must be between 1 and {len(identities)} (gallery identities), got {k}")
    if len(unknown):
        raise ValueError(f"probe identities missing from the gallery: {unknown[:5].tolist()}")
    # (probes, identities), the identities in np.unique's order, as ``identities`` holds them.
    per_identity = pd.DataFrame(scores.T).groupby(gallery_labels).agg(reduce).to_numpy().T
    correct = per_identity[np.arange(len(probe_labels)), np.searchsorted(identities, probe_labels)]
    return float(np.mean(_credit(per_identity, correct, k)))


# --- the notebooks' table row ---------------------------------------------------------------
def summary(labels, scores, threshold: float) -> dict[str, float]:
    """The notebooks' results row for a test set: accuracy at the ``threshold`` fitted on
    VALIDATION; AUC, EER and TAR at FAR 1% / 0.1% describe the test ROC itself."""
    labels, scores = _checked(labels, scores)
    return {
        "accuracy": accuracy_at(labels, scores, threshold),
        "auc": _auc(labels, scores),
        "eer": _eer(labels, scores).eer,
        "tar_at_far_1pct": operating_point(labels, scores, 0.01).tar,
        "tar_at_far_0_1pct": operating_point(labels, scores, 0.001).tar,
        "threshold": float(threshold),
    }
