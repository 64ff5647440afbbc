"""Classical baselines scored like the network ("how much does learning buy?" needs something
that did not learn): LBP histograms (Ahonen et al., 2006), unchanged by a brighter or more
contrasted photo, and raw pixels. The LBP settings were chosen by ROC AUC on DevTrain's pairs,
never on DevTest, over a 150-pixel crop, radius 1 and the rotation-invariant patterns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.feature import local_binary_pattern
from sklearn.preprocessing import normalize

from siamlib import scoring
from siamlib.images import ImageStore, Preprocess

PREPROCESS = Preprocess(image_size=105)  # of the face crop (DataConfig.face_crop)
GRID = 7  # cells per side: 7x7 = 49 cells of about 14x14 pixels on a 105-pixel face
POINTS = 8  # neighbours per pixel
RADIUS = 2  # ... on a circle of this radius (pixels)


def lbp_descriptors(pixels, grid: int = GRID, radius: float = RADIUS) -> np.ndarray:
    """Each cell's 59-bin histogram (Ahonen et al.'s u2) sums to 1, so cells weigh the same
    whatever their pixel count."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.dtype != np.uint8:  # float codes are unstable (skimage)
        raise ValueError(f"pixels must be (n, height, width) uint8 grey levels, got shape "
                         f"{pixels.shape} of {pixels.dtype}")
    # Codes within ``radius`` of the edge compare with neighbours outside the image (black to
    # skimage): they describe the frame, not the face. Only the interior is counted.
    margin = int(np.ceil(radius))
    _, height, width = pixels.shape
    height, width = height - 2 * margin, width - 2 * margin
    if not 1 <= grid <= min(height, width):
        raise ValueError(f"grid must be between 1 and {max(min(height, width), 1)} for "
                         f"{pixels.shape[1:]} images at radius {radius}, got {grid}")
    bins = POINTS * (POINTS - 1) + 3
    # Each pixel's cell, as one number: row band * grid + column band; then its histogram slot.
    cell = (np.arange(height) * grid // height)[:, None] * grid + np.arange(width) * grid // width
    cell_sizes = np.bincount(cell.ravel(), minlength=grid * grid).astype(np.float32)
    descriptors = np.empty((len(pixels), grid * grid * bins), dtype=np.float32)
    for i, image in enumerate(pixels):
        codes = local_binary_pattern(image, POINTS, radius, "nri_uniform").astype(np.int64)
        codes = codes[margin : margin + height, margin : margin + width]
        counts = np.bincount((cell * bins + codes).ravel(), minlength=grid * grid * bins)
        descriptors[i] = (counts.reshape(grid * grid, bins) / cell_sizes[:, None]).ravel()
    return descriptors


def lbp_similarity(first: np.ndarray, second: np.ndarray, grid: int = GRID) -> np.ndarray:
    """1 - the chi-square distance per cell: a bin's count is noisier the larger it is, so a rare
    pattern weighs as much as it says and flat skin cannot drown everything (Ahonen et al.)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"descriptors must have the same shape, got {first.shape} and "
                         f"{second.shape}")
    total = first + second
    terms = np.where(total > 0, (first - second) ** 2 / np.where(total > 0, total, 1.0), 0.0)
    return 1.0 - 0.5 * terms.sum(axis=-1) / grid**2


def lbp_scores(store: ImageStore, pairs: pd.DataFrame) -> np.ndarray:
    return scoring.score_pairs(lbp_similarity, store, pairs, describe=lbp_descriptors)


def pixel_vectors(pixels) -> np.ndarray:
    """Mean-subtracted: else any two photos have a cosine near 1 (all pixels positive)."""
    vectors = np.asarray(pixels).reshape(len(pixels), -1).astype(np.float32)
    return normalize(vectors - vectors.mean(axis=1, keepdims=True))


def pixel_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine of ``pixel_vectors`` rows, float32 rounding clipped back into [-1, 1]."""
    cosine = np.sum(np.asarray(first) * np.asarray(second), axis=1, dtype=np.float64)
    return np.clip(cosine, -1.0, 1.0)


def pixel_scores(store: ImageStore, pairs: pd.DataFrame) -> np.ndarray:
    return scoring.score_pairs(pixel_similarity, store, pairs, describe=pixel_vectors)
