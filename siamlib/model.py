"""Koch et al.'s Siamese network (2015) and its variants, built from one ModelConfig.

A score is ``head(tower(a), tower(b))``, kept apart so each image is embedded once however many
pairs it is in. Every loss takes ``siamlib.SAME`` = 1, which Keras examples flip for contrastive.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers, ops

from siamlib.device import compute_policy

DISTANCES = ("l1", "l2")
LOSSES = ("bce", "contrastive")
INITS = ("paper", "glorot")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a network; the defaults are Koch et al.'s exactly.
    ``strided_stem``: the same map from a stride-2 first conv without its pool, at a quarter of
    the multiply-adds."""

    image_size: int = 105
    filters: tuple[int, ...] = (64, 128, 128, 256)
    kernels: tuple[int, ...] = (10, 7, 4, 4)
    strided_stem: bool = False
    width: float = 1.0
    dense_units: int = 4096
    batch_norm: bool = False
    dropout: float = 0.0
    distance: str = "l1"
    loss: str = "bce"
    margin: float = 1.0
    init: str = "paper"
    l2: float = 2e-4

    def __post_init__(self):
        for field, allowed in (("distance", DISTANCES), ("loss", LOSSES), ("init", INITS)):
            if (value := getattr(self, field)) not in allowed:
                raise ValueError(f"ModelConfig.{field} must be one of {allowed}, got {value!r}")
        if len(self.filters) != len(self.kernels):
            raise ValueError("ModelConfig.filters and .kernels need one entry per conv block")
        for field in ("width", "margin"):
            if (value := getattr(self, field)) <= 0:
                raise ValueError(f"ModelConfig.{field} must be positive, got {value}")


def build_siamese(config: ModelConfig = ModelConfig(), policy: str | None = None) -> keras.Model:
    """The head computes in float32 whatever ``policy``, so scores keep their precision."""
    tower, head = build_tower(config, policy or compute_policy()), build_head(config)
    shape = (config.image_size, config.image_size, 1)
    image_a = keras.Input(shape, name="image_a")
    image_b = keras.Input(shape, name="image_b")
    # One tower object called twice = one set of weights for both images.
    score = head([tower(image_a), tower(image_b)])
    return keras.Model([image_a, image_b], score, name="siamese")


def tower_of(siamese: keras.Model) -> keras.Model:
    return siamese.get_layer("tower")


def head_of(siamese: keras.Model) -> keras.Model:
    return siamese.get_layer("head")


def build_tower(config: ModelConfig, policy: str = "float32") -> keras.Model:
    conv_init, dense_init, bias_init = _initialisers(config.init)
    regulariser = keras.regularizers.L2(config.l2) if config.l2 else None
    weights = dict(bias_initializer=bias_init, kernel_regularizer=regulariser, dtype=policy)
    image = keras.Input((config.image_size, config.image_size, 1), name="image")
    x = image
    for layer in tower_shapes(config):
        if layer.name.startswith("pool"):
            x = layers.MaxPooling2D(layer.kernel, dtype=policy, name=layer.name)(x)
            continue
        block = layer.name.removeprefix("conv")
        x = layers.Conv2D(layer.channels, layer.kernel, layer.stride,
                          use_bias=not config.batch_norm,
                          kernel_initializer=conv_init, name=layer.name, **weights)(x)
        if config.batch_norm:
            x = layers.BatchNormalization(dtype=policy, name=f"bn{block}")(x)
        x = layers.Activation("relu", dtype=policy, name=f"relu{block}")(x)
    x = layers.Flatten(dtype=policy, name="flatten")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, dtype=policy, name="dropout")(x)
    embedding = layers.Dense(config.dense_units, activation="sigmoid",
                             kernel_initializer=dense_init, name="embedding", **weights)(x)
    return keras.Model(image, embedding, name="tower")


# A conv or pool layer of the tower: its window side, stride, and output side and channels.
LayerShape = namedtuple("LayerShape", "name kernel stride side channels")


def tower_shapes(config: ModelConfig) -> list[LayerShape]:
    """The one place the tower's layout is worked out (built, and tabulated for notebook 02 and
    the budget). Convs are "valid"; strides and pools floor odd sides."""
    shapes, side = [], config.image_size
    for block, (filters, kernel) in enumerate(zip(config.filters, config.kernels), start=1):
        channels = max(1, round(filters * config.width))
        stride = 2 if block == 1 and config.strided_stem else 1
        side = (side - kernel) // stride + 1
        shapes.append(LayerShape(f"conv{block}", kernel, stride, side, channels))
        if block < len(config.filters) and stride == 1:
            side //= 2
            shapes.append(LayerShape(f"pool{block}", 2, 2, side, channels))
    return shapes


