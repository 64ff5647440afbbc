"""siamlib.pipeline: restricted and sampled tf.data pair pipelines, seeded shuffling and jitter.

Batches carry pixels only, so tests find out which images a pair holds by looking each one up
among the store's rows (every generated image is distinct).
"""

from __future__ import annotations

import gc
from collections import Counter

import numpy as np
import pandas as pd
import psutil
import pytest
import tensorflow as tf

from siamlib import DIFFERENT, SAME
from siamlib.images import ImageStore, Preprocess
from siamlib.pairs import identity_images, make_pairs
from siamlib.pipeline import Augment, identity_batch_dataset, pair_dataset, sampled_pair_dataset

SIZE = 48  # small frames keep the tests fast; nothing in the pipeline depends on the size


@pytest.fixture(scope="module")
def store(face_set, tmp_path_factory) -> ImageStore:
    return ImageStore.load(
        face_set.readable,
        Preprocess(image_size=SIZE),
        cache_dir=tmp_path_factory.mktemp("cache"),
        progress=False,
    )


@pytest.fixture(scope="module")
def pairs(face_set) -> pd.DataFrame:
    images = identity_images(face_set.images_dir)
    images = images[images.path.isin(face_set.readable)]
    return make_pairs(images, 30, seed=0)


def collect(dataset: tf.data.Dataset, batches: int | None = None):
    """All (or the first ``batches``) batches, concatenated: images a, images b, labels."""
    if batches is not None:
        dataset = dataset.take(batches)
    parts = list(dataset.as_numpy_iterator())
    a = np.concatenate([images_a for (images_a, _), _ in parts])
    b = np.concatenate([images_b for (_, images_b), _ in parts])
    labels = np.concatenate([label for _, label in parts])
    return a, b, labels


def store_rows(store: ImageStore, images: np.ndarray) -> np.ndarray:
    """The store row each (size, size, 1) image in [0, 1] came from (exact pixel match)."""
    row_of = {pixels.tobytes(): row for row, pixels in enumerate(store.pixels)}
    assert len(row_of) == len(store), "the lookup needs distinct images"
    as_uint8 = np.rint(images[..., 0] * 255).astype(np.uint8)
    return np.array([row_of[image.tobytes()] for image in as_uint8])


def expected_rows(store: ImageStore, image_paths) -> np.ndarray:
    return np.array([store.paths.index(p) for p in image_paths])


def pair_order(store, dataset) -> list[tuple[int, int, float]]:
    a, b, labels = collect(dataset)
    return list(zip(store_rows(store, a), store_rows(store, b), labels))


# --- pair_dataset -------------------------------------------------------------------------------


def test_pair_dataset_batches_have_siamese_shapes_and_types(store, pairs):
    (images_a, images_b), labels = next(iter(pair_dataset(store, pairs, batch_size=8)))
    assert images_a.shape == images_b.shape == (8, SIZE, SIZE, 1)
    assert images_a.dtype == images_b.dtype == tf.float32
    assert labels.shape == (8,) and labels.dtype == tf.float32


