"""Tests for siamlib.training: a small network really learns the generated faces, and the run
cache never trains twice, never loads a stale or unfinished run, and reloads runs exactly."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import pytest
from synthetic_faces import (
    IMAGE_SIZE,
    synthetic_workspace,
    trained_synthetic_run,
    write_face_folder,
)

from siamlib import metrics, paths, training
from siamlib.images import ImageStore, Preprocess
from siamlib.model import (
    AllPairsTrainer,
    ModelConfig,
    build_siamese,
    head_of,
    loss_for,
    pair_weights,
    tower_of,
)
from siamlib.pipeline import Augment, identity_batch_dataset, pair_dataset
from siamlib.scoring import score_pairs
from siamlib.splits import DataConfig, Splits, load_splits
from siamlib.training import (
    COMPLETE,
    MONITOR,
    DamagedRunError,
    RunConfig,
    TrainConfig,
    load_run,
    run_dir,
    run_problems,
    train,
)

RUN_FILES = ("config.json", "history.csv", "model.weights.h5", "scores.csv", COMPLETE)


@pytest.fixture(scope="module", autouse=True)
def image_cache_in_tmp(tmp_path_factory):
    """Decoded-image caches go to the test session's folder, not to the project's data/."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.DATA_DIR_ENV, str(synthetic_workspace(tmp_path_factory) / "data"))
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> training.Run:
    """12 epochs of the small network on the generated faces, shared by this module's tests."""
    return trained_synthetic_run(tmp_path_factory)


@pytest.fixture(scope="module")
def splits(run) -> Splits:
    return load_splits(run.config.data, progress=False)


@pytest.fixture
def quick(run) -> RunConfig:
    """The shared run's data and network, trained for one short epoch."""
    return run.config.replace(name="quick", train={"epochs": 1, "pairs_per_epoch": 64})


@pytest.fixture
def fit_calls(monkeypatch) -> list[str]:
    """Names of the runs that ``train`` actually fitted from here on."""
    calls, real_fit = [], training.fit

    def counting_fit(config, *args, **kwargs):
        calls.append(config.name)
        return real_fit(config, *args, **kwargs)

    monkeypatch.setattr(training, "fit", counting_fit)
    return calls


def val_scores(model: keras.Model, splits: Splits) -> np.ndarray:
    return score_pairs(model, splits.store, splits.val)


# --- learning ---------------------------------------------------------------------------------


def test_network_learns_to_verify_people_it_never_saw(run):
    history = run.history
    assert len(history) == 12
    assert history["loss"].iloc[-1] < 0.5 * history["loss"].iloc[0]
    # At the threshold chosen on validation, as the workbook reports: early stopping keeps the
    # epoch of the best validation AUC, which ranks pairs but need not be calibrated at 0.5.
    for split in ("val", "test"):  # people disjoint from training
        scores = run.scores_of(split)
        assert len(scores) > 100
        assert metrics.accuracy_at(scores["label"], scores["score"], run.threshold) > 0.9, split


# --- the run folder and its cache ---------------------------------------------------------------


def test_finished_run_folder_holds_every_artifact(run):
    assert run.path.name == f"synthetic-{run.config.key()}"
    for name in RUN_FILES:
        assert (run.path / name).is_file(), name
    info = json.loads((run.path / COMPLETE).read_text())
    assert info["key"] == run.config.key() and info["epochs_run"] == len(run.history)
    saved = RunConfig.from_dict(json.loads((run.path / "config.json").read_text()))
    assert saved == run.config
    assert set(run.scores["split"]) == {"val", "test"}


def test_second_train_of_the_same_config_loads_instead_of_training(run, splits, monkeypatch):
    def must_not_be_called(*args, **kwargs):
        raise AssertionError("a finished run was trained or its images decoded again")

    monkeypatch.setattr(training, "fit", must_not_be_called)
    monkeypatch.setattr(training, "load_splits", must_not_be_called)
    again = train(run.config, runs_root=run.path.parent, progress=False)
    assert again.path == run.path
    assert np.array_equal(val_scores(again.model, splits), val_scores(run.model, splits))


def test_load_run_reproduces_the_scores_saved_at_training_time_exactly(run, splits):
    # scores.csv was written from the network in memory at the end of training; load_run
    # rebuilds the network from model.weights.h5.
    loaded = load_run(run.path)
    for split in ("val", "test"):
        stored = run.scores_of(split)
        recomputed = score_pairs(loaded.model, splits.store, stored)
        assert np.array_equal(recomputed, stored["score"].to_numpy()), split