def build_head(config: ModelConfig) -> keras.Model:
    emb_a = keras.Input((config.dense_units,), name="embedding_a")
    emb_b = keras.Input((config.dense_units,), name="embedding_b")
    a, b = ops.cast(emb_a, "float32"), ops.cast(emb_b, "float32")
    if config.loss != "bce":  # a scalar distance d of unit embeddings, scored 1 / (1 + d)
        a, b = ops.normalize(a), ops.normalize(b)
        if config.distance == "l1":
            distance = ops.sum(ops.abs(a - b), axis=-1)
        else:  # + 1e-12: a finite gradient at d = 0
            distance = ops.sqrt(ops.sum(ops.square(a - b), axis=-1) + 1e-12)
        score = ops.expand_dims(1.0 / (1.0 + distance), -1)
    else:
        # Koch et al.: component-wise L1 (or squared L2), weighted by a logistic dense layer.
        features = ops.square(a - b) if config.distance == "l2" else ops.abs(a - b)
        _, dense_init, bias_init = _initialisers(config.init)
        score = layers.Dense(1, activation="sigmoid", kernel_initializer=dense_init,
                             bias_initializer=bias_init, dtype="float32", name="score")(features)
    return keras.Model([emb_a, emb_b], score, name="head")


def contrastive_loss(margin: float = 1.0):
    """Hadsell et al.'s loss on a distance head's score: y d^2 + (1 - y) max(margin - d, 0)^2,
    pulling same pairs (y = 1) to d = 0 and pushing different pairs out to d >= margin."""

    def loss(y_true, score):
        y = ops.cast(ops.reshape(y_true, (-1,)), "float32")
        # A distance head's score is 1 / (1 + d), so d = 1 / score - 1 exactly.
        score = ops.clip(ops.reshape(ops.cast(score, "float32"), (-1,)), 1e-7, 1.0)
        distance = 1.0 / score - 1.0
        pull = y * ops.square(distance)
        push = (1.0 - y) * ops.square(ops.maximum(margin - distance, 0.0))
        return ops.mean(pull + push)

    return loss


def loss_for(config: ModelConfig):
    if config.loss == "contrastive":
        return contrastive_loss(config.margin)
    return keras.losses.BinaryCrossentropy()


class AllPairsTrainer(keras.Model):
    """Every pair of a batch of people's images: 128 tower passes give 8,128 pairs. Evaluation
    scores ordinary pairs, so validation means what it does for other samplings."""

    def __init__(self, siamese: keras.Model):
        super().__init__(name="all_pairs_trainer")
        self.siamese = siamese

    def call(self, inputs, training=False):
        return self.siamese(inputs, training=training)

    def train_step(self, data):
        images, (person_ids, photo_rows), _ = keras.utils.unpack_x_y_sample_weight(data)
        first, second, same, weight = pair_weights(person_ids, photo_rows)
        with tf.GradientTape() as tape:
            embeddings = tower_of(self.siamese)(images, training=True)
            scores = head_of(self.siamese)(
                [ops.take(embeddings, first, 0), ops.take(embeddings, second, 0)], training=True)
            loss = self.compute_loss(y=same, y_pred=scores, sample_weight=weight)
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, self.trainable_variables),
                             self.trainable_variables)
        for metric in self.metrics:  # Keras' own train_step updates the loss tracker this way
            if metric.name == "loss":
                metric.update_state(loss)
        return self.compute_metrics(images, same, scores, sample_weight=weight)


def pair_weights(person_ids, photo_rows):
    """Every pair i < j of a batch, weighted 0 for a photo with itself; Keras divides by the
    pair count, so each kind's weights add up to half that: half the loss each."""
    n = tf.shape(person_ids)[0]
    first, second = ops.nonzero(ops.triu(ops.ones((n, n)), k=1))  # the upper triangle
    same = ops.cast(ops.take(person_ids, first) == ops.take(person_ids, second), "float32")
    counted = ops.cast(ops.take(photo_rows, first) != ops.take(photo_rows, second), "float32")
    half = ops.cast(ops.size(same), "float32") / 2.0
    weight = counted * ops.where(same > 0, half / ops.maximum(ops.sum(same * counted), 1.0),
                                 half / ops.maximum(ops.sum((1.0 - same) * counted), 1.0))
    return first, second, same, weight


def _initialisers(init: str):  # for conv kernels, dense kernels and biases
    if init == "glorot":
        return "glorot_uniform", "glorot_uniform", "zeros"
    normal = keras.initializers.RandomNormal
    return normal(0.0, 1e-2), normal(0.0, 2e-1), normal(0.5, 1e-2)

