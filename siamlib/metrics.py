"""Verification and identification metrics, computed from one scoring pass.

A network scores each pair once; every metric here works on those ``labels`` and ``scores``
arrays, so sweeping a threshold costs a sort and a binary search instead of re-running the
network per threshold (a student's sweep that did took nine days). ``labels`` follow
``siamlib``'s convention (1 = same person), scores are "higher = more likely the same person",
and a pair counts as accepted ("same") when ``score >= threshold``.

The words, once: FAR (false-accept rate) is the share of different-person pairs accepted, FRR
(false-reject rate) the share of same-person pairs rejected, GAR = TAR = 1 - FRR and
GRR = 1 - FAR. Thresholds are chosen on *validation* scores and applied to *test* scores:
a threshold tuned on the test set reports an accuracy no one could have had in advance. A rate
one asks for is a *target* (``target_far``, ``target_fmr``); ``far`` and ``fmr`` in a result
are the rates actually reached, which may be lower.

The biometrics standard ISO/IEC 19795-1 says FMR (false match rate) for what is FAR here and
FNMR (false non-match rate) for FRR; papers and tools such as pyeer quote FNMR at FMR 1%
("FMR100"), at 0.1% ("FMR1000") and at no false match at all ("ZeroFMR"), see
``operating_points``.

Test pairs share people (and photos), so they are not independent draws: ``bootstrap_ci`` and
``paired_auc_difference`` take ``groups`` (see ``person_clusters``) to resample whole clusters
of pairs instead, and two models scored on the same pairs are compared pair by pair
(``mcnemar``, ``paired_auc_difference``), not by two separate intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, norm
from sklearn import metrics as sk_metrics

from siamlib import DIFFERENT, SAME

BOOTSTRAP_METRICS = ("accuracy", "auc", "eer")
# Bootstrap resamples are processed in chunks of about this many (resample x pair) cells,
# so memory stays bounded whether the set holds a thousand pairs or a million.
_BOOTSTRAP_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Roc:
    """An ROC curve in verification words, one point per distinct score.

    Points run from the strictest threshold (+inf: accept nothing, FAR = GAR = 0) to the most
    lenient (the lowest score: accept everything), so ``thresholds[i]`` gives ``far[i], gar[i]``.
    """

    far: np.ndarray
    gar: np.ndarray
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
    """FNMR at the most accepting threshold whose FMR is at most a target (ISO/IEC 19795-1).

    ``fmr`` is the rate actually achieved (at most the target), ``threshold`` the lowest
    accepted score (``score >= threshold``; +inf when only "accept nothing" keeps the FMR low
    enough), and ``estimable`` says whether there were enough impostor pairs to observe the
    target rate at all (see ``fnmr_at_fmr``).
    """

    fnmr: float
    fmr: float
    threshold: float
    n_impostors: int
    estimable: bool


@dataclass(frozen=True)
class ValidatedTar:
    """TAR on test at a threshold fitted on validation for a target FAR (``tar_at_validation_far``).

    ``threshold`` is the validation one; ``tar`` the share of test genuine pairs accepted there,
    with ``low`` and ``high`` its Wilson 95% interval; ``far`` the FAR that threshold actually
    gives on test, which is not the target.
    """

    threshold: float
    tar: float
    low: float
    high: float
    far: float


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
class PairedDifference:
    """A difference between two methods on the same pairs, with its paired bootstrap interval
    and two-sided bootstrap p-value (for "no difference")."""

    estimate: float
    low: float
    high: float
    p_value: float


# --- input checks ---------------------------------------------------------------------------


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"{name} contain {int(np.isnan(values).sum())} NaN value(s)")
    return values


def _checked(labels, scores, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as floats, or a ValueError that says what is wrong.

    ROC-based metrics need both classes (FAR divides by the different-person pairs, FRR by the
    same-person pairs); counting outcomes at a fixed threshold does not.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    scores = _as_scores(scores)
    if np.isinf(scores).any():
        raise ValueError(f"scores contain {int(np.isinf(scores).sum())} infinite value(s)")
    if len(labels) != len(scores):
        raise ValueError(
            f"labels and scores must have the same length, got {len(labels)} labels "
            f"and {len(scores)} scores"
        )
    if len(labels) == 0:
        raise ValueError("no pairs given: labels and scores are empty")
    if not np.isin(labels, (DIFFERENT, SAME)).all():
        strays = np.unique(labels[~np.isin(labels, (DIFFERENT, SAME))])[:5]
        raise ValueError(
            f"labels must be {SAME} (same person) or {DIFFERENT} (different people), "
            f"found {strays.tolist()}"
        )
    labels = labels.astype(int)
    if both_classes and len(np.unique(labels)) < 2:
        raise ValueError(
            f"both same-person ({SAME}) and different-person ({DIFFERENT}) pairs are needed, "
            f"but every label is {labels[0]}"
        )
    return labels, scores


def _checked_rate(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a rate between 0 and 1, got {value}")
    return value


def _checked_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    return threshold


# --- ROC, error rates, EER ------------------------------------------------------------------


def _roc_points(labels: np.ndarray, scores: np.ndarray):
    """Every distinct score as a threshold (plus +inf, accept nothing), strictest first.

    Intermediate points are kept: the EER's threshold is interpolated between neighbouring
    points, and dropping collinear ones would move it.
    """
    return sk_metrics.roc_curve(labels, scores, drop_intermediate=False)


def roc(labels, scores) -> Roc:
    """The ROC of one scoring pass; plot ``gar`` against ``far`` to compare models at a glance."""
    labels, scores = _checked(labels, scores)
    far, gar, thresholds = _roc_points(labels, scores)
    return Roc(far, gar, thresholds, float(sk_metrics.roc_auc_score(labels, scores)))


def error_rates(labels, scores, thresholds) -> pd.DataFrame:
    """FAR, FRR, GAR, GRR and accuracy at many thresholds at once.

    Each class is sorted once and each threshold is a binary search into it, so 10^6 scores
    against 10^3 thresholds take well under a second.

    Returns:
        A DataFrame, one row per threshold (in the order given), with columns
        ``threshold, far, frr, gar, grr, accuracy``.
    """
    labels, scores = _checked(labels, scores)
    thresholds = _as_scores(np.atleast_1d(thresholds), "thresholds")
    genuine = np.sort(scores[labels == SAME])
    impostor = np.sort(scores[labels == DIFFERENT])
    # Scores >= t are accepted: everything from the first position where t would go.
    genuine_accepted = len(genuine) - np.searchsorted(genuine, thresholds, side="left")
    impostor_accepted = len(impostor) - np.searchsorted(impostor, thresholds, side="left")
    gar = genuine_accepted / len(genuine)
    far = impostor_accepted / len(impostor)
    correct = genuine_accepted + (len(impostor) - impostor_accepted)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "far": far,
            "frr": 1.0 - gar,
            "gar": gar,
            "grr": 1.0 - far,
            "accuracy": correct / len(scores),
        }
    )


def _eer_crossing(far: np.ndarray, frr: np.ndarray):
    """The EER of each row of ROC points, by linear interpolation where FRR - FAR changes sign.

    Rows run from the strict end (FAR 0, FRR 1) to the lenient end (FAR 1, FRR 0), so FRR - FAR
    starts positive and ends negative. Returns the EER per row, the index of the last point
    before the crossing, and how far along the segment to the next point the crossing lies.
    """
    gap = frr - far
    after = np.argmax(gap <= 0, axis=-1)
    before = after - 1
    gap_before = np.take_along_axis(gap, before[..., None], axis=-1)[..., 0]
    gap_after = np.take_along_axis(gap, after[..., None], axis=-1)[..., 0]
    fraction = gap_before / (gap_before - gap_after)
    far_before = np.take_along_axis(far, before[..., None], axis=-1)[..., 0]
    far_after = np.take_along_axis(far, after[..., None], axis=-1)[..., 0]
    return far_before + fraction * (far_after - far_before), before, fraction


def eer(labels, scores) -> EerPoint:
    """The equal error rate, a single threshold-free number to rank models by.

    The ROC is a set of points; FAR = FRR usually falls between two of them, so both the rate
    and the threshold are interpolated linearly along that segment. When the crossing lies on
    the first segment (from "accept nothing", threshold +inf) the threshold is the lower end's.
    """
    labels, scores = _checked(labels, scores)
    far, gar, thresholds = _roc_points(labels, scores)
    rate, before, fraction = _eer_crossing(far, 1.0 - gar)
    upper, lower = thresholds[before], thresholds[before + 1]
    threshold = lower if np.isinf(upper) else upper + fraction * (lower - upper)
    return EerPoint(float(rate), float(threshold))


# --- thresholds fitted on validation ----------------------------------------------------------


def _threshold_below(thresholds: np.ndarray, index: int) -> float:
    """Halfway from ``thresholds[index]`` to the next, more lenient, ROC threshold.

    Both accept exactly the same validation pairs; the midpoint leaves a margin on both sides,
    so a test score a hair below the lowest accepted validation score is not rejected by luck.
    """
    if index + 1 == len(thresholds):
        return float(thresholds[index])
    return float((thresholds[index] + thresholds[index + 1]) / 2)


def threshold_for_max_accuracy(labels, scores) -> float:
    """The threshold with the highest accuracy, to fit on VALIDATION scores and apply to test.

    Among equally accurate thresholds the strictest is taken, then placed halfway to the next
    score down (see ``_threshold_below``).
    """
    labels, scores = _checked(labels, scores)
    far, gar, thresholds = _roc_points(labels, scores)
    n_same = int((labels == SAME).sum())
    correct = gar * n_same + (1.0 - far) * (len(labels) - n_same)
    return _threshold_below(thresholds, int(np.argmax(correct)))


def threshold_at_far(labels, scores, target_far: float) -> float:
    """The most accepting threshold whose FAR is at most ``target_far``.

    Fit it on VALIDATION scores and apply it to test scores: that is how a deployed verifier
    is tuned ("no more than 1 impostor in 100 gets in"). The test FAR will differ a little;
    that difference is the honest part. Returns +inf (accept nothing) when even the strictest
    finite threshold lets in too many impostors.
    """
    labels, scores = _checked(labels, scores)
    target_far = _checked_rate(target_far, "target_far")
    far, _, thresholds = _roc_points(labels, scores)
    return _threshold_below(thresholds, int(np.flatnonzero(far <= target_far)[-1]))


def tar_at_far(labels, scores, target_far: float) -> float:
    """TAR (= GAR) at the most accepting threshold whose FAR is at most ``target_far``.

    This is the ROC's own operating point, the number papers quote at FAR = 1% and 0.1%; it is
    not interpolated, so it is a rate some threshold actually achieves on these pairs. For a
    TAR no one tuned on the test set, see ``tar_at_validation_far``.
    """
    labels, scores = _checked(labels, scores)
    target_far = _checked_rate(target_far, "target_far")
    far, gar, _ = _roc_points(labels, scores)
    return float(gar[far <= target_far].max())


def tar_at_validation_far(
    val_labels, val_scores, test_labels, test_scores, target_far: float
) -> ValidatedTar:
    """The honest TAR at a target FAR: threshold fitted on validation, outcomes counted on test.

    ``threshold_at_far`` fits the threshold on VALIDATION; ``confusion_at`` counts the test
    outcomes there. The TAR's interval is the Wilson 95% interval of a proportion (scipy's
    ``binomtest``), which treats the test's genuine pairs as independent: LFW pairs share people,
    so read it as the least uncertainty there is. When no threshold keeps the validation FAR at
    the target, the threshold is +inf (accept nothing) and the TAR is 0.
    """
    threshold = threshold_at_far(val_labels, val_scores, target_far)
    test_labels, test_scores = _checked(test_labels, test_scores)
    counts = confusion_at(test_labels, test_scores, threshold)
    genuine, impostors = counts["tp"] + counts["fn"], counts["fp"] + counts["tn"]
    interval = binomtest(counts["tp"], genuine).proportion_ci(method="wilson")
    return ValidatedTar(
        threshold=threshold,
        tar=counts["tp"] / genuine,
        low=float(interval.low),
        high=float(interval.high),
        far=counts["fp"] / impostors,
    )


# --- biometric operating points (ISO/IEC 19795-1 words) ------------------------------------

# Row name -> target FMR. "FMR100" is one false match in 100 impostor pairs.
OPERATING_POINTS = {"FMR100": 0.01, "FMR1000": 0.001, "ZeroFMR": 0.0}


def fnmr_at_fmr(labels, scores, target_fmr: float) -> OperatingPoint:
    """FNMR (= FRR) at the most accepting threshold whose FMR (= FAR) is at most ``target_fmr``.

    It is the ROC's own point, as in ``tar_at_far`` (FNMR = 1 - TAR), so it describes these
    pairs; it is not a threshold to deploy (fit ``threshold_at_far`` on validation for that).

    The rule for ``estimable``: an FMR of ``target_fmr`` is one false match in ``1 / target_fmr``
    impostor pairs, so with fewer impostor pairs than that (``n_impostors < 1 / target_fmr``) no
    threshold can show the rate; staying at or below it then means no false match at all, and
    the number is ZeroFMR under another name. It is still returned, flagged ``estimable=False``.
    ``target_fmr=0`` (ZeroFMR) is always estimable: it only needs one impostor pair.
    """
    labels, scores = _checked(labels, scores)
    target = _checked_rate(target_fmr, "target_fmr")
    far, gar, thresholds = _roc_points(labels, scores)
    index = int(np.flatnonzero(far <= target)[-1])
    n_impostors = int(np.sum(labels == DIFFERENT))
    # The 1e-9 absorbs rounding, so that 100 pairs at 1% count as one expected false match.
    estimable = target == 0.0 or n_impostors * target >= 1.0 - 1e-9
    return OperatingPoint(
        fnmr=float(1.0 - gar[index]),
        fmr=float(far[index]),
        threshold=float(thresholds[index]),
        n_impostors=n_impostors,
        estimable=bool(estimable),
    )


def operating_points(labels, scores) -> pd.DataFrame:
    """The biometric report's rows: FNMR at FMR 1% (FMR100), 0.1% (FMR1000) and 0 (ZeroFMR).

    Returns:
        A DataFrame indexed by those names, with columns ``target_fmr, fnmr, fmr, threshold,
        n_impostors, estimable``. Where ``estimable`` is False (too few impostor pairs, see
        ``fnmr_at_fmr``) ``fnmr``, ``fmr`` and ``threshold`` are NaN, so a table of several
        models cannot quote a number the test set was too small to measure.
    """
    rows = []
    for name, target in OPERATING_POINTS.items():
        point = fnmr_at_fmr(labels, scores, target)
        row = {"operating_point": name, "target_fmr": target, **asdict(point)}
        if not point.estimable:
            row.update(fnmr=np.nan, fmr=np.nan, threshold=np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index("operating_point")


def decidability(labels, scores) -> float:
    """Daugman's d': how far apart the two classes' mean scores are, in pooled standard deviations.

    ``d' = |mu_genuine - mu_impostor| / sqrt((var_genuine + var_impostor) / 2)``. It does not
    change when scores are shifted or scaled, and unlike AUC it keeps growing once the classes
    stop overlapping, so it still ranks models whose AUC is 1. Variances are population ones
    (``ddof=0``), as pyeer computes them; with hundreds of pairs the choice does not show. Both
    classes constant: inf if their scores differ, 0 if not.
    """
    labels, scores = _checked(labels, scores)
    genuine, impostor = scores[labels == SAME], scores[labels == DIFFERENT]
    gap = abs(genuine.mean() - impostor.mean())
    spread = np.sqrt((genuine.var() + impostor.var()) / 2)
    if spread == 0:
        return np.inf if gap > 0 else 0.0
    return float(gap / spread)


# --- outcomes at one threshold ------------------------------------------------------------


def accuracy_at(labels, scores, threshold: float) -> float:
    """Share of pairs decided correctly at a threshold fitted on validation."""
    labels, scores = _checked(labels, scores, both_classes=False)
    accepted = scores >= _checked_threshold(threshold)
    return float(np.mean(accepted == (labels == SAME)))


def confusion_at(labels, scores, threshold: float) -> dict[str, int]:
    """Counts of true/false accepts and rejects: ``tp`` same accepted, ``fp`` false accepts,
    ``fn`` false rejects, ``tn`` different rejected."""
    kinds = outcome(labels, scores, threshold)
    return {kind.lower(): int(np.sum(kinds == kind)) for kind in ("TP", "FP", "FN", "TN")}


def outcome(labels, scores, threshold: float) -> np.ndarray:
    """Each pair's outcome as "TP", "FP", "FN" or "TN", to pick examples of each to look at."""
    labels, scores = _checked(labels, scores, both_classes=False)
    accepted = scores >= _checked_threshold(threshold)
    same = labels == SAME
    return np.select(
        [same & accepted, ~same & accepted, same & ~accepted], ["TP", "FP", "FN"], default="TN"
    )


