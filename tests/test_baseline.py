"""Tests for siamlib.baseline: LBP and raw-pixel scorers on tiny generated images."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from siamlib import baseline
from siamlib.images import ImageStore

SIZE = 105


def texture(seed: int, scale: int = 4, size: int = SIZE) -> np.ndarray:
    """A random texture: uniform noise on a (size/scale)² grid, blown up with cubic
    interpolation, so it has blobs and edges of about ``scale`` pixels. uint8 in [20, 220]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // scale, size // scale))
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(20 + 200 * image, 20, 220).astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def store_of(images: dict[str, np.ndarray]) -> ImageStore:
    """An ImageStore straight from arrays: path -> pixels, no files needed."""
    return ImageStore(list(images), np.stack(list(images.values())), truncated=[])


def pairs_of(*couples: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"path_a": [a for a, _ in couples], "path_b": [b for _, b in couples], "label": 0}
    )


# --- descriptors ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(SIZE, SIZE), (50, 47)])
def test_descriptors_are_one_normalised_histogram_per_cell(shape):
    image = cv2.resize(texture(1), shape[::-1])
    grid, bins = 7, 59
    descriptor = baseline.lbp_descriptors(image[np.newaxis], grid=grid)[0]
    assert descriptor.shape == (grid * grid * bins,)
    assert descriptor.dtype == np.float32
    per_cell = descriptor.reshape(grid * grid, bins)
    assert (per_cell >= 0).all()
    np.testing.assert_allclose(per_cell.sum(axis=1), 1.0, rtol=1e-5)


def test_a_stack_gives_the_rows_of_single_images():
    images = np.stack([texture(1), texture(2), texture(3)])
    stacked = baseline.lbp_descriptors(images)
    assert stacked.shape == (3, baseline.GRID**2 * 59)
    for row, image in zip(stacked, images):
        np.testing.assert_array_equal(row, baseline.lbp_descriptors(image[np.newaxis])[0])


def test_a_flat_image_puts_every_pixel_in_one_bin_per_cell():
    # All neighbours equal the centre: every pixel gets the same (uniform) code.
    flat = np.full((21, 21), 90, dtype=np.uint8)
    per_cell = baseline.lbp_descriptors(flat[np.newaxis], grid=3).reshape(9, -1)
    assert ((per_cell == 1.0).sum(axis=1) == 1).all()
    assert ((per_cell == 0.0).sum(axis=1) == per_cell.shape[1] - 1).all()


@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize(
    "change",
    [lambda x: x + 35, lambda x: x - 15, lambda x: 2 * x - 20],
    ids=["brighter", "darker", "more contrast"],
)
def test_monotonic_grey_changes_leave_the_descriptor_unchanged(radius, change):
    # LBP codes record only which neighbour is brighter than the centre, so a brightness shift
    # or a contrast stretch (no clipping: the texture spans 20..220 -> 20..235 at most) keeps
    # every code, hence every histogram.
    image = (texture(4).astype(np.int64) - 20) // 2 + 20  # 20..120
    changed = change(image)
    assert changed.min() >= 0 and changed.max() <= 255
    original, shifted = (baseline.lbp_descriptors(x.astype(np.uint8)[np.newaxis], radius=radius)
                         for x in (image, changed))
    np.testing.assert_array_equal(original, shifted)


def test_descriptor_input_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="uint8"):
        baseline.lbp_descriptors(texture(1)[np.newaxis].astype(float))
    with pytest.raises(ValueError, match="shape"):
        baseline.lbp_descriptors(np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="grid"):
        baseline.lbp_descriptors(texture(1, size=20)[np.newaxis], grid=30)


# --- chi-square similarity ------------------------------------------------------------------


def test_lbp_similarity_is_one_minus_the_chi_square_distance_by_hand():
    # ½ [(0.5 - 1)² / 1.5 + (0.5 - 0)² / 0.5 + 0 (both empty)] = ½ [1/6 + 1/2] = 1/3
    assert baseline.lbp_similarity([0.5, 0.5, 0.0], [1.0, 0.0, 0.0], grid=1) == \
        pytest.approx(2 / 3)
    # Disjoint histograms: ½ (1 + 1) = 1, the largest distance (similarity 0); identical: 0.
    assert baseline.lbp_similarity([1.0, 0.0], [0.0, 1.0], grid=1) == pytest.approx(0.0)
    assert baseline.lbp_similarity([0.3, 0.7], [0.3, 0.7], grid=1) == 1.0


