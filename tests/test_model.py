"""Tests for siamlib.model and siamlib.device: Koch et al.'s network, its variants, the pair-label
convention (1 = same person) in every loss, and the numeric policy chosen per device."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf
from lessons import notebook_function

from siamlib import DIFFERENT, SAME, device, model, training
from siamlib.images import Preprocess
from siamlib.model import (
    DISTANCES,
    LOSSES,
    AllPairsTrainer,
    ModelConfig,
    build_siamese,
    build_tower,
    contrastive_loss,
    head_of,
    loss_for,
    tower_of,
    tower_shapes,
)
from siamlib.splits import DataConfig

receptive_field = notebook_function("02_architecture.ipynb", "receptive_field", model=model)

# Small enough to build and run in milliseconds; paper initialisation, no weight penalty.
TINY = ModelConfig(image_size=32, filters=(4, 8), kernels=(5, 3), dense_units=16, l2=0.0)


def images(n: int, seed: int, size: int = TINY.image_size) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 1), dtype=np.float32)


def scores_of(model: keras.Model, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(model([a, b], training=False), dtype=np.float64).reshape(-1)


@pytest.fixture(scope="module")
def koch() -> keras.Model:
    return build_siamese(ModelConfig(), policy="float32")


# --- Koch et al.'s network ------------------------------------------------------------------


def test_koch_network_has_the_papers_38951745_parameters(koch):
    # Convs 6,464 + 401,536 + 262,272 + 524,544, embedding 9,216 x 4,096 + 4,096, head 4,096 + 1.
    assert koch.count_params() == 38_951_745


def test_koch_tower_shapes_by_hand():
    # Valid convs take k - 1 off the side, pools halve it: 105 -> 96 -> 48 -> 42 -> 21 -> 18 -> 9
    # -> 6, so 6 x 6 x 256 = 9,216 features reach the embedding.
    shapes = [(layer.name, layer.kernel, layer.side, layer.channels)
              for layer in tower_shapes(ModelConfig())]
    assert shapes == [("conv1", 10, 96, 64), ("pool1", 2, 48, 64), ("conv2", 7, 42, 128),
                      ("pool2", 2, 21, 128), ("conv3", 4, 18, 128), ("pool3", 2, 9, 128),
                      ("conv4", 4, 6, 256)]
    narrow = tower_shapes(ModelConfig(width=0.25, filters=(2, 128), kernels=(3, 3)))
    assert [layer.channels for layer in narrow] == [1, 1, 32]  # width rounds, at least 1


def test_a_strided_stem_replaces_the_first_conv_and_pool():
    # (105 - 10) // 2 + 1 = 48: the map Koch's stride-1 conv and 2x2 pool leave, with no pool1.
    shapes = [(layer.name, layer.stride, layer.side)
              for layer in tower_shapes(ModelConfig(strided_stem=True, kernels=(10, 3, 3, 3)))]
    assert shapes == [("conv1", 2, 48), ("conv2", 1, 46), ("pool2", 2, 23), ("conv3", 1, 21),
                      ("pool3", 2, 10), ("conv4", 1, 8)]
    # 1+9=10 (jump 2) | +2*2=14 | +2=16 (jump 4) | +2*4=24 | +4=28 (jump 8) | +2*8=44.
    config = ModelConfig(strided_stem=True, kernels=(10, 3, 3, 3))
    fields = [row["receptive_field"] for row in receptive_field(config, build_tower(config))]
    assert fields == [10, 14, 16, 24, 28, 44, 105]


def test_koch_receptive_fields_by_hand():
    # Each k x k conv widens the field by (k - 1) x jump, each 2x2 pool by jump, then jump doubles:
    # 1+9=10 | +1=11 (jump 2) | +6*2=23 | +2=25 (jump 4) | +3*4=37 | +4=41 (jump 8) | +3*8=65.
    fields = [row["receptive_field"]
              for row in receptive_field(ModelConfig(), build_tower(ModelConfig()))]
    assert fields == [10, 11, 23, 25, 37, 41, 65, 105]


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(width=0.25, dense_units=512),
        # Odd sides (43, 19) check that pooling floors them as Keras does.
        ModelConfig(image_size=47, filters=(8, 16, 16), kernels=(5, 3, 3), batch_norm=True),
        # An odd side after the strided stem: (47 - 6) // 2 + 1 = 21.
        ModelConfig(image_size=47, filters=(8, 16), kernels=(6, 3), strided_stem=True,
                    width=0.5, dense_units=8),
    ],
    ids=["koch", "narrow", "batch-norm-odd-sides", "strided-stem"],
)
def test_receptive_field_table_matches_the_built_layers(config, koch):
    model = koch if config == ModelConfig() else build_siamese(config, policy="float32")
    tower = tower_of(model)
    for row in receptive_field(config, tower):
        layer = tower.get_layer(row["layer"])
        shape = layer.output.shape[1:]
        assert "x".join(str(side) for side in shape) == row["output"], row["layer"]
        assert layer.count_params() == row["parameters"], row["layer"]
    for layer in tower_shapes(config):  # Keras' own shapes, not ours
        assert tower.get_layer(layer.name).output.shape[1:] == (layer.side, layer.side,
                                                                layer.channels)


# --- variants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distance", "loss"), list(itertools.product(DISTANCES, LOSSES)), ids="-".join
)
def test_score_is_symmetric_in_the_two_images(distance, loss):
    keras.utils.set_random_seed(1)
    model = build_siamese(replace(TINY, distance=distance, loss=loss), policy="float32")
    a, b = images(8, seed=2), images(8, seed=3)
    forward, backward = scores_of(model, a, b), scores_of(model, b, a)
    np.testing.assert_allclose(forward, backward, atol=1e-6)
    assert np.ptp(forward) > 0, "all pairs scored alike: symmetry would hold trivially"


VARIANTS = {
    "width-0.5": ({"width": 0.5}, lambda tower: tower.get_layer("conv2").filters == 4),
    "dense-32": ({"dense_units": 32}, lambda tower: tower.output.shape[-1] == 32),
    "batch-norm": (
        {"batch_norm": True},
        lambda tower: tower.get_layer("bn1") is not None and not tower.get_layer("conv1").use_bias,
    ),
    "dropout": ({"dropout": 0.3}, lambda tower: tower.get_layer("dropout").rate == 0.3),
    "l2-distance": ({"distance": "l2"}, None),
    "contrastive": ({"loss": "contrastive"}, None),
    "glorot": (
        {"init": "glorot"},
        lambda tower: not np.any(tower.get_layer("conv1").bias.numpy()),
    ),
    "l2-penalty": ({"l2": 1e-3}, lambda tower: len(tower.losses) == 3),  # 2 convs + embedding
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_builds_as_configured_and_scores_in_unit_interval(name):
    changes, built_as_configured = VARIANTS[name]
    config = replace(TINY, **changes)
    model = build_siamese(config, policy="float32")
    if built_as_configured is not None:
        assert built_as_configured(tower_of(model))
    scores = model.predict([images(6, seed=4), images(6, seed=5)], verbose=0)
    assert scores.shape == (6, 1)
    assert np.all((scores >= 0) & (scores <= 1))


def test_paper_initialisation_statistics_on_the_built_weights(koch):
    tower = tower_of(koch)
    conv_kernels = np.concatenate(
        [tower.get_layer(f"conv{i}").kernel.numpy().ravel() for i in range(1, 5)]
    )
    biases = np.concatenate(
        [tower.get_layer(name).bias.numpy() for name in ("conv1", "conv2", "conv3", "conv4")]
        + [tower.get_layer("embedding").bias.numpy()]
    )
    dense_kernel = tower.get_layer("embedding").kernel.numpy()
    # Koch et al.: conv weights N(0, 1e-2), dense weights N(0, 2e-1), biases N(0.5, 1e-2).
    assert abs(conv_kernels.mean()) < 1e-4
    assert conv_kernels.std() == pytest.approx(1e-2, rel=0.02)
    assert biases.mean() == pytest.approx(0.5, abs=1e-3)
    assert biases.std() == pytest.approx(1e-2, rel=0.1)
    assert abs(dense_kernel.mean()) < 1e-3
    assert dense_kernel.std() == pytest.approx(2e-1, rel=0.01)
    score_kernel = head_of(koch).get_layer("score").kernel.numpy()
    assert score_kernel.std() == pytest.approx(2e-1, rel=0.1)  # 4,096 weights


@pytest.mark.parametrize(
    "changes",
    [
        {"distance": "cosine"},
        {"loss": "triplet"},
        {"init": "he"},
        {"filters": (4, 8), "kernels": (3,)},
    ],
    ids=["distance", "loss", "init", "filters-vs-kernels"],
)
def test_invalid_config_raises_value_error_at_construction(changes):
    with pytest.raises(ValueError, match="ModelConfig"):
        replace(TINY, **changes)


def test_the_withdrawn_multi_similarity_loss_is_refused_naming_the_losses_there_are():
    allowed = r"\('bce', 'contrastive'\)"
    with pytest.raises(ValueError, match=f"^ModelConfig.loss must be one of {allowed}, got "
                                         "'multi_similarity'$"):
        ModelConfig(loss="multi_similarity")


@pytest.mark.parametrize(
    "changes",
    [{"dense_units": 0}, {"dropout": 1.5}, {"l2": -1.0}, {"image_size": 8}],
    ids=["dense-units", "dropout", "l2", "image-too-small-for-the-convs"],
)
def test_invalid_config_raises_value_error_at_latest_when_built(changes):
    with pytest.raises(ValueError):
        build_siamese(replace(TINY, **changes), policy="float32")


@pytest.mark.parametrize("width", [0.0, -1.0])
def test_non_positive_width_raises_value_error(width):
    with pytest.raises(ValueError, match="width"):
        replace(TINY, width=width)


@pytest.mark.parametrize("margin", [0.0, -1.0])
def test_non_positive_margin_raises_value_error(margin):
    with pytest.raises(ValueError, match="margin"):
        replace(TINY, margin=margin)


# --- the label convention in every loss -------------------------------------------------------


def test_bce_rewards_a_high_score_for_a_same_pair_and_a_low_one_for_a_different_pair():
    loss = loss_for(ModelConfig(loss="bce"))
    same, different = np.array([[SAME]], "float32"), np.array([[DIFFERENT]], "float32")
    high, low = np.array([[0.99]], "float32"), np.array([[0.01]], "float32")
    # -log(0.99) = 0.01005 and -log(0.01) = 4.605 (Keras clips at 1e-7, far from these).
    assert float(loss(same, high)) == pytest.approx(-math.log(0.99), rel=1e-4)
    assert float(loss(same, low)) == pytest.approx(-math.log(0.01), rel=1e-4)
    assert float(loss(same, high)) < float(loss(same, low))
    assert float(loss(different, low)) < float(loss(different, high))


MARGIN = 1.5


@pytest.mark.parametrize(
    ("label", "distance", "expected"),
    [
        (SAME, 0.0, 0.0),  # identical embeddings: nothing to pull
        (DIFFERENT, 0.0, MARGIN**2),  # identical but different people: (m - 0)^2 = 2.25
        (DIFFERENT, 0.5, (MARGIN - 0.5) ** 2),  # inside the margin: (1.5 - 0.5)^2 = 1
        (DIFFERENT, 2.0, 0.0),  # beyond the margin: already far enough apart
        (DIFFERENT, MARGIN, 0.0),  # exactly at the margin
        (SAME, 2.0, 4.0),  # same person far apart: d^2
        (SAME, 0.5, 0.25),
    ],
)
def test_contrastive_loss_by_hand(label, distance, expected):
    # The head scores distance d as s = 1 / (1 + d); the loss must recover d from s.
    score = np.array([[1.0 / (1.0 + distance)]], "float32")
    value = float(contrastive_loss(MARGIN)(np.array([[label]], "float32"), score))
    assert value == pytest.approx(expected, abs=1e-5)


def test_contrastive_loss_is_the_mean_over_the_batch():
    labels = np.array([SAME, DIFFERENT, SAME, DIFFERENT], "float32")
    distances = np.array([0.0, 0.0, 2.0, 2.0])
    scores = (1.0 / (1.0 + distances)).astype("float32")
    # (0 + 1.5^2 + 2^2 + 0) / 4
    assert float(contrastive_loss(MARGIN)(labels, scores)) == pytest.approx(6.25 / 4, rel=1e-5)


def test_contrastive_network_scores_an_image_with_itself_as_one():
    model = build_siamese(replace(TINY, loss="contrastive"), "float32")
    a = images(3, seed=6)
    np.testing.assert_allclose(scores_of(model, a, a), 1.0, atol=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("label", [SAME, DIFFERENT], ids=["same", "different"])
def test_one_gradient_step_moves_the_score_towards_the_label(loss, label):
    keras.utils.set_random_seed(7)
    # Glorot weights: with the paper's, two random images start at distance ~0.003 and the
    # contrastive pull on a same pair (2d) is too small to see next to float32 rounding.
    config = replace(TINY, loss=loss, init="glorot")
    model = build_siamese(config, policy="float32")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_for(config))
    a, b = images(1, seed=8), images(1, seed=9)
    before = scores_of(model, a, b)[0]
    model.train_on_batch([a, b], np.array([[label]], "float32"))
    step = scores_of(model, a, b)[0] - before
    if label == SAME:
        assert step > 1e-3
    else:
        assert step < -1e-3


# --- tower and head -------------------------------------------------------------------------


def test_tower_and_head_compose_to_the_full_network():
    model = build_siamese(TINY, policy="float32")
    tower, head = tower_of(model), head_of(model)
    assert tower.input.shape[1:] == (32, 32, 1) and tower.output.shape[1:] == (16,)
    assert [t.shape[1:] for t in head.inputs] == [(16,), (16,)] and head.output.shape[1:] == (1,)
    a, b = images(5, seed=10), images(5, seed=11)
    composed = np.asarray(head([tower(a), tower(b)])).reshape(-1)
    np.testing.assert_allclose(composed, scores_of(model, a, b), atol=1e-6)


def test_tower_weights_are_shared_by_both_images():
    model = build_siamese(TINY, policy="float32")
    tower_weights = sum(w.numpy().size for w in tower_of(model).weights)
    head_weights = sum(w.numpy().size for w in head_of(model).weights)
    assert model.count_params() == tower_weights + head_weights


# --- all pairs of a batch of people -------------------------------------------------------


def test_all_pairs_trainer_minimises_the_balanced_loss_of_every_pair_in_the_batch():
    """One train step's reported loss is the pair loss of all n(n-1)/2 pairs of the batch, same
    and different pairs weighted half and half; and the step moves the weights downhill."""
    keras.utils.set_random_seed(0)
    siamese = build_siamese(TINY, "float32")
    trainer = AllPairsTrainer(siamese)
    trainer.compile(optimizer=keras.optimizers.SGD(1e-3), loss=loss_for(TINY))
    batch = images(8, seed=0)
    ids = np.array([0, 0, 0, 1, 1, 2, 2, 2], np.int32)  # 3 + 1 + 3 = 7 same pairs of 28
    rows = np.arange(8, dtype=np.int32)  # eight distinct photos

    first, second = np.triu_indices(8, k=1)
    same = (ids[first] == ids[second]).astype(np.float32)
    embeddings = siamese.get_layer("tower")(batch, training=True)
    scores = siamese.get_layer("head")([np.take(embeddings, first, 0),
                                        np.take(embeddings, second, 0)]).numpy().ravel()
    bce = -(same * np.log(scores) + (1 - same) * np.log(1 - scores))
    expected = 0.5 * bce[same == 1].mean() + 0.5 * bce[same == 0].mean()

    logs = trainer.train_on_batch(batch, (ids, rows), return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    after = trainer.train_on_batch(batch, (ids, rows), return_dict=True)
    assert after["loss"] < logs["loss"]


# --- device and numeric policy (siamlib.device) ------------------------------------------------


def test_compute_policy_follows_the_device():
    assert device.compute_policy(gpu=True) == "mixed_float16"
    assert device.compute_policy(gpu=False) == "float32"


def test_compute_policy_on_this_cpu_only_machine_is_float32():
    if device.has_gpu():
        pytest.skip("this machine has a GPU")
    assert device.compute_policy() == "float32"


def test_on_a_gpu_the_tower_computes_in_float16_and_the_head_outputs_float32(monkeypatch):
    monkeypatch.setattr(device, "has_gpu", lambda: True)
    model = build_siamese(TINY)  # policy from the (pretended) device
    conv = tower_of(model).get_layer("conv1")
    assert conv.compute_dtype == "float16"
    assert conv.kernel.dtype == "float32"  # float32 master weights
    assert tower_of(model).output.dtype == "float16"
    assert model.output.dtype == "float32"
    scores = model.predict([images(2, seed=12), images(2, seed=13)], verbose=0)
    assert scores.dtype == np.float32


def test_on_a_gpu_the_optimizer_scales_the_loss(monkeypatch):
    config = training.RunConfig("tiny", DataConfig(preprocess=Preprocess(image_size=32)), TINY)
    monkeypatch.setattr(device, "has_gpu", lambda: False)
    plain = training.compiled_model(config).optimizer
    assert not isinstance(plain, keras.optimizers.LossScaleOptimizer)
    monkeypatch.setattr(device, "has_gpu", lambda: True)
    optimizer = training.compiled_model(config).optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def test_device_report_names_versions_and_policy():
    report = device.device_report()
    assert f"TensorFlow {tf.__version__}" in report
    assert f"Keras {keras.__version__}" in report
    assert f"policy {device.compute_policy()}" in report