def test_pair_dataset_without_shuffle_gives_the_pairs_in_order_with_exact_pixels(store, pairs):
    batches = list(pair_dataset(store, pairs, batch_size=8).as_numpy_iterator())
    assert [len(labels) for _, labels in batches] == [8, 8, 8, 6]
    a, b, labels = collect(pair_dataset(store, pairs, batch_size=8))
    np.testing.assert_array_equal(labels, pairs.label.to_numpy(np.float32))
    rows_a, rows_b = expected_rows(store, pairs.path_a), expected_rows(store, pairs.path_b)
    np.testing.assert_allclose(a[..., 0], store.pixels[rows_a] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(b[..., 0], store.pixels[rows_b] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(np.rint(a[..., 0] * 255), store.pixels[rows_a])
    assert a.min() >= 0.0 and a.max() <= 1.0 and b.min() >= 0.0 and b.max() <= 1.0


def test_pair_dataset_labels_follow_the_convention(store, pairs):
    """1 = same person, as siamlib states once for the whole workbook."""
    a, b, labels = collect(pair_dataset(store, pairs, batch_size=8))
    names_a = store.names[store_rows(store, a)]
    names_b = store.names[store_rows(store, b)]
    np.testing.assert_array_equal(labels == SAME, names_a == names_b)
    assert set(labels) == {SAME, DIFFERENT}


def test_pair_dataset_shuffle_is_seeded(store, pairs):
    first = pair_order(store, pair_dataset(store, pairs, 8, shuffle=True, seed=3))
    again = pair_order(store, pair_dataset(store, pairs, 8, shuffle=True, seed=3))
    other = pair_order(store, pair_dataset(store, pairs, 8, shuffle=True, seed=4))
    in_order = pair_order(store, pair_dataset(store, pairs, 8))
    assert first == again
    assert first != other and first != in_order
    assert sorted(first) == sorted(other) == sorted(in_order)  # the same pairs, reordered


def test_pair_dataset_reshuffles_each_epoch(store, pairs):
    """Each pass over the data (a new iterator, as Keras makes per epoch, or the next round of
    ``repeat``) brings the same pairs in a new order."""
    once = pair_dataset(store, pairs, len(pairs), shuffle=True, seed=3)
    epoch_1, epoch_2 = pair_order(store, once), pair_order(store, once)
    endless = pair_dataset(store, pairs, len(pairs), shuffle=True, seed=3, repeat=True)
    repeated = pair_order(store, endless.take(2))
    for first, second in ((epoch_1, epoch_2), (repeated[: len(pairs)], repeated[len(pairs) :])):
        assert first != second
        assert sorted(first) == sorted(second)


def test_pair_dataset_repeat_is_endless(store, pairs):
    _, _, labels = collect(pair_dataset(store, pairs, 8, repeat=True), batches=10)
    assert len(labels) == 80 > len(pairs)
    np.testing.assert_array_equal(labels[: len(pairs)], labels[len(pairs) : 2 * len(pairs)])


def test_pair_dataset_with_a_path_missing_from_the_store_is_an_error(store, pairs, face_set):
    extra = pairs.iloc[:1].assign(path_a=face_set.truncated)
    with pytest.raises(KeyError, match="Cat_C_0003"):
        pair_dataset(store, pd.concat([pairs, extra]), 8)


def test_augmentation_is_seeded_and_changes_pixels(store, pairs):
    plain, _, _ = collect(pair_dataset(store, pairs, 8))
    jittered, _, labels = collect(pair_dataset(store, pairs, 8, seed=1, augment=Augment()))
    again, _, _ = collect(pair_dataset(store, pairs, 8, seed=1, augment=Augment()))
    other, _, _ = collect(pair_dataset(store, pairs, 8, seed=2, augment=Augment()))
    np.testing.assert_array_equal(jittered, again)
    assert jittered.shape == plain.shape and jittered.dtype == np.float32
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    assert np.abs(jittered - plain).mean() > 0.01
    assert np.abs(jittered - other).mean() > 0.01
    np.testing.assert_array_equal(labels, pairs.label.to_numpy(np.float32))  # labels untouched


def test_flip_only_augmentation_mirrors_some_images_and_leaves_the_rest(store, pairs):
    """With every other jitter at zero, each image is either itself or its mirror image."""
    flip_only = Augment(max_shift=0, max_rotation=0, max_zoom=0, brightness=0, contrast=0)
    plain, _, _ = collect(pair_dataset(store, pairs, 8))
    flipped, _, _ = collect(pair_dataset(store, pairs, 8, seed=0, augment=flip_only))
    same = np.all(np.isclose(flipped, plain, atol=1e-5), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(flipped, plain[:, :, ::-1], atol=1e-5), axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert same.sum() > 5 and mirrored.sum() > 5


def test_the_two_images_of_a_pair_are_jittered_independently(store, pairs):
    """Pairs of an image with itself: independent flips leave some of them mirror images."""
    flip_only = Augment(max_shift=0, max_rotation=0, max_zoom=0, brightness=0, contrast=0)
    selfies = pairs.assign(path_b=pairs.path_a)
    a, b, _ = collect(pair_dataset(store, selfies, 8, seed=0, augment=flip_only))
    differ = np.any(np.abs(a - b) > 1e-5, axis=(1, 2, 3))
    assert 5 < differ.sum() < len(pairs) - 5


# --- sampled_pair_dataset -----------------------------------------------------------------------


def sampled_pairs(store, people, pairs: int, seed: int = 0):
    """``pairs`` sampled pairs as store rows a, rows b and labels."""
    a, b, labels = collect(sampled_pair_dataset(store, people, 10, seed=seed), pairs // 10)
    return store_rows(store, a), store_rows(store, b), labels


def test_sampled_pairs_alternate_same_and_different(store):
    _, _, labels = sampled_pairs(store, set(store.names), 60)
    np.testing.assert_array_equal(labels, [SAME, DIFFERENT] * 30)


def test_sampled_pair_labels_match_the_people(store):
    rows_a, rows_b, labels = sampled_pairs(store, set(store.names), 400)
    same = labels == SAME
    np.testing.assert_array_equal(store.names[rows_a] == store.names[rows_b], same)
    assert np.all(rows_a[same] != rows_b[same])  # two images of one person, not one twice


def test_sampled_pairs_use_only_the_given_people(store):
    people = {"Ann_A", "Cat_C", "Eve_E"}
    rows_a, rows_b, _ = sampled_pairs(store, people, 200)
    assert set(store.names[rows_a]) | set(store.names[rows_b]) == people


def test_sampled_pairs_are_seeded(store):
    people = set(store.names)
    first, again, other = (sampled_pairs(store, people, 50, seed=s) for s in (7, 7, 8))
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])


def test_sampled_pairs_cover_the_images_evenly(store):
    """Same pairs start at a uniform image of anyone with two or more images, different pairs
    at a uniform image of anyone; 2,000 pairs give each image about its share."""
    rows_a, rows_b, labels = sampled_pairs(store, set(store.names), 2000)
    same = labels == SAME
    counts = Counter(store.names)
    repeat_rows = [r for r, name in enumerate(store.names) if counts[name] >= 2]
    starts_same, starts_different = Counter(rows_a[same]), Counter(rows_a[~same])
    assert sorted(starts_same) == repeat_rows  # Eve_E, with one image, starts no same pair
    assert sorted(starts_different) == list(range(len(store)))
    for starts, rows in ((starts_same, repeat_rows), (starts_different, range(len(store)))):
        share = sum(starts.values()) / len(rows)
        assert all(0.6 * share < starts[r] < 1.4 * share for r in rows), starts
    assert set(rows_b[same]) == set(repeat_rows)
    assert set(rows_b[~same]) == set(range(len(store)))


@pytest.mark.parametrize(
    "people",
    [set(), ["Nobody_Here"]],
)
def test_sampling_from_no_known_people_is_an_error(store, people):
    with pytest.raises(ValueError, match="none of the given people"):
        sampled_pair_dataset(store, people, 4)


def test_sampling_needs_someone_with_two_images_and_two_people(face_set, tmp_path):
    singles = [face_set.path("Dan_D", 1), face_set.path("Eve_E", 1), face_set.path("Fay_F", 1)]
    store = ImageStore.load(singles, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="at least two images"):
        sampled_pair_dataset(store, set(store.names), 4)
    one_person = ImageStore.load(
        [face_set.path("Ann_A", i) for i in (1, 2, 3)], cache_dir=tmp_path, progress=False
    )
    with pytest.raises(ValueError, match="two people"):
        sampled_pair_dataset(one_person, {"Ann_A"}, 4)


# --- identity_batch_dataset -------------------------------------------------------------------


def identity_batches(store, people, batches: int, seed: int = 0, per_batch=(2, 2)):
    """``batches`` identity batches as (store rows, person ids) per batch; the rows are read
    off the pixels, and must be the rows the batch names."""
    dataset = identity_batch_dataset(store, people, *per_batch, seed=seed)
    found = []
    for images, (ids, rows) in dataset.take(batches).as_numpy_iterator():
        np.testing.assert_array_equal(rows, store_rows(store, images))
        found.append((rows, ids))
    return found


def test_identity_batches_name_each_images_store_row_even_when_jittered(store):
    """The rows tell a repeated photo from two photos of one person, whatever the jitter."""
    dataset = identity_batch_dataset(store, {"Dan_D", "Ann_A"}, 2, 3, augment=Augment())
    plain = identity_batch_dataset(store, {"Dan_D", "Ann_A"}, 2, 3)
    for (images, (ids, rows)), (clean, _) in zip(dataset.take(5), plain.take(5)):
        assert rows.dtype == tf.int32 and rows.shape == ids.shape == (6,)
        np.testing.assert_array_equal(rows, store_rows(store, clean.numpy()))
        np.testing.assert_array_equal(store.names[rows.numpy()], store.names[rows.numpy()[::3]]
                                      .repeat(3))
        assert not np.allclose(images, clean)  # jittered, yet the rows still name the photos


def test_identity_batches_hold_k_images_of_each_of_p_distinct_people(store):
    for rows, ids in identity_batches(store, set(store.names), 30, per_batch=(3, 2)):
        assert rows.shape == ids.shape == (6,)
        names = store.names[rows]
        assert list(ids[::2]) == list(ids[1::2]) and len(set(ids)) == 3  # people in blocks of K
        assert list(names[::2]) == list(names[1::2]) and len(set(names)) == 3
        assert all(rows[::2] != rows[1::2])  # two different photos of each person


def test_identity_batches_draw_only_people_with_two_images(store):
    seen = {name for rows, _ in identity_batches(store, set(store.names), 60)
            for name in store.names[rows]}
    counts = Counter(store.names)
    assert seen == {name for name, n in counts.items() if n >= 2}  # never Eve_E (one image)


def test_identity_batches_repeat_images_of_people_with_fewer_than_k(store):
    """Dan_D has 2 readable images: with K = 3 one repeats (augmentation makes them differ)."""
    for rows, _ in identity_batches(store, {"Dan_D", "Ann_A"}, 10, per_batch=(2, 3)):
        dan = rows[store.names[rows] == "Dan_D"]
        assert len(dan) == 3 and len(set(dan)) == 2
        ann = rows[store.names[rows] == "Ann_A"]
        assert len(set(ann)) == 3


def test_identity_batches_can_ask_more_images_than_anyone_has(store):
    """Dan_D and Fay_F have 2 readable images each: with K = 4 each photo comes twice."""
    for rows, _ in identity_batches(store, {"Dan_D", "Fay_F"}, 5, per_batch=(2, 4)):
        assert sorted(Counter(rows).values()) == [2, 2, 2, 2]


def test_identity_batches_are_seeded(store):
    people = set(store.names)
    first, again, other = (identity_batches(store, people, 10, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_identity_batches_need_enough_people_with_two_images(store):
    with pytest.raises(ValueError, match="need 5 people with two or more images; these people "
                                         "have 2"):
        identity_batch_dataset(store, {"Ann_A", "Bob_B", "Eve_E"}, 5, 2)


# --- memory -------------------------------------------------------------------------------------


def test_pipeline_memory_grows_with_images_not_with_pairs(face_set, tmp_path):
    """The graph holds the store's uint8 pixels once and pairs as int32 rows: 30,000 pairs of
    105x105 images, 5.3 GB as float64 arrays, must cost almost nothing on top."""
    store = ImageStore.load(face_set.readable, cache_dir=tmp_path, progress=False)
    few = pd.DataFrame({"path_a": store.paths, "path_b": store.paths[::-1], "label": 0})
    many = pd.concat([few] * (30_000 // len(few) + 1), ignore_index=True)
    next(iter(pair_dataset(store, few, 8, shuffle=True)))  # load TensorFlow's kernels first
    gc.collect()
    before = psutil.Process().memory_info().rss
    dataset = pair_dataset(store, many, 8, shuffle=True)
    next(iter(dataset))
    grown = psutil.Process().memory_info().rss - before
    as_float64 = len(many) * 2 * store.pixels[0].size * 8
    assert grown < as_float64 / 50, f"RSS grew {grown / 2**20:.0f} MiB"