# --- DET ------------------------------------------------------------------------------------


def det_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """FAR and FRR for a DET plot, where low error rates get the room an ROC squeezes out."""
    labels, scores = _checked(labels, scores)
    far, frr, _ = sk_metrics.det_curve(labels, scores)
    return far, frr


def normal_deviate(p, eps: float = 1e-6) -> np.ndarray:
    """Probit of a rate, the DET plot's axis scale.

    Rates of exactly 0 or 1 would map to -inf/+inf and vanish from the plot, so they are
    clipped to ``[eps, 1 - eps]`` first.
    """
    return norm.ppf(np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps))


# --- bootstrap ------------------------------------------------------------------------------


def _per_resample(metric, genuine, impostor, genuine_counts, impostor_counts, threshold):
    """One metric value per resample, each resample given as how often it drew every pair.

    Counts instead of resampled arrays mean nothing is re-sorted per resample: the scores are
    sorted once and every resample is a weighting of them.
    """
    if metric == "accuracy":
        genuine_right = (genuine >= threshold).astype(int)
        impostor_right = (impostor < threshold).astype(int)
        correct = genuine_counts @ genuine_right + impostor_counts @ impostor_right
        return correct / (genuine_counts.sum(axis=1) + impostor_counts.sum(axis=1))
    genuine_order = np.argsort(genuine)
    genuine_sorted = genuine[genuine_order]
    genuine_from_top = _count_from_top(genuine_counts[:, genuine_order])
    n_same, n_diff = genuine_counts.sum(axis=1), impostor_counts.sum(axis=1)
    if metric == "auc":
        # Mann-Whitney: for each impostor, the genuine weight above it, ties counting half.
        above = genuine_from_top[:, np.searchsorted(genuine_sorted, impostor, side="right")]
        at_or_above = genuine_from_top[:, np.searchsorted(genuine_sorted, impostor)]
        wins = np.sum(impostor_counts * (above + at_or_above) / 2, axis=1)
        return wins / (n_same * n_diff)
    impostor_order = np.argsort(impostor)
    impostor_from_top = _count_from_top(impostor_counts[:, impostor_order])
    levels = np.unique(np.concatenate([genuine, impostor]))[::-1]  # strictest first
    far = impostor_from_top[:, np.searchsorted(impostor[impostor_order], levels)] / n_diff[:, None]
    gar = genuine_from_top[:, np.searchsorted(genuine_sorted, levels)] / n_same[:, None]
    # Prepend the "accept nothing" point (FAR 0, FRR 1) that the ROC starts from.
    far = np.hstack([np.zeros((len(far), 1)), far])
    frr = np.hstack([np.ones((len(gar), 1)), 1.0 - gar])
    return _eer_crossing(far, frr)[0]


