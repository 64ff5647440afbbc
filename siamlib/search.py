"""Hyperparameter search with Optuna: one search space, pruned trials, a study machines share.

A study samples configurations around a base model (a profile's ``all_pairs``) with a seeded TPE
sampler. Each trial is a cached run like any other (``training.train``), stopped early by a median
pruner when its validation AUC after an epoch is below the median of earlier trials at that epoch.

The study lives in a storage, so a search can be interrupted and resumed, and several machines
can work on one study at the same time:

- by default a journal file under ``data/optuna/<study>.log`` (Optuna's ``JournalFileBackend``,
  safe for several processes on one machine);
- ``storage="postgresql+psycopg://user:password@host:5432/db"`` (or any SQLAlchemy URL Optuna
  accepts): every machine that runs the same command with the same URL and study name joins
  the study. PostgreSQL needs a driver: ``pip install "psycopg[binary]"``.

    python -m siamlib.search --profile cpu                                        # one machine
    python -m siamlib.search --profile cpu --storage postgresql+psycopg://...     # each machine

``n_trials`` is the size of the whole study, not of one call: a call stops as soon as the study
holds that many finished (complete or pruned) trials, whoever ran them. With W workers it may end
up to W - 1 trials larger (each worker checks before it starts a trial).

Pruning goes through a small Keras callback of our own (``PruneOnValAuc``) rather than
``optuna_integration.TFKerasPruningCallback``: it is five lines, and it saves a dependency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import optuna
import sqlalchemy.exc  # Optuna's own dependency: its RDB storages' errors
from optuna.trial import TrialState

from siamlib import metrics, paths, profiles, training
from siamlib.images import Preprocess
from siamlib.splits import load_splits
from siamlib.training import RunConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class SearchSpace:
    """What a trial may change in the base model; every value is a choice or a range.

    Widths are relative to the base model's and depths take its first conv blocks, so the same
    space works on a CPU and a GPU profile. Training always uses batches of people (P x K).

    Arguments:
        crops: centre square kept, as a fraction of the image's shorter side (None = the
            whole frame; 0.6 and 0.5 keep LFW-a's centre 150 and 125 pixels).
        image_sizes: network input side in pixels.
        width_factors: multiply the base model's width.
        depths: number of conv blocks (the base model's first ones).
        dropout: (low, high) dropout rate before the embedding.
        learning_rate: (low, high), sampled on a log scale.
        lr_decays: learning rate multiplied by this after every epoch (1.0 = constant).
        people_per_batch: P, people in a batch.
        images_per_person: K, images of each person in a batch (batch size = P x K).
        losses: "bce" (the L1 head with binary cross-entropy) or "contrastive" (on the L2
            distance of normalised embeddings).
    """

    crops: tuple[float | None, ...] = (None, 0.6, 0.5)
    image_sizes: tuple[int, ...] = (80, 105)
    width_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    depths: tuple[int, ...] = (3, 4)
    dropout: tuple[float, float] = (0.0, 0.5)
    learning_rate: tuple[float, float] = (1e-4, 3e-3)
    lr_decays: tuple[float, ...] = (1.0, 0.95, 0.9)
    people_per_batch: tuple[int, ...] = (8, 16, 32)
    images_per_person: tuple[int, ...] = (2, 4, 8)
    losses: tuple[str, ...] = ("bce", "contrastive")

    def suggest(self, trial: optuna.Trial) -> dict:
        """One point of the space, drawn by ``trial``'s sampler."""
        return {
            "crop": trial.suggest_categorical("crop", self.crops),
            "image_size": trial.suggest_categorical("image_size", self.image_sizes),
            "width_factor": trial.suggest_categorical("width_factor", self.width_factors),
            "depth": trial.suggest_categorical("depth", self.depths),
            "dropout": trial.suggest_float("dropout", *self.dropout),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "lr_decay": trial.suggest_categorical("lr_decay", self.lr_decays),
            "people_per_batch": trial.suggest_categorical("people_per_batch",
                                                          self.people_per_batch),
            "images_per_person": trial.suggest_categorical("images_per_person",
                                                           self.images_per_person),
            "loss": trial.suggest_categorical("loss", self.losses),
        }

    def config(self, base: RunConfig, params: dict, epochs: int, name: str) -> RunConfig:
        """``base`` with the trial's ``params``, trained for at most ``epochs``, named ``name``."""
        depth, model = params["depth"], base.model
        if not 1 <= depth <= len(model.filters):
            raise ValueError(f"depth {depth}: the base model has {len(model.filters)} conv blocks")
        k = params["images_per_person"]
        images_per_epoch = base.train.images_per_epoch or 2 * (base.train.pairs_per_epoch or 2048)
        contrastive = params["loss"] == "contrastive"
        return base.replace(
            name=name,
            data={"preprocess": Preprocess(params["image_size"], crop=params["crop"])},
            model={"image_size": params["image_size"],
                   "width": model.width * params["width_factor"],
                   "filters": model.filters[:depth], "kernels": model.kernels[:depth],
                   "dropout": params["dropout"], "loss": params["loss"],
                   # the contrastive loss works on a scalar distance: L2, as in the ablations
                   "distance": "l2" if contrastive else "l1"},
            train={"sampling": "identities", "pairs_per_epoch": None,
                   "images_per_epoch": images_per_epoch,  # same tower passes in every trial
                   "images_per_person": k, "batch_size": params["people_per_batch"] * k,
                   "learning_rate": params["learning_rate"], "lr_decay": params["lr_decay"],
                   **training.EXPONENTIAL_SCHEDULE,  # the decay drawn, per epoch
                   "epochs": epochs},
        )


SPACE = SearchSpace()


class PruneOnValAuc(keras.callbacks.Callback):
    """Reports validation AUC to the trial after every epoch; stops training when it says so.

    ``optuna.TrialPruned`` raised here leaves ``model.fit`` and ``training.train``, which deletes
    the unfinished run folder: a pruned trial never leaves a run that looks complete.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = training.MONITOR):
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.epochs_reported = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"{self.monitor!r} is not in the epoch's logs {sorted(logs or {})}")
        self.epochs_reported += 1
        _report(self.trial, epoch, float(value))


def _report(trial: optuna.Trial, epoch: int, value: float) -> None:
    trial.report(value, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"validation AUC {value:.3f} after epoch {epoch + 1}")


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random numbers for trial n come from (seed, n).

    One seed shared by every worker would make them all draw the same first configurations;
    seeding per trial number keeps a search reproducible and gives each trial its own draw.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.base_seed = seed

    def before_trial(self, study, trial):
        state = int(np.random.SeedSequence([self.base_seed, trial.number]).generate_state(1)[0])
        # TPE and the random sampler it uses for its first trials each hold a RandomState.
        self._rng.rng.seed(state)
        self._random_sampler._rng.rng.seed(state)
        super().before_trial(study, trial)


class StorageError(RuntimeError):
    """An Optuna storage that cannot be opened: a bad URL, a missing driver, no server."""


def default_storage(study_name: str) -> Path:
    """The journal file of a study on this machine: ``data/optuna/<study>.log``."""
    return paths.data_dir() / "optuna" / f"{study_name}.log"


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))


def open_storage(storage: str | Path | None, study_name: str) -> optuna.storages.BaseStorage:
    """An Optuna storage: a URL ("postgresql://...", "sqlite:///...") or a journal file path;
    None = ``default_storage(study_name)``. Raises ``StorageError`` naming the storage."""
    if storage is None or str(storage) == "":
        storage = default_storage(study_name)
    text = str(storage)
    try:
        if "://" not in text:
            Path(text).parent.mkdir(parents=True, exist_ok=True)
            lock = optuna.storages.journal.JournalFileOpenLock(text)
            return optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(text, lock_obj=lock))
        return _rdb_storage(text)
    except Exception as error:  # SQLAlchemy's and the drivers' errors have no common base
        cause = error.__cause__ if isinstance(error, ImportError) and error.__cause__ else error
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        hint = (" (PostgreSQL: pip install 'psycopg[binary]')"
                if isinstance(error, ImportError) else "")
        raise StorageError(f"cannot open the Optuna storage {masked(text)!r}: "
                           f"{type(cause).__name__}: {masked(reason)}{hint}") from None


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    engine = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Heartbeats mark a dead worker's trials as failed, so no one waits on them.
                return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                                  heartbeat_interval=60, grace_period=300)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting together on an empty database all create Optuna's tables;
            # PostgreSQL's CREATE TABLE IF NOT EXISTS is not atomic, and the losers fail on
            # pg_type's unique index. The tables exist now: open the storage again.
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())


def _fingerprint(base: RunConfig, epochs: int, space: SearchSpace) -> dict:
    content = {"base": asdict(base), "epochs": epochs, "space": asdict(space)}
    return json.loads(json.dumps(content, sort_keys=True, default=str))


def default_study_name(base: RunConfig, epochs: int, space: SearchSpace = SPACE) -> str:
    """``search-<base name>-<hash of base, epochs and space>``: the same on every machine that
    runs the same code and profile; another base model or budget starts another study."""
    encoded = json.dumps(_fingerprint(base, epochs, space), sort_keys=True).encode()
    return f"search-{base.name}-{hashlib.sha256(encoded).hexdigest()[:8]}"


def open_study(
    base: RunConfig,
    epochs: int,
    study_name: str | None = None,
    storage: str | Path | None = None,
    seed: int = 0,
    space: SearchSpace = SPACE,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study ``study_name`` (default: ``default_study_name``) in ``storage``, created on
    first use, else loaded as it is.

    A study remembers the base model, epochs and space it was created for; opening it for
    others raises ``ValueError`` (mixing them would compare trials that cannot be compared).
    ``pruner`` defaults to a median pruner: after 5 finished trials, a trial whose validation AUC
    is below the median of earlier trials at the same epoch is stopped.
    """
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    study_name = study_name or default_study_name(base, epochs, space)
    opened = open_storage(storage, study_name)
    where = masked(str(storage or default_storage(study_name)))
    try:
        study = optuna.create_study(storage=opened, study_name=study_name, direction="maximize",
                                    sampler=TrialSeededTPE(seed), pruner=pruner,
                                    load_if_exists=True)
    except Exception as error:
        raise StorageError(f"cannot open study {study_name!r} in {where!r}: "
                           f"{type(error).__name__}: {masked(str(error))}") from None
    wanted = _fingerprint(base, epochs, space)
    found = study.user_attrs.get("search")
    if found is None:
        try:
            study.set_user_attr("search", wanted)
        except sqlalchemy.exc.IntegrityError:  # another worker wrote it at the same moment
            found = study.user_attrs.get("search")
    if found is not None and found != wanted:
        changed = sorted(k for k in wanted if wanted[k] != found.get(k))
        raise ValueError(f"study {study_name!r} was made with another {' and '.join(changed)} "
                         f"(in {where!r}); give this search another study_name")
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's complete and pruned trials."""
    return study.get_trials(deepcopy=False, states=FINISHED)


def run_trials(study: optuna.Study, objective, n_trials: int, progress: bool = True):
    """Run ``objective`` until ``study`` holds ``n_trials`` finished trials (all workers')."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our line per trial replaces Optuna's
    callbacks = [_progress(n_trials)] if progress else []
    try:
        while len(finished(study)) < n_trials:
            failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if len(failed) >= 10 * n_trials:  # the space hardly fits this data: say so, once
                why = failed[-1].user_attrs.get("infeasible")
                raise RuntimeError(f"study {study.study_name!r}: {len(failed)} trials could not "
                                   f"run, the last because {why}")
            study.optimize(objective, n_trials=1, callbacks=callbacks)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def _progress(n_trials: int):
    def line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = len(finished(study))
        if trial.state == TrialState.PRUNED:
            steps = trial.intermediate_values
            last = steps[max(steps)] if steps else float("nan")
            outcome = f"pruned after epoch {len(steps)} (val AUC {last:.3f})"
        elif trial.state == TrialState.FAIL:
            outcome = f"not run: {trial.user_attrs.get('infeasible', 'it raised an error')}"
        else:
            outcome = f"{trial.state.name.lower()}: val AUC {trial.value:.3f}"
        best = (f"best so far: #{study.best_trial.number} {study.best_value:.3f}"
                if any(t.state == TrialState.COMPLETE for t in finished(study)) else "")
        print(f"trial {done} of {n_trials} (#{trial.number}) {outcome} | {best}", flush=True)

    return line


def optimize(
    base: RunConfig,
    n_trials: int,
    epochs: int,
    study_name: str | None = None,
    storage: str | Path | None = None,
    seed: int = 0,
    space: SearchSpace = SPACE,
    pruner: optuna.pruners.BasePruner | None = None,
    runs_root: str | Path | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Search around ``base`` until the study holds ``n_trials`` finished trials.

    Each trial trains ``space.config(base, params, epochs, name="<study>-<trial>")`` with
    ``training.train`` (cached under ``runs_root``) and returns its validation AUC, computed from
    the scores of its best epoch; test pairs are never looked at. Resuming, or joining a study
    other machines work on, is calling this again with the same arguments.

    Returns:
        The study: ``study.best_trial``, ``study.trials_dataframe()``, and Optuna's plots.
    """
    study = open_study(base, epochs, study_name, storage, seed, space, pruner)
    splits_by_data = {}

    def objective(trial: optuna.Trial) -> float:
        name = f"{study.study_name}-{trial.number:03d}"
        config = space.config(base, space.suggest(trial), epochs, name)
        try:
            config.check_data()
        except ValueError as error:  # e.g. more people per batch than a small face set has
            trial.set_user_attr("infeasible", str(error))
            return float("nan")  # Optuna records the trial as failed and the study goes on
        if config.data not in splits_by_data:
            splits_by_data[config.data] = load_splits(config.data, progress=False)
        pruning = PruneOnValAuc(trial)
        run = training.train(config, splits_by_data[config.data], runs_root, progress=False,
                             callbacks=[pruning])
        trial.set_user_attr("run", run.path.name)
        if not pruning.epochs_reported:
            # A run loaded from the cache trained no epoch now: replay its history.
            for epoch, value in enumerate(run.history[training.MONITOR]):
                _report(trial, epoch, float(value))
        val = run.scores_of("val")
        return metrics.roc(val["label"], val["score"]).auc

    return run_trials(study, objective, n_trials, progress)


def best_config(study: optuna.Study, base: RunConfig, epochs: int | None = None,
                name: str = "search-best", space: SearchSpace = SPACE) -> RunConfig:
    """The best trial's configuration, named ``name``; ``epochs`` (default: base's) to train it
    for longer than a trial did."""
    epochs = epochs or base.train.epochs
    return space.config(base, study.best_trial.params, epochs, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="auto", help="smoke, cpu, colab, gpu or auto")
    parser.add_argument("--trials", type=int, default=0, help="study size (0: the profile's)")
    parser.add_argument("--epochs", type=int, default=0, help="most epochs (0: the profile's)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL or journal file (default: data/optuna/)")
    parser.add_argument("--study", default=None,
                        help="study name (default: search-all_pairs-<hash of profile and budget>)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    args = parser.parse_args(argv)
    profile = profiles.resolve(args.profile)
    study = optimize(profile.all_pairs, args.trials or profile.search_trials,
                     args.epochs or profile.search_epochs,
                     study_name=args.study, storage=args.storage, seed=args.seed)
    best = study.best_trial
    print(f"study {study.study_name!r}: best trial #{best.number}, validation AUC "
          f"{best.value:.3f}, {best.params}")


if __name__ == "__main__":
    main()
