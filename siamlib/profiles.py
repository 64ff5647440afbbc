"""Run profiles: how big every notebook's work is on a given machine (smoke, cpu, colab, gpu).

Every profile names the same two runs, so notebooks 02-05 talk about the same models: ``koch``
(Koch et al.'s network and training) and ``all_pairs`` (the workbook's, from notebook 03's study:
CHANGELOG.md). The cpu profile writes out every setting of both; the others change sizes only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass

from siamlib import parameters, paths, plots, view2
from siamlib.device import device_report, has_gpu
from siamlib.images import Preprocess
from siamlib.model import ModelConfig
from siamlib.pipeline import Augment
from siamlib.splits import DataConfig
from siamlib.training import EXPONENTIAL_SCHEDULE, RunConfig, TrainConfig

# nbval cannot pass notebook parameters, so the tests pick the smoke profile through this
# variable (notebooks/conftest.py); it is read only where "auto" is resolved.
PROFILE_ENV = "SIAMLIB_PROFILE"


@dataclass(frozen=True)
class Profile:
    """A machine budget. ``koch`` and ``all_pairs`` are full RunConfigs for that budget."""

    name: str
    description: str
    koch: RunConfig
    all_pairs: RunConfig
    search_trials: int  # notebook 03's Optuna study: trials (complete or pruned, all workers)
    screening_epochs: int  # notebook 03's ablations, trials and seeds: epochs each (screening)
    one_shot_tasks: int  # N-way tasks per N (notebooks 02 and 05)
    bootstrap: int  # bootstrap resamples for confidence intervals (notebook 05)
    seeds: int  # training seeds of the all_pairs model, for mean and spread (notebook 03)
    view2_folds: int  # View 2 experiments notebook 06 runs (LFW's protocol: all 10)
    view2_epochs: dict[str, int]  # most epochs of each model in one View 2 experiment

    def screening(self, config: RunConfig, epochs: int | None = None) -> RunConfig:
        """``config`` at notebook 03's screening budget, no early stop: its many variants would take
        hours at the full budget."""
        epochs = epochs or self.screening_epochs
        return config.replace(name=f"{config.name}-screened",
                              train={"epochs": epochs, "patience": epochs})

    def full_budget(self, config: RunConfig) -> RunConfig:
        return config.replace(train={"epochs": self.all_pairs.train.epochs,
                                     "patience": self.all_pairs.train.patience})

    def ablations(self, epochs: int | None = None) -> dict[str, RunConfig]:
        """Screened ``all_pairs`` with one thing changed per entry. Each sees as many images per
        epoch, so the sampling rows compare ways of using the same tower passes."""
        base = self.screening(self.all_pairs, epochs)
        model = base.model
        pairs = {"images_per_epoch": None, "pairs_per_epoch": base.train.images_per_epoch // 2}
        changes = {
            "no face crop": {"data": {"face_crop": "whole"}},
            "input 80 px": {"data": {"preprocess": Preprocess(80)}, "model": {"image_size": 80}},
            "given DevTrain pairs": {"train": {"sampling": "restricted", **pairs}},
            "sampled pairs": {"train": {"sampling": "unrestricted", **pairs}},
            "no augmentation": {"train": {"augment": None}},
            "no batch norm": {"model": {"batch_norm": False}},
            "half width": {"model": {"width": model.width / 2}},
            "three conv blocks": {"model": {"filters": model.filters[:3],
                                            "kernels": model.kernels[:3]}},
            "BCE on the L1 head (Koch's)": {"model": {"loss": "bce", "distance": "l1"}},
            "SGD with momentum, decay": {"train": KOCH_SGD},
            # Issue 25's levers: the stem, and where else the same FLOPs could go.
            "Koch's stem (stride 1, then max-pool)": {"model": {"strided_stem": False}},
            "3x3 blocks, 1.75x width (about equal FLOPs)": {"model": {"kernels": (10, 3, 3, 3),
                                                               "width": model.width * 1.75}},
            "input 80 px, 1.4x width (about equal FLOPs)": {"data": {"preprocess": Preprocess(80)},
                                                      "model": {"image_size": 80,
                                                                "width": model.width * 1.4}},
        }
        slug = {what: re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-") for what in changes}
        return {what: base.replace(name=f"ablation-{slug[what]}", **change)
                for what, change in changes.items()}

    def view2_runs(self, model: str) -> list[RunConfig]:
        base = getattr(self, model)
        if model in self.view2_epochs:
            base = base.replace(train={"epochs": self.view2_epochs[model]})
        return [view2.fold_config(base, fold) for fold in range(1, self.view2_folds + 1)]

    def seed_runs(self, epochs: int | None = None) -> list[RunConfig]:
        """The spread any screened difference must beat; seed 0 is the ablations' base."""
        return self.screening(self.all_pairs, epochs).with_seeds(self.seeds)


