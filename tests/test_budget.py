"""Tests for siamlib.budget: the plan (cached or to train, epochs, images, minutes), the measured
speed, the FLOPs of Koch's network worked out by hand, the guard's message, and the colab
profile's half hour a notebook on a T4 (estimated: no T4 is at hand)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from synthetic_faces import IMAGE_SIZE, small_run_config, synthetic_workspace

from siamlib import budget, paths, profiles, search, training, view2
from siamlib.budget import BudgetExceeded, Trials
from siamlib.model import ModelConfig, build_tower
from siamlib.splits import load_splits

SMOKE = profiles.PROFILES["smoke"]


def t4_images_per_s(config: training.RunConfig) -> float:
    """A Colab T4's training images per second, estimated: the network's FLOPs (a trained image
    costs three forward passes) at 4 TFLOP/s, what a small Keras network sustains of the T4's
    65 in float16, capped by the input pipeline on Colab's two CPU cores (1,500 images/s
    augmented, as bench_pipeline.md's 1,620 on two cores; 10,000 plain)."""
    compute = 4e12 / (3 * budget.flops_per_image(config.model))
    return min(compute, 1500 if config.train.augment else 10000)


@pytest.fixture
def on_a_t4(monkeypatch):
    """``budget.plan`` prices runs at the T4's estimated speed instead of timing them here."""
    monkeypatch.setattr(budget, "measure", t4_images_per_s)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """This session's generated faces, a runs folder, and the smoke profile's two runs on those
    faces (LFW-a is not needed)."""
    root = synthetic_workspace(tmp_path_factory)
    on_faces = {"data": {"source": str(root / "faces")}}
    return {"data": root / "data", "runs": tmp_path_factory.mktemp("budget-runs"),
            "koch": SMOKE.koch.replace(**on_faces, train={"epochs": 1}),
            # Batches of 8 people, not 16: the generated set has 15 training people.
            "all_pairs": SMOKE.all_pairs.replace(**on_faces, train={"batch_size": 32})}


@pytest.fixture
def workspace(generated, monkeypatch):
    """``generated``, with runs and image caches going to its folders ($SIAMLIB_RUNS_DIR,
    $SIAMLIB_DATA_DIR)."""
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(generated["data"]))
    monkeypatch.setenv(paths.RUNS_DIR_ENV, str(generated["runs"]))
    return generated


@pytest.fixture
def cached_koch(workspace):
    """The smoke profile's Koch run, one epoch, trained into the workspace's runs folder."""
    return training.train(workspace["koch"], progress=False)


def test_plan_marks_cached_runs_and_runs_to_train(workspace, cached_koch, on_a_t4):
    koch, all_pairs = workspace["koch"], workspace["all_pairs"]
    assert cached_koch.path.parent == workspace["runs"]  # found through $SIAMLIB_RUNS_DIR
    # The same config twice (another name, the same key) is one run.
    table = budget.plan([koch, all_pairs, koch.replace(name="again")])
    assert list(table["run"]) == ["koch", "all_pairs"]
    assert list(table["status"]) == ["cached", "to train"]
    assert table.loc[0, "minutes"] == 0 and np.isnan(table.loc[0, "images/s"])
    assert table.loc[1, "minutes"] > 0
    assert list(table["epochs"]) == [1, SMOKE.all_pairs.train.epochs]
    assert table.loc[1, "images/epoch"] == SMOKE.all_pairs.train.images_per_epoch
    # A run train() would not load (its weights lost) is a run to train.
    (cached_koch.path / "model.weights.h5").unlink()
    try:
        assert budget.plan([koch]).loc[0, "status"] == "to train"
    finally:
        shutil.rmtree(cached_koch.path)


