"""tf.data pipelines: the given pairs, fresh sampled pairs, or batches of P people x K images.

They carry store rows and gather pixels per batch, so memory grows with images, not pairs.
Random draws are *stateless*, keyed by (seed, stream, element number): the same batches on every
run whatever the parallelism. Pairs come as ``((image_a, image_b), label)``, 1 = same person.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from siamlib.images import ImageStore

_SAMPLING, _AUGMENTATION = 1, 2  # independent random streams under one seed


def _key(seed: int, stream: int, number):
    base = tf.constant([seed, stream], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(number, tf.int64))


@dataclass(frozen=True)
class Augment:
    """Training-only jitter, drawn per image: mirror (faces are roughly symmetric), shift (a
    fraction of the side), rotation (degrees), zoom, brightness (pixels in [0, 1]), contrast."""

    flip: bool = True
    max_shift: float = 0.05
    max_rotation: float = 10.0
    max_zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.2


def pair_dataset(store: ImageStore, pairs: pd.DataFrame, batch_size: int, shuffle: bool = False,
                 seed: int = 0, augment: Augment | None = None,
                 repeat: bool = False) -> tf.data.Dataset:
    labels = pairs["label"].to_numpy(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(
        (store.rows(pairs["path_a"]), store.rows(pairs["path_b"]), labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return _batches(dataset, store, batch_size, seed, augment)


def sampled_pair_dataset(store: ImageStore, people: set[str] | list[str], batch_size: int,
                         seed: int = 0, augment: Augment | None = None) -> tf.data.Dataset:
    """Endless fresh pairs of ``people``'s images, alternating same and different."""
    chosen, person_of, starts, counts = _rows_by_person(store, people)
    if counts.max() < 2 or len(counts) < 2:
        raise ValueError("sampling needs two people and someone with at least two images")
    rows = tf.constant(chosen, tf.int32)
    start = tf.constant(starts[person_of], tf.int32)  # per position in `rows`
    count = tf.constant(counts[person_of], tf.int32)
    eligible = tf.constant(np.flatnonzero(counts[person_of] >= 2), tf.int32)

    def sample_pair(k):  # even k: a same pair, odd k: a different pair
        u = tf.random.stateless_uniform([2], seed=_key(seed, _SAMPLING, k), dtype=tf.float32)

        def draw(fraction, n):
            return tf.minimum(tf.cast(fraction * tf.cast(n, tf.float32), tf.int32), n - 1)

        def same():
            anchor = tf.gather(eligible, draw(u[0], tf.size(eligible)))
            other = start[anchor] + draw(u[1], count[anchor] - 1)  # one of the person's others
            return anchor, tf.where(other >= anchor, other + 1, other)

        def different():
            anchor = draw(u[0], tf.size(rows))
            first, n = start[anchor], count[anchor]
            other = draw(u[1], tf.size(rows) - n)  # anyone outside the anchor person's block
            return anchor, tf.where(other >= first, other + n, other)

        is_same = tf.equal(k % 2, 0)
        a, b = tf.cond(is_same, same, different)
        return tf.gather(rows, a), tf.gather(rows, b), tf.cast(is_same, tf.float32)

    dataset = tf.data.Dataset.counter().map(sample_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return _batches(dataset, store, batch_size, seed, augment)


def identity_batch_dataset(store: ImageStore, people: set[str] | list[str], people_per_batch: int,
                           images_per_person: int, seed: int = 0,
                           augment: Augment | None = None) -> tf.data.Dataset:
    """Endless batches ``(images, (person_ids, photo_rows))``; the rows let the trainer leave out
    a photo paired with its own jitter, which would teach nothing."""
    rows, _, starts, counts = _rows_by_person(store, people)
    keep = np.flatnonzero(counts >= 2)
    if len(keep) < max(2, people_per_batch):
        raise ValueError(f"identity batches need {max(2, people_per_batch)} people with two or "
                         f"more images; these people have {len(keep)}")
    most = int(counts[keep].max())
    starts, counts = tf.constant(starts[keep], tf.int32), tf.constant(counts[keep], tf.int32)
    rows = tf.constant(rows, tf.int32)

    def draw_batch(k):
        key = _key(seed, _SAMPLING, k)
        shuffled = tf.random.experimental.stateless_shuffle(tf.range(len(keep)), key)
        chosen = shuffled[:people_per_batch]
        n = tf.gather(counts, chosen)[:, tf.newaxis]
        # A random order of each person's images (positions past n masked out to the end),
        # cycled to K: a person with fewer than K images repeats them in that order.
        noise = tf.random.stateless_uniform(
            [people_per_batch, most], seed=tf.random.experimental.stateless_fold_in(key, 1))
        noise = tf.where(tf.range(most)[tf.newaxis] < n, noise, -1.0)
        ranked = tf.math.top_k(noise, most).indices
        order = tf.gather(ranked, tf.range(images_per_person)[tf.newaxis] % n, batch_dims=1)
        picked = tf.gather(rows, tf.gather(starts, chosen)[:, tf.newaxis] + order)
        ids = tf.repeat(chosen, images_per_person)
        return tf.data.Dataset.from_tensor_slices((tf.reshape(picked, [-1]), ids))

    photos = tf.data.Dataset.counter().flat_map(draw_batch)
    return _batches(photos, store, people_per_batch * images_per_person, seed, augment)


def _rows_by_person(store: ImageStore, people) -> tuple[np.ndarray, ...]:
    """Rows sorted by person, each row's person, and each person's block start and length."""
    names = store.names
    chosen = np.flatnonzero(np.isin(names, list(people)))
    if len(chosen) == 0:
        raise ValueError("none of the given people has an image in this ImageStore")
    chosen = chosen[np.argsort(names[chosen], kind="stable")]
    _, person_of, counts = np.unique(names[chosen], return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return chosen, person_of, starts, counts


def _batches(dataset, store: ImageStore, batch_size: int, seed: int, augment):
    """Jitter is keyed by each image's number in the stream: parallel loading changes nothing."""
    pixels = tf.constant(store.pixels)  # (n, size, size) uint8: the only copy of the images
    side = float(store.pixels.shape[1])
    centre = (side - 1.0) / 2.0

    def load_image(row, number):
        image = tf.cast(tf.gather(pixels, row), tf.float32)[..., tf.newaxis] / 255.0
        if augment is None:
            return image
        draws = tf.random.stateless_uniform([7], _key(seed, _AUGMENTATION, number), -1.0, 1.0)
        if augment.flip:
            image = tf.where(draws[0] > 0, tf.image.flip_left_right(image), image)
        # Rotate and zoom about the centre, then shift. An affine transform maps each *output*
        # pixel to the input pixel it samples, so its matrix is the inverse of that motion.
        angle = draws[1] * augment.max_rotation * math.pi / 180.0
        zoom = 1.0 + draws[2] * augment.max_zoom
        x, y = tf.unstack(centre + draws[3:5] * augment.max_shift * side)
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        transform = tf.stack([cos, sin, centre - cos * x - sin * y,
                              -sin, cos, centre + sin * x - cos * y, 0.0, 0.0])
        image = keras.ops.image.affine_transform(image, transform, fill_mode="reflect")
        image = image + draws[5] * augment.brightness
        mean = tf.reduce_mean(image)
        image = (image - mean) * (1.0 + draws[6] * augment.contrast) + mean
        return tf.clip_by_value(image, 0.0, 1.0)

    def load(k, element):
        if len(element) == 3:  # pair k: its images are numbers 2k and 2k + 1
            row_a, row_b, label = element
            return (load_image(row_a, 2 * k), load_image(row_b, 2 * k + 1)), label
        row, person = element
        return load_image(row, k), (person, row)

    numbered = tf.data.Dataset.zip((tf.data.Dataset.counter(), dataset))
    batches = numbered.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return batches.prefetch(tf.data.AUTOTUNE)