def test_loading_a_run_marks_it_used_without_changing_it(run):
    """The reference run counts the training time of every run a notebook loaded from the cache
    by its marker's modification time; the marker's content and checksums stay as they were."""
    marker = run.path / training.COMPLETE
    before = marker.read_bytes()
    os.utime(marker, (1_000_000_000, 1_000_000_000))
    started = time.time()
    load_run(run.path)
    assert marker.stat().st_mtime >= started and marker.read_bytes() == before
    assert training.run_problems(run.path) == []


def test_load_run_refuses_a_folder_without_the_complete_marker(run, tmp_path):
    copy = shutil.copytree(run.path, tmp_path / run.path.name)
    (copy / COMPLETE).unlink()
    with pytest.raises(FileNotFoundError, match=COMPLETE):
        load_run(copy)


def test_interrupted_run_is_moved_aside_kept_and_retrained(quick, splits, tmp_path, fit_calls):
    target = run_dir(quick, tmp_path)
    target.mkdir()
    (target / "history.csv").write_text("epoch,loss\n0,0.7\n")  # as far as it got
    with pytest.warns(UserWarning, match=f"no {COMPLETE} marker"):
        fresh = train(quick, splits, runs_root=tmp_path, progress=False)
    assert fit_calls == ["quick"]
    assert fresh.path == target and (target / COMPLETE).is_file()
    assert len(fresh.history) == 1
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(f"{target.name}.incomplete")]
    assert len(kept) == 1
    assert (kept[0] / "history.csv").read_text() == "epoch,loss\n0,0.7\n"


def test_a_killed_runs_temporary_folder_is_never_loaded_and_the_next_train_removes_it(
    run, quick, splits, tmp_path, fit_calls
):
    # A killed process's unfinished folder, complete-looking but never moved into place; and
    # another run's temporary folder, which is not this training's business.
    target = run_dir(quick, tmp_path)
    leftover = shutil.copytree(run.path, tmp_path / f".tmp-{target.name}-1-0123abcd")
    other = shutil.copytree(run.path, tmp_path / ".tmp-other-0123456789ab-1-0123abcd")
    fresh = train(quick, splits, runs_root=tmp_path, progress=False)
    assert fit_calls == ["quick"]
    assert fresh.path == target and len(fresh.history) == 1
    assert not leftover.exists() and other.is_dir()