def _count_from_top(counts_ascending: np.ndarray) -> np.ndarray:
    """Column j: how many draws scored at or above sorted position j (plus a trailing 0 column),
    so a searchsorted position indexes straight into "draws with score >= t"."""
    from_top = np.cumsum(counts_ascending[:, ::-1], axis=1)[:, ::-1]
    return np.hstack([from_top, np.zeros((len(counts_ascending), 1))])


def _resample_counts(rng: np.random.Generator, n_pairs: int, n_resamples: int) -> np.ndarray:
    """(resamples, pairs) draw counts of n_pairs draws with replacement, i.e. multinomial."""
    return rng.multinomial(n_pairs, np.full(n_pairs, 1 / n_pairs), size=n_resamples)


def person_clusters(name_a, name_b) -> np.ndarray:
    """One cluster id per pair: the connected component of the people in it.

    People are linked when they appear in a pair together (a same-person pair links a person
    to itself), so two pairs share a cluster when a chain of shared people joins them. Pairs
    in different clusters share no one, and resampling whole clusters (``groups=`` in
    ``bootstrap_ci`` and ``paired_auc_difference``) treats only those as independent. On
    LFW-a's pairsDevTest the 1000 pairs fall into 463 clusters of at most 25 pairs; if one
    cluster held most pairs, there would be few independent units and the interval would say so
    by being wide.

    Arguments:
        name_a, name_b: the person in each pair's first and second image.

    Returns:
        Integer ids 0, 1, ... numbered in order of first appearance.
    """
    name_a, name_b = np.asarray(name_a), np.asarray(name_b)
    if name_a.ndim != 1 or name_a.shape != name_b.shape:
        raise ValueError(
            f"name_a and name_b must be one-dimensional and of the same length, "
            f"got shapes {name_a.shape} and {name_b.shape}"
        )
    people, person = np.unique(np.concatenate([name_a, name_b]), return_inverse=True)
    parent = np.arange(len(people))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving keeps the trees flat
            node = parent[node]
        return node

    first, second = person[: len(name_a)], person[len(name_a) :]
    for a, b in zip(first, second):
        parent[root(a)] = root(b)
    roots = np.array([root(a) for a in first], dtype=int)
    _, first_seen, ids = np.unique(roots, return_index=True, return_inverse=True)
    # Renumber the components by their first pair, so ids read 0, 1, 2, ... down the table.
    return np.argsort(np.argsort(first_seen))[ids]


