"""Before a notebook trains: what it will train, what is cached, and how long the rest may take.

``plan`` lists the runs a notebook is about to train, cached or to train, with the minutes each
may take; ``check_budget`` stops the notebook with one message when the total is over its
``max_minutes``. The minutes are an upper bound: every run at its epoch cap (early stopping and
pruning usually end sooner), plus the validation pairs scored each epoch. The speed is measured
on this device: a few real training steps of each network, fed by siamlib's own pipeline over
random pixels, the first step (tracing, XLA) left out.

Entries are ``RunConfig``s, or ``Trials`` for runs not known before they start: a study's trials
and the seeds of the configuration it will pick (``search.notebook_runs``).
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

from siamlib import splits, training
from siamlib.device import device_report
from siamlib.images import ImageStore
from siamlib.model import ModelConfig, tower_shapes
from siamlib.parameters import UserError
from siamlib.splits import DataConfig
from siamlib.training import RunConfig

# A scored image is a forward pass: about a third of a trained one, whose backward pass costs
# twice the forward one.
EVAL_COST = 1 / 3


class BudgetExceeded(UserError, RuntimeError):
    """The runs left to train would take longer than the notebook's ``max_minutes``."""


@dataclass(frozen=True)
class Trials:
    """``count`` runs not known before they start, each priced as ``like``."""

    name: str
    like: RunConfig
    count: int


def flops_per_image(model: ModelConfig) -> int:
    """Forward FLOPs of one image through the tower's convolutions and embedding layer, two (a
    multiply and an add) per weight use; pooling, batch norm, ReLU and the head add a few
    percent at most and are left out."""
    flops, channels = 0, 1
    for layer in tower_shapes(model):
        if layer.name.startswith("conv"):
            flops += 2 * layer.side**2 * layer.channels * layer.kernel**2 * channels
        channels = layer.channels
    return flops + 2 * layer.side**2 * channels * model.dense_units


def plan(runs) -> pd.DataFrame:
    """The table of ``runs``, one row per run (a config listed twice, same key, is one run);
    each network to train is timed here (``measure``)."""
    rows, keys = [], set()
    for entry in runs:
        if isinstance(entry, Trials):
            config, count, cached = entry.like, entry.count, entry.count == 0
        elif entry.key() in keys:
            continue
        else:
            keys.add(entry.key())
            config, count = entry, 1
            cached = training.finished(training.run_dir(entry))  # as train decides
        rows.append({"run": entry.name, "status": "cached" if cached else "to train",
                     "runs": count, "epochs": config.train.epochs,
                     "images/epoch": images_per_epoch(config), "config": config})
    to_train = {_network(r["config"]): r["config"] for r in rows if r["status"] == "to train"}
    speeds = {network: measure(config) for network, config in
              tqdm(to_train.items(), desc="measuring speed", disable=not to_train)}
    for row in rows:
        config = row.pop("config")
        speed = speeds.get(_network(config)) if row["status"] == "to train" else None
        row["images/s"] = round(speed) if speed else np.nan
        row["minutes"] = row["runs"] * run_seconds(config, speed) / 60 if speed else 0.0
    table = pd.DataFrame(rows, columns=["run", "status", "runs", "epochs", "images/epoch",
                                        "images/s", "minutes"])
    table.attrs["speed"] = f"measured on this device ({device_report()}): a few training steps"
    return table


def show(table: pd.DataFrame) -> None:
    """Print the plan, where its speeds come from, and its total."""
    to_train = table["status"] == "to train"
    print(f"Speed {table.attrs.get('speed', '')}.")
    print(table.round({"minutes": 1}).to_string(index=False))
    print(f"{int(table.loc[to_train, 'runs'].sum())} runs to train ({int((~to_train).sum())} "
          f"cached): at most {_total(table)} minutes of training (an upper bound: every run at "
          "its epoch cap; early stopping and pruning usually end sooner).")