def test_lbp_similarity_averages_over_cells_and_works_row_wise():
    # Four cells of two bins: one disjoint (1), three identical (0) -> distance 1/4; the second
    # row is identical.
    first = np.array([[1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0], [0.5] * 8])
    second = np.array([[0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0], [0.5] * 8])
    np.testing.assert_allclose(baseline.lbp_similarity(first, second, grid=2), [0.75, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        baseline.lbp_similarity(first, second[:1, :3], grid=2)


# --- scores of pairs ---------------------------------------------------------------------


def test_identical_images_get_the_maximal_lbp_score():
    images = {
        "a": texture(1),
        "a_again": texture(1),
        "b": texture(2),
        "a_noisy": noisy(texture(1), 6),
    }
    scores = baseline.lbp_scores(
        store_of(images), pairs_of(("a", "a_again"), ("a", "a"), ("a", "b"), ("a", "a_noisy"))
    )
    np.testing.assert_allclose(scores[:2], 1.0)
    assert (scores[2:] < 1.0).all() and (scores[2:] >= 0.0).all()


def test_a_texture_is_closer_to_its_noisy_copy_than_to_another_texture():
    # Same texture with sensor noise vs. a different texture of the same grain and grey range:
    # higher score = more likely "the same", so the noisy copy must win, for both scorers.
    images = {"a": texture(1), "a_noisy": noisy(texture(1), 8), "b": texture(2)}
    store, pairs = store_of(images), pairs_of(("a", "a_noisy"), ("a", "b"))
    lbp_same, lbp_other = baseline.lbp_scores(store, pairs)
    assert lbp_same > lbp_other
    pixel_same, pixel_other = baseline.pixel_scores(store, pairs)
    assert pixel_same > pixel_other


def test_lbp_scores_describe_each_unique_image_once(monkeypatch):
    calls = []
    original = baseline.local_binary_pattern

    def counting(image, *args, **kwargs):
        calls.append(image.shape)
        return original(image, *args, **kwargs)

    monkeypatch.setattr(baseline, "local_binary_pattern", counting)
    images = {"a": texture(1), "b": texture(2), "c": texture(3), "unused": texture(4)}
    pairs = pairs_of(("a", "b"), ("b", "c"), ("a", "c"), ("c", "a"), ("a", "a"))
    scores = baseline.lbp_scores(store_of(images), pairs)
    assert len(calls) == 3  # a, b, c; "unused" is in the store but in no pair
    assert scores[2] == pytest.approx(scores[3])  # symmetric


def test_lbp_scores_are_the_similarity_of_the_two_descriptors():
    images = {"a": texture(1), "b": texture(2)}
    scores = baseline.lbp_scores(store_of(images), pairs_of(("a", "b")))
    a, b = (baseline.lbp_descriptors(images[name][np.newaxis]) for name in "ab")
    assert scores[0] == pytest.approx(baseline.lbp_similarity(a, b)[0])


def test_pixel_scores_of_identical_images_are_one():
    images = {"a": texture(1), "a_again": texture(1), "b": texture(2)}
    scores = baseline.pixel_scores(store_of(images), pairs_of(("a", "a_again"), ("b", "b")))
    np.testing.assert_allclose(scores, 1.0, rtol=1e-6)


def test_pixel_scores_ignore_brightness_and_contrast_but_see_an_inverted_image():
    # Mean-subtracted cosine = correlation: a x + b with a > 0 scores 1, with a < 0 scores -1.
    image = texture(1)
    images = {
        "a": image,
        "brighter": (image.astype(np.int64) + 30).astype(np.uint8),
        "stretched": (image.astype(np.int64) // 2 + 60).astype(np.uint8),
        "negative": 255 - image,
        "flat": np.full_like(image, 128),
    }
    pairs = pairs_of(("a", "brighter"), ("a", "stretched"), ("a", "negative"), ("a", "flat"))
    scores = baseline.pixel_scores(store_of(images), pairs)
    np.testing.assert_allclose(scores[:3], [1.0, 1.0, -1.0], atol=1e-2)
    assert scores[3] == 0.0  # a flat image has no direction: no evidence either way


def test_pixel_similarity_scores_paired_rows():
    # Rows (1, 0) and (0.6, 0.8) against (1, 0) and (-0.6, -0.8): cosines 1 and -1.
    first = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    second = np.array([[1.0, 0.0], [-0.6, -0.8]], dtype=np.float32)
    np.testing.assert_allclose(baseline.pixel_similarity(first, second), [1.0, -1.0])


def test_pixel_vectors_are_unit_length_and_centred():
    vectors = baseline.pixel_vectors(np.stack([texture(1), texture(2)]))
    assert vectors.shape == (2, SIZE * SIZE)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors.mean(axis=1), 0.0, atol=1e-6)


def test_scores_name_a_missing_image_or_column():
    store = store_of({"a": texture(1)})
    with pytest.raises(KeyError, match="not in this ImageStore"):
        baseline.lbp_scores(store, pairs_of(("a", "b")))
    with pytest.raises(ValueError, match="path_b"):
        baseline.pixel_scores(store, pd.DataFrame({"path_a": ["a"]}))
