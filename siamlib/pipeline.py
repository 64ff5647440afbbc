"""tf.data pipelines that turn an ImageStore and pairs or people into training batches.

Three ways to feed a Siamese network: the given pairs (``pair_dataset``, LFW's restricted
protocol), fresh balanced pairs sampled from the training people's images
(``sampled_pair_dataset``, so the network rarely sees one pair twice), and batches of P people
x K images whose every pair the trainer scores (``identity_batch_dataset``).

The pipelines carry int32 row numbers and gather uint8 pixels per batch, scaling to [0, 1]
floats only then: memory grows with the number of unique images, never with pairs. Random
choices use TensorFlow's *stateless* ops keyed by (seed, stream, element number), so a pipeline
gives the same batches in the same order on every run, whatever the parallelism; sampling and
augmentation draw from separate streams, so their randomness is independent.

Pair streams give ``((image_a, image_b), label)``, images ``(batch, size, size, 1)`` float32,
labels float32 with 1 = same person.
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
    """A stateless-RNG key unique to (seed, stream, number)."""
    base = tf.constant([seed, stream], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(number, tf.int64))


@dataclass(frozen=True)
class Augment:
    """Training-only image jitter; each pair's two images are jittered independently.

    Arguments:
        flip: mirror left-right with probability 1/2 (faces are roughly symmetric).
        max_shift: largest translation, as a fraction of the image side.
        max_rotation: largest rotation in degrees.
        max_zoom: largest relative zoom in or out.
        brightness: largest additive brightness change (pixel values are in [0, 1]).
        contrast: largest relative contrast change.
    """

    flip: bool = True
    max_shift: float = 0.05
    max_rotation: float = 10.0
    max_zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.2


def pair_dataset(store: ImageStore, pairs: pd.DataFrame, batch_size: int, shuffle: bool = False,
                 seed: int = 0, augment: Augment | None = None,
                 repeat: bool = False) -> tf.data.Dataset:
    """The given pairs, optionally shuffled (anew each epoch, seeded) and augmented."""
    rows_a = store.rows(pairs["path_a"])
    rows_b = store.rows(pairs["path_b"])
    labels = pairs["label"].to_numpy(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((rows_a, rows_b, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return _batches(dataset, store, batch_size, seed, augment)


def sampled_pair_dataset(store: ImageStore, people: set[str] | list[str], batch_size: int,
                         seed: int = 0, augment: Augment | None = None) -> tf.data.Dataset:
    """An endless stream of balanced pairs sampled from all images of ``people``.

    Elements alternate same/different. A same pair is an image (chosen uniformly among
    images whose person has at least two) and another image of that person; a different
    pair is an image and a uniformly chosen image of anyone else. Use it with
    ``steps_per_epoch``: every epoch draws new pairs, deterministically from ``seed``.
    """
    chosen, person_of, starts, counts = _rows_by_person(store, people)
    if counts.max() < 2 or len(counts) < 2:
        raise ValueError("sampling needs two people and someone with at least two images")
    rows = tf.constant(chosen, tf.int32)
    start = tf.constant(starts[person_of], tf.int32)  # per position in `rows`
    count = tf.constant(counts[person_of], tf.int32)
    eligible = tf.constant(np.flatnonzero(counts[person_of] >= 2), tf.int32)

    def sample_pair(k):
        """Pair number k of the stream: even k = same person, odd k = different people."""
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
    """An endless stream of batches of ``people_per_batch`` distinct people x ``images_per_person``.

    Only people with at least two images are drawn (the others cannot form a same pair).
    A person with fewer images than ``images_per_person`` repeats some, each repeat jittered
    anew by ``augment``. Elements are ``(images, (person_ids, photo_rows))``: a repeated photo
    has its row twice, so the trainer can leave out the pair of a photo with itself, which
    would teach nothing but "a photo matches its own jitter".
    """
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
        chosen = tf.random.experimental.stateless_shuffle(tf.range(len(keep)), key)
        chosen = chosen[:people_per_batch]
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
    """Store rows of ``people``'s images sorted by person, each row's person, and each
    person's block of those rows: its first position and its length."""
    names = store.names
    chosen = np.flatnonzero(np.isin(names, list(people)))
    if len(chosen) == 0:
        raise ValueError("none of the given people has an image in this ImageStore")
    chosen = chosen[np.argsort(names[chosen], kind="stable")]
    _, person_of, counts = np.unique(names[chosen], return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return chosen, person_of, starts, counts


def _batches(dataset, store: ImageStore, batch_size: int, seed: int, augment):
    """Batches of a stream of pairs ``(row_a, row_b, label)`` or of photos ``(row, person)``.

    Each image is loaded as a ``(size, size, 1)`` float in [0, 1] and jittered by ``augment``
    with the random draws of its number in the stream, so parallel loading changes nothing.
    """
    pixels = tf.constant(store.pixels)  # (n, size, size) uint8: the only copy of the images

    def load_image(row, number):
        image = tf.cast(tf.gather(pixels, row), tf.float32)[..., tf.newaxis] / 255.0
        if augment is not None:
            image = _augment_image(image, augment, _key(seed, _AUGMENTATION, number))
        return image

    def load(k, element):
        if len(element) == 3:  # pair k: its images are numbers 2k and 2k + 1
            row_a, row_b, label = element
            return (load_image(row_a, 2 * k), load_image(row_b, 2 * k + 1)), label
        row, person = element
        return load_image(row, k), (person, row)

    numbered = tf.data.Dataset.zip((tf.data.Dataset.counter(), dataset))
    batches = numbered.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return batches.prefetch(tf.data.AUTOTUNE)


def _augment_image(image, augment: Augment, key):
    """Jitter one (size, size, 1) image in [0, 1]; every random draw is keyed by ``key``."""
    draws = tf.random.stateless_uniform([7], seed=key, minval=-1.0, maxval=1.0)
    if augment.flip:
        image = tf.where(draws[0] > 0, tf.image.flip_left_right(image), image)
    # Rotate and zoom about the centre, then shift. An affine transform maps each *output*
    # pixel to the input pixel it samples, so its matrix is the inverse of that motion.
    size = tf.cast(tf.shape(image)[0], tf.float32)
    angle = draws[1] * augment.max_rotation * math.pi / 180.0
    zoom = 1.0 + draws[2] * augment.max_zoom
    dx, dy = draws[3] * augment.max_shift * size, draws[4] * augment.max_shift * size
    cos, sin, centre = tf.cos(angle) / zoom, tf.sin(angle) / zoom, (size - 1.0) / 2.0
    transform = tf.stack([cos, sin, centre - cos * (centre + dx) - sin * (centre + dy),
                          -sin, cos, centre + sin * (centre + dx) - cos * (centre + dy), 0.0, 0.0])
    image = keras.ops.image.affine_transform(image, transform, fill_mode="reflect")
    image = image + draws[5] * augment.brightness
    mean = tf.reduce_mean(image)
    image = (image - mean) * (1.0 + draws[6] * augment.contrast) + mean
    return tf.clip_by_value(image, 0.0, 1.0)
