"""Before a notebook trains: what it will train, what is cached, and how long the rest may take.

A notebook lists the runs it is about to train; ``plan`` turns the list into a table, one row
per run: cached (it loads in a second, and costs nothing) or to train, its most epochs, the
images per epoch (tower passes: two per pair, one per image of an identity batch), the
training speed, and the minutes it may take. ``check_budget`` then stops the notebook with one
clear message when the total is over the notebook's ``max_minutes``, until the student raises it.

The minutes are an upper bound: every run is priced at its epoch cap, and early stopping, like
the pruning of a study's trials, usually ends runs sooner. An epoch costs its training images
plus the validation pairs, scored once an epoch (a forward pass, counted as a third of a
training pass: the backward pass costs about twice the forward one).

Where the speed comes from, printed with the table:

- **measured** (the default): a few real training steps of each distinct network on this
  device, fed by siamlib's own pipeline (augmentation included) over random pixels, the first
  step (tracing, XLA compilation) left out. Seconds per network, and only for runs to train.
- **estimated** (``rate=COLAB_T4``, for a device we cannot measure now): the network's FLOPs
  per image (``flops_per_image``) at a stated sustained FLOP rate, capped by what the input
  pipeline delivers on Colab's two CPU cores. An estimate, and labelled so.

Entries of a plan are ``RunConfig``s, or ``Trials`` for runs not known before they start: an
Optuna study's trials (notebook 03: trials x at most ``search_epochs`` epochs) and the seeds of
the configuration it will pick (``search_runs`` builds both).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from siamlib import training
from siamlib.device import device_report
from siamlib.images import ImageStore
from siamlib.model import ModelConfig
from siamlib.splits import DataConfig, Splits
from siamlib.training import RunConfig

EVAL_COST = 1 / 3  # a scored image (forward pass) costs about a third of a trained one
TRAIN_COST = 3  # training FLOPs per image: the forward pass, and twice that backward


class BudgetExceeded(RuntimeError):
    """The runs left to train would take longer than the notebook's ``max_minutes``."""


@dataclass(frozen=True)
class Rate:
    """What a device that cannot be measured now is assumed to sustain (an estimate).

    Arguments:
        device: its name, for the printed table.
        flops_per_s: training FLOP/s sustained by the network's layers.
        augmented_images_per_s: the most images per second the input pipeline delivers with
            augmentation (it runs on the CPU, beside the GPU).
        images_per_s: ... without augmentation.
        note: where the numbers come from.
    """

    device: str
    flops_per_s: float
    augmented_images_per_s: float
    images_per_s: float
    note: str = ""


# A T4's tensor cores peak at 65 TFLOP/s in float16; a small convolutional network trained
# from Keras reaches a small fraction of that, so the estimate assumes 4 TFLOP/s. The input
# pipeline with augmentation gave 1,620 images/s on two CPU cores (bench_pipeline.md, 810
# pairs/s), 15,000 without; Colab lends two vCPUs.
COLAB_T4 = Rate(
    "a Colab T4 GPU", flops_per_s=4e12, augmented_images_per_s=1500, images_per_s=10000,
    note="4 TFLOP/s sustained in mixed float16; the input pipeline on 2 CPU cores: 1,500 "
         "images/s augmented, 10,000 plain",
)


@dataclass(frozen=True)
class Trials:
    """``count`` runs whose configurations are not known before they start, each priced as
    ``like`` (its network, images per epoch and epochs): a study's trials, or the seeds of the
    configuration a study will choose."""

    name: str
    like: RunConfig
    count: int


def flops_per_image(model: ModelConfig) -> int:
    """Forward FLOPs of one image through the tower: convolutions and the embedding layer,
    two FLOPs (a multiply and an add) per weight use. Pooling, batch norm, ReLU and the head
    add a few percent at most and are left out. Shapes follow ``model.build_tower``: valid
    convolutions, 2x2 max-pool after every block but the last."""
    side, channels, flops = model.image_size, 1, 0
    for block, (filters, kernel) in enumerate(zip(model.filters, model.kernels), start=1):
        out = max(1, round(filters * model.width))
        side -= kernel - 1
        flops += 2 * side * side * out * kernel * kernel * channels
        channels = out
        if block < len(model.filters):
            side //= 2
    return flops + 2 * side * side * channels * model.dense_units