def test_a_runs_folder_that_cannot_be_written_is_one_line_naming_it_and_the_fix(
    quick, splits, tmp_path, monkeypatch, fit_calls
):
    a_file = tmp_path / "runs"
    a_file.write_text("not a folder")
    with pytest.raises(training.RunsFolderError,
                       match=rf"cannot write trained runs into {a_file} .*SIAMLIB_RUNS_DIR"):
        train(quick, splits, runs_root=a_file, progress=False)
    read_only = tmp_path / "read-only"  # tests run as root, which chmod does not stop

    def refused(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(training.tempfile, "TemporaryFile", refused)
    with pytest.raises(training.RunsFolderError, match="Read-only file system.*SIAMLIB_RUNS_DIR"):
        train(quick, splits, runs_root=read_only, progress=False)
    assert fit_calls == []


# --- the cache key ------------------------------------------------------------------------------

# One changed value for every field of every config part. A new field without an entry here
# fails test_key_changes_when_any_field_changes, so it cannot be left out of the key unnoticed.
CHANGED = {
    (DataConfig, "source"): "/elsewhere/faces",  # made a real folder by the test
    (DataConfig, "preprocess"): Preprocess(96),
    (DataConfig, "face_crop"): "whole",
    (DataConfig, "val_fraction"): 0.3,
    (DataConfig, "split_seed"): 1,
    (DataConfig, "max_train_pairs"): 100,
    (DataConfig, "max_eval_pairs"): 50,
    (DataConfig, "generated_pairs"): 1000,
    (DataConfig, "view2_fold"): 3,
    (Preprocess, "image_size"): 96,
    (ModelConfig, "image_size"): 96,
    (ModelConfig, "filters"): (64, 128, 128, 128),
    (ModelConfig, "kernels"): (10, 7, 4, 3),
    (ModelConfig, "strided_stem"): True,
    (ModelConfig, "width"): 0.5,
    (ModelConfig, "dense_units"): 2048,
    (ModelConfig, "batch_norm"): True,
    (ModelConfig, "dropout"): 0.5,
    (ModelConfig, "distance"): "l2",
    (ModelConfig, "loss"): "contrastive",
    (ModelConfig, "margin"): 2.0,
    (ModelConfig, "init"): "glorot",
    (ModelConfig, "l2"): 0.0,
    (TrainConfig, "optimizer"): "sgd",
    (TrainConfig, "learning_rate"): 1e-3,
    (TrainConfig, "momentum"): 0.9,
    (TrainConfig, "lr_decay"): 0.99,
    (TrainConfig, "schedule"): "cosine",
    (TrainConfig, "warmup_epochs"): 2,
    (TrainConfig, "batch_size"): 64,
    (TrainConfig, "epochs"): 10,
    (TrainConfig, "patience"): 3,
    (TrainConfig, "sampling"): "unrestricted",
    (TrainConfig, "pairs_per_epoch"): 1000,
    (TrainConfig, "images_per_epoch"): 1000,
    (TrainConfig, "images_per_person"): 2,
    (TrainConfig, "augment"): None,  # BASE trains with Augment()
    (TrainConfig, "xla"): True,
    (TrainConfig, "seed"): 1,
    (Augment, "flip"): False,
    (Augment, "max_shift"): 0.1,
    (Augment, "max_rotation"): 5.0,
    (Augment, "max_zoom"): 0.2,
    (Augment, "brightness"): 0.2,
    (Augment, "contrast"): 0.1,
}
# Where each part sits inside a RunConfig.
PART_PATHS = {
    DataConfig: ("data",),
    Preprocess: ("data", "preprocess"),
    ModelConfig: ("model",),
    TrainConfig: ("train",),
    Augment: ("train", "augment"),
}
ALL_FIELDS = [(part, f.name) for part in PART_PATHS for f in dataclasses.fields(part)]
BASE = RunConfig("base", train=TrainConfig(augment=Augment()))
# Fields that only some samplings accept are changed from a base with such a sampling.
BASE_FOR = {(TrainConfig, "images_per_epoch"): BASE.replace(train={"sampling": "identities"})}


# The input size is stated in two parts that must agree (RunConfig refuses a mismatch), so the
# key test changes both together.
SIZE_FIELDS = {(DataConfig, "preprocess"), (Preprocess, "image_size"),
               (ModelConfig, "image_size")}


def with_field(config, path: tuple[str, ...], name: str, value):
    """``config`` with the field ``name`` of the part at ``path`` set to ``value``."""
    if not path:
        return dataclasses.replace(config, **{name: value})
    part = getattr(config, path[0])
    return dataclasses.replace(config, **{path[0]: with_field(part, path[1:], name, value)})


@pytest.mark.parametrize(("part", "name"), ALL_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_key_changes_when_any_field_changes(part, name, tmp_path, monkeypatch):
    assert (part, name) in CHANGED, f"add a changed value for {part.__name__}.{name} to CHANGED"
    if (part, name) == (DataConfig, "source"):  # an identity folder's key lists its files
        (tmp_path / "Ann").mkdir()
        (tmp_path / "Ann" / "1.png").write_bytes(b"png")
        monkeypatch.setitem(CHANGED, (part, name), str(tmp_path))
    path = PART_PATHS[part]
    base = BASE_FOR.get((part, name), BASE)
    original = base
    for step in path:
        original = getattr(original, step)
    assert getattr(original, name) != CHANGED[part, name], "CHANGED must really change it"
    if (part, name) in SIZE_FIELDS:
        size = 96
        changed = base.replace(data={"preprocess": Preprocess(size)}, model={"image_size": size})
    else:
        changed = with_field(base, path, name, CHANGED[part, name])
    assert changed.key() != base.key()


def test_the_key_is_a_hash_of_every_field_and_the_policy():
    # No compatibility rules: the key is the hash of the whole config but its name.
    content = {**dataclasses.asdict(BASE), "policy": "float32"}
    del content["name"]
    encoded = json.dumps(content, sort_keys=True, default=str).encode()
    assert BASE.key("float32") == hashlib.sha256(encoded).hexdigest()[:12]


def test_images_and_network_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match=r"images are 80 px .* the network reads 105 px"):
        BASE.replace(data={"preprocess": Preprocess(80)})


def test_images_per_person_is_in_the_key():
    identities = BASE.replace(train={"sampling": "identities"})
    assert identities.replace(train={"images_per_person": 2}).key() != identities.key()


def test_changed_values_table_has_no_stale_entries():
    assert set(CHANGED) == set(ALL_FIELDS)


def test_key_ignores_the_name_and_depends_on_the_policy():
    assert BASE.replace(name="renamed").key() == BASE.key()
    assert BASE.key("mixed_float16") != BASE.key("float32")


# --- RunConfig ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [RunConfig("plain"), BASE], ids=["no-augment", "augment"])
def test_run_config_round_trips_through_a_dict_and_json(config):
    assert RunConfig.from_dict(dataclasses.asdict(config)) == config
    as_json = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples come back as lists
    assert RunConfig.from_dict(as_json) == config


def test_run_config_replace_changes_only_the_given_fields():
    changed = BASE.replace(train={"epochs": 3}, name="short")
    assert changed.train == dataclasses.replace(BASE.train, epochs=3)
    assert (changed.name, changed.data, changed.model) == ("short", BASE.data, BASE.model)
    assert BASE.train.epochs == 30  # the original is untouched


@pytest.mark.parametrize(
    "changes", [{"optimizer": "rmsprop"}, {"sampling": "everything"}], ids=["optimizer", "sampling"]
)
def test_invalid_train_config_raises_value_error(changes):
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**changes)


