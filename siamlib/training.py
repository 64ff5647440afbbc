"""Training a Siamese network, and the run cache that makes every notebook re-run instant.

A run's folder is named by a hash of its ``RunConfig`` and numeric policy: changing any field
trains a new run. It is built aside and moved into place once its ``COMPLETE`` marker (every
file's checksum) is written, so an interrupted run or a file changed later is noticed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from tqdm.keras import TqdmCallback

from siamlib import files, metrics, paths
from siamlib.device import compute_policy, cpu_model, device_report, has_gpu
from siamlib.images import Preprocess
from siamlib.model import AllPairsTrainer, ModelConfig, build_siamese, loss_for
from siamlib.pairs import identity_images
from siamlib.pipeline import Augment, identity_batch_dataset, pair_dataset, sampled_pair_dataset
from siamlib.scoring import score_pairs
from siamlib.splits import LFW, DataConfig, Splits, check_data, load_splits

COMPLETE = "COMPLETE"
# Stated in full so that a change of schedule also undoes a cosine recipe's warm-up.
EXPONENTIAL_SCHEDULE = {"schedule": "exponential", "warmup_epochs": 0}
# Not val_loss: with Koch's L2 penalty the loss is mostly the penalty, and would stop on its low.
MONITOR = "val_auc"


class DamagedRunError(ValueError):
    """A finished run whose files are lost, changed or unrecorded; ``train`` sets it aside."""


class RunsFolderError(OSError):
    """The runs folder cannot be written: one line naming it and the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained; profiles adjust the defaults. "cosine" warms up over
    ``warmup_epochs`` because a fresh network's first steps are its least informed.
    ``batch_size`` counts images under "identities" sampling (P people x K photos), else pairs;
    ``pairs_per_epoch``/``images_per_epoch`` None: one pass over the training pairs."""

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
        choices = {"optimizer": ("adam", "sgd"), "schedule": ("exponential", "cosine"),
                   "sampling": ("restricted", "unrestricted", "identities")}
        for name, allowed in choices.items():
            if (value := getattr(self, name)) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {value!r}")
        for name in ("learning_rate", "batch_size", "epochs", "pairs_per_epoch",
                     "images_per_epoch"):
            if (value := getattr(self, name)) is not None and value <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {value!r}")
        k, identities = self.images_per_person, self.sampling == "identities"
        for failed, problem in (
            (self.warmup_epochs < 0, f"warmup_epochs must be 0 or more, got {self.warmup_epochs}"),
            (k < 2, f"images_per_person must be 2 or more (a same pair needs two), got {k}"),
            (identities and self.pairs_per_epoch is not None,
             "pairs_per_epoch: identity batches count images; set images_per_epoch instead"),
            (not identities and self.images_per_epoch is not None,
             f"images_per_epoch is for identity batches only; {self.sampling!r} sampling counts "
             "pairs_per_epoch"),
            (identities and k >= 2 and (self.batch_size < 2 * k or self.batch_size % k > 0),
             f"batch_size: identity batches hold {k} images of each of at least two people, so "
             f"batch_size is a multiple of {k} and >= {2 * k}; got {self.batch_size}"),
        ):
            if failed:
                raise ValueError(f"TrainConfig.{problem}")


@dataclass(frozen=True)
class RunConfig:
    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        # Refused here, before minutes of decoding end in a shape error.
        made, read = self.data.preprocess.image_size, self.model.image_size
        if made != read:
            raise ValueError(f"RunConfig {self.name!r}: the images are {made} px but the network "
                             f"reads {read} px; change data.preprocess and model.image_size")

    def key(self, policy: str | None = None) -> str:
        """Not the name; an identity folder's files too, so a changed folder trains anew."""
        content = {**asdict(self), "policy": policy or compute_policy()}
        del content["name"]
        if self.data.source != LFW:
            content["data"]["manifest"] = self.data_manifest
        return files.short_hash(content)

    @cached_property  # listed once per config: a run's key is asked for several times
    def data_manifest(self) -> str:
        root = Path(self.data.source).expanduser()
        stamps = [(str(Path(f).relative_to(root)), os.stat(f).st_size, os.stat(f).st_mtime_ns)
                  for f in sorted(identity_images(root)["path"])]
        return files.short_hash(stamps)

    def check_data(self) -> None:
        """One clear error now rather than after minutes of training."""
        train = self.train  # an identity batch needs that many training people with 2+ photos
        check_data(self.data, train.batch_size // train.images_per_person
                   if train.sampling == "identities" else 2)

    def replace(self, **changes) -> RunConfig:
        """A copy with fields changed, e.g. ``config.replace(train={"epochs": 5})``."""
        updates = {part: dataclasses.replace(getattr(self, part), **value)
                   if isinstance(value, dict) else value for part, value in changes.items()}
        return dataclasses.replace(self, **updates)

    def with_seeds(self, count: int) -> list[RunConfig]:
        """This run and seeds 1 .. ``count`` - 1: a difference must hold across seeds to count."""
        return [self] + [self.replace(name=f"{self.name}-seed{seed}", train={"seed": seed})
                         for seed in range(1, count)]

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
    config: RunConfig
    path: Path
    model: keras.Model
    history: pd.DataFrame
    scores: pd.DataFrame
    info: dict

    def scores_of(self, split: str) -> pd.DataFrame:
        return self.scores[self.scores["split"] == split].reset_index(drop=True)

    @cached_property  # chosen on validation (maximum accuracy), never on test
    def threshold(self) -> float:
        val = self.scores_of("val")
        return metrics.threshold_for_max_accuracy(val["label"], val["score"])

    def summary(self) -> dict:
        row = {"run": self.config.name, "epochs": self.info["epochs_run"],
               "train_s": self.info["wall_time_s"]}
        for split in ("val", "test"):
            frame = self.scores_of(split)
            stats = metrics.summary(frame["label"], frame["score"], self.threshold)
            row.update({f"{split}_{k}": v for k, v in stats.items() if k != "threshold"})
        row["threshold"] = self.threshold
        return row


