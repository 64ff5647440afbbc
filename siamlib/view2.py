"""LFW View 2, the benchmark: ten experiments, reported as the field reports them.

View 1 (DevTrain/DevTest) is for development; every published LFW result is a View 2 result:
``pairs.txt`` holds ten person-disjoint folds of 300 same + 300 different pairs, and experiment
k trains on the other nine folds and tests on fold k. In the workbook the nine are split once
more, by fold: the fold after k is validation (early stopping and the decision threshold) and
the remaining eight are training (``splits.view2_experiment``). Each experiment is an ordinary
cached run with its fold in its key (``DataConfig.view2_fold``).

The report follows LFW's README: mean accuracy over the ten test folds with the standard error
SE = sample standard deviation / sqrt(10), each fold's accuracy at the threshold its own
validation fold chose. Beside it: the ROC averaged over folds (TAR averaged at fixed FAR), AUC
and EER as mean ± SE, and TAR at FAR 1 % over the pooled test scores with the number of
impostor pairs behind it.

LFW also sorts results into categories that say what a method was allowed to use:

- **image-restricted**: only the given pairs and their same/different labels (Koch's network
  trained on the given pairs);
- **unrestricted**: the identities of the training folds' people may form new pairs (the
  ``all_pairs`` model trains on every pair of batches of those people);
- **outside data**: LFW-a's alignment counts as *label-free outside data*, so every method on
  LFW-a images is at least in that category, this workbook included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from siamlib import metrics
from siamlib.training import Run, RunConfig

MODELS = ("koch", "all_pairs")  # the profile's named models, both benchmarked

# Published View 2 results (mean accuracy ± SE over the ten folds) as listed on LFW's results
# page, with the category each is listed under.
PUBLISHED = pd.DataFrame(
    [
        ("V1-like/MKL (Pinto et al. 2009)", 0.7935, 0.0055,
         "image-restricted", "no outside data"),
        ("Combined b/g samples, aligned (Wolf, Hassner & Taigman 2009; LFW-a)", 0.8683, 0.0034,
         "image-restricted", "label-free outside data"),
        ("Fisher vector faces (Simonyan et al. 2013)", 0.8747, 0.0149,
         "image-restricted", "no outside data"),
        ("CSML + SVM, aligned (Nguyen & Bai 2010)", 0.8800, 0.0037,
         "image-restricted", "label-free outside data"),
        ("DDML, combined (Hu, Lu & Tan 2014)", 0.9068, 0.0141,
         "image-restricted", "label-free outside data"),
    ],
    columns=["method", "accuracy", "se", "setting", "outside data"],
)


def chosen_models(names: str) -> list[str]:
    """The named models in a comma-separated list ("koch,all_pairs"), checked, in that order."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MODELS]
    if unknown or not chosen:
        raise ValueError(f"models must be a comma-separated list of {', '.join(MODELS)}; "
                         f"got {names!r}")
    return list(dict.fromkeys(chosen))


def setting(config: RunConfig) -> str:
    """LFW's name for what a run learned from: the given pairs' labels only, or identities."""
    return "image-restricted" if config.train.sampling == "restricted" else "unrestricted"


def fold_config(base: RunConfig, fold: int) -> RunConfig:
    """``base`` (model, training, preprocessing) as View 2 experiment ``fold``."""
    return base.replace(name=f"{base.name}-view2-fold{fold:02d}", data={"view2_fold": fold})