def search_runs(base: RunConfig, trials: int, epochs: int, seeds: int,
                storage: str | None = None, seed: int = 0) -> list:
    """Notebook 03's search, as plan entries: the study's trials still to run (each at most
    ``epochs`` epochs, priced as ``base``'s network, though a trial's may be half to twice as
    wide), then the chosen configuration trained with ``seeds`` seeds at ``base``'s budget:
    exact runs once the study is finished, else ``Trials`` priced as ``base``. Opens (or
    creates) the study as ``search.optimize`` will."""
    import optuna  # here: Optuna only when a notebook searches

    from siamlib import search

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line here
    try:
        study = search.open_study(base, epochs, storage=storage, seed=seed)
    finally:
        optuna.logging.set_verbosity(verbosity)
    left = max(0, trials - len(search.finished(study)))
    entries = [Trials(f"Optuna study: {left} of {trials} trials left",
                      base.replace(train={"epochs": epochs}), left)]
    if left:
        return entries + [Trials(f"search-best, {seeds} seeds (the network the study picks)",
                                 base, seeds)]
    best = search.best_config(study, base)
    return entries + [best.replace(name=f"search-best-seed{s}", train={"seed": s})
                      for s in range(seeds)]


def plan(runs, rate: Rate | None = None, runs_root=None, progress: bool = True) -> pd.DataFrame:
    """The table of ``runs`` (``RunConfig``s and ``Trials``): cached or to train, at most how
    many epochs of how many images, at what speed, and at most how many minutes.

    A config listed twice (same cache key) is one run. ``rate`` None measures this device's
    speed, network by network, for the runs to train; a ``Rate`` estimates it from FLOPs.
    ``df.attrs["speed"]`` says which.
    """
    rows, seen, speeds = [], set(), {}
    for entry in runs:
        if isinstance(entry, Trials):
            config, count, cached = entry.like, entry.count, entry.count == 0
            name = entry.name
        else:
            key = entry.key()
            if key in seen:
                continue
            seen.add(key)
            config, count, name = entry, 1, entry.name
            target = training.run_dir(entry, runs_root)
            # As training.train decides: a finished, undamaged run folder is loaded, not trained.
            cached = (target / training.COMPLETE).is_file() and not training.run_problems(target)
        rows.append({"run": name, "status": "cached" if cached else "to train", "runs": count,
                     "epochs": config.train.epochs, "images/epoch": images_per_epoch(config),
                     "config": config})
    to_measure = {_network(r["config"]): r["config"] for r in rows if r["status"] == "to train"}
    for network, config in tqdm(to_measure.items(), desc="measuring speed", unit="network",
                                disable=not progress or rate is not None or not to_measure):
        speeds[network] = measure(config) if rate is None else estimate(config, rate)
    for row in rows:
        config = row.pop("config")
        speed = speeds.get(_network(config)) if row["status"] == "to train" else None
        row["images/s"] = round(speed) if speed else np.nan
        row["minutes"] = row["runs"] * run_seconds(config, speed) / 60 if speed else 0.0
    table = pd.DataFrame(rows, columns=["run", "status", "runs", "epochs", "images/epoch",
                                        "images/s", "minutes"])
    table.attrs["speed"] = (
        f"measured on this device ({device_report()}): a few training steps of each network"
        if rate is None else
        f"ESTIMATED for {rate.device} from FLOPs per image, not measured ({rate.note})")
    return table


def total_minutes(table: pd.DataFrame) -> float:
    return float(table["minutes"].sum())


def show(table: pd.DataFrame) -> None:
    """Print the plan, where its speeds come from, and its total."""
    to_train = table["status"] == "to train"
    print(f"Speed {table.attrs.get('speed', '')}.")
    print(table.round({"minutes": 1}).to_string(index=False))
    print(f"{int(table.loc[to_train, 'runs'].sum())} runs to train "
          f"({int((~to_train).sum())} cached): at most {_minutes(total_minutes(table))} minutes of "
          "training (an upper bound: every run at its epoch cap; early stopping and pruning "
          "usually end sooner).")


def check_budget(table: pd.DataFrame, max_minutes: float) -> None:
    """Raise ``BudgetExceeded`` when the plan's minutes exceed ``max_minutes`` (0: no limit)."""
    total = total_minutes(table)
    if not max_minutes or total <= max_minutes:
        return
    enough = 10 * math.ceil(total * 1.1 / 10)
    raise BudgetExceeded(
        f"training would take up to {_minutes(total)} minutes, more than max_minutes = "
        f"{max_minutes:g} (speed {table.attrs.get('speed', 'unknown')}). Nothing was trained. "
        f"To go ahead, raise the limit: set max_minutes = {enough} (0: no limit) in the "
        f"parameters cell, or run python -m siamlib.runner -p max_minutes {enough}; or pick a "
        "smaller profile (the profile parameter).")


def _minutes(minutes: float) -> str:
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}"


