"""Classical baselines, scored like the network: one score per pair, higher = same person.

"How much does learning buy?" needs something that did not learn. Two such scorers:

- **LBP histograms** (Ahonen, Hadid & Pietikäinen, 2006): every pixel is coded by which of its
  8 neighbours are at least as bright as it (a local binary pattern), the face is cut into a
  grid of cells (7×7 by default), and each cell becomes a histogram of its codes. Comparing two
  faces compares where on the face which micro-textures (edges, corners, spots, flat skin)
  occur. Because a code only records *which neighbour is brighter*, a brighter or more
  contrasted photo gets exactly the same codes (any monotonic grey-level change does, up to the
  interpolation of neighbours that fall between pixels).
- **raw pixels**: the cosine similarity of the two mean-subtracted pixel vectors, i.e. their
  correlation. Nothing is learned at all; it shows what "looks alike" means pixel by pixel.

Both work on an ``ImageStore``'s uint8 pixels (the same pairs, paths and rows as the network)
and, like the network, describe each unique image once (``scoring.pair_scores``).
``PREPROCESS`` is the input they are meant for: the face set's face crop (LFW-a's centre 125
pixels) resized to 105×105. The defaults (that crop, radius 2, the 59-bin patterns) were chosen
by ROC AUC on DevTrain's pairs, never on DevTest; they beat a 150-pixel crop, radius 1 and the
10-bin patterns there.

Pairs are compared with the **chi-square distance** between descriptors. A histogram bin holds a
count, and a count's noise grows with its size (roughly Poisson: variance ≈ count), so the
squared difference of each bin is divided by the bin's size, ``(a - b)² / (a + b)``: a
difference in a rare pattern (a corner at the eye) weighs as much as it says, while the
largest bins (flat skin) cannot drown everything as they do under the Euclidean distance.
Ahonen et al. found chi-square the best of the simple histogram distances for LBP faces.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from skimage.feature import local_binary_pattern

from siamlib import scoring
from siamlib.images import ImageStore, Preprocess

PREPROCESS = Preprocess(image_size=105)  # of the face crop (DataConfig.face_crop)
GRID = 7  # cells per side: 7x7 = 49 cells of about 14x14 pixels on a 105-pixel face
POINTS = 8  # neighbours per pixel
RADIUS = 2  # ... on a circle of this radius (pixels)
METHOD = "nri_uniform"  # the 58 uniform patterns + 1 bin for all others (Ahonen et al.'s u2)


def _bins(points: int, method: str) -> int:
    """How many distinct codes ``local_binary_pattern`` gives for ``method``."""
    if method == "uniform":  # rotation-invariant uniform: 0..points, plus one "other" bin
        return points + 2
    if method == "nri_uniform":  # uniform patterns in every rotation, plus one "other" bin
        return points * (points - 1) + 3
    raise ValueError(f"method must be 'uniform' or 'nri_uniform', got {method!r}")


def lbp_descriptors(pixels, grid: int = GRID, points: int = POINTS, radius: float = RADIUS,
                    method: str = METHOD) -> np.ndarray:
    """LBP histograms of a grid of cells, one normalised histogram per cell, concatenated.

    Arguments:
        pixels: one ``(height, width)`` image or a stack ``(n, height, width)``, uint8.
        grid: cells per side; the image is split as evenly as its size allows.
        points, radius: the LBP neighbourhood (8 neighbours at radius 1 or 2 are usual).
        method: "nri_uniform" (59 bins for P = 8; uniform patterns keep their orientation) or
            "uniform" (10 bins; rotation-invariant, coarser).

    Returns:
        float32 ``(n, grid * grid * bins)`` (or ``(grid * grid * bins,)`` for one image); every
        cell's histogram sums to 1, so cells weigh the same whatever their pixel count.
    """
    pixels = np.asarray(pixels)
    single = pixels.ndim == 2
    if single:
        pixels = pixels[np.newaxis]
    if pixels.ndim != 3:
        raise ValueError(f"pixels must be (height, width) or (n, height, width), got shape "
                         f"{pixels.shape}")
    if pixels.dtype != np.uint8:
        # skimage warns that float images give unstable codes (tiny differences flip bits).
        raise ValueError(f"pixels must be uint8 grey levels, got {pixels.dtype}")
    # Codes within ``radius`` of the edge compare a pixel with neighbours outside the image,
    # which skimage takes as black: they describe the frame, not the face, and do not follow
    # brightness changes. Only the interior is counted.
    margin = int(np.ceil(radius))
    _, height, width = pixels.shape
    height, width = height - 2 * margin, width - 2 * margin
    if not 1 <= grid <= min(height, width):
        raise ValueError(f"grid must be between 1 and {max(min(height, width), 1)} for "
                         f"{pixels.shape[1:]} images at radius {radius}, got {grid}")
    bins = _bins(points, method)
    # Each pixel's cell, as one number: row band * grid + column band; then its histogram slot.
    cell_rows = np.arange(height) * grid // height
    cell_cols = np.arange(width) * grid // width
    cell = cell_rows[:, None] * grid + cell_cols[None, :]
    cell_sizes = np.bincount(cell.ravel(), minlength=grid * grid).astype(np.float32)
    descriptors = np.empty((len(pixels), grid * grid * bins), dtype=np.float32)
    for i, image in enumerate(pixels):
        codes = local_binary_pattern(image, points, radius, method).astype(np.int64)
        codes = codes[margin : margin + height, margin : margin + width]
        counts = np.bincount((cell * bins + codes).ravel(), minlength=grid * grid * bins)
        descriptors[i] = (counts.reshape(grid * grid, bins) / cell_sizes[:, None]).ravel()
    return descriptors[0] if single else descriptors


def chi_square(first: np.ndarray, second: np.ndarray, cells: int = 1) -> np.ndarray:
    """Chi-square distance ``½ Σ (a - b)² / (a + b)`` between rows of two descriptor arrays.

    Bins empty in both descriptors add nothing (0/0 counts as 0). Divided by ``cells``, the
    number of normalised histograms in a descriptor, the distance lies in [0, 1]: 0 for
    identical descriptors, 1 when no cell has a pattern in common.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"descriptors must have the same shape, got {first.shape} and "
                         f"{second.shape}")
    total = first + second
    safe = np.where(total > 0, total, 1.0)
    terms = np.where(total > 0, (first - second) ** 2 / safe, 0.0)
    return 0.5 * terms.sum(axis=-1) / cells