def _checked_groups(groups, n_pairs: int) -> np.ndarray:
    """Cluster ids as 0..k-1, one per pair."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_pairs:
        raise ValueError(
            f"groups must hold one cluster id per pair ({n_pairs}), got shape {groups.shape}"
        )
    return np.unique(groups, return_inverse=True)[1]


def _checked_bootstrap(n_boot: int, alpha: float) -> int:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return int(n_boot)


def _cluster_resample_counts(rng, clusters, is_same, n_resamples) -> np.ndarray:
    """(resamples, pairs) draw counts when whole clusters are drawn with replacement.

    Each resample draws as many clusters as there are, and every pair counts as often as its
    cluster was drawn. A resample without a same-person or without a different-person pair has
    no ROC, so such resamples are redrawn until they have both: every interval is then made of
    ``n_boot`` valid values, slightly favouring draws that hold both classes (a redraw is rare
    unless one class sits in only a few clusters).
    """
    n_clusters = clusters.max() + 1
    has_same = np.bincount(clusters[is_same], minlength=n_clusters) > 0
    has_different = np.bincount(clusters[~is_same], minlength=n_clusters) > 0
    draws = _resample_counts(rng, n_clusters, n_resamples)
    while True:
        missing = (draws @ has_same == 0) | (draws @ has_different == 0)
        if not missing.any():
            return draws[:, clusters]
        draws[missing] = _resample_counts(rng, n_clusters, int(missing.sum()))


def _resampled_counts(rng, labels, clusters, n_boot):
    """Yield (genuine_counts, impostor_counts) for ``n_boot`` resamples, in bounded chunks.

    Without clusters, pairs are drawn with replacement within each class (the test set's
    balance is kept); with clusters, whole clusters are drawn and the balance varies as it
    would with another draw of people.
    """
    is_same = labels == SAME
    n_same, n_different = int(is_same.sum()), int((~is_same).sum())
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // len(labels))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        if clusters is None:
            yield _resample_counts(rng, n_same, size), _resample_counts(rng, n_different, size)
        else:
            counts = _cluster_resample_counts(rng, clusters, is_same, size)
            yield counts[:, is_same], counts[:, ~is_same]


def _point_estimate(metric, labels, scores, threshold) -> float:
    if metric == "accuracy":
        return accuracy_at(labels, scores, threshold)
    if metric == "auc":
        return float(sk_metrics.roc_auc_score(labels, scores))
    return eer(labels, scores).eer


def bootstrap_ci(
    labels,
    scores,
    metric: str,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    threshold: float | None = None,
    groups=None,
) -> ConfidenceInterval:
    """How much a metric could move with a different draw of test pairs (or of people).

    Without ``groups``, pairs are resampled with replacement within each class, so every
    resample keeps the test set's balance and both classes (AUC and EER need both). That treats
    pairs as independent, which LFW test pairs are not: they share people and photos, so a model
    that fails on one person fails on all of that person's pairs together, and the pair
    interval comes out too narrow. Pass ``groups`` (one cluster id per pair, e.g.
    ``person_clusters(name_a, name_b)``) to resample whole clusters instead; resamples that miss
    a class are redrawn (see ``_cluster_resample_counts``).

    ``accuracy`` uses the fixed ``threshold`` chosen on VALIDATION: refitting it per resample
    would measure a different procedure. ``threshold`` is ignored by ``auc`` and ``eer``. The
    interval is the ``alpha / 2`` and ``1 - alpha / 2`` percentiles of the resampled values.
    """
    labels, scores = _checked(labels, scores)
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {BOOTSTRAP_METRICS}, got {metric!r}")
    if metric == "accuracy" and threshold is None:
        raise ValueError("accuracy needs the threshold chosen on validation (threshold=...)")
    if threshold is not None:
        threshold = _checked_threshold(threshold)
    n_boot = _checked_bootstrap(n_boot, alpha)
    clusters = None if groups is None else _checked_groups(groups, len(labels))
    genuine, impostor = scores[labels == SAME], scores[labels == DIFFERENT]
    rng = np.random.default_rng(seed)
    values = [
        _per_resample(metric, genuine, impostor, genuine_counts, impostor_counts, threshold)
        for genuine_counts, impostor_counts in _resampled_counts(rng, labels, clusters, n_boot)
    ]
    low, high = np.quantile(np.concatenate(values), [alpha / 2, 1 - alpha / 2])
    estimate = _point_estimate(metric, labels, scores, threshold)
    return ConfidenceInterval(estimate, float(low), float(high))


# --- two methods on the same pairs ----------------------------------------------------------


def _as_correct(values, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(
            f"{name} must be a non-empty one-dimensional array, got shape {values.shape}"
        )
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must be True/False (or 1/0) per item")
    return values.astype(bool)


def mcnemar(correct_a, correct_b) -> McNemarResult:
    """Exact two-sided McNemar test: is method A right more often than B on the SAME items?

    Two accuracies on the same test pairs are not independent samples, so two confidence
    intervals that overlap do not mean "no difference". McNemar's test looks only at the
    items where the methods disagree: if neither is better, each such item is a fair coin, so
    ``n10`` is Binomial(n01 + n10, 1/2) and the p-value is scipy's exact binomial test (1 when
    they never disagree). It works for any per-item correctness: verification pairs decided at
    a validation threshold, or paired N-way one-shot tasks (both methods on the same tasks,
    correct = picked the matching candidate).

    Arguments:
        correct_a, correct_b: per item, whether method A (B) got it right.
    """
    correct_a = _as_correct(correct_a, "correct_a")
    correct_b = _as_correct(correct_b, "correct_b")
    if len(correct_a) != len(correct_b):
        raise ValueError(
            f"correct_a and correct_b must cover the same items, got {len(correct_a)} "
            f"and {len(correct_b)}"
        )
    n10 = int(np.sum(correct_a & ~correct_b))
    n01 = int(np.sum(~correct_a & correct_b))
    p_value = 1.0 if n01 + n10 == 0 else float(binomtest(n10, n01 + n10, 0.5).pvalue)
    return McNemarResult(n01, n10, p_value, (n10 - n01) / len(correct_a))


def paired_auc_difference(
    labels,
    scores_a,
    scores_b,
    groups=None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """AUC(A) - AUC(B) on the same pairs, with a paired bootstrap interval and p-value.

    Each resample draws one set of pairs (or, with ``groups``, of clusters, as in
    ``bootstrap_ci``) and scores BOTH methods on it, so what the two share (the same hard
    pairs) cancels in the difference; that is why it is tighter than two separate intervals.
    The p-value is two-sided for "no difference": twice the smaller share of resampled
    differences on either side of 0, with one added to each count (``2 (1 + k) /
    (n_boot + 1)``) so it is never reported as exactly 0; capped at 1.
    """
    labels, scores_a = _checked(labels, scores_a)
    scores_b = _checked(labels, scores_b)[1]
    n_boot = _checked_bootstrap(n_boot, alpha)
    clusters = None if groups is None else _checked_groups(groups, len(labels))
    is_same = labels == SAME
    rng = np.random.default_rng(seed)
    differences = np.concatenate(
        [
            _per_resample("auc", scores_a[is_same], scores_a[~is_same], g_counts, i_counts, None)
            - _per_resample("auc", scores_b[is_same], scores_b[~is_same], g_counts, i_counts, None)
            for g_counts, i_counts in _resampled_counts(rng, labels, clusters, n_boot)
        ]
    )
    estimate = float(
        sk_metrics.roc_auc_score(labels, scores_a) - sk_metrics.roc_auc_score(labels, scores_b)
    )
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
    if p_value >= alpha:
        return "no measured difference"
    return f"{first} better" if difference > 0 else f"{second} better"


# --- one-shot tasks and identification --------------------------------------------------------


def _tie_credit(correct_score, competitor_scores, k: int = 1) -> np.ndarray:
    """Chance the correct candidate lands in the top ``k`` when ties are broken at random.

    With ``above`` candidates strictly higher and ``tied`` candidates level with it (itself
    included), the correct one takes each of ranks above+1 .. above+tied equally often. A
    scorer that gives every candidate the same score therefore earns exactly k/N, the chance
    level, instead of 0 (ties as wrong) or 1 (ties as right).
    """
    above = np.sum(competitor_scores > correct_score[:, None], axis=1)
    tied = np.sum(competitor_scores == correct_score[:, None], axis=1) + 1
    return np.clip((k - above) / tied, 0.0, 1.0)


def _checked_tasks(scores_matrix, correct_index) -> tuple[np.ndarray, np.ndarray]:
    """The matching candidate's score per task, and the (tasks, N - 1) scores of the others."""
    scores_matrix = np.asarray(scores_matrix, dtype=float)
    if scores_matrix.ndim != 2 or scores_matrix.shape[1] < 2 or len(scores_matrix) == 0:
        raise ValueError(
            f"scores_matrix must be (tasks, N) with at least one task and N >= 2, "
            f"got shape {scores_matrix.shape}"
        )
    if np.isnan(scores_matrix).any():
        raise ValueError("scores_matrix contains NaN values")
    n_tasks, n_way = scores_matrix.shape
    correct_index = np.broadcast_to(np.asarray(correct_index), (n_tasks,))
    if (
        not np.issubdtype(correct_index.dtype, np.integer)
        or not ((correct_index >= 0) & (correct_index < n_way)).all()
    ):
        raise ValueError(f"correct_index must be integer column(s) in 0..{n_way - 1}")
    is_correct = np.arange(n_way) == correct_index[:, None]
    return scores_matrix[is_correct], scores_matrix[~is_correct].reshape(n_tasks, n_way - 1)


