"""Training a Siamese network, and the run cache that makes every notebook re-run instant.

A run is fully described by a ``RunConfig`` (data, model, training, seed). Its folder under
``data/runs/`` is named by a hash of that config and the numeric policy, so:

- re-running a notebook with the same config loads the finished run in a second;
- changing any field trains a new run (nothing stale is ever loaded);
- a run is trained in a temporary folder and moved into place only after its completion
  marker is written, so an interrupted run is never mistaken for a finished one.

A finished run folder holds what later notebooks need: ``config.json``, ``history.csv``,
``model.weights.h5``, ``scores.csv`` (validation and test pair scores) and ``COMPLETE``
(versions, device, wall time).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import math
import os
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from tqdm.keras import TqdmCallback

from siamlib import locks, metrics, paths
from siamlib.data import sha256_of
from siamlib.device import compute_policy, device_report, has_gpu
from siamlib.images import Preprocess
from siamlib.model import (ModelConfig, build_siamese, head_of, loss_for, multi_similarity_loss,
                           tower_of)
from siamlib.pairs import identity_images
from siamlib.pipeline import Augment, identity_batch_dataset, pair_dataset, sampled_pair_dataset
from siamlib.scoring import score_pairs
from siamlib.splits import LFW, DataConfig, Splits, check_data, load_splits

COMPLETE = "COMPLETE"
SAMPLINGS = ("restricted", "unrestricted", "identities")
SCHEDULES = ("exponential", "cosine")
# The per-epoch decay by ``lr_decay`` (Koch et al.'s, and the search's), stated in full so that
# a change of schedule also undoes a cosine recipe's warm-up.
EXPONENTIAL_SCHEDULE = {"schedule": "exponential", "warmup_epochs": 0}
# Early stopping and a run's best epoch follow validation AUC, not validation loss: with Koch's
# L2 penalty the loss is mostly the penalty, and would stop training on the penalty's minimum.
AUC_METRIC = "auc"
MONITOR = f"val_{AUC_METRIC}"
_CACHE_FORMAT = 2  # 2: identity batches leave out pairs of a photo with itself; AUC stopping
# Fields added since cache format 2, with the value every earlier run had: at that value a field
# is left out of the key, so the runs trained before it existed keep their keys (and caches).
_ADDED_FIELDS = {("train", "schedule"): "exponential", ("train", "warmup_epochs"): 0}


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained. Defaults suit Adam on a GPU; profiles adjust them.

    Arguments:
        optimizer: "adam" or "sgd" (SGD with momentum, as Koch et al.).
        learning_rate: initial learning rate.
        momentum: SGD momentum.
        lr_decay: learning rate multiplied by this after every epoch (Koch et al.: 0.99);
            "exponential" schedule only.
        schedule: "exponential" (``lr_decay`` per epoch) or "cosine": a linear warm-up from 0
            over ``warmup_epochs``, then a cosine decay to 0 at ``epochs``, step by step
            (Keras' ``CosineDecay``). A fresh network's first steps are its least informed;
            the cosine tail lets the last epochs settle instead of stopping at full speed.
        warmup_epochs: cosine schedule: epochs of linear warm-up, at most all but the last
            (a short run, such as ``epochs=1`` from a notebook override, warms up less).
        batch_size: pairs per batch; under "identities", images per batch (a multiple of
            ``images_per_person``), which hold ``batch_size * (batch_size - 1) / 2`` pairs.
        epochs: the most epochs to train.
        patience: stop after this many epochs without a higher validation AUC, and restore
            the weights of the best epoch. AUC, not validation loss: Koch's large L2 penalty
            makes up most of the loss, so the loss would mostly track the penalty.
        sampling: "restricted" (the given DevTrain pairs), "unrestricted" (fresh balanced
            pairs sampled from every image of the training people, each epoch) or
            "identities" (batches of ``batch_size / images_per_person`` people, trained on
            every pair of distinct photos inside the batch, same and different pairs
            weighted equally).
        pairs_per_epoch: restricted and unrestricted: pairs per epoch; None = one pass over
            the restricted training pairs. Not for "identities", which counts images.
        images_per_epoch: identities: images per epoch; None = as many as one pass over the
            restricted training pairs shows (two per pair). Only for "identities".
        images_per_person: identities: images of each person in a batch (K of P x K); a
            person with fewer photos repeats some. 4 give 6 same pairs per person: 32 people
            x 4 = 128 images hold 192 same and 7,936 different pairs.
        augment: training-time jitter, or None.
        xla: compile with XLA; None = on a GPU only.
        seed: seeds weights, shuffling, sampling and augmentation.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-4
    momentum: float = 0.5
    lr_decay: float = 1.0
    schedule: str = "exponential"
    warmup_epochs: int = 0
    batch_size: int = 128
    epochs: int = 30
    patience: int = 5
    sampling: str = "restricted"
    pairs_per_epoch: int | None = None
    images_per_epoch: int | None = None
    images_per_person: int = 4
    augment: Augment | None = None
    xla: bool | None = None
    seed: int = 0

    def __post_init__(self):
        for name, value, allowed in (
            ("optimizer", self.optimizer, ("adam", "sgd")),
            ("sampling", self.sampling, SAMPLINGS),
            ("schedule", self.schedule, SCHEDULES),
        ):
            if value not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {value!r}")
        for name in ("learning_rate", "batch_size", "epochs", "pairs_per_epoch",
                     "images_per_epoch"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {value!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"TrainConfig.warmup_epochs must be 0 or more, got "
                             f"{self.warmup_epochs}")
        if self.images_per_person < 2:
            raise ValueError("TrainConfig.images_per_person must be at least 2 (a same pair "
                             f"needs two photos), got {self.images_per_person}")
        identities = self.sampling == "identities"
        if identities and self.pairs_per_epoch is not None:
            raise ValueError("TrainConfig.pairs_per_epoch: identity batches count images; set "
                             "images_per_epoch instead")
        if not identities and self.images_per_epoch is not None:
            raise ValueError(f"TrainConfig.images_per_epoch is for identity batches only; "
                             f"{self.sampling!r} sampling counts pairs_per_epoch")
        k = self.images_per_person
        if identities and (self.batch_size < 2 * k or self.batch_size % k):
            raise ValueError(f"TrainConfig.batch_size: identity batches hold {k} images of each "
                             f"of at least two people, so batch_size is a multiple of {k} and "
                             f">= {2 * k}; got {self.batch_size}")


@dataclass(frozen=True)
class RunConfig:
    """A complete, hashable description of one training run."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        # The images are made at one size and the network reads another: refuse it here, before
        # minutes of decoding end in a shape error.
        made, read = self.data.preprocess.image_size, self.model.image_size
        if made != read:
            raise ValueError(f"RunConfig {self.name!r}: the images are {made} px "
                             f"(data.preprocess.image_size) but the network reads {read} px "
                             f"(model.image_size); change both together")
        if self.model.loss == "multi_similarity" and self.train.sampling != "identities":
            raise ValueError(f"RunConfig {self.name!r}: the multi-similarity loss compares each "
                             "image with the rest of its batch of people; it needs "
                             f"sampling='identities', not {self.train.sampling!r}")

    def key(self, policy: str | None = None) -> str:
        """Hash of every field that changes the trained weights (the name is only a label).

        For an identity folder that includes the folder's content (``data_manifest``): adding,
        removing or renaming people, or replacing a photo, trains a new run. LFW-a's content is
        fixed (``siamlib.data`` verifies it), and its crop is hashed as the pixels it keeps of
        a 250x250 frame, so ``crop=0.6`` names the runs trained with ``crop=150`` before.
        """
        content = asdict(self)
        content.pop("name")
        if self.data.source == LFW:
            content["data"]["preprocess"]["crop"] = self.data.preprocess.crop_side(250, 250)
        else:
            content["data"]["manifest"] = self.data_manifest
        for (part, name), default in _ADDED_FIELDS.items():
            if content[part][name] == default:
                del content[part][name]
        content["policy"] = policy or compute_policy()
        content["format"] = _CACHE_FORMAT
        encoded = json.dumps(content, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:12]

    @cached_property  # listed once per config: a run's key is asked for several times
    def data_manifest(self) -> str | None:
        """Hash of an identity folder's image files: relative paths, sizes, modification times."""
        if self.data.source == LFW:
            return None
        root = Path(self.data.source).expanduser()
        files = sorted(identity_images(root)["path"])
        stamps = [(str(Path(f).relative_to(root)), os.stat(f).st_size, os.stat(f).st_mtime_ns)
                  for f in files]
        return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]

    def check_data(self) -> None:
        """Stop with one clear error if this run cannot train on its data (before training)."""
        settings = self.train
        identities = settings.sampling == "identities"
        check_data(self.data, settings.batch_size // settings.images_per_person
                   if identities else 2)

    def replace(self, **changes) -> RunConfig:
        """A copy with fields changed, e.g. ``config.replace(train={"epochs": 5})``."""
        updates = {}
        for part, value in changes.items():
            current = getattr(self, part)
            updates[part] = (
                dataclasses.replace(current, **value) if isinstance(value, dict) else value
            )
        return dataclasses.replace(self, **updates)

    @classmethod
    def from_dict(cls, content: dict) -> RunConfig:
        data = dict(content["data"])
        data["preprocess"] = Preprocess(**data["preprocess"])
        model = {k: tuple(v) if isinstance(v, list) else v for k, v in content["model"].items()}
        train = dict(content["train"])
        train["augment"] = Augment(**train["augment"]) if train["augment"] else None
        return cls(content["name"], DataConfig(**data), ModelConfig(**model), TrainConfig(**train))


