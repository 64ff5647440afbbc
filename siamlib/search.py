"""Notebook 03's Optuna search: each trial a cached run around a profile's screened
``all_pairs``, in a storage that lets a search resume and several workers share it (a journal
file by default, or "shared": the database at ``$SIAMLIB_OPTUNA_URL``, read from the environment
only, since a notebook parameter would be saved, password included). docs/guide.md shows both.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import optuna
import sqlalchemy  # Optuna's own dependency: its database storages and their errors
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback

from siamlib import metrics, paths, profiles, training
from siamlib.budget import Trials, flops_per_image
from siamlib.files import short_hash
from siamlib.images import FACE_CROPS, Preprocess
from siamlib.parameters import UserError
from siamlib.splits import LFW, load_splits
from siamlib.training import RunConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
URL_ENV = "SIAMLIB_OPTUNA_URL"
URL_FORM = "postgresql+psycopg://user:password@host:5432/database"


@dataclass(frozen=True)
class SearchSpace:
    """What a trial may change in the base model. Widths are relative to the base's and depths
    take its first conv blocks, so one space fits every profile."""

    face_crops: tuple[str, ...] = FACE_CROPS
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
        choose = trial.suggest_categorical
        return {
            "face_crop": choose("face_crop", self.face_crops),
            "image_size": choose("image_size", self.image_sizes),
            "width_factor": choose("width_factor", self.width_factors),
            "depth": choose("depth", self.depths),
            "dropout": trial.suggest_float("dropout", *self.dropout),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "lr_decay": choose("lr_decay", self.lr_decays),
            "people_per_batch": choose("people_per_batch", self.people_per_batch),
            "images_per_person": choose("images_per_person", self.images_per_person),
            "loss": choose("loss", self.losses),
        }

    def config(self, base: RunConfig, params: dict, epochs: int, name: str) -> RunConfig:
        depth, model, k = params["depth"], base.model, params["images_per_person"]
        if not 1 <= depth <= len(model.filters):
            raise ValueError(f"depth {depth}: the base model has {len(model.filters)} conv blocks")
        return base.replace(
            name=name,
            data={"face_crop": params["face_crop"], "preprocess": Preprocess(params["image_size"])},
            model={"image_size": params["image_size"],
                   "width": model.width * params["width_factor"],
                   "filters": model.filters[:depth], "kernels": model.kernels[:depth],
                   "dropout": params["dropout"], "loss": params["loss"],
                   # the contrastive loss works on a scalar distance: L2, as in the ablations
                   "distance": "l2" if params["loss"] == "contrastive" else "l1"},
            train={"sampling": "identities", "pairs_per_epoch": None, "images_per_person": k,
                   "batch_size": params["people_per_batch"] * k,
                   "learning_rate": params["learning_rate"], "lr_decay": params["lr_decay"],
                   **training.EXPONENTIAL_SCHEDULE, "epochs": epochs},  # the decay drawn
        )

    def costliest(self, base: RunConfig, epochs: int) -> RunConfig:
        """The slowest configuration the space allows, which prices unknown trials in a plan. Every
        depth is tried: three blocks can cost more than four (a larger map to embed)."""
        fixed = {"face_crop": self.face_crops[0], "image_size": max(self.image_sizes),
                 "width_factor": max(self.width_factors), "dropout": 0.0,
                 "learning_rate": self.learning_rate[0], "lr_decay": 1.0, "loss": "contrastive",
                 "people_per_batch": max(self.people_per_batch),
                 "images_per_person": max(self.images_per_person)}
        return max((self.config(base, {**fixed, "depth": depth}, epochs, "the costliest trial")
                    for depth in self.depths), key=lambda config: flops_per_image(config.model))


SPACE = SearchSpace()
PRUNER = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE seeded afresh per trial from (seed, trial number): one seed per process would make every
    worker, and every resumed search, draw the same first configurations again."""

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)
        self.search_seed = seed

    def before_trial(self, study, trial):
        state = np.random.SeedSequence([self.search_seed, trial.number]).generate_state(1)
        super().__init__(seed=int(state[0]))  # a new TPE sampler, as Optuna's defaults make it
        super().before_trial(study, trial)