def mean_se(values) -> tuple[float, float]:
    """Mean and LFW's standard error: sample std (ddof=1) / sqrt(number of folds)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def fold_table(runs: list[Run]) -> pd.DataFrame:
    """One row per experiment: the test fold's metrics at its validation fold's threshold."""
    rows = []
    for run in runs:
        summary = run.summary()  # test metrics at the validation threshold
        rows.append({
            "fold": run.config.data.view2_fold,
            "test pairs": len(run.scores_of("test")),
            "threshold": summary["threshold"],
            **{metric: summary[f"test_{metric}"] for metric in ("accuracy", "auc", "eer")},
            "epochs": summary["epochs"],
            "best epoch": run.info["best_epoch"],  # the cap was too short where it is the last
            "train_s": summary["train_s"],
        })
    return pd.DataFrame(rows).set_index("fold")


def paired_comparison(runs_a: list[Run], runs_b: list[Run]) -> dict:
    """Two models on the same test pairs of every experiment, each at its own validation
    threshold: the fold accuracy differences (a - b, mean ± SE) and McNemar's test on all the
    pooled pairs."""
    correct = {"a": [], "b": []}
    for run_a, run_b in zip(runs_a, runs_b, strict=True):
        test_a, test_b = run_a.scores_of("test"), run_b.scores_of("test")
        if not test_a[["path_a", "path_b"]].equals(test_b[["path_a", "path_b"]]):
            raise ValueError(f"{run_a.config.name} and {run_b.config.name} scored other pairs")
        for side, run, test in (("a", run_a, test_a), ("b", run_b, test_b)):
            outcomes = metrics.outcome(test["label"], test["score"], run.threshold)
            correct[side].append(np.isin(outcomes, ["TP", "TN"]))
    differences = fold_table(runs_a)["accuracy"] - fold_table(runs_b)["accuracy"]
    mean, se = mean_se(differences)
    test = metrics.mcnemar(np.concatenate(correct["a"]), np.concatenate(correct["b"]))
    return {"accuracy difference": mean, "se": se, "folds a better": int((differences > 0).sum()),
            "folds": len(differences), "a right, b wrong": test.n10, "a wrong, b right": test.n01,
            "McNemar p": test.p_value}


def averaged_roc(runs: list[Run], far_grid=None) -> pd.DataFrame:
    """TAR of each fold's test ROC at fixed FARs (vertical averaging), with mean and SE.

    Each fold has its own model and score scale, so curves are averaged at equal FAR rather
    than at equal threshold.
    """
    far_grid = np.logspace(-3, 0, 200) if far_grid is None else np.asarray(far_grid)
    tars = []
    for run in runs:
        curve = metrics.roc(run.scores_of("test")["label"], run.scores_of("test")["score"])
        # The ROC is a rising staircase: the TAR reachable at FAR <= f is its last point up to f.
        tars.append(curve.tar[np.searchsorted(curve.far, far_grid, side="right") - 1])
    tars = np.array(tars)
    se = tars.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.nan
    return pd.DataFrame({"far": far_grid, "tar": tars.mean(axis=0), "tar_se": se})


def pooled_scores(runs: list[Run]) -> pd.DataFrame:
    """Every test fold's scored pairs in one frame (each scored by its own experiment's model)."""
    return pd.concat([run.scores_of("test") for run in runs], ignore_index=True)


def report(model: str, runs: list[Run]) -> dict:
    """The workbook's row of the View 2 comparison, in the field's terms."""
    table = fold_table(runs)
    pooled = pooled_scores(runs)
    at_1 = metrics.operating_point(pooled["label"], pooled["score"], 0.01)
    accuracy, accuracy_se = mean_se(table["accuracy"])
    auc, auc_se = mean_se(table["auc"])
    eer, eer_se = mean_se(table["eer"])
    return {
        "method": f"{model} (this workbook)",
        "accuracy": accuracy, "se": accuracy_se,
        "setting": setting(runs[0].config), "outside data": "label-free outside data",
        "folds": len(table), "auc": auc, "auc_se": auc_se, "eer": eer, "eer_se": eer_se,
        "tar_at_far_1pc": at_1.tar if at_1.estimable else float("nan"),
        "impostor_pairs": at_1.n_impostors,
        "train_minutes": table["train_s"].sum() / 60,
    }


def comparison(workbook_rows: list[dict]) -> pd.DataFrame:
    """Published results and the workbook's, sorted by accuracy, each with its LFW category."""
    columns = list(PUBLISHED.columns)
    ours = pd.DataFrame(workbook_rows)[columns]
    return pd.concat([PUBLISHED, ours], ignore_index=True).sort_values("accuracy",
                                                                       ignore_index=True)
