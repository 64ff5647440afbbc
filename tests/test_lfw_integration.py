"""pairs, images and pipeline on the real LFW-a (View 1: pairsDevTrain.txt / pairsDevTest.txt).

The numbers asserted here are facts about the data set (LFW's README and pair files), not
outputs of siamlib: 2,200 DevTrain pairs over 2,132 people and 3,443 images, 1,000 DevTest
pairs, 13,233 images in all, and DevTrain's people owning 6,685 images.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamlib import DIFFERENT, SAME
from siamlib.images import ImageStore, Preprocess
from siamlib.pairs import (
    PAIR_COLUMNS,
    identity_images,
    pair_people,
    person_disjoint_split,
    person_overlap,
    read_pairs,
)
from siamlib.pipeline import pair_dataset, sampled_pair_dataset
from siamlib.splits import DataConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_train(lfw_dataset):
    return read_pairs(lfw_dataset / "pairsDevTrain.txt", lfw_dataset / "images")


@pytest.fixture(scope="module")
def dev_test(lfw_dataset):
    return read_pairs(lfw_dataset / "pairsDevTest.txt", lfw_dataset / "images")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh image cache, so no test depends on what an earlier run left in data/cache."""
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def train_store(dev_train, cache_dir) -> ImageStore:
    paths = [*dev_train.path_a, *dev_train.path_b]
    with warnings.catch_warnings():  # DevTrain's truncation warning is not what is tested here
        warnings.simplefilter("ignore", UserWarning)
        return ImageStore.load(paths, cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="module")
def all_images(lfw_dataset):
    return identity_images(lfw_dataset / "images")