def n_way_accuracy(scores_matrix, correct_index: int | np.ndarray = 0) -> float:
    """Accuracy on N-way one-shot tasks (Koch et al.): pick the candidate that scores highest.

    Arguments:
        scores_matrix: (tasks, N) scores of the probe against each of N candidates, e.g.
            ``scoring.one_shot_scores``.
        correct_index: the column holding the matching candidate, one for all tasks or one per
            task.

    Ties are broken at random in expectation: among k tied maxima the correct one earns 1/k,
    so a constant scorer gets exactly 1/N, the chance level.
    """
    correct_score, competitors = _checked_tasks(scores_matrix, correct_index)
    return float(np.mean(_tie_credit(correct_score, competitors)))


def n_way_correct(scores_matrix, seed=0, correct_index: int | np.ndarray = 0) -> np.ndarray:
    """Per task, whether the matching candidate scored highest: what ``mcnemar`` compares.

    ``n_way_accuracy`` credits a tie in expectation (1/k among k tied maxima); a paired test
    needs a yes or no per task, so here each tie is broken by a draw from
    ``np.random.default_rng(seed)`` (an int or a Generator): with the same seed, two methods
    that tie on a task get the same draw there. The mean over many tasks approaches
    ``n_way_accuracy``.
    """
    correct_score, competitors = _checked_tasks(scores_matrix, correct_index)
    above = np.sum(competitors > correct_score[:, None], axis=1)
    tied = np.sum(competitors == correct_score[:, None], axis=1)
    # Among the match and its ``tied`` equals, the match wins one draw in tied + 1.
    drawn = np.random.default_rng(seed).integers(0, tied + 1)
    return (above == 0) & (drawn == 0)