@dataclass
class Run:
    """A finished run: its trained network and what it recorded."""

    config: RunConfig
    path: Path
    model: keras.Model
    history: pd.DataFrame
    scores: pd.DataFrame
    info: dict

    def scores_of(self, split: str) -> pd.DataFrame:
        """Pair rows and scores of "val" or "test"."""
        return self.scores[self.scores["split"] == split].reset_index(drop=True)

    @cached_property  # a finished run's scores never change: fit the threshold once
    def threshold(self) -> float:
        """The decision threshold, chosen on validation (maximum accuracy), never on test."""
        val = self.scores_of("val")
        return metrics.threshold_for_max_accuracy(val["label"], val["score"])

    def summary(self) -> dict:
        """Validation and test metrics at the validation-chosen threshold, one table row."""
        row = {"run": self.config.name, "epochs": self.info["epochs_run"],
               "train_s": self.info["wall_time_s"]}
        for split in ("val", "test"):
            frame = self.scores_of(split)
            stats = metrics.summary(frame["label"], frame["score"], self.threshold)
            row.update({f"{split}_{k}": v for k, v in stats.items() if k != "threshold"})
        row["threshold"] = self.threshold
        return row


def run_dir(config: RunConfig, runs_root: str | Path | None = None) -> Path:
    root = Path(runs_root) if runs_root is not None else paths.runs_dir()
    return root / f"{config.name}-{config.key()}"