@pytest.fixture(scope="module")
def full_load(all_images, cache_dir):
    """Every LFW-a image in one store, and the warnings that loading it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = ImageStore.load(all_images.path, cache_dir=cache_dir, progress=False)
    return store, [w for w in caught if issubclass(w.category, UserWarning)]


def rows_by_pixels(store: ImageStore) -> dict[bytes, list[int]]:
    """Store rows by a digest of their pixels (lists: LFW holds a few exact duplicates)."""
    rows = defaultdict(list)
    for row, pixels in enumerate(store.pixels):
        rows[hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()].append(row)
    return rows


def people_in(images: np.ndarray, names: np.ndarray, lookup) -> list[set[str]]:
    """For each (size, size, 1) image in [0, 1]: the people whose store images it could be."""
    as_uint8 = np.rint(images[..., 0] * 255).astype(np.uint8)
    return [
        {names[r] for r in lookup[hashlib.blake2b(i.tobytes(), digest_size=16).digest()]}
        for i in as_uint8
    ]


# --- pairs --------------------------------------------------------------------------------------


def test_dev_pair_files_have_lfw_sizes_and_balance(dev_train, dev_test):
    for pairs, per_class in ((dev_train, 1_100), (dev_test, 500)):
        assert list(pairs.columns) == PAIR_COLUMNS
        assert len(pairs) == 2 * per_class
        assert (pairs.label == SAME).sum() == (pairs.label == DIFFERENT).sum() == per_class
        assert all(Path(p).is_file() for p in {*pairs.path_a, *pairs.path_b})


def test_dev_train_has_2132_people_and_3443_images(dev_train):
    assert len(pair_people(dev_train)) == 2_132
    assert len({*dev_train.path_a, *dev_train.path_b}) == 3_443


def test_dev_test_shares_no_person_with_dev_train(dev_train, dev_test):
    assert person_overlap(dev_train, dev_test)["shared_people"] == 0


def test_person_disjoint_split_of_dev_train_shares_nobody_and_loses_no_pair(dev_train):
    train, val = person_disjoint_split(dev_train, 0.2, seed=0)
    assert person_overlap(train, val)["shared_people"] == 0
    assert len(train) + len(val) == len(dev_train)
    assert 0.2 <= len(val) / len(dev_train) < 0.22


def test_random_pair_split_of_dev_train_leaks_over_100_people(dev_train):
    train = dev_train.sample(frac=0.8, random_state=0)
    val = dev_train.drop(train.index)
    assert person_overlap(train, val)["shared_people"] > 100


def test_all_of_lfw_a_is_13233_images_of_5749_people(all_images):
    assert len(all_images) == 13_233
    assert all_images.name.nunique() == 5_749


# --- images -------------------------------------------------------------------------------------


def test_dev_train_store_holds_each_image_once_as_105px_uint8(train_store, dev_train):
    assert train_store.pixels.shape == (3_443, 105, 105)
    assert train_store.pixels.dtype == np.uint8
    assert [Path(p).name for p in train_store.truncated] == ["Franz_Muentefering_0001.jpg"]
    rows = train_store.rows(dev_train.path_a)
    assert [train_store.paths[r] for r in rows] == dev_train.path_a.tolist()


def test_store_of_all_images_reports_exactly_the_truncated_jpegs(
    full_load, all_images, find_truncated_jpegs
):
    """LFW-a has one truncated JPEG, Franz_Muentefering_0001.jpg."""
    store, user_warnings = full_load
    truncated = find_truncated_jpegs(all_images.path)
    assert len(store) == 13_233
    assert store.truncated == truncated
    assert [Path(p).name for p in truncated] == ["Franz_Muentefering_0001.jpg"]
    assert len(user_warnings) == 1
    assert "truncated" in str(user_warnings[0].message)


def test_lfw_a_is_decoded_on_the_centre_half_of_its_250px_frames(dev_test, cache_dir):
    """Issue 22, 10: LFW-a's alignment puts the face in the centre half of the frame, so the
    data source's "auto" face crop keeps [62, 187) of each 250x250 frame."""
    face_crop = DataConfig().face_crop
    assert face_crop == "centre-half"
    paths = sorted(set(dev_test.path_a))[:5]
    store = ImageStore.load(paths, Preprocess(105), face_crop, cache_dir=cache_dir,
                            progress=False)
    for path, pixels in zip(store.paths, store.pixels):
        frame = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert frame.shape == (250, 250)
        expected = cv2.resize(frame[62:187, 62:187], (105, 105), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(pixels, expected)


# --- pipeline -----------------------------------------------------------------------------------


def test_dev_train_batches_are_105px_float_pairs_in_0_1(train_store, dev_train):
    dataset = pair_dataset(train_store, dev_train, batch_size=64, shuffle=True, seed=0)
    (images_a, images_b), labels = next(iter(dataset))
    assert images_a.shape == images_b.shape == (64, 105, 105, 1)
    assert images_a.dtype == images_b.dtype == np.float32
    for images in (images_a.numpy(), images_b.numpy()):
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.max() > 0.5  # scaled to [0, 1], not to [0, 1/255]
    assert labels.shape == (64,)


def test_a_dev_train_epoch_is_exactly_half_same_person(train_store, dev_train):
    dataset = pair_dataset(train_store, dev_train, batch_size=64, shuffle=True, seed=0)
    labels = np.concatenate([labels for _, labels in dataset.as_numpy_iterator()])
    assert len(labels) == 2_200
    assert labels.mean() == 0.5


def test_sampled_pairs_draw_from_the_6685_images_of_dev_train_people(full_load, dev_train):
    store, _ = full_load
    names, people = store.names, pair_people(dev_train)
    assert np.isin(names, list(people)).sum() == 6_685
    dataset = sampled_pair_dataset(store, people, batch_size=64, seed=0)
    lookup = rows_by_pixels(store)
    for (images_a, images_b), labels in dataset.take(4).as_numpy_iterator():
        assert labels.mean() == 0.5
        people_a, people_b = people_in(images_a, names, lookup), people_in(images_b, names, lookup)
        for label, a, b in zip(labels, people_a, people_b):
            assert a <= people and b <= people
            if len(a) == len(b) == 1:  # not one of LFW's few duplicated images
                assert (a == b) == (label == SAME)
