"""Tests for siamlib.scoring: cached scoring equals the two-tower forward pass, flip averaging,
one-shot task construction, one-shot scores of a network and of plain functions,
and N-way accuracy of a hand-made and a trained scorer."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
from synthetic_faces import IMAGE_SIZE, trained_synthetic_run, write_face_folder

from siamlib import baseline, metrics, scoring
from siamlib.images import ImageStore, Preprocess
from siamlib.model import ModelConfig, build_siamese
from siamlib.pairs import identity_images
from siamlib.scoring import embed, one_shot_scores, one_shot_tasks, score_pairs

# Glorot weights spread the scores out, so a pair scored with the wrong images shows.
SMALL = ModelConfig(
    image_size=24, filters=(4, 8), kernels=(3, 3), dense_units=16, init="glorot", l2=0.0
)


def random_store(num_people: int, images_per_person: int, size: int, seed: int) -> ImageStore:
    """Noise images named ``P<k>/P<k>_<i>.png``: the store only needs paths and pixels."""
    rng = np.random.default_rng(seed)
    image_paths = [
        f"P{p:02d}/P{p:02d}_{i:04d}.png"
        for p in range(num_people)
        for i in range(1, images_per_person + 1)
    ]
    pixels = rng.integers(0, 256, (len(image_paths), size, size), dtype=np.uint8)
    return ImageStore(image_paths, pixels, truncated=[])


def as_inputs(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., np.newaxis].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return build_siamese(SMALL, policy="float32")


@pytest.fixture(scope="module")
def store() -> ImageStore:
    return random_store(num_people=12, images_per_person=3, size=SMALL.image_size, seed=4)


@pytest.fixture(scope="module")
def pairs(store) -> pd.DataFrame:
    """40 pairs that reuse images, so each unique image is embedded once for several pairs."""
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, len(store), (2, 40))
    return pd.DataFrame(
        {"path_a": [store.paths[i] for i in a], "path_b": [store.paths[i] for i in b]}
    )


# --- pairs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["bce", "contrastive"])
def test_cached_pair_scores_equal_the_two_tower_forward_pass(loss, store, pairs):
    keras.utils.set_random_seed(6)
    model = build_siamese(replace(SMALL, loss=loss), policy="float32")
    cached = score_pairs(model, store, pairs)
    a = as_inputs(store.pixels[store.rows(pairs["path_a"])])
    b = as_inputs(store.pixels[store.rows(pairs["path_b"])])
    forward = model.predict([a, b], verbose=0).reshape(-1)
    assert cached.shape == (len(pairs),)
    np.testing.assert_allclose(cached, forward, atol=1e-5)
    assert np.ptp(forward) > 1e-3, "pairs scored alike: a mix-up of images would not show"


def test_flip_averaging_scores_mirrored_images_the_same(small_model, store, pairs):
    mirrored = ImageStore(store.paths, np.ascontiguousarray(store.pixels[:, :, ::-1]), [])
    plain = score_pairs(small_model, store, pairs, flip=True)
    np.testing.assert_allclose(score_pairs(small_model, mirrored, pairs, flip=True), plain,
                               atol=1e-6)
    # Without flip averaging the (noise) images and their mirrors score differently.
    unflipped = score_pairs(small_model, store, pairs)
    assert np.abs(score_pairs(small_model, mirrored, pairs) - unflipped).max() > 1e-3


def test_flip_embedding_is_the_mean_of_image_and_mirror_embeddings(small_model, store):
    mirrored_pixels = np.ascontiguousarray(store.pixels[:, :, ::-1])
    expected = (embed(small_model, store.pixels) + embed(small_model, mirrored_pixels)) / 2
    np.testing.assert_allclose(embed(small_model, store.pixels, flip=True), expected, atol=1e-6)


# --- one-shot tasks -----------------------------------------------------------------------------

# 10 people: A has 4 images, B..E 2 each, F..J only 1 (they can be distractors, never probes).
NAMES = np.array(
    list("AAAA") + [p for p in "BCDE" for _ in range(2)] + list("FGHIJ")
)


def test_one_shot_task_columns_are_probe_match_and_distinct_other_people():
    tasks = one_shot_tasks(NAMES, n_way=6, num_tasks=500, seed=0)
    assert tasks.shape == (500, 7)
    probe, match, others = NAMES[tasks[:, 0]], NAMES[tasks[:, 1]], NAMES[tasks[:, 2:]]
    assert np.array_equal(probe, match)
    assert np.all(tasks[:, 0] != tasks[:, 1])  # the match is another image of the probe's person
    assert np.all(others != probe[:, None])
    assert all(len(set(row)) == 5 for row in others)  # 5 distinct other people
    assert set(probe) == set("ABCDE")  # every person with two images is asked about
    assert set(others.ravel()) == set("ABCDEFGHIJ")  # anyone can be a distractor


def test_one_shot_tasks_are_seeded():
    first = one_shot_tasks(NAMES, n_way=4, num_tasks=50, seed=1)
    assert np.array_equal(first, one_shot_tasks(NAMES, n_way=4, num_tasks=50, seed=1))
    assert not np.array_equal(first, one_shot_tasks(NAMES, n_way=4, num_tasks=50, seed=2))


def test_one_shot_tasks_can_use_every_person():
    tasks = one_shot_tasks(NAMES, n_way=10, num_tasks=20, seed=0)
    assert all(set(NAMES[row[1:]]) == set("ABCDEFGHIJ") for row in tasks)


def test_one_shot_tasks_need_enough_people():
    with pytest.raises(ValueError, match="11-way tasks need 11 people; there are 10"):
        one_shot_tasks(NAMES, n_way=11, num_tasks=5)


def test_one_shot_tasks_need_a_person_with_two_images():
    with pytest.raises(ValueError, match="two images"):
        one_shot_tasks(np.array(list("FGHIJ")), n_way=3, num_tasks=5)


# --- one-shot scores ----------------------------------------------------------------------------


def test_one_shot_scores_of_one_hot_embeddings_by_hand():
    # One-hot embeddings per person through the contrastive head: unit vectors at distance 0
    # for the same person (score 1) and sqrt(2) for different people (score 1 / (1 + sqrt 2)).
    people, person_of = np.unique(NAMES, return_inverse=True)
    model = build_siamese(
        replace(SMALL, dense_units=len(people), loss="contrastive", distance="l2"), "float32"
    )
    embeddings = np.eye(len(people), dtype=np.float32)[person_of]
    tasks = one_shot_tasks(NAMES, n_way=5, num_tasks=100, seed=0)
    scores = one_shot_scores(model, embeddings, tasks)
    expected = np.full((100, 5), 1.0 / (1.0 + np.sqrt(2.0)))
    expected[:, 0] = 1.0
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert metrics.n_way_accuracy(scores) == 1.0


def test_one_shot_scores_equal_the_two_tower_forward_pass(small_model, store):
    tasks = one_shot_tasks(store.names, n_way=5, num_tasks=30, seed=0)
    scores = one_shot_scores(small_model, embed(small_model, store.pixels), tasks)
    probes = as_inputs(store.pixels[np.repeat(tasks[:, 0], 5)])
    candidates = as_inputs(store.pixels[tasks[:, 1:].ravel()])
    forward = small_model.predict([probes, candidates], verbose=0).reshape(30, 5)
    assert scores.shape == (30, 5)
    np.testing.assert_allclose(scores, forward, atol=1e-5)


# Four photos described by one number each; a scorer of minus the distance between two rows.
LINE = np.array([[0.0], [1.0], [3.0], [6.0]])


def minus_distance(first, second):
    return -np.abs(first - second).sum(axis=1)


def test_one_shot_scores_of_a_function_by_hand():
    # Task 1: probe 0 against 1, 3, 6 -> -1, -3, -6. Task 2: probe 6 against 3, 1, 0.
    tasks = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    scores = one_shot_scores(minus_distance, LINE, tasks)
    np.testing.assert_array_equal(scores, [[-1.0, -3.0, -6.0], [-3.0, -5.0, -6.0]])
    assert scores.dtype == np.float64
    assert metrics.n_way_accuracy(scores) == 1.0


def test_a_function_is_scored_in_blocks_with_the_same_result(monkeypatch):
    calls = []

    def recording(first, second):
        calls.append(len(first))
        return minus_distance(first, second)

    tasks = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 2, 3]])
    whole = one_shot_scores(minus_distance, LINE, tasks)
    monkeypatch.setattr(scoring, "SCORER_BLOCK_ROWS", 2)
    np.testing.assert_array_equal(one_shot_scores(recording, LINE, tasks), whole)
    assert calls == [2, 2, 2, 2, 1]  # 9 probe-candidate rows, at most 2 per call


def test_one_shot_scores_of_lbp_equal_scoring_each_column_alone():
    # The notebook once scored the baselines column by column; one pass must give the same bits.
    rng = np.random.default_rng(8)
    descriptors = rng.random((12, 2 * 59))
    tasks = one_shot_tasks(np.repeat(list("ABCDEF"), 2), n_way=4, num_tasks=40, seed=1)
    by_column = np.stack(
        [baseline.lbp_similarity(descriptors[tasks[:, 0]], descriptors[tasks[:, j]], grid=1)
         for j in range(1, 5)], axis=1)
    scores = one_shot_scores(lambda a, b: baseline.lbp_similarity(a, b, grid=1), descriptors, tasks)
    np.testing.assert_array_equal(scores, by_column)


@pytest.mark.parametrize(
    "scorer, tasks, message",
    [
        ("not a scorer", np.array([[0, 1, 2]]), "scorer must be"),
        (lambda a, b: np.zeros((len(a), 2)), np.array([[0, 1, 2]]), "one score per row"),
        (minus_distance, np.array([0, 1, 2]), "tasks must be"),
        (minus_distance, np.array([[0, 1]]), "n_way >= 2"),
    ],
)
def test_one_shot_scores_reject_bad_input(scorer, tasks, message):
    with pytest.raises(ValueError, match=message):
        one_shot_scores(scorer, LINE, tasks)




def test_trained_network_does_one_shot_tasks_on_new_people(tmp_path_factory, tmp_path):
    run = trained_synthetic_run(tmp_path_factory)
    # 12 people generated with another seed, so never seen in training, and with 7.5x the
    # training noise, so the tasks get harder as distractors are added (at 5x: 1.0 at N = 5).
    faces = write_face_folder(
        tmp_path / "new-faces", num_people=12, images_per_person=4, noise=0.6, seed=7
    )
    store = ImageStore.load(identity_images(faces)["path"], Preprocess(image_size=IMAGE_SIZE),
                            cache_dir=tmp_path / "cache", progress=False)
    embeddings = embed(run.model, store.pixels)
    accuracy = {}
    for n_way in range(2, 11):
        tasks = one_shot_tasks(store.names, n_way=n_way, num_tasks=300, seed=n_way)
        accuracy[n_way] = metrics.n_way_accuracy(one_shot_scores(run.model, embeddings, tasks))
    # Chance is 1/N (0.5 down to 0.1); this network got 0.99 at N = 2 and 0.95 at N = 10.
    assert min(accuracy.values()) > 0.7, accuracy
    assert accuracy[2] > 0.95, accuracy
    assert accuracy[2] > accuracy[5] > accuracy[10], accuracy
