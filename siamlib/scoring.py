"""Scoring pairs and one-shot tasks from cached embeddings.

The tower is by far the expensive half of the network and the head is cheap, so each unique
image is embedded once and the head is applied to the pairs' embeddings. 1,000 DevTest pairs
name 1,700 images; 500 20-way one-shot tasks name 10,500 image slots but only the unique
images are embedded. The result equals the two-tower forward pass (tested within 1e-5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from siamlib import metrics
from siamlib.images import ImageStore
from siamlib.model import head_of, tower_of


def embed(model, pixels: np.ndarray, batch_size: int = 256, flip: bool = False) -> np.ndarray:
    """Embeddings (float32) of ``(n, size, size)`` uint8 images through the model's tower.

    ``flip=True`` averages each image's embedding with that of its mirror image (test-time
    flip averaging: a face and its mirror show the same person).
    """
    tower = tower_of(model)
    dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(batch_size)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32)[..., tf.newaxis] / 255.0)
    embeddings = tower.predict(dataset, verbose=0).astype(np.float32)
    if flip:
        mirrored = tower.predict(dataset.map(tf.image.flip_left_right), verbose=0)
        embeddings = (embeddings + mirrored.astype(np.float32)) / 2.0
    return embeddings


def head_scores(model, emb_a: np.ndarray, emb_b: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """The head applied to paired rows of two embedding arrays; one float per pair."""
    scores = head_of(model).predict([emb_a, emb_b], batch_size=batch_size, verbose=0)
    return scores.reshape(-1).astype(np.float64)


def score_pairs(model, store: ImageStore, pairs: pd.DataFrame, flip: bool = False) -> np.ndarray:
    """Scores of a pair frame (1 = same person), embedding each unique image once."""
    rows_a, rows_b = store.rows(pairs["path_a"]), store.rows(pairs["path_b"])
    used, inverse = np.unique(np.concatenate([rows_a, rows_b]), return_inverse=True)
    embeddings = embed(model, store.pixels[used], flip=flip)
    n = len(rows_a)
    return head_scores(model, embeddings[inverse[:n]], embeddings[inverse[n:]])


def one_shot_tasks(names: np.ndarray, n_way: int, num_tasks: int, seed: int = 0) -> np.ndarray:
    """``(num_tasks, n_way + 1)`` row numbers: probe, its match, then n_way - 1 other people.

    Each task asks "which of these n_way faces is the probe's person?" with exactly one right
    answer (column 1). The probe's person needs a second image; the distractors are one image
    each of n_way - 1 distinct other people. Seeded, so every model meets the same tasks.
    """
    names = np.asarray(names)
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


def one_shot_scores(model, embeddings: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """``(num_tasks, n_way)`` scores of each task's probe against its candidates (match first).

    ``embeddings`` are the store's rows embedded once (``embed(model, store.pixels)``).
    """
    probes = np.repeat(tasks[:, 0], tasks.shape[1] - 1)
    candidates = tasks[:, 1:].reshape(-1)
    scores = head_scores(model, embeddings[probes], embeddings[candidates])
    return scores.reshape(len(tasks), -1)


def n_way_accuracy(model, photos: ImageStore, n_way: int, num_tasks: int, seed: int = 0) -> float:
    """Koch et al.'s N-way one-shot accuracy on ``num_tasks`` seeded tasks from ``photos``."""
    tasks = one_shot_tasks(photos.names, n_way, num_tasks, seed=seed)
    scores = one_shot_scores(model, embed(model, photos.pixels), tasks)
    return metrics.n_way_accuracy(scores)