def check_budget(table: pd.DataFrame, max_minutes: float) -> None:
    """Raise ``BudgetExceeded`` when the plan's minutes exceed ``max_minutes`` (0: no limit).

    A student's notebook stops with one message (``UserError``: no traceback) naming the three
    ways on: a higher limit, less work (the share of this plan that fits; minutes grow nearly in
    proportion to epochs and runs), or runs trained elsewhere imported, which load in seconds.
    """
    total = table["minutes"].sum()
    if not max_minutes or total <= max_minutes:
        return
    enough = 10 * math.ceil(total * 1.1 / 10)
    largest = table.loc[table["minutes"].idxmax()]
    raise BudgetExceeded(
        f"training would take up to {_total(table)} minutes, more than max_minutes = "
        f"{max_minutes:g} (speed {table.attrs.get('speed', 'unknown')}). Nothing was trained. "
        "Choose one:\n"
        f"- raise the limit: set max_minutes = {enough} (0: no limit) in the parameters cell, or "
        f"run python -m siamlib.runner -p max_minutes {enough};\n"
        f"- train less: about {max_minutes / total:.0%} of this plan fits (its largest part: "
        f"{largest['run']}, {largest['minutes']:.0f} minutes); lower the parameters that scale "
        "the work where this notebook has them (epochs, trials, folds, models), or pick a "
        "smaller profile;\n"
        "- import runs finished elsewhere (they count as cached): python -m siamlib.runs "
        "import ARCHIVE.")


def _total(table: pd.DataFrame) -> str:
    """The plan's minutes in all, to a tenth below ten."""
    total = table["minutes"].sum()
    return f"{total:.{0 if total >= 10 else 1}f}"


def images_per_epoch(config: RunConfig) -> int:
    """Tower passes in one training epoch."""
    return training.steps_per_epoch(config.train, pair_counts(config.data)[0]) * _per_step(config)


def _per_step(config: RunConfig) -> int:
    """Tower passes in one training step: the batch's images, or two per pair."""
    return config.train.batch_size * (1 if config.train.sampling == "identities" else 2)


def run_seconds(config: RunConfig, images_per_s: float) -> float:
    """At most how long ``config`` trains at ``images_per_s``: every epoch with its validation
    pairs, then validation and test scored once."""
    _, val, test = pair_counts(config.data)
    epoch = images_per_epoch(config) + EVAL_COST * 2 * val
    return (config.train.epochs * epoch + EVAL_COST * 2 * (val + test)) / images_per_s


@lru_cache(maxsize=64)
def pair_counts(data: DataConfig) -> tuple[int, int, int]:
    """Training, validation and test pairs of ``data``, as ``load_splits`` chooses them, without
    decoding an image."""
    return tuple(len(frame) for frame in splits.split_pairs(data))


def measure(config: RunConfig, seconds: float = 0.5, most: int = 6) -> float:
    """Training images per second of ``config`` on this device: the network compiled as ``fit``
    compiles it, fed by its training stream over random pixels; after a first step (tracing,
    compilation), steps are timed until ``seconds`` have passed (at least two, at most ``most``)."""
    ends = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step's result (a GPU runs ahead)
            ends.append(time.perf_counter())
            if len(ends) > 2 and ends[-1] - ends[0] >= seconds:
                self.model.stop_training = True

    dataset, _ = training.training_stream(config, _random_splits(config))
    training.compiled_model(config).fit(dataset, epochs=1, steps_per_epoch=1 + most, verbose=0,
                                        callbacks=[StepTimer()], shuffle=False)
    return _per_step(config) * (len(ends) - 1) / (ends[-1] - ends[0])


def _random_splits(config: RunConfig, people: int = 64, photos: int = 4) -> splits.Splits:
    """A face set of random pixels shaped for ``config``: enough people for its batches."""
    people = max(people, 2 * config.train.batch_size // config.train.images_per_person)
    size = config.data.preprocess.image_size
    names = [f"p{person:04d}/p{person:04d}_{photo:04d}.jpg"
             for person in range(people) for photo in range(1, photos + 1)]
    rng = np.random.default_rng(0)
    store = ImageStore(names, rng.integers(0, 256, (len(names), size, size), np.uint8), [])
    rows = rng.integers(0, len(names), (512, 2))
    frame = pd.DataFrame({"path_a": [names[i] for i in rows[:, 0]],
                          "path_b": [names[i] for i in rows[:, 1]],
                          "label": np.arange(len(rows)) % 2})
    return splits.Splits(frame, frame, frame, store, set(store.names))


def _network(config: RunConfig) -> tuple:
    """What sets a run's speed: the tower (the head's cost is negligible), and how it is fed."""
    train = config.train
    return (config.model, train.sampling, train.batch_size, train.images_per_person,
            train.augment, train.xla)