def lbp_similarity(first: np.ndarray, second: np.ndarray, grid: int = GRID) -> np.ndarray:
    """``1 - chi-square / cells`` between rows of LBP descriptors: a score in [0, 1], higher =
    more alike, 1 for identical descriptors. Use it for one-shot tasks and galleries too."""
    return 1.0 - chi_square(first, second, cells=grid * grid)


def lbp_scores(store: ImageStore, pairs: pd.DataFrame, **lbp) -> np.ndarray:
    """One LBP score per pair (1 = identical histograms). ``lbp`` passes ``grid``, ``points``,
    ``radius`` or ``method`` on to ``lbp_descriptors``."""
    similarity = partial(lbp_similarity, grid=lbp.get("grid", GRID))
    return scoring.pair_scores(similarity, partial(lbp_descriptors, **lbp), store, pairs)


def pixel_vectors(pixels) -> np.ndarray:
    """Each image as a unit-length, mean-subtracted vector (float32, ``(n, height * width)``).

    Without subtracting the mean, any two photos (all pixels positive) have a cosine near 1
    and the score mostly measures overall brightness. A flat image has no direction and
    becomes the zero vector, which scores 0 against everything.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    vectors = pixels.reshape(len(pixels), -1).astype(np.float32)
    vectors -= vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def pixel_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of paired rows of ``pixel_vectors``, in [-1, 1] (1 = identical up to
    brightness and contrast); float32 rounding is clipped back into that range."""
    cosine = np.sum(np.asarray(first) * np.asarray(second), axis=1, dtype=np.float64)
    return np.clip(cosine, -1.0, 1.0)


def pixel_scores(store: ImageStore, pairs: pd.DataFrame) -> np.ndarray:
    """One raw-pixel score per pair: ``pixel_similarity`` of the two images' vectors."""
    return scoring.pair_scores(pixel_similarity, pixel_vectors, store, pairs)