class StorageError(UserError, ValueError):
    """A study storage that cannot be used; the message names it (password masked) and the fix."""


def masked(text: str) -> str:
    """``text`` with every password in a URL as ``***``; in ``user:password@host`` up to the last
    ``@``, as a password may hold "/", ":" and "@"."""
    text = re.sub(r"((?:password|passwd|pwd)=)[^&\s'\"]*", r"\1***", str(text), flags=re.I)
    return re.sub(r"(://[^:/?#@\s'\"]*):[^\s'\"]*@", r"\1:***@", text)


def _database(url: str) -> optuna.storages.RDBStorage:
    if not url:
        raise StorageError(f"storage 'shared' reads the database URL from {URL_ENV}, which is "
                           f"not set: export {URL_ENV}='{URL_FORM}'")
    try:
        host = sqlalchemy.engine.make_url(url).host or ""
    except (ValueError, sqlalchemy.exc.ArgumentError):
        host = ""  # RDBStorage says so, below
    if "@" in host:  # a password's "@" the URL must encode: the driver would show what follows
        raise StorageError(f"the password in {URL_ENV} ({masked(url)!r}) holds an '@': write "
                           "it %40 (and '/' %2F, ':' %3A)")
    engine = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    for _ in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Heartbeats mark a dead worker's trials as failed, so no one waits on them.
                return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                                  heartbeat_interval=60, grace_period=300)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Workers starting together all create Optuna's tables; PostgreSQL's CREATE TABLE IF
            # NOT EXISTS is not atomic, so the losers fail. The tables exist now: open it again.
            failure = error
            time.sleep(0.2 + np.random.random())
        except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
            failure = error
            break
    cause = failure.__cause__ if isinstance(failure, ImportError) else failure
    reason = masked(str(cause or failure).strip().partition("\n")[0])
    if isinstance(failure, ImportError):  # Optuna's "Failed to import DB access module"
        fix = "install its driver (postgresql+psycopg: pip install 'psycopg[binary]')"
    elif isinstance(failure, (ValueError, sqlalchemy.exc.ArgumentError)):
        fix = f"write {URL_ENV} as {URL_FORM}"
    elif "password" in reason or "authentication" in reason:
        fix = f"check the user name and password in {URL_ENV}"
    else:
        fix = ("check the host, port and database, and that the server is running and lets "
               "this machine in (listen_addresses, pg_hba.conf)")
    raise StorageError(f"cannot open the Optuna storage {masked(url)!r} ({URL_ENV}): {reason}; "
                       f"{fix}")


def open_study(base: RunConfig, epochs: int, storage: str | Path | None = None, seed: int = 0,
               space: SearchSpace = SPACE) -> optuna.Study:
    """The study of ``base``, ``epochs`` and ``space`` in ``storage`` ("journal", "shared" or a
    journal file). Its name hashes all three: machines with the same code and profile join one
    study, and trials made for something else are never mixed in."""
    made_for = {"base": asdict(base), "epochs": epochs, "space": asdict(space)}
    name = f"search-{base.name}-{short_hash(made_for)[:8]}"
    text = str(storage or "journal")
    if "://" in text:
        raise StorageError(f"storage {masked(text)!r} is a URL: export {URL_ENV}='{URL_FORM}' "
                           "and give storage 'shared' (a parameter is saved in the notebook)")
    if text == "shared":
        storage = _database(os.environ.get(URL_ENV, ""))
    else:
        path = paths.data_dir() / "optuna" / f"{name}.log" if text == "journal" else Path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
            str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))))
    return optuna.create_study(storage=storage, study_name=name, direction="maximize",
                               sampler=TrialSeededTPE(seed), pruner=PRUNER, load_if_exists=True)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def run_trials(study: optuna.Study, objective, n_trials: int) -> optuna.Study:
    """Run until ``study`` holds ``n_trials`` finished trials, whoever ran them; one error after
    ``10 * n_trials`` failed ones (a space the data hardly fits)."""
    if len(finished(study)) < n_trials:
        study.optimize(objective, callbacks=[
            MaxTrialsCallback(n_trials, states=FINISHED),
            MaxTrialsCallback(10 * n_trials, states=(TrialState.FAIL,))])
    if len(finished(study)) < n_trials:
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        raise RuntimeError(f"study {study.study_name!r}: {len(failed)} trials could not run, "
                           f"the last because {failed[-1].user_attrs.get('infeasible')}")
    return study