def run_dir(config: RunConfig, runs_root: str | Path | None = None) -> Path:
    return Path(runs_root or paths.runs_dir()) / f"{config.name}-{config.key()}"


def finished(folder: Path) -> bool:
    return (folder / COMPLETE).is_file() and not run_problems(folder)


def train(config: RunConfig, splits: Splits | None = None, runs_root: str | Path | None = None,
          progress: bool = True, callbacks: list[keras.callbacks.Callback] | None = None) -> Run:
    """Loaded from the cache, or trained now and cached. ``splits`` shares decoded images
    between runs; a cached run trains nothing and calls no ``callbacks``."""
    target = run_dir(config, runs_root)
    if finished(target):
        return load_run(target, check=False)
    try:  # a read-only runs folder, or a file, is refused before any data is decoded
        target.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=target.parent).close()
    except OSError as error:
        raise RunsFolderError(
            f"cannot write trained runs into {target.parent} ({error.strerror or error}); set "
            f"{paths.RUNS_DIR_ENV} to a writable folder, or make this one writable") from None
    # One process at a time trains a config; a second one waits here, then loads that run.
    with files.waiting_lock(target.with_name(f".{target.name}.lock"), f"training {target.name}"):
        if finished(target):  # perhaps by the process we waited for
            return load_run(target, check=False)
        if (why := set_aside(target)) is not None:
            warnings.warn(f"{target} {why}; training anew", stacklevel=2)
        # Holding the lock: a temporary folder is a killed process's.
        for stale in target.parent.glob(f".tmp-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        splits = splits or load_splits(config.data, progress=progress)
        with files.staged(target) as folder:
            started = time.perf_counter()
            model, history = fit(config, splits, folder, progress, callbacks)
            pd.concat([frame.assign(split=split, score=score_pairs(model, splits.store, frame))
                       for split, frame in (("val", splits.val), ("test", splits.test))],
                      ignore_index=True).to_csv(folder / "scores.csv", index=False)
            info = {"name": config.name, "key": config.key(),
                    "wall_time_s": round(time.perf_counter() - started, 1),
                    "epochs_run": len(history), "best_epoch": int(history[MONITOR].idxmax()) + 1,
                    "device": device_report(), "machine": cpu_model(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "files": files.checksums(folder)}
            (folder / COMPLETE).write_text(json.dumps(info, indent=2))
    # The scores as a loaded run reads them (CSV), so a fresh run and a cached one agree.
    return Run(config, target, model, history, pd.read_csv(target / "scores.csv"), info)


def set_aside(target: Path) -> str | None:
    """Moved aside, not deleted, so it can be looked at; says what was wrong (None: no folder)."""
    if not target.exists():
        return None
    if (target / COMPLETE).is_file():
        kind, why = "damaged", f"is damaged ({'; '.join(run_problems(target))})"
    else:
        kind, why = "incomplete", f"has no {COMPLETE} marker (interrupted?)"
    aside = target.rename(target.with_name(f"{target.name}.{kind}-{int(time.time())}"))
    return f"{why}; moved to {aside.name}"


def compiled_model(config: RunConfig, steps_per_epoch: int = 1) -> keras.Model:
    """Shared with ``budget.measure``, which times exactly what ``fit`` trains. An exponential
    schedule's rate is set each epoch (``fit``), a cosine one's each step."""
    settings, policy = config.train, compute_policy()
    rate = settings.learning_rate
    if settings.schedule == "cosine":  # the warm-up leaves at least the last epoch to decay
        warmup = min(settings.warmup_epochs, settings.epochs - 1) * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=settings.epochs * steps_per_epoch - warmup,
            warmup_target=settings.learning_rate, warmup_steps=warmup)
    optimizer = (keras.optimizers.SGD(rate, momentum=settings.momentum)
                 if settings.optimizer == "sgd" else keras.optimizers.Adam(rate))
    # The outer model carries no policy, so Keras adds no loss scaling: float16 gradients vanish.
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model = build_siamese(config.model, policy)
    if settings.sampling == "identities":
        model = AllPairsTrainer(model)
    model.compile(
        optimizer=optimizer,
        loss=loss_for(config.model),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
        jit_compile=has_gpu() if settings.xla is None else settings.xla,
    )
    return model


def fit(config: RunConfig, splits: Splits, folder: Path, progress: bool = True,
        callbacks: list[keras.callbacks.Callback] | None = None):
    settings = config.train
    keras.utils.set_random_seed(settings.seed)
    train_ds, steps = training_stream(config, splits)
    model = compiled_model(config, steps)
    siamese = model.siamese if isinstance(model, AllPairsTrainer) else model
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    callbacks = [
        *(callbacks or []),  # e.g. Optuna's pruning callback, which may stop training
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=settings.patience,
                                      restore_best_weights=True),
        # The cosine schedule lives in the optimizer; this one logs the rate in the history.
        *([keras.callbacks.LearningRateScheduler(
            lambda epoch: settings.learning_rate * settings.lr_decay**epoch)]
          if settings.schedule == "exponential" else []),
        keras.callbacks.CSVLogger(str(folder / "history.csv")),
        *([TqdmCallback(epochs=settings.epochs, verbose=0, desc=config.name)] if progress else []),
    ]
    # shuffle=False: the pipeline shuffles (seeded); Keras cannot shuffle a Dataset.
    model.fit(train_ds, validation_data=pair_dataset(splits.store, splits.val, settings.batch_size),
              epochs=settings.epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False,
              verbose=0)
    # h5py on a full disk can crash the process (a segfault) instead of raising: refuse first.
    needed = 2 * sum(weight.numpy().nbytes for weight in siamese.weights) + (1 << 20)
    if (free := shutil.disk_usage(folder).free) < needed:
        raise OSError(errno.ENOSPC, f"the disk holding {folder} is full: {free / 2**20:.0f} MB "
                      f"free, saving the weights needs about {needed / 2**20:.0f} MB; free some "
                      "space and train again", str(folder))
    siamese.save_weights(folder / "model.weights.h5")
    return siamese, pd.read_csv(folder / "history.csv")