def test_images_per_epoch_and_pair_counts_are_what_training_uses(workspace):
    koch = workspace["koch"]
    splits = load_splits(koch.data, progress=False)
    assert budget.pair_counts(koch.data) == (len(splits.train), len(splits.val), len(splits.test))
    for config in (koch, workspace["all_pairs"], koch.replace(train={"pairs_per_epoch": 200}),
                   koch.replace(train={"sampling": "unrestricted", "pairs_per_epoch": 300})):
        _, steps = training.training_stream(config, splits)
        per_step = config.train.batch_size * (1 if config.train.sampling == "identities" else 2)
        assert budget.images_per_epoch(config) == steps * per_step, config.train.sampling


def test_minutes_scale_with_epochs_images_and_trials(workspace, on_a_t4):
    base = workspace["all_pairs"]
    _, val, test = budget.pair_counts(base.data)

    def minutes(epochs=2, images=256, count=1):
        config = base.replace(train={"epochs": epochs, "images_per_epoch": images})
        return budget.plan([Trials("runs", config, count)]).loc[0, "minutes"]

    speed = t4_images_per_s(base)
    # Every epoch: its images and a forward pass (a third of a training pass) of validation;
    # at the end, validation and test scored once.
    expected = (4 * (512 + 2 * val / 3) + 2 * (val + test) / 3) / speed / 60
    assert minutes(4, 512) == pytest.approx(expected)
    assert minutes(8) - minutes(4) == pytest.approx(2 * (minutes(4) - minutes(2)))
    per_epoch = (minutes(4, 512) - minutes(2, 512)) / 2
    assert per_epoch - (minutes(4, 256) - minutes(2, 256)) / 2 == pytest.approx(256 / speed / 60)
    assert minutes(count=3) == pytest.approx(3 * minutes())
    assert minutes(count=0) == 0  # a finished study costs nothing


@pytest.mark.parametrize("sampling", ["identities", "restricted"])
def test_measured_speed_comes_from_real_training_steps(tmp_path, sampling):
    config = small_run_config(tmp_path)  # random pixels: the folder is never read
    if sampling == "identities":
        config = config.replace(train={"sampling": "identities", "pairs_per_epoch": None,
                                       "images_per_epoch": 256})
    else:
        config = config.replace(train={"sampling": "restricted", "pairs_per_epoch": None})
    assert config.model.image_size == IMAGE_SIZE
    speed = budget.measure(config)
    assert math.isfinite(speed) and speed > 0


def test_kochs_network_costs_what_its_layer_shapes_say():
    # Koch et al.'s tower on a 105x105 image, valid convolutions, 2x2 max-pool between blocks:
    # (output side, filters, kernel, input channels) per convolution, 2 FLOPs per multiply-add.
    convs = [(96, 64, 10, 1), (42, 128, 7, 64), (18, 128, 4, 128), (6, 256, 4, 128)]
    by_hand = sum(2 * side * side * out * k * k * c for side, out, k, c in convs)
    by_hand += 2 * (6 * 6 * 256) * 4096  # the embedding layer on the 9,216 flattened features
    assert budget.flops_per_image(ModelConfig()) == by_hand
    assert 1.7e9 < by_hand < 1.9e9  # about 1.8 GFLOPs an image, forward


@pytest.mark.parametrize("changes", [{}, {"width": 0.25, "dense_units": 512},
                                     {"filters": (64, 128, 128), "kernels": (10, 7, 4)},
                                     {"image_size": 80, "width": 0.5}])
def test_flops_follow_the_shapes_keras_builds(changes):
    config = ModelConfig(**changes)
    expected = 0
    for layer in build_tower(config).layers:
        if layer.__class__.__name__ == "Conv2D":
            _, side, _, out = layer.output.shape
            k, c = layer.kernel.shape[0], layer.kernel.shape[2]
            expected += 2 * side * side * out * k * k * c
        elif layer.__class__.__name__ == "Dense":
            expected += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    assert budget.flops_per_image(config) == expected


def _plan_of(minutes: float):
    table = budget.plan([])
    table.loc[0] = ["koch", "to train", 1, 10, 1000, 100, minutes]
    return table


