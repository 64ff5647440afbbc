"""Tiny score sets shared by the metrics and stats tests."""

from __future__ import annotations

import numpy as np

# Six pairs. Same-person scores 0.9, 0.8, 0.4; different-person 0.7, 0.3, 0.1.
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