def train(
    config: RunConfig,
    splits: Splits | None = None,
    runs_root: str | Path | None = None,
    progress: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> Run:
    """The finished run for ``config``: loaded from the cache, or trained now and cached.

    ``splits`` may be passed to share decoded images between runs; it must come from
    ``load_splits(config.data)``. ``callbacks`` are added to training's own (not part of the
    cache key; a cached run trains nothing, so they are not called).
    """
    target = run_dir(config, runs_root)
    if (target / COMPLETE).is_file() and not run_problems(target):
        return load_run(target, check=False)
    # One process at a time trains a config; a second one waits here, then loads that run.
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.waiting_lock(target.with_name(f".{target.name}.lock"), f"training {target.name}"):
        return _train_locked(config, target, splits, progress, callbacks)


def _train_locked(config: RunConfig, target: Path, splits: Splits | None, progress: bool,
                  callbacks: list[keras.callbacks.Callback] | None) -> Run:
    """The work of ``train``, by the process holding the run's lock."""
    if (target / COMPLETE).is_file():
        problems = run_problems(target)
        if not problems:  # finished, perhaps by the process we waited for
            return load_run(target, check=False)
        damaged = target.with_name(f"{target.name}.damaged-{int(time.time())}")
        warnings.warn(f"{target} is damaged ({'; '.join(problems)}); moved to {damaged.name} "
                      "and training anew", stacklevel=3)
        target.rename(damaged)
    if target.exists():
        stale = target.with_name(f"{target.name}.incomplete-{int(time.time())}")
        warnings.warn(f"{target} has no {COMPLETE} marker (interrupted?); moved to {stale.name} "
                      "and training anew", stacklevel=3)
        target.rename(stale)
    splits = splits or load_splits(config.data, progress=progress)
    _remove_dead_partials(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        started = time.perf_counter()
        model, history = fit(config, splits, partial, progress, callbacks)
        scores = _score_splits(model, splits)
        scores.to_csv(partial / "scores.csv", index=False)
        info = {
            "name": config.name,
            "key": config.key(),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "epochs_run": len(history),
            "best_epoch": int(history[MONITOR].idxmax()) + 1,
            "device": device_report(),
            "machine": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            # Checked before the run is trusted: a lost or truncated file means retraining.
            "files": {path.name: sha256_of(path) for path in sorted(partial.iterdir())},
        }
        (partial / COMPLETE).write_text(json.dumps(info, indent=2))
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return load_run(target)


def _remove_dead_partials(target: Path) -> None:
    """Delete this run's hidden ``.partial`` folders whose training process no longer runs
    (killed with SIGKILL, say); a live process's folder is left alone."""
    for partial in target.parent.glob(f".{target.name}.*.partial"):
        pid = partial.name[len(target.name) + 2 : -len(".partial")]
        if pid.isdigit() and not _process_runs(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def compiled_model(config: RunConfig, steps_per_epoch: int = 1) -> keras.Model:
    """A fresh network for ``config``, compiled for training (the all-pairs trainer around it
    under identity sampling): what ``fit`` trains and ``budget.measure`` times.
    ``steps_per_epoch`` times the cosine schedule."""
    settings, policy = config.train, compute_policy()
    siamese = build_siamese(config.model, policy)
    if settings.sampling == "identities":
        batch_loss = multi_similarity_loss if config.model.loss == "multi_similarity" else None
        model = AllPairsTrainer(siamese, batch_loss)
    else:
        model = siamese
    model.compile(
        optimizer=_optimizer(settings, policy, steps_per_epoch),
        loss=loss_for(config.model),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5),
                 keras.metrics.AUC(name=AUC_METRIC)],
        jit_compile=has_gpu() if settings.xla is None else settings.xla,
    )
    return model


def fit(config: RunConfig, splits: Splits, folder: Path, progress: bool = True,
        callbacks: list[keras.callbacks.Callback] | None = None):
    """Train a fresh network on ``splits``; writes config, weights and history into ``folder``.

    Returns the model (the weights of the epoch with the best validation AUC restored) and its
    history DataFrame.
    """
    settings = config.train
    keras.utils.set_random_seed(settings.seed)
    train_ds, steps = _training_stream(config, splits)
    model = compiled_model(config, steps)
    siamese = model.siamese if isinstance(model, AllPairsTrainer) else model
    val_ds = pair_dataset(splits.store, splits.val, settings.batch_size)
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    callbacks = [
        *(callbacks or []),  # e.g. search.PruneOnValAuc, which may stop training
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=settings.patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(folder / "history.csv")),
    ]
    if settings.schedule == "exponential":  # the cosine schedule lives in the optimizer
        callbacks.insert(-1, keras.callbacks.LearningRateScheduler(
            lambda epoch: settings.learning_rate * settings.lr_decay**epoch))
    if progress:
        callbacks.append(TqdmCallback(epochs=settings.epochs, verbose=0, desc=config.name))
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=settings.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles (seeded); Keras cannot shuffle a Dataset
        verbose=0,
    )
    _ensure_room_for(siamese, folder)
    siamese.save_weights(folder / "model.weights.h5")
    return siamese, pd.read_csv(folder / "history.csv")