# Changes adopted into all_pairs since notebook 03's study, named by the ablation that undoes
# them: notebook 03 trains those rows with every seed, as a change is kept only if each agrees.
ADOPTED = ("Koch's stem (stride 1, then max-pool)",)

# Koch et al.'s optimiser and schedule: SGD with momentum, learning rate down 1% per epoch (the
# paper's per-layer learning rates, momenta and L2 weights are one of each here).
KOCH_SGD = {"optimizer": "sgd", "learning_rate": 1e-2, "momentum": 0.5, "lr_decay": 0.99,
            **EXPONENTIAL_SCHEDULE}

# cpu: all_pairs' 45 epochs train in under 10 minutes on 2 AMD EPYC cores, inside 12 minutes per
# View 2 experiment (issue 25; koch gets 6 epochs there). Screening at 4 epochs fits notebook 03's
# ablations, trials and seeds beside the named models in an hour.
CPU = Profile(
    "cpu", "laptop CPU: all pairs, Koch's layout at quarter width",
    # Koch et al.'s network (ModelConfig's defaults: four valid conv blocks, 2x2 max-pool
    # between them, on 105 px images) and training, on the whole frame as they fed it.
    koch=RunConfig("koch", DataConfig(face_crop="whole"), ModelConfig(width=0.25, dense_units=512),
                   TrainConfig(**KOCH_SGD, batch_size=64, epochs=20, patience=4)),
    all_pairs=RunConfig(
        "all_pairs",
        # The face set's face crop: LFW-a's centre half (125 of 250 px), a folder's whole photo.
        DataConfig(face_crop="auto"),
        # Koch's layout with what a small face set needs: batch norm, and a strided stem that keeps
        # the first block's 48 x 48 output for a quarter of its multiply-adds (issue 25).
        ModelConfig(image_size=105, filters=(64, 128, 128, 256), kernels=(10, 7, 4, 4),
                    width=0.25, dense_units=512, strided_stem=True, batch_norm=True,
                    dropout=0.0773, init="glorot", loss="contrastive", distance="l2"),
        # Adam, warmed up for an epoch, then a cosine decay, on every pair of batches of 8 people
        # x 4 photos; rate, batch and dropout are the study's. Patience is the whole run: early
        # stopping must not cut the cosine schedule before it anneals.
        TrainConfig(optimizer="adam", learning_rate=5.26e-4, schedule="cosine", warmup_epochs=1,
                    sampling="identities", batch_size=32, images_per_person=4, augment=Augment(),
                    epochs=45, images_per_epoch=4096, patience=45)),
    search_trials=10, screening_epochs=4, one_shot_tasks=500, bootstrap=1000, seeds=3,
    view2_folds=10, view2_epochs={"koch": 6})

