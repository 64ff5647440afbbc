"""Scoring pairs and one-shot tasks from cached embeddings: the tower is the expensive half, so
each unique image is embedded once. A *scorer* is the network or any function ``(first, second)
-> one score per row``, so the baselines meet the same pairs and tasks.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from siamlib.images import ImageStore
from siamlib.model import head_of, tower_of

# Rows a scorer gets per call: 20,000 LBP descriptor pairs are 1 GB.
SCORER_BLOCK_ROWS = 4096


def embed(model, pixels: np.ndarray, flip: bool = False) -> np.ndarray:
    """``flip=True`` averages with the mirror images' (a face and its mirror are one person)."""
    tower = tower_of(model)
    dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(256)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32)[..., tf.newaxis] / 255.0)
    embeddings = tower.predict(dataset, verbose=0).astype(np.float32)
    if flip:
        mirrored = tower.predict(dataset.map(tf.image.flip_left_right), verbose=0)
        embeddings = (embeddings + mirrored.astype(np.float32)) / 2.0
    return embeddings


def _row_scores(scorer, features: np.ndarray, rows_a, rows_b) -> np.ndarray:
    head = head_of(scorer) if isinstance(scorer, keras.Model) else None
    if head is None and not callable(scorer):
        raise ValueError(f"scorer must be a Siamese network or a function (first, second) -> "
                         f"scores, got {type(scorer).__name__}")
    blocks = [np.empty(0)]
    for start in range(0, len(rows_a), SCORER_BLOCK_ROWS):
        block = slice(start, start + SCORER_BLOCK_ROWS)
        pair = [features[rows_a[block]], features[rows_b[block]]]
        scores = np.asarray(scorer(*pair)) if head is None else head.predict(
            pair, batch_size=SCORER_BLOCK_ROWS, verbose=0).reshape(-1)
        if scores.shape != (len(pair[0]),):
            raise ValueError(f"scorer must return one score per row, got shape {scores.shape}")
        blocks.append(scores.astype(np.float64))
    return np.concatenate(blocks)


def score_pairs(scorer, store: ImageStore, pairs: pd.DataFrame, flip: bool = False,
                describe: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``describe`` (the network's ``embed`` unless given) runs once per unique image."""
    missing = [column for column in ("path_a", "path_b") if column not in pairs.columns]
    if missing:
        raise ValueError(f"pairs lack the column(s) {missing}")
    used, inverse = np.unique(store.rows(pd.concat([pairs["path_a"], pairs["path_b"]])),
                              return_inverse=True)
    features = describe(store.pixels[used]) if describe else embed(scorer, store.pixels[used], flip)
    return _row_scores(scorer, features, inverse[: len(pairs)], inverse[len(pairs) :])


def one_shot_tasks(names: np.ndarray, n_way: int, num_tasks: int, seed: int = 0) -> np.ndarray:
    """Rows of probe, its match, then one image each of n_way - 1 other people; seeded, so every
    model meets the same tasks."""
    people, person_of = np.unique(names, return_inverse=True)
    if len(people) < n_way:
        raise ValueError(f"{n_way}-way tasks need {n_way} people; there are {len(people)}")
    rows_by_person = [np.flatnonzero(person_of == p) for p in range(len(people))]
    with_pairs = [p for p, rows in enumerate(rows_by_person) if len(rows) >= 2]
    if not with_pairs:
        raise ValueError("one-shot tasks need at least one person with two images")
    rng = np.random.default_rng(seed)
    tasks = np.empty((num_tasks, n_way + 1), dtype=np.int64)
    for t in range(num_tasks):
        person = with_pairs[rng.integers(len(with_pairs))]
        tasks[t, :2] = rng.choice(rows_by_person[person], size=2, replace=False)
        others = rng.choice(len(people) - 1, size=n_way - 1, replace=False)
        others = np.where(others >= person, others + 1, others)
        tasks[t, 2:] = [rows_by_person[o][rng.integers(len(rows_by_person[o]))] for o in others]
    return tasks


def one_shot_scores(scorer, features: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """Each task's probe (column 0) against its candidates; with the whole gallery as candidates,
    (probes, templates) for identification."""
    tasks = np.asarray(tasks)
    if tasks.ndim != 2 or tasks.shape[1] < 3:
        raise ValueError(f"tasks must be (num_tasks, n_way + 1) with n_way >= 2, got shape "
                         f"{tasks.shape}")
    probes = np.repeat(tasks[:, 0], tasks.shape[1] - 1)
    return _row_scores(scorer, features, probes, tasks[:, 1:].reshape(-1)).reshape(len(tasks), -1)