def _ensure_room_for(model: keras.Model, folder: Path) -> None:
    """Refuse to save weights that the disk cannot hold: h5py writing onto a full disk can kill
    the process (a segmentation fault) instead of raising, which leaves nothing to clean up."""
    needed = 2 * sum(weight.numpy().nbytes for weight in model.weights) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"the disk holding {folder} is full: {free / 2**20:.0f} MB "
                      f"free, saving the weights needs about {needed / 2**20:.0f} MB; free some "
                      "space and train again", str(folder))


class AllPairsTrainer(keras.Model):
    """Trains a Siamese network on every pair inside a batch of people's images.

    Each image goes through the tower once; the head then scores all n(n-1)/2 pairs of the
    n embeddings, so a batch of 128 images trains on up to 8,128 pairs, about 190 of them
    same-person pairs. A pair of one photo with itself (a person with fewer photos than the
    batch asks for repeats some) is left out: it is neither a same nor a different pair.
    Same and different pairs each carry half the loss, as in a balanced pair stream; or, with a
    ``batch_loss`` (the multi-similarity loss), that loss of all the batch's pairs at once.
    The network, its head and its loss are unchanged; evaluation (``test_step``) scores
    ordinary ``(image_a, image_b)`` pairs with it, so validation loss and AUC mean the same as
    for the other samplings.
    """

    def __init__(self, siamese: keras.Model, batch_loss=None):
        super().__init__(name="all_pairs_trainer")
        self.siamese = siamese
        self.batch_loss = batch_loss

    def call(self, inputs, training=False):
        return self.siamese(inputs, training=training)

    def train_step(self, data):
        images, (person_ids, photo_rows), _ = keras.utils.unpack_x_y_sample_weight(data)
        first, second, same, weight = pair_weights(person_ids, photo_rows)
        with tf.GradientTape() as tape:
            embeddings = tower_of(self.siamese)(images, training=True)
            scores = head_of(self.siamese)(
                [tf.gather(embeddings, first), tf.gather(embeddings, second)], training=True
            )
            if self.batch_loss is None:
                loss = self.compute_loss(y=same, y_pred=scores, sample_weight=weight)
            else:  # plus the weight penalties, which compute_loss would have added
                loss = self.batch_loss(scores, same, tf.cast(weight > 0, tf.float32), first,
                                       second, tf.shape(person_ids)[0]) + sum(self.losses)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
        return self.compute_metrics(images, same, scores, sample_weight=weight)


