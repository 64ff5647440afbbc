"""Run profiles: how big every notebook's work is on a given machine.

- ``smoke``: every code path in minutes on 2 CPU cores (CI): tiny subsets, narrow nets, 1-2 epochs.
- ``cpu``: a meaningful run on a laptop CPU: all pairs, narrow nets (about 350 images/s of
  all_pairs training on 2 cores, by ``siamlib.budget``).
- ``colab``: a student's Colab GPU session: each notebook's training within about 30 minutes on
  a T4 (at most 22 minutes for notebook 03, 15 for notebook 06, 2 for the others, estimated
  by ``siamlib.budget`` from FLOPs: an estimate, every run at its epoch cap). Koch's layout at
  half width, fewer epochs, a 12-trial study.
- ``gpu``: the paper's settings, for instructors with hours of GPU time: full-width nets, long
  training with early stopping (notebook 03 alone: about a day on a T4 by the same estimate).

Every profile trains Koch's net as Koch et al. did (``KOCH_SGD``: SGD with momentum, 1%/epoch
decay), so the baseline differs between profiles only in size and budget, never in method.

A notebook's ``profile`` parameter picks one; "auto" means ``$SIAMLIB_PROFILE`` if set, else
"colab" when TensorFlow sees a GPU and "cpu" otherwise. The full "gpu" profile runs only when
asked for by name, so a student's Colab GPU never starts hours of training unannounced; each
notebook also prints its plan and stops when it would take longer than its ``max_minutes``
(``siamlib.budget``).

Every profile names the same runs, so notebooks 02-05 talk about the same models whatever the
machine; only their size and training budget change:

- ``koch``: Koch et al.'s network and training, the reference;
- ``all_pairs``: the workbook's model. Koch's layout with a face crop, batch norm, dropout,
  Glorot initialisation and augmentation, trained on every pair inside batches of P people x
  K photos (``TrainConfig.sampling = "identities"``) with the contrastive loss on normalised
  embeddings, and a warm-up then cosine learning-rate schedule. The settings are those of
  the best trial of notebook 03's Optuna study on the cpu profile (View 1 validation), and
  the schedule was chosen on View 1 (README, "Development results"). Notebook 03's ablations
  show what each part is worth, one at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace

from siamlib import paths, view2
from siamlib.device import has_gpu
from siamlib.images import Preprocess
from siamlib.model import ModelConfig
from siamlib.pipeline import Augment
from siamlib.splits import DataConfig
from siamlib.training import EXPONENTIAL_SCHEDULE, RunConfig, TrainConfig

PROFILE_ENV = "SIAMLIB_PROFILE"
# Koch et al.'s optimiser and schedule: SGD with momentum, learning rate down 1% per epoch.
# What still differs from the paper: it used a learning rate per layer, momentum per layer rising
# linearly from 0.5 to a per-layer final value, and an L2 weight per layer chosen by Bayesian
# optimisation; siamlib uses one global learning rate, a fixed momentum of 0.5 and one L2 weight.
KOCH_SGD = {"optimizer": "sgd", "learning_rate": 1e-2, "momentum": 0.5, "lr_decay": 0.99,
            **EXPONENTIAL_SCHEDULE}


@dataclass(frozen=True)
class Profile:
    """A machine budget. ``koch`` and ``all_pairs`` are full RunConfigs for that budget."""

    name: str
    description: str
    koch: RunConfig
    all_pairs: RunConfig
    search_trials: int  # notebook 03's Optuna study: trials (complete or pruned, all workers)
    search_epochs: int  # ... and the most epochs each may train (pruned after any epoch)
    one_shot_tasks: int  # N-way tasks per N (notebooks 02 and 05)
    bootstrap: int  # bootstrap resamples for confidence intervals (notebook 05)
    seeds: int  # training seeds of the all_pairs model, for mean and spread (notebook 03)
    view2_folds: int  # View 2 experiments notebook 06 runs (LFW's protocol: all 10)
    view2_epochs: dict[str, int]  # most epochs of each model in one View 2 experiment

    @property
    def data(self) -> DataConfig:
        return self.koch.data

    def ablations(self) -> dict[str, RunConfig]:
        """``all_pairs`` with one thing changed per entry, keyed by what changed.

        Each variant sees as many images per epoch as ``all_pairs`` (a pair is two images; the
        given DevTrain pairs are cycled through to fill the budget), so the sampling rows compare
        ways of using the same tower passes.
        """
        base = self.all_pairs
        images = base.train.images_per_epoch
        pairs = {"images_per_epoch": None, "pairs_per_epoch": images // 2}
        crop = base.data.preprocess.crop
        model = base.model
        changes = {
            "no face crop": {"data": {"preprocess": Preprocess(model.image_size)}},
            "input 80 px": {"data": {"preprocess": Preprocess(80, crop=crop)},
                            "model": {"image_size": 80}},
            "given DevTrain pairs": {"train": {"sampling": "restricted", **pairs}},
            "sampled pairs": {"train": {"sampling": "unrestricted", **pairs}},
            "no augmentation": {"train": {"augment": None}},
            "no batch norm": {"model": {"batch_norm": False}},
            "half width": {"model": {"width": model.width / 2}},
            "three conv blocks": {"model": {"filters": model.filters[:3],
                                            "kernels": model.kernels[:3]}},
            "BCE on the L1 head (Koch's)": {"model": {"loss": "bce", "distance": "l1"}},
            "multi-similarity loss": {"model": {"loss": "multi_similarity"}},
            "the study's schedule: x0.9 an epoch, 12 epochs": {
                "train": {**EXPONENTIAL_SCHEDULE, "lr_decay": 0.9,
                          "epochs": min(12, base.train.epochs)}},
            "SGD with momentum, decay": {"train": KOCH_SGD},
            # The budget all_pairs had before issue 13's second candidate: a shorter cosine
            # schedule that early stopping may cut.
            "two thirds of the epochs, patience 8": {
                "train": {"epochs": max(1, base.train.epochs * 2 // 3), "patience": 8}},
        }
        return {what: base.replace(name=f"ablation-{_slug(what)}", **change)
                for what, change in changes.items()}

    def view2_runs(self, model: str) -> list[RunConfig]:
        """``model`` ("koch" or "all_pairs") as each View 2 experiment (notebook 06): the same
        network, preprocessing and training, within ``view2_epochs``."""
        base = getattr(self, model)
        if model in self.view2_epochs:
            base = base.replace(train={"epochs": self.view2_epochs[model]})
        return [view2.fold_config(base, fold) for fold in range(1, self.view2_folds + 1)]

    def seed_runs(self) -> list[RunConfig]:
        """``all_pairs`` trained with ``seeds`` different seeds (the first is ``all_pairs``)."""
        return [self.all_pairs] + [
            self.all_pairs.replace(name=f"all_pairs-seed{seed}", train={"seed": seed})
            for seed in range(1, self.seeds)
        ]


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _koch(data: DataConfig, width: float, dense: int, train: TrainConfig) -> RunConfig:
    return RunConfig("koch", data, ModelConfig(width=width, dense_units=dense), train)


def _all_pairs(data: DataConfig, width: float, dense: int, train: TrainConfig) -> RunConfig:
    """Koch's layout with what a small face set needs (a face crop, batch norm, dropout, Glorot
    initialisation, augmentation) and a metric-learning recipe: every pair of batches of 8
    people x 4 photos, the contrastive loss on normalised embeddings, Adam warmed up for an
    epoch, then a cosine decay. Crop, dropout, learning rate, loss and batch are trial #14 of
    notebook 03's study (cpu profile, 2026-12-02), kept at the values it drew; ``train`` sets
    the budget (epochs, images per epoch). Patience is the whole run: early stopping keeps the
    best validation epoch but must not cut the cosine schedule before it anneals (a View 2
    experiment stopped at epoch 13 of 30 under patience 8 did)."""
    return RunConfig(
        "all_pairs",
        replace(data, preprocess=Preprocess(105, crop=0.5)),  # LFW-a: the centre 125 px
        ModelConfig(width=width, dense_units=dense, batch_norm=True, dropout=0.0773,
                    init="glorot", loss="contrastive", distance="l2"),
        replace(train, augment=Augment(), learning_rate=5.26e-4, schedule="cosine",
                warmup_epochs=1, batch_size=32, images_per_person=4, patience=train.epochs),
    )


def _profile(name, description, data, width, dense, koch_train, all_pairs_train, **budget):
    return Profile(
        name,
        description,
        _koch(data, width, dense, koch_train),
        _all_pairs(data, width, dense, all_pairs_train),
        **budget,
    )


PROFILES = {
    "smoke": _profile(
        "smoke",
        "CI smoke run: every code path in minutes on 2 CPU cores; numbers mean nothing",
        DataConfig(max_train_pairs=256, max_eval_pairs=200),
        width=0.125, dense=128,
        koch_train=TrainConfig(**KOCH_SGD, epochs=2, batch_size=64, patience=2),
        all_pairs_train=TrainConfig(epochs=2, sampling="identities", images_per_epoch=256),
        search_trials=4, search_epochs=1, one_shot_tasks=50, bootstrap=100, seeds=2,
        view2_folds=2, view2_epochs={},
    ),
    "cpu": _profile(
        "cpu",
        "laptop CPU: all pairs, Koch's layout at quarter width (all_pairs: about 350 images/s "
        "on 2 cores)",
        DataConfig(),
        width=0.25, dense=512,
        koch_train=TrainConfig(**KOCH_SGD, epochs=20, batch_size=64, patience=4),
        # 45 epochs: about 11 minutes a run on 2 cores, within issue 13's 12 minutes per View 2
        # experiment (README, "The benchmark: View 2", has the measured times).
        all_pairs_train=TrainConfig(epochs=45, sampling="identities", images_per_epoch=4096),
        search_trials=30, search_epochs=4, one_shot_tasks=500, bootstrap=1000, seeds=3,
        # View 2: koch at 6 epochs a fold, all_pairs at its 45 (README: measured times).
        view2_folds=10, view2_epochs={"koch": 6},
    ),
    # A student's Colab session (a T4): each notebook's training within about 30 minutes by
    # siamlib.budget's FLOPs estimate (notebook 03 at most 22, notebook 06 at most 15, every run
    # at its epoch cap), leaving time for setup, decoding and the statistics.
    "colab": _profile(
        "colab",
        "Colab GPU: Koch's layout at half width, each notebook within about 30 minutes on a T4",
        DataConfig(),
        width=0.5, dense=1024,
        koch_train=TrainConfig(**KOCH_SGD, epochs=40, batch_size=128, patience=8),
        all_pairs_train=TrainConfig(epochs=15, sampling="identities", images_per_epoch=6144),
        search_trials=12, search_epochs=3, one_shot_tasks=1000, bootstrap=1000, seeds=3,
        view2_folds=10, view2_epochs={"koch": 10, "all_pairs": 12},
    ),
    "gpu": _profile(
        "gpu",
        "instructors' GPU: Koch et al.'s full network and training (SGD, momentum, 1%/epoch "
        "decay); hours per notebook, asked for by name",
        DataConfig(),
        width=1.0, dense=4096,
        koch_train=TrainConfig(**KOCH_SGD, epochs=200, batch_size=128, patience=20),
        all_pairs_train=TrainConfig(epochs=100, sampling="identities", images_per_epoch=16384),
        search_trials=60, search_epochs=30, one_shot_tasks=2000, bootstrap=2000, seeds=3,
        view2_folds=10, view2_epochs={},
    ),
}


def resolve(name: str = "auto") -> Profile:
    """The profile called ``name``; "auto" follows $SIAMLIB_PROFILE, then the hardware (a GPU
    gets "colab"; the full "gpu" profile only by name)."""
    if name == "auto":
        name = os.environ.get(PROFILE_ENV) or ("colab" if has_gpu() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or 'auto'")
    return PROFILES[name]


def results_dir(profile: Profile):
    """Where a profile's notebooks leave results for the next notebook (``data/results/<name>``)."""
    folder = paths.data_dir() / "results" / profile.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_selected(profile: Profile, config: RunConfig) -> None:
    """Record the model notebook 03 chose on validation, for notebooks 04 and 05."""
    (results_dir(profile) / "selected_run.json").write_text(json.dumps(asdict(config), indent=2))


def selected(profile: Profile) -> RunConfig:
    """The model notebook 03 chose, or the profile's ``all_pairs`` model if 03 has not run."""
    chosen = results_dir(profile) / "selected_run.json"
    if chosen.is_file():
        return RunConfig.from_dict(json.loads(chosen.read_text()))
    print(f"No selection from notebook 03 for profile {profile.name!r}: using 'all_pairs'.")
    return profile.all_pairs
