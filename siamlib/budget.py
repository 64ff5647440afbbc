"""Before a notebook trains: what it will train, what is cached, and how long the rest may take.

``plan`` prices each run as an upper bound (every run at its epoch cap) at the speed of a few
real training steps of its network on this device.
``check_budget`` stops a notebook over its ``max_minutes`` before anything trains.
"""

from __future__ import annotations

import math
import time
from collections import namedtuple
from functools import lru_cache

import numpy as np
import pandas as pd

from siamlib import splits, training
from siamlib.device import device_report
from siamlib.images import ImageStore
from siamlib.model import ModelConfig, tower_shapes
from siamlib.parameters import UserError
from siamlib.splits import DataConfig
from siamlib.training import RunConfig

# A scored image is a forward pass: about a third of a trained one (backward costs twice).
EVAL_COST = 1 / 3
# What sets a run's speed besides its network (the head's cost is negligible): how it is fed.
SPEED_FIELDS = ("sampling", "batch_size", "images_per_person", "augment", "xla")


class BudgetExceeded(UserError, RuntimeError):
    """The runs left to train would take longer than the notebook's ``max_minutes``."""


# ``count`` runs not known before they start (a study's trials), each priced as ``like``.
Trials = namedtuple("Trials", "name like count")


def flops_per_image(model: ModelConfig) -> int:
    """Forward FLOPs of the tower's convs and embedding (the rest adds a few percent at most)."""
    flops, channels = 0, 1
    for layer in tower_shapes(model):
        if layer.name.startswith("conv"):
            flops += 2 * layer.side**2 * layer.channels * layer.kernel**2 * channels
        channels = layer.channels
    return flops + 2 * layer.side**2 * channels * model.dense_units


def plan(runs) -> pd.DataFrame:
    rows, keys, speeds = [], set(), {}
    for entry in runs:
        if isinstance(entry, Trials):
            config, count, cached = entry.like, entry.count, entry.count == 0
        elif entry.key() in keys:
            continue
        else:
            keys.add(entry.key())
            config, count = entry, 1
            cached = training.finished(training.run_dir(entry))  # as train decides
        network = (config.model, *(getattr(config.train, name) for name in SPEED_FIELDS))
        if not cached and network not in speeds:
            speeds[network] = measure(config)
        speed = None if cached else speeds[network]
        _, val, test = pair_counts(config.data)
        images = config.train.epochs * (images_per_epoch(config) + EVAL_COST * 2 * val)
        images += EVAL_COST * 2 * (val + test)  # validation and test scored once at the end
        rows.append({"run": entry.name, "status": "cached" if cached else "to train",
                     "runs": count, "epochs": config.train.epochs,
                     "images/epoch": images_per_epoch(config),
                     "images/s": round(speed) if speed else np.nan,
                     "minutes": count * images / speed / 60 if speed else 0.0})
    return pd.DataFrame(rows, columns=["run", "status", "runs", "epochs", "images/epoch",
                                       "images/s", "minutes"])


def show(table: pd.DataFrame) -> None:
    to_train = table["status"] == "to train"
    print(f"Speed measured on this device ({device_report()}): a few training steps.")
    print(table.round({"minutes": 1}).to_string(index=False))
    print(f"{int(table.loc[to_train, 'runs'].sum())} runs to train ({int((~to_train).sum())} "
          f"cached): at most {_total(table)} minutes of training (an upper bound: every run at "
          "its epoch cap; early stopping and pruning usually end sooner).")


def check_budget(table: pd.DataFrame, max_minutes: float) -> None:
    """One message and no traceback (``UserError``); minutes grow about as epochs and runs."""
    total = table["minutes"].sum()
    if not max_minutes or total <= max_minutes:
        return
    enough = 10 * math.ceil(total * 1.1 / 10)
    largest = table.loc[table["minutes"].idxmax()]
    raise BudgetExceeded(
        f"training would take up to {_total(table)} minutes, more than max_minutes = "
        f"{max_minutes:g} (speed measured on this device ({device_report()})). Nothing was "
        "trained. Choose one:\n"
        f"- raise the limit: set max_minutes = {enough} (0: no limit) in the parameters cell, or "
        f"run python -m siamlib.runner -p max_minutes {enough};\n"
        f"- train less: about {max_minutes / total:.0%} of this plan fits (its largest part: "
        f"{largest['run']}, {largest['minutes']:.0f} minutes); lower the parameters that scale "
        "the work where this notebook has them (epochs, trials, folds, models), or pick a "
        "smaller profile;\n"
        "- import runs finished elsewhere (they count as cached): python -m siamlib.runs "
        "import ARCHIVE.")


def _total(table: pd.DataFrame) -> str:
    total = table["minutes"].sum()
    return f"{total:.{0 if total >= 10 else 1}f}"


def images_per_epoch(config: RunConfig) -> int:
    return training.steps_per_epoch(config.train, pair_counts(config.data)[0]) * _per_step(config)


def _per_step(config: RunConfig) -> int:
    return config.train.batch_size * (1 if config.train.sampling == "identities" else 2)


@lru_cache(maxsize=64)
def pair_counts(data: DataConfig) -> tuple[int, int, int]:
    """Training, validation and test pairs as ``load_splits`` chooses them, decoding nothing."""
    return tuple(len(frame) for frame in splits.split_pairs(data))


def measure(config: RunConfig) -> float:
    """Images per second of ``config``'s own training on random pixels, timed after the first
    step (tracing, XLA) for two to six steps or half a second."""
    train, size = config.train, config.data.preprocess.image_size
    people = max(64, 2 * train.batch_size // train.images_per_person)  # enough for its batches
    names = [f"p{image // 4}/{image}.jpg" for image in range(4 * people)]
    pixels = np.random.default_rng(0).integers(0, 256, (len(names), size, size), np.uint8)
    pairs = pd.DataFrame({"path_a": names[::2], "path_b": names[1::2], "label": [1, 0] * people})
    store = ImageStore(names, pixels, [])
    faces = splits.Splits(pairs, pairs, pairs, store, set(store.names))
    batches = iter(training.training_stream(config, faces)[0])
    model = training.compiled_model(config)
    model.train_on_batch(*next(batches))
    started = time.perf_counter()
    for steps in range(1, 7):  # train_on_batch returns the loss: it waits for a GPU's step
        model.train_on_batch(*next(batches))
        if steps >= 2 and time.perf_counter() - started >= 0.5:
            break
    return _per_step(config) * steps / (time.perf_counter() - started)