def pair_weights(person_ids, photo_rows):
    """Every pair i < j of a batch: its two indices, its label (1 = same person) and its weight.

    A pair of one photo with itself weighs 0. The others are weighted so that same pairs and
    different pairs each carry half of the loss: Keras divides the weighted sum by the number
    of pairs, all of them, so the weights of each kind add up to half that number.
    """
    first, second = _pair_indices(tf.shape(person_ids)[0])
    same = tf.cast(
        tf.equal(tf.gather(person_ids, first), tf.gather(person_ids, second)), tf.float32
    )
    distinct = tf.not_equal(tf.gather(photo_rows, first), tf.gather(photo_rows, second))
    counted = tf.cast(distinct, tf.float32)
    pairs = tf.cast(tf.size(same), tf.float32)
    n_same = tf.reduce_sum(same * counted)
    n_different = tf.reduce_sum((1.0 - same) * counted)
    weight = counted * tf.where(same > 0, pairs / (2.0 * tf.maximum(n_same, 1.0)),
                                pairs / (2.0 * tf.maximum(n_different, 1.0)))
    return first, second, same, weight


def _pair_indices(n):
    """Row and column of every pair i < j among n items (the upper triangle)."""
    i, j = tf.meshgrid(tf.range(n), tf.range(n), indexing="ij")
    upper = i < j
    return tf.boolean_mask(i, upper), tf.boolean_mask(j, upper)


class DamagedRunError(ValueError):
    """A run folder with a COMPLETE marker whose files are lost or changed; train() retrains."""