def test_the_guard_stops_with_one_message_naming_every_way_on():
    with pytest.raises(BudgetExceeded) as stopped:
        budget.check_budget(_plan_of(95.2), max_minutes=30)
    message = str(stopped.value)
    assert "up to 95 minutes, more than max_minutes = 30" in message
    assert "(speed measured on this device (" in message  # where the speed came from
    # A limit that lets this plan through, where to set it, and "no limit".
    assert "set max_minutes = 110 (0: no limit)" in message
    assert "python -m siamlib.runner -p max_minutes 110" in message
    # Less work: the share that fits, the largest part, the parameters that scale the work.
    assert "about 32% of this plan fits (its largest part: koch, 95 minutes)" in message
    assert "epochs, trials" in message and "smaller profile" in message
    assert "python -m siamlib.runs import ARCHIVE" in message  # runs trained elsewhere
    # A notebook (IPython's hook) shows that message alone, not a traceback.
    assert stopped.value._render_traceback_() == [f"BudgetExceeded: {message}"]


def test_a_notebook_shows_the_guard_as_its_message_alone(notebook_shows):
    shown = notebook_shows(
        "import pandas as pd\nfrom siamlib import budget\n"
        "budget.check_budget(pd.DataFrame({'run': ['koch'], 'minutes': [95.0]}), 30)")
    assert shown.startswith("BudgetExceeded: training would take up to 95 minutes")
    assert "Traceback" not in shown and "check_budget" not in shown
    assert shown.endswith("python -m siamlib.runs import ARCHIVE.")


@pytest.mark.parametrize(("minutes", "limit"), [(29.9, 30), (30.0, 30), (500.0, 0), (0.0, 0.5)])
def test_the_guard_lets_a_plan_within_the_limit_or_without_one_through(minutes, limit):
    budget.check_budget(_plan_of(minutes), max_minutes=limit)


def test_show_prints_the_table_its_speed_and_an_upper_bound(workspace, capsys, on_a_t4):
    budget.show(budget.plan([workspace["all_pairs"]]))
    printed = capsys.readouterr().out
    assert "Speed measured on this device" in printed and "all_pairs" in printed
    assert "1 runs to train (0 cached)" in printed and "an upper bound" in printed


def test_each_colab_notebook_trains_within_half_an_hour_on_a_t4_by_the_estimate(
        lfw_dataset, tmp_path, monkeypatch, on_a_t4):
    monkeypatch.setenv(paths.RUNS_DIR_ENV, str(tmp_path))  # nothing cached: the worst case
    colab = profiles.PROFILES["colab"]
    notebook_03 = search.notebook_runs(colab, colab.screening_epochs, colab.search_trials,
                                       tmp_path / "study.log")
    notebooks = {"02": [colab.koch, colab.all_pairs], "03": notebook_03,
                 "04": [colab.full_budget(search.SPACE.costliest(colab.all_pairs, 1))],
                 "06": [c for model in view2.MODELS for c in colab.view2_runs(model)]}
    for notebook, runs in notebooks.items():
        minutes = budget.plan(runs)["minutes"].sum()
        assert 0 < minutes <= 28, notebook  # leaves setup and decoding a few minutes of the 30
    cpu = profiles.PROFILES["cpu"].all_pairs  # the colab recipe is not a weaker one
    assert colab.all_pairs.train.epochs >= cpu.train.epochs
    assert colab.all_pairs.train.images_per_epoch >= cpu.train.images_per_epoch
    assert colab.all_pairs.model.width >= cpu.model.width
    gpu = profiles.PROFILES["gpu"]
    gpu_03 = search.notebook_runs(gpu, gpu.screening_epochs, gpu.search_trials,
                                  tmp_path / "gpu-study.log")
    assert budget.plan(gpu_03)["minutes"].sum() > 120  # instructors' only