def run_problems(folder: str | Path) -> list[str]:
    """A marker without checksums counts as damaged: no trusting weights nobody checked."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / COMPLETE).read_text())["files"]
    except KeyError:
        return [f"its {COMPLETE} marker records no checksums, so its files cannot be verified"]
    except (OSError, ValueError, TypeError) as error:
        return [f"its {COMPLETE} marker cannot be read ({error})"]
    return files.damaged(folder, recorded)


def load_run(folder: str | Path, check: bool = True) -> Run:
    """``check=False``: the caller has just checked the checksums."""
    folder = Path(folder)
    if not (folder / COMPLETE).is_file():
        raise FileNotFoundError(f"{folder} is not a finished run (no {COMPLETE} marker)")
    if check and (problems := run_problems(folder)):
        raise DamagedRunError(f"{folder} is damaged: {'; '.join(problems)}. train() with its "
                              "config moves it aside and trains it again.")
    info = json.loads((folder / COMPLETE).read_text())
    with contextlib.suppress(OSError):  # a read-only cache stays as it is
        os.utime(folder / COMPLETE)  # "last used": the reference run counts a notebook's runs
    config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    warn_if_other_keras(folder.name, info)
    model = build_siamese(config.model)
    model.load_weights(folder / "model.weights.h5")
    return Run(config, folder, model, pd.read_csv(folder / "history.csv"),
               pd.read_csv(folder / "scores.csv"), info)


def warn_if_other_keras(name: str, info: dict) -> None:
    if info.get("keras") != keras.__version__:
        warnings.warn(f"run {name} was trained with Keras {info.get('keras')}, this is Keras "
                      f"{keras.__version__}: scores may differ slightly", stacklevel=3)


def steps_per_epoch(settings: TrainConfig, train_pairs: int) -> int:
    if settings.sampling == "identities":
        return max(1, (settings.images_per_epoch or 2 * train_pairs) // settings.batch_size)
    if settings.sampling == "restricted" and settings.pairs_per_epoch is None:
        return math.ceil(train_pairs / settings.batch_size)  # one pass, the last batch short
    return max(1, (settings.pairs_per_epoch or train_pairs) // settings.batch_size)


def training_stream(config: RunConfig, splits: Splits):
    settings = config.train
    seeded = {"seed": settings.seed, "augment": settings.augment}
    if settings.sampling == "identities":
        k = settings.images_per_person
        dataset = identity_batch_dataset(splits.store, splits.train_people,
                                         settings.batch_size // k, k, **seeded)
    elif settings.sampling == "restricted":
        # One endless iterator, so augmentation keys keep counting instead of replaying epochs.
        dataset = pair_dataset(splits.store, splits.train, settings.batch_size, shuffle=True,
                               repeat=True, **seeded)
    else:
        dataset = sampled_pair_dataset(splits.store, splits.train_people, settings.batch_size,
                                       **seeded)
    return dataset, steps_per_epoch(settings, len(splits.train))