def images_per_epoch(config: RunConfig) -> int:
    """Tower passes in one training epoch, as ``training.fit`` counts its steps."""
    settings, (train_pairs, _, _) = config.train, pair_counts(config.data)
    if settings.sampling == "identities":
        images = settings.images_per_epoch or 2 * train_pairs
        return max(1, images // settings.batch_size) * settings.batch_size
    if settings.sampling == "restricted" and settings.pairs_per_epoch is None:
        steps = math.ceil(train_pairs / settings.batch_size)
    else:
        steps = max(1, (settings.pairs_per_epoch or train_pairs) // settings.batch_size)
    return 2 * steps * settings.batch_size


def run_seconds(config: RunConfig, images_per_s: float) -> float:
    """At most how long ``config`` trains at ``images_per_s`` training images a second: every
    epoch with its validation pairs, then validation and test scored once."""
    _, val, test = pair_counts(config.data)
    epoch = images_per_epoch(config) + EVAL_COST * 2 * val
    return (config.train.epochs * epoch + EVAL_COST * 2 * (val + test)) / images_per_s


@lru_cache(maxsize=64)
def pair_counts(data: DataConfig) -> tuple[int, int, int]:
    """Training, validation and test pairs of ``data``, as ``splits.load_splits`` chooses them,
    without decoding an image."""
    from siamlib import splits

    return tuple(len(frame) for frame in splits.split_pairs(data))


def estimate(config: RunConfig, rate: Rate) -> float:
    """Training images per second of ``config`` on ``rate``'s device: its FLOPs at the stated
    FLOP rate, or the input pipeline's ceiling if that is lower."""
    compute = rate.flops_per_s / (TRAIN_COST * flops_per_image(config.model))
    feed = rate.augmented_images_per_s if config.train.augment else rate.images_per_s
    return min(compute, feed)


def measure(config: RunConfig, warmup: int = 1, seconds: float = 0.5, most: int = 6) -> float:
    """Training images per second of ``config`` on this device, from real training steps.

    The network is built and compiled as ``training.fit`` does and fed by the same pipeline
    (sampling, augmentation) over random pixels; the first ``warmup`` steps are left out, then
    steps are timed until ``seconds`` have passed (at least two, at most ``most``).
    """
    settings = config.train
    identities = settings.sampling == "identities"
    model = training.compiled_model(config)
    dataset, _ = training._training_stream(config, _random_splits(config))
    timer = _StepTimer(warmup, seconds, most)
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + most, callbacks=[timer], verbose=0,
              shuffle=False)  # the pipeline shuffles, as in training.fit
    images = settings.batch_size * (1 if identities else 2)
    return images * (len(timer.ends) - warmup) / (timer.ends[-1] - timer.ends[warmup - 1])


class _StepTimer(keras.callbacks.Callback):
    """When each training step ended; stops training once enough steps are timed."""

    def __init__(self, warmup: int, seconds: float, most: int):
        super().__init__()
        self.warmup, self.seconds, self.most, self.ends = warmup, seconds, most, []

    def on_train_batch_end(self, batch, logs=None):
        float((logs or {}).get("loss", 0.0))  # waits for the step's result (a GPU runs ahead)
        self.ends.append(time.perf_counter())
        timed = len(self.ends) - self.warmup
        if timed >= 2 and self.ends[-1] - self.ends[self.warmup - 1] >= self.seconds:
            self.model.stop_training = True


def _random_splits(config: RunConfig, people: int = 64, photos: int = 4) -> Splits:
    """A face set of random pixels shaped for ``config``: enough people for its batches."""
    people = max(people, 2 * config.train.batch_size // config.train.images_per_person)
    size = config.data.preprocess.image_size
    paths = [f"p{person:04d}/p{person:04d}_{photo:04d}.jpg"
             for person in range(people) for photo in range(1, photos + 1)]
    rng = np.random.default_rng(0)
    store = ImageStore(paths, rng.integers(0, 256, (len(paths), size, size), np.uint8), [])
    rows = rng.integers(0, len(paths), (512, 2))
    frame = pd.DataFrame({"path_a": [paths[i] for i in rows[:, 0]],
                          "path_b": [paths[i] for i in rows[:, 1]],
                          "label": np.arange(len(rows)) % 2})
    return Splits(frame, frame, frame, store, set(store.names))


def _network(config: RunConfig) -> tuple:
    """What sets a run's speed: the tower, and how it is fed (the head's cost is negligible)."""
    model, train = config.model, config.train
    return (model.image_size, model.filters, model.kernels, model.width, model.dense_units,
            model.batch_norm, model.dropout, train.sampling, train.batch_size,
            train.images_per_person, train.augment, train.xla)