def run_problems(folder: str | Path) -> list[str]:
    """What is wrong with a finished run folder: files missing or unlike their checksums.

    Markers written before siamlib recorded checksums (no ``files``) are trusted as they are,
    as they always were; an empty list means the run can be loaded.
    """
    folder = Path(folder)
    try:
        info = json.loads((folder / COMPLETE).read_text())
        recorded = info.get("files") or {}
    except (OSError, ValueError, AttributeError) as error:
        return [f"its {COMPLETE} marker cannot be read ({error})"]
    problems = []
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_of(path) != digest:
            problems.append(f"{name} is not the file saved at training time (truncated or "
                            "changed)")
    return problems


def load_run(folder: str | Path, check: bool = True) -> Run:
    """A finished run folder, rebuilt: config, network with its weights, history, scores.

    Raises DamagedRunError when its files do not match the checksums in its marker
    (``check=False``: the caller has just checked).
    """
    folder = Path(folder)
    if not (folder / COMPLETE).is_file():
        raise FileNotFoundError(f"{folder} is not a finished run (no {COMPLETE} marker)")
    problems = run_problems(folder) if check else []
    if problems:
        raise DamagedRunError(f"{folder} is damaged: {'; '.join(problems)}. train() with its "
                              "config moves it aside and trains it again.")
    info = json.loads((folder / COMPLETE).read_text())
    config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    if info.get("keras") != keras.__version__:
        warnings.warn(f"run {folder.name} was trained with Keras {info.get('keras')}, this is "
                      f"Keras {keras.__version__}: scores may differ slightly", stacklevel=2)
    model = build_siamese(config.model)
    model.load_weights(folder / "model.weights.h5")
    history = pd.read_csv(folder / "history.csv")
    scores = pd.read_csv(folder / "scores.csv")
    return Run(config, folder, model, history, scores, info)


def learning_rate(settings: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a number (the exponential schedule sets it each epoch) or,
    for the cosine schedule, a Keras schedule of the step."""
    if settings.schedule == "exponential":
        return settings.learning_rate
    warmup = min(settings.warmup_epochs, settings.epochs - 1) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=settings.epochs * steps_per_epoch - warmup,
        warmup_target=settings.learning_rate, warmup_steps=warmup)


def _optimizer(settings: TrainConfig, policy: str, steps_per_epoch: int):
    rate = learning_rate(settings, steps_per_epoch)
    if settings.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(rate, momentum=settings.momentum)
    else:
        optimizer = keras.optimizers.Adam(rate)
    # The network's layers run in float16 but the outer model does not carry the policy, so
    # Keras would not add loss scaling by itself; without it small float16 gradients vanish.
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _training_stream(config: RunConfig, splits: Splits):
    settings = config.train
    if settings.sampling == "identities":
        dataset = identity_batch_dataset(
            splits.store, splits.train_people,
            settings.batch_size // settings.images_per_person, settings.images_per_person,
            seed=settings.seed, augment=settings.augment,
        )
        images = settings.images_per_epoch or 2 * len(splits.train)
        return dataset, max(1, images // settings.batch_size)
    if settings.sampling == "restricted":
        # Repeated, so one iterator spans all epochs: reshuffled every pass, and augmentation
        # keys keep counting instead of replaying the same jitter each epoch.
        dataset = pair_dataset(
            splits.store, splits.train, settings.batch_size,
            shuffle=True, seed=settings.seed, augment=settings.augment, repeat=True,
        )
        if settings.pairs_per_epoch is None:
            return dataset, math.ceil(len(splits.train) / settings.batch_size)
    else:
        dataset = sampled_pair_dataset(
            splits.store, splits.train_people, settings.batch_size,
            seed=settings.seed, augment=settings.augment,
        )
    pairs = settings.pairs_per_epoch or len(splits.train)
    return dataset, max(1, pairs // settings.batch_size)


def _score_splits(model: keras.Model, splits: Splits) -> pd.DataFrame:
    frames = []
    for split, frame in (("val", splits.val), ("test", splits.test)):
        frame = frame.assign(split=split, score=score_pairs(model, splits.store, frame))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