def identification_accuracy(
    probe_gallery_scores, probe_labels, gallery_labels, reduce: str = "max", k: int = 1
) -> float:
    """Rank-``k`` accuracy of closed-set identification against a gallery of templates.

    Each gallery identity may have several templates (images); their scores against a probe are
    combined with ``reduce`` ("max": the best-matching image decides, forgiving one bad photo
    of the right person; "mean": all images vote, forgiving one lucky photo of the wrong one).
    A probe counts as identified when its identity is among the ``k`` highest; ties are broken
    at random in expectation, as in ``n_way_accuracy``.

    Arguments:
        probe_gallery_scores: (probes, templates) scores.
        probe_labels: identity of each probe; every one must appear in the gallery.
        gallery_labels: identity of each template (column).
    """
    scores = np.asarray(probe_gallery_scores, dtype=float)
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    if scores.ndim != 2 or scores.shape != (len(probe_labels), len(gallery_labels)):
        raise ValueError(
            f"probe_gallery_scores must be (probes, templates) = "
            f"({len(probe_labels)}, {len(gallery_labels)}), got shape {scores.shape}"
        )
    if scores.size == 0 or np.isnan(scores).any():
        raise ValueError("probe_gallery_scores must be non-empty and free of NaN")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    identities, template_identity = np.unique(gallery_labels, return_inverse=True)
    if not 1 <= k <= len(identities):
        raise ValueError(f"k must be between 1 and {len(identities)} (gallery identities), got {k}")
    unknown = ~np.isin(probe_labels, identities)
    if unknown.any():
        raise ValueError(
            f"probe identities missing from the gallery: {np.unique(probe_labels[unknown])[:5]}"
        )
    per_identity = _reduce_templates(scores, template_identity, len(identities), reduce)
    is_true = np.searchsorted(identities, probe_labels)[:, None] == np.arange(len(identities))
    competitors = per_identity[~is_true].reshape(len(probe_labels), len(identities) - 1)
    return float(np.mean(_tie_credit(per_identity[is_true], competitors, k)))