@pytest.mark.parametrize(
    "changes",
    [{"batch_size": 0}, {"epochs": 0}, {"learning_rate": -1e-3}, {"pairs_per_epoch": 0},
     {"sampling": "identities", "images_per_epoch": 0}, {"images_per_person": 1},
     {"sampling": "identities", "batch_size": 7},
     {"sampling": "identities", "batch_size": 30}],  # not a multiple of 4 images per person
    ids=["batch_size", "epochs", "learning_rate", "pairs_per_epoch", "images_per_epoch",
         "images_per_person", "identity_batch_too_small", "identity_batch_not_whole_people"],
)
def test_out_of_range_train_numbers_raise_value_error(changes):
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"sampling": "identities", "pairs_per_epoch": 512}, "set images_per_epoch instead"),
     ({"sampling": "unrestricted", "images_per_epoch": 512}, "'unrestricted' sampling counts"),
     ({"sampling": "restricted", "images_per_epoch": 512}, "'restricted' sampling counts")],
    ids=["identities-with-pairs", "unrestricted-with-images", "restricted-with-images"],
)
def test_each_sampling_refuses_the_other_samplings_epoch_budget(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


# --- training options ---------------------------------------------------------------------------


def test_early_stopping_follows_validation_auc_and_restores_the_best_epochs_weights(
    run, splits, tmp_path
):
    # A high learning rate overshoots after a few epochs; patience 1 stops at the first epoch
    # that does not raise validation AUC.
    config = run.config.replace(
        name="early",
        train={"learning_rate": 1e-2, "pairs_per_epoch": 256, "patience": 1, "epochs": 10},
    )
    early = train(config, splits, runs_root=tmp_path, progress=False)
    history = early.history
    assert MONITOR == "val_auc" and history[MONITOR].between(0.0, 1.0).all()
    best = int(history[MONITOR].to_numpy().argmax())
    assert len(history) < 10, "training did not stop early: nothing to restore"
    assert best < len(history) - 1, "the last epoch was the best: nothing to restore"
    assert early.info["best_epoch"] == best + 1
    model = early.model
    model.compile(loss=loss_for(config.model), metrics=[keras.metrics.AUC(name="auc")])
    restored = model.evaluate(
        pair_dataset(splits.store, splits.val, config.train.batch_size), verbose=0,
        return_dict=True,
    )
    assert restored["auc"] == pytest.approx(history[MONITOR][best], rel=1e-4)
    assert restored["loss"] == pytest.approx(history["val_loss"][best], rel=1e-4)
    assert restored["loss"] != pytest.approx(history["val_loss"].iloc[-1], rel=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer_trains_with_the_learning_rate_decayed_every_epoch(
    optimizer, quick, splits, tmp_path
):
    config = quick.replace(
        name=optimizer,
        train={"optimizer": optimizer, "learning_rate": 1e-2, "lr_decay": 0.99, "epochs": 3},
    )
    trained = train(config, splits, runs_root=tmp_path, progress=False)
    np.testing.assert_allclose(
        trained.history["learning_rate"], 1e-2 * 0.99 ** np.arange(3), rtol=1e-6
    )
    assert np.isfinite(trained.history[["loss", "val_loss"]].to_numpy()).all()
    keras.utils.set_random_seed(config.train.seed)  # as fit does: the network before training
    initial = build_siamese(config.model).get_weights()
    moved = [not np.array_equal(a, b) for a, b in zip(initial, trained.model.get_weights())]
    assert all(moved), "some weights were never updated"


def rate_at(optimizer: keras.optimizers.Optimizer, step: int) -> float:
    """The learning rate ``optimizer`` trains step ``step`` with (its schedule reads its count)."""
    optimizer.iterations.assign(step)
    return float(optimizer.learning_rate)


def test_cosine_schedule_warms_up_then_decays_to_zero_step_by_step(quick, splits, tmp_path):
    config = quick.replace(name="cosine", train={"schedule": "cosine", "warmup_epochs": 1,
                                                 "learning_rate": 1e-2, "epochs": 3})
    _, steps = training.training_stream(config, splits)
    optimizer = training.compiled_model(config, steps).optimizer
    rates = np.array([rate_at(optimizer, step) for step in range(3 * steps + 1)])
    assert rates[0] == 0.0
    assert rates[steps] == pytest.approx(1e-2)  # warmed up after one epoch, linearly
    np.testing.assert_allclose(rates[: steps + 1], np.linspace(0, 1e-2, steps + 1), rtol=1e-5)
    middle = steps + steps  # halfway through the two decay epochs: cos(pi / 2)
    assert rates[middle] == pytest.approx(0.5e-2, rel=1e-5)
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(rates[steps:]) <= 0)
    trained = train(config, splits, runs_root=tmp_path, progress=False)
    assert len(trained.history) == 3 and np.isfinite(trained.history["loss"]).all()


def test_a_negative_warmup_is_refused():
    with pytest.raises(ValueError, match="warmup_epochs must be 0 or more"):
        TrainConfig(schedule="cosine", epochs=3, warmup_epochs=-1)


@pytest.mark.parametrize(("epochs", "warmup", "warm_steps"), [(3, 1, 10), (2, 5, 10), (1, 1, 0)])
def test_warmup_leaves_at_least_the_last_epoch_to_decay(quick, epochs, warmup, warm_steps):
    config = quick.replace(train={"schedule": "cosine", "learning_rate": 1e-2, "epochs": epochs,
                                  "warmup_epochs": warmup})
    optimizer = training.compiled_model(config, 10).optimizer
    rates = np.array([rate_at(optimizer, step) for step in range(epochs * 10 + 1)])
    assert rates.argmax() == warm_steps and rates.max() == pytest.approx(1e-2)
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_restricted_sampling_trains_on_the_given_training_pairs(
    quick, splits, tmp_path, monkeypatch
):
    shuffled_pairs, real_pair_dataset = [], training.pair_dataset

    def recording_pair_dataset(store, pairs, batch_size, shuffle=False, **kwargs):
        if shuffle:
            shuffled_pairs.append(pairs)
        return real_pair_dataset(store, pairs, batch_size, shuffle=shuffle, **kwargs)

    def no_sampling(*args, **kwargs):
        raise AssertionError("restricted training sampled pairs")

    monkeypatch.setattr(training, "pair_dataset", recording_pair_dataset)
    monkeypatch.setattr(training, "sampled_pair_dataset", no_sampling)
    config = quick.replace(name="restricted", train={"sampling": "restricted", "epochs": 2})
    trained = train(config, splits, runs_root=tmp_path, progress=False)
    assert len(shuffled_pairs) == 1 and shuffled_pairs[0].equals(splits.train)
    assert len(trained.history) == 2
    assert np.isfinite(trained.history["loss"]).all()


def test_restricted_sampling_cycles_the_given_pairs_to_fill_pairs_per_epoch(quick, splits):
    given, batch = len(splits.train), quick.train.batch_size
    one_pass = quick.replace(train={"sampling": "restricted", "pairs_per_epoch": None})
    assert training.training_stream(one_pass, splits)[1] == math.ceil(given / batch)
    budget = quick.replace(train={"sampling": "restricted", "pairs_per_epoch": 3 * given})
    dataset, steps = training.training_stream(budget, splits)
    assert steps == 3 * given // batch
    labels = [label for _, label in dataset.take(steps).as_numpy_iterator()]
    assert sum(map(len, labels)) == steps * batch > 2 * given  # the given pairs, cycled


# --- all pairs of identity batches --------------------------------------------------------------


def test_all_pairs_trainer_never_pairs_a_photo_with_itself(run, tmp_path):
    """People with 2 photos in batches of K = 4 images each: every photo is in the batch twice.
    Its pair with itself must count as no pair at all, and the loss is the balanced loss of the
    distinct-photo pairs only."""
    faces = write_face_folder(tmp_path / "faces", num_people=3, images_per_person=2)
    store = ImageStore.load(sorted(map(str, faces.rglob("*.png"))), Preprocess(IMAGE_SIZE),
                            cache_dir=tmp_path / "cache", progress=False)
    stream = identity_batch_dataset(store, set(store.names), 2, 4)
    images, (ids, rows) = next(stream.as_numpy_iterator())
    assert len(rows) == 8 and len(set(rows)) == 4 and len(set(ids)) == 2  # each photo twice

    first, second, same, weight = (np.asarray(t) for t in pair_weights(ids, rows))
    same, counted = same == 1, weight > 0
    self_pairs = rows[first] == rows[second]
    assert self_pairs.sum() == 4 and not counted[self_pairs].any()
    # Per person: 6 pairs among its 4 entries, less its 2 self pairs; 4 x 4 different pairs.
    assert (same & counted).sum() == 8 and (~same & counted).sum() == 16
    assert (rows[first] != rows[second])[same & counted].all()
    assert weight[same].sum() == pytest.approx(14) == weight[~same].sum()  # half of 28 pairs each

    # The trained network (a copy): it scores a photo with itself far higher than two photos of
    # one person, so counting self pairs would change the loss visibly.
    siamese = build_siamese(run.config.model, "float32")
    siamese.set_weights(run.model.get_weights())
    trainer = AllPairsTrainer(siamese)
    trainer.compile(optimizer=keras.optimizers.SGD(1e-3), loss=loss_for(run.config.model))
    embeddings = tower_of(siamese)(images, training=True)
    scores = head_of(siamese)([np.take(embeddings, first, 0),
                               np.take(embeddings, second, 0)]).numpy().ravel()
    bce = -np.where(same, np.log(scores), np.log(1 - scores))
    expected = 0.5 * bce[same & ~self_pairs].mean() + 0.5 * bce[~same].mean()
    with_self_pairs = 0.5 * bce[same].mean() + 0.5 * bce[~same].mean()
    assert expected != pytest.approx(with_self_pairs, rel=1e-2), "the test would not tell"

    logs = trainer.train_on_batch(images, (ids, rows), return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


def test_identity_sampling_trains_a_network_that_verifies_new_people(run, splits, tmp_path):
    config = run.config.replace(
        name="identities",
        train={"sampling": "identities", "pairs_per_epoch": None, "images_per_epoch": 512,
               "epochs": 6},
    )
    trained = train(config, splits, runs_root=tmp_path, progress=False)
    assert not isinstance(trained.model, AllPairsTrainer) and trained.model.name == "siamese"
    test = trained.scores_of("test")
    assert metrics.roc(test["label"], test["score"]).auc > 0.9
    assert trained.history["loss"].iloc[-1] < trained.history["loss"].iloc[0]


# --- damaged run folders, and two processes training one config ---------------------------------


def _damage_run(folder, what: str) -> None:
    if what == "weights truncated":
        weights = folder / "model.weights.h5"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif what == "scores lost":
        (folder / "scores.csv").unlink()
    elif what == "config truncated":
        config = folder / "config.json"
        config.write_text(config.read_text()[:50])
    else:  # the marker itself
        (folder / COMPLETE).write_text('{"name": "quick", "key"')


@pytest.mark.parametrize(
    "what", ["weights truncated", "scores lost", "config truncated", "marker garbled"]
)
def test_a_damaged_run_folder_is_moved_aside_and_retrained(quick, splits, tmp_path, fit_calls,
                                                           what):
    target = train(quick, splits, runs_root=tmp_path, progress=False).path
    assert set(json.loads((target / COMPLETE).read_text())["files"]) == set(RUN_FILES) - {COMPLETE}
    _damage_run(target, what)
    with pytest.warns(UserWarning, match=rf"{target} is damaged \(.*\); moved to .*damaged-"):
        fresh = train(quick, splits, runs_root=tmp_path, progress=False)
    assert fit_calls == ["quick", "quick"]
    assert fresh.path == target and not run_problems(target)
    assert len([p for p in tmp_path.iterdir() if ".damaged-" in p.name]) == 1


def test_a_run_trained_under_another_keras_loads_with_a_warning(run, tmp_path):
    copy = shutil.copytree(run.path, tmp_path / run.path.name)
    info = json.loads((copy / COMPLETE).read_text())
    info["keras"] = "3.0.0"
    (copy / COMPLETE).write_text(json.dumps(info))
    with pytest.warns(UserWarning, match="trained with Keras 3.0.0, this is Keras"):
        assert load_run(copy, check=False).scores.equals(run.scores)


def test_load_run_of_a_damaged_folder_names_the_file(run, tmp_path):
    copy = shutil.copytree(run.path, tmp_path / run.path.name)
    _damage_run(copy, "weights truncated")
    with pytest.raises(DamagedRunError, match=r"model\.weights\.h5 \(content changed"):
        load_run(copy)


def test_a_run_whose_marker_has_no_checksums_is_damaged_and_retrained(
    quick, splits, tmp_path, fit_calls
):
    target = train(quick, splits, runs_root=tmp_path, progress=False).path
    info = json.loads((target / COMPLETE).read_text())
    del info["files"]
    (target / COMPLETE).write_text(json.dumps(info))
    assert run_problems(target) == [
        f"its {COMPLETE} marker records no checksums, so its files cannot be verified"]
    with pytest.raises(DamagedRunError, match="records no checksums"):
        load_run(target)
    with pytest.warns(UserWarning, match="records no checksums.*; moved to .*damaged-"):
        fresh = train(quick, splits, runs_root=tmp_path, progress=False)
    assert fit_calls == ["quick", "quick"] and not run_problems(fresh.path)


_TRAIN_IN_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from synthetic_faces import small_run_config
from siamlib import training
faces, runs, me, log = sys.argv[2:]
config = small_run_config(Path(faces), name="race").replace(
    train={"epochs": 1, "pairs_per_epoch": 64})
real_fit = training.fit
def logged_fit(*args, **kwargs):
    with open(log, "a") as out:
        out.write(me + "\\n")
    return real_fit(*args, **kwargs)
training.fit = logged_fit
Path(log).with_name(f"ready-{me}").touch()
deadline = time.time() + 300
while len(list(Path(log).parent.glob("ready-*"))) < 2 and time.time() < deadline:
    time.sleep(0.01)
run = training.train(config, runs_root=runs, progress=False)
print(json.dumps([str(run.path), run.scores["score"].tolist()]))
"""


def test_two_processes_training_one_config_train_it_once_and_both_get_it(tmp_path_factory,
                                                                          tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    workspace = synthetic_workspace(tmp_path_factory)
    log = tmp_path / "fitted.log"
    env = {**os.environ, paths.DATA_DIR_ENV: str(workspace / "data"),
           "PYTHONPATH": str(Path(training.__file__).parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAIN_IN_CHILD, str(Path(__file__).parent),
             str(workspace / "faces"), str(tmp_path / "runs"), str(me), str(log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for me in (1, 2)
    ]
    results = [child.communicate(timeout=600) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for _, err in results]
    # The last line: load_splits reports the data first.
    (path_1, scores_1), (path_2, scores_2) = (json.loads(out.splitlines()[-1])
                                              for out, _ in results)
    assert path_1 == path_2 and scores_1 == scores_2
    assert len(log.read_text().split()) == 1  # trained once; the other waited and loaded it
    assert [p.name for p in (tmp_path / "runs").iterdir() if not p.name.endswith(".lock")] == [
        Path(path_1).name]


def test_a_full_disk_stops_before_the_weights_are_written_and_leaves_no_run(quick, splits,
                                                                           tmp_path, monkeypatch):
    full = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(training.shutil, "disk_usage", lambda path: full)
    with pytest.raises(OSError, match="is full") as raised:
        train(quick, splits, runs_root=tmp_path, progress=False)
    assert raised.value.errno == errno.ENOSPC
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