def optimize(base: RunConfig, n_trials: int, epochs: int, storage: str | Path | None = None,
             seed: int = 0, space: SearchSpace = SPACE) -> optuna.Study:
    """Search around ``base``: a trial's value is its validation AUC (test pairs are never looked
    at). Resuming, or joining other workers, is calling this again with the same arguments."""
    study = open_study(base, epochs, storage, seed, space)
    splits_by_data = {}

    def objective(trial: optuna.Trial) -> float:
        config = space.config(base, space.suggest(trial), epochs,
                              name=f"{study.study_name}-{trial.number:03d}")
        try:
            config.check_data()
        except ValueError as error:  # e.g. more people per batch than a small face set has
            trial.set_user_attr("infeasible", str(error))
            return float("nan")  # Optuna records the trial as failed and the study goes on
        if config.data not in splits_by_data:
            splits_by_data[config.data] = load_splits(config.data, progress=False)
        # Optuna's callback reports validation AUC after each epoch and raises TrialPruned
        # inside model.fit; training.train then deletes the unfinished run folder.
        trained_now = []
        run = training.train(config, splits_by_data[config.data], progress=False,
                             callbacks=[KerasPruningCallback(trial, training.MONITOR),
                                        keras.callbacks.LambdaCallback(
                                            on_train_begin=trained_now.append)])
        trial.set_user_attr("run", run.path.name)
        if not trained_now:  # a run from the cache trained no epoch now: replay its history
            for epoch, value in enumerate(run.history[training.MONITOR]):
                trial.report(float(value), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"validation AUC {value:.3f} after epoch {epoch + 1}")
        val = run.scores_of("val")
        return metrics.roc(val["label"], val["score"]).auc

    return run_trials(study, objective, n_trials)


def best_runs(study: optuna.Study, base: RunConfig, seeds: int) -> list[RunConfig]:
    """The best trial's configuration with ``seeds`` seeds; seed 0 is the trial's own run (loaded,
    not trained twice)."""
    trial = study.best_trial
    return SPACE.config(base, trial.params, base.train.epochs,
                        f"{study.study_name}-{trial.number:03d}").with_seeds(seeds)


def notebook_runs(profile: profiles.Profile, epochs: int, trials: int,
                  storage: str | Path | None = None, seed: int = 0, source: str = LFW) -> list:
    """Everything notebook 03 may train, as ``budget.plan`` entries; what is not known yet is
    priced as the space's costliest configuration."""
    here = {"data": {"source": source}}
    screened = profile.screening(profile.all_pairs, epochs).replace(**here)
    study = open_study(screened, epochs, storage=storage, seed=seed)
    left = max(0, trials - len(finished(study)))
    costliest = SPACE.costliest(screened, epochs)
    ablations = profile.ablations(epochs)
    adopted = [config for what in profiles.ADOPTED for config in
               ablations[what].with_seeds(profile.seeds)]
    entries = [config.replace(**here) for config in [
        profile.all_pairs, profile.koch, *ablations.values(), *profile.seed_runs(epochs),
        *adopted]]
    entries.append(Trials(f"Optuna study: {left} of {trials} trials left", costliest, left))
    if left:
        entries.append(Trials(f"search-best, {profile.seeds} seeds (the network the study "
                              "picks)", costliest, profile.seeds))
    else:
        entries += best_runs(study, screened, profile.seeds)
    return entries + [Trials("section 3's winner at the full budget (only if a candidate wins)",
                             profile.full_budget(costliest), 1)]