def _reduce_templates(scores, template_identity, n_identities, reduce) -> np.ndarray:
    """(probes, templates) scores -> (probes, identities), combining each identity's templates."""
    order = np.argsort(template_identity, kind="stable")
    starts = np.searchsorted(template_identity[order], np.arange(n_identities))
    grouped = scores[:, order]
    if reduce == "max":
        return np.maximum.reduceat(grouped, starts, axis=1)
    return np.add.reduceat(grouped, starts, axis=1) / np.bincount(template_identity)


# --- the notebooks' table row ---------------------------------------------------------------


def summary(labels, scores, threshold: float) -> dict[str, float]:
    """The one-line results row the notebooks print for a test set.

    ``threshold`` is the one fitted on VALIDATION; accuracy uses it, while AUC, EER and TAR at
    FAR 1% / 0.1% describe the test ROC itself and need no threshold.
    """
    labels, scores = _checked(labels, scores)
    return {
        "accuracy": accuracy_at(labels, scores, threshold),
        "auc": float(sk_metrics.roc_auc_score(labels, scores)),
        "eer": eer(labels, scores).eer,
        "tar_at_far_1pct": tar_at_far(labels, scores, 0.01),
        "tar_at_far_0_1pct": tar_at_far(labels, scores, 0.001),
        "threshold": float(threshold),
    }
