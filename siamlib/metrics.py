"""Verification and N-way metrics from one scoring pass (labels: 1 = same person;
``score >= threshold`` accepts).
Thresholds are fitted on *validation* scores and applied to *test* scores: one tuned on the test
set reports an accuracy no one could have had in advance.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import auc, roc_curve

from siamlib import DIFFERENT, SAME

# From the strictest threshold (+inf: accept nothing) to the lowest score, one point per score.
Roc = namedtuple("Roc", "far tar thresholds auc")
EerPoint = namedtuple("EerPoint", "eer threshold")
OperatingPoint = namedtuple("OperatingPoint", "threshold tar far low high n_impostors estimable")


def _finite(values, name: str) -> np.ndarray:
    """NaN and +-inf rank against nothing (a NaN is neither higher nor lower): refused."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contain {np.isnan(values).sum()} NaN and "
                         f"{np.isinf(values).sum()} infinite value(s); give finite numbers")
    return values


def checked(labels, scores, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rates need both classes (FAR and TAR divide by their counts); outcomes do not."""
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


def roc(labels, scores) -> Roc:
    far, tar, thresholds = roc_curve(*checked(labels, scores), drop_intermediate=False)
    return Roc(far, tar, thresholds, float(auc(far, tar)))


def eer(labels, scores) -> EerPoint:
    """FAR = FRR usually falls between two ROC points: rate and threshold are interpolated."""
    far, tar, thresholds, _ = roc(labels, scores)
    far_minus_frr = far - (1.0 - tar)  # rises strictly from -1 to 1
    thresholds[0] = thresholds[1]  # the first segment's (from +inf) is its lower end
    return EerPoint(float(np.interp(0.0, far_minus_frr, far)),
                    float(np.interp(0.0, far_minus_frr, thresholds)))


def _fitted(thresholds: np.ndarray, best: int) -> float:
    """Halfway to the next threshold down: a test score a hair below is not rejected by luck."""
    return float(np.r_[(thresholds[:-1] + thresholds[1:]) / 2, thresholds[-1]][best])


def threshold_for_max_accuracy(labels, scores) -> float:
    """The most accurate threshold (the strictest of equals), to fit on VALIDATION scores."""
    labels, scores = checked(labels, scores)
    curve, n_same = roc(labels, scores), int((labels == SAME).sum())
    correct = curve.tar * n_same + (1.0 - curve.far) * (len(labels) - n_same)
    return _fitted(curve.thresholds, int(np.argmax(correct)))


def operating_point(labels, scores, target_far: float, test_labels=None,
                    test_scores=None) -> OperatingPoint:
    """The honest number fits on VALIDATION and counts on TEST (``test_labels, test_scores``).
    ``low, high``: the TAR's Wilson 95% interval, pairs taken as independent (the least
    uncertainty there is). Fewer than ``1 / target_far`` impostors cannot show that rate."""
    labels, scores = checked(labels, scores)
    if not 0.0 <= target_far <= 1.0:
        raise ValueError(f"target_far must be a rate between 0 and 1, got {target_far}")
    if (test_labels is None) != (test_scores is None):
        raise ValueError("give both test_labels and test_scores, or neither")
    curve = roc(labels, scores)
    threshold = _fitted(curve.thresholds, int(np.flatnonzero(curve.far <= target_far)[-1]))
    n_impostors = int(np.sum(labels == DIFFERENT))
    if test_labels is not None:
        labels, scores = checked(test_labels, test_scores)
    accepted, same = scores >= threshold, labels == SAME
    true_accepts = int(np.sum(accepted & same))
    interval = binomtest(true_accepts, int(same.sum())).proportion_ci(method="wilson")
    return OperatingPoint(
        threshold=threshold, tar=true_accepts / int(same.sum()), far=float(accepted[~same].mean()),
        low=float(interval.low), high=float(interval.high), n_impostors=n_impostors,
        # The 1e-9 absorbs rounding, so that 100 pairs at 1% count as one expected false accept.
        estimable=bool(target_far == 0.0 or n_impostors * target_far >= 1.0 - 1e-9),
    )


def outcome(labels, scores, threshold: float) -> np.ndarray:
    """+-inf is a threshold (accept nothing / everything); NaN would silently reject all."""
    labels, scores = checked(labels, scores, both_classes=False)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN: fit it on validation scores "
                         "(threshold_for_max_accuracy or operating_point)")
    accepted, same = scores >= threshold, labels == SAME
    return np.select([same & accepted, ~same & accepted, same & ~accepted], ["TP", "FP", "FN"],
                     default="TN")


def accuracy_at(labels, scores, threshold: float) -> float:
    return float(np.isin(outcome(labels, scores, threshold), ("TP", "TN")).mean())


def _above_and_tied(candidates, correct=None):
    candidates = _finite(candidates, "scores_matrix")
    if candidates.ndim != 2 or candidates.shape[1] < 2 or len(candidates) == 0:
        raise ValueError(f"scores_matrix must be (tasks, N) with at least one task and N >= 2, "
                         f"got shape {candidates.shape}")
    correct = (candidates[:, 0] if correct is None else correct)[:, None]
    return np.sum(candidates > correct, axis=1), np.sum(candidates == correct, axis=1)


def n_way_accuracy(scores_matrix, k: int = 1, correct=None) -> float:
    """How often the match (column 0 unless ``correct`` given) scores in the top ``k``, ties in
    expectation: a constant scorer earns k/N, the chance level, not 0 or 1."""
    above, tied = _above_and_tied(scores_matrix, correct)
    return float(np.mean(np.clip((k - above) / tied, 0.0, 1.0)))


def n_way_correct(scores_matrix, seed=0) -> np.ndarray:
    """For ``stats.mcnemar``, which needs a yes or no: a tie is a draw, seeded for both methods."""
    above, tied = _above_and_tied(scores_matrix)
    return (above == 0) & (np.random.default_rng(seed).integers(0, tied) == 0)


def summary(labels, scores, threshold: float) -> dict[str, float]:
    """Accuracy at the ``threshold`` fitted on VALIDATION; the rest describe this ROC itself."""
    return {"accuracy": accuracy_at(labels, scores, threshold), "auc": roc(labels, scores).auc,
            "eer": eer(labels, scores).eer,
            "tar_at_far_1pct": operating_point(labels, scores, 0.01).tar,
            "tar_at_far_0_1pct": operating_point(labels, scores, 0.001).tar,
            "threshold": float(threshold)}