SMOKE_PAIRS = {"max_train_pairs": 256, "max_eval_pairs": 200}
SMOKE = Profile(
    "smoke", "CI smoke run: every code path in minutes on 2 CPU cores; numbers mean nothing",
    koch=CPU.koch.replace(data=SMOKE_PAIRS, model={"width": 0.125, "dense_units": 128},
                          train={"batch_size": 64, "epochs": 2, "patience": 2}),
    all_pairs=CPU.all_pairs.replace(data=SMOKE_PAIRS, model={"width": 0.125, "dense_units": 128},
                                    train={"epochs": 2, "images_per_epoch": 256, "patience": 2}),
    search_trials=4, screening_epochs=1, one_shot_tasks=50, bootstrap=100, seeds=2,
    view2_folds=2, view2_epochs={})

# colab: the cpu recipe at twice the width, never a weaker one. By the T4 estimate of
# tests/test_budget.py (every run at its epoch cap) each notebook trains within 28 minutes.
COLAB = Profile(
    "colab", "Colab GPU: the cpu recipe at half Koch's width, each notebook within about 30 "
             "minutes on a T4",
    koch=CPU.koch.replace(model={"width": 0.5, "dense_units": 1024},
                          train={"batch_size": 128, "epochs": 40, "patience": 8}),
    all_pairs=CPU.all_pairs.replace(model={"width": 0.5, "dense_units": 1024}),
    search_trials=10, screening_epochs=8, one_shot_tasks=1000, bootstrap=1000, seeds=3,
    view2_folds=10, view2_epochs={"koch": 6})

# gpu: notebook 03 alone takes about a day on a T4 by the same estimate.
GPU = Profile(
    "gpu", "instructors' GPU: Koch et al.'s full network and training (SGD, momentum, "
           "1%/epoch decay); hours per notebook, asked for by name",
    koch=CPU.koch.replace(model={"width": 1.0, "dense_units": 4096},
                          train={"batch_size": 128, "epochs": 200, "patience": 20}),
    all_pairs=CPU.all_pairs.replace(model={"width": 1.0, "dense_units": 4096},
                                    train={"epochs": 100, "images_per_epoch": 16384,
                                           "patience": 100}),
    search_trials=60, screening_epochs=20, one_shot_tasks=2000, bootstrap=2000, seeds=3,
    view2_folds=10, view2_epochs={})

PROFILES = {profile.name: profile for profile in (SMOKE, CPU, COLAB, GPU)}


def resolve(name: str = "auto") -> Profile:
    """"auto" follows $SIAMLIB_PROFILE, then the hardware ("gpu", hours, only by name). A smoke
    run's figures mean nothing: they go to a scratch folder, whichever way "smoke" was chosen."""
    if name == "auto":
        name = os.environ.get(PROFILE_ENV) or ("colab" if has_gpu() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or 'auto'")
    paths.smoke_run = name == "smoke"
    return PROFILES[name]


def start(namespace: dict) -> Profile:
    """A notebook's set-up, given ``globals()``: papermill injects parameters unchecked, and every
    notebook's output should start with what it runs on."""
    parameters.check(namespace)
    plots.use_style()
    profile = resolve(namespace.get("profile", "auto"))
    print(device_report())
    print(f"profile: {profile.name} ({profile.description})")
    return profile


def results_dir(profile: Profile):
    folder = paths.data_dir() / "results" / profile.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_selected(profile: Profile, config: RunConfig, reason: str) -> None:
    """A result notebooks 04 and 05 load and print, never a setting applied behind their back."""
    (results_dir(profile) / "selected_run.json").write_text(
        json.dumps({"reason": reason, **asdict(config)}, indent=2, ensure_ascii=False))


def selected(profile: Profile) -> RunConfig:
    chosen = results_dir(profile) / "selected_run.json"
    if not chosen.is_file():
        print(f"No selection from notebook 03 for profile {profile.name!r} (03 has not run): "
              "using the named model 'all_pairs'.")
        return profile.all_pairs
    content = json.loads(chosen.read_text())
    print(f"The model notebook 03 chose for profile {profile.name!r}: {content['name']}, "
          f"{content['reason']} (from {chosen})")
    return RunConfig.from_dict(content)
