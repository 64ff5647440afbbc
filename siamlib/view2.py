"""LFW View 2, the benchmark, reported as LFW's README asks: each number a mean over the ten
test folds with SE = sample std / sqrt(10), compared only within LFW's category of what a method
may use (image-restricted: the given pairs' labels; unrestricted: identities).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import sem

from siamlib import metrics, stats
from siamlib.training import Run, RunConfig

MODELS = ("koch", "all_pairs")  # the profile's named models, both benchmarked


def published() -> pd.DataFrame:
    """LFW's results page, View 2 (its source in ``lfw_results.csv``'s header)."""
    return pd.read_csv(Path(__file__).with_name("lfw_results.csv"), comment="#")


def chosen_models(names: str) -> list[str]:
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    if not chosen or not set(chosen) <= set(MODELS):
        raise ValueError(f"models must be a comma-separated list of {', '.join(MODELS)}; "
                         f"got {names!r}")
    return list(dict.fromkeys(chosen))


def setting(config: RunConfig) -> str:
    return "image-restricted" if config.train.sampling == "restricted" else "unrestricted"


def fold_config(base: RunConfig, fold: int) -> RunConfig:
    return base.replace(name=f"{base.name}-view2-fold{fold:02d}", data={"view2_fold": fold})


def mean_se(values) -> tuple[float, float]:
    """Mean and LFW's standard error: sample std (ddof=1) / sqrt(number of folds)."""
    return float(np.mean(values)), (float(sem(values)) if len(values) > 1 else np.nan)


def fold_table(runs: list[Run]) -> pd.DataFrame:
    rows = [{"fold": run.config.data.view2_fold, "test pairs": len(run.scores_of("test")),
             "threshold": (summary := run.summary())["threshold"],
             **{metric: summary[f"test_{metric}"] for metric in ("accuracy", "auc", "eer")},
             "epochs": summary["epochs"],
             "best epoch": run.info["best_epoch"],  # the cap was too short where it is the last
             "train_s": summary["train_s"]} for run in runs]
    return pd.DataFrame(rows).set_index("fold")


def fold_scores(runs: list[Run]) -> dict[int, pd.DataFrame]:
    return {run.config.data.view2_fold: run.scores for run in runs}


def _split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    return frame[frame["split"] == split].reset_index(drop=True)


def fold_paired(scores_a: dict[int, pd.DataFrame], scores_b: dict[int, pd.DataFrame],
                n_boot: int = 2000) -> dict:
    """Method a against b on the same test pairs, each at its own validation thresholds: the
    folds' accuracy differences (folds share no one) and a bootstrap that resamples people."""
    if scores_a.keys() != scores_b.keys():
        raise ValueError(f"the methods were run on other folds: {sorted(scores_a)} and "
                         f"{sorted(scores_b)}")
    differences, pooled = [], []
    for fold in scores_a:
        test, other = (_split(scores[fold], "test") for scores in (scores_a, scores_b))
        if not test[["path_a", "path_b"]].equals(other[["path_a", "path_b"]]):
            raise ValueError(f"fold {fold}: the methods scored other test pairs")
        for method, frame, scored in (("a", scores_a[fold], test), ("b", scores_b[fold], other)):
            val = _split(frame, "val")
            # Decisions, not margins: a threshold may be infinite (reject all).
            threshold = metrics.threshold_for_max_accuracy(val["label"], val["score"])
            test[method] = (scored["score"] >= threshold).astype(float)
        differences.append(test["a"].eq(test["label"]).mean() - test["b"].eq(test["label"]).mean())
        pooled.append(test)
    pooled, differences = pd.concat(pooled, ignore_index=True), np.asarray(differences)
    mean, se = mean_se(differences)
    groups = stats.person_clusters(pooled["name_a"], pooled["name_b"])
    test = stats.paired_difference(pooled["label"], pooled["a"], pooled["b"], groups, n_boot,
                                   metric="accuracy", threshold=0.5)
    return {"fold difference (mean)": mean, "fold difference (SE)": se,
            "folds a better": int((differences > 0).sum()),
            "folds b better": int((differences < 0).sum()), "folds": len(differences),
            "pooled difference": test.estimate,
            "95% CI (people resampled)": f"[{test.low:+.3f}, {test.high:+.3f}]",
            "p (people resampled)": stats.p_text(test.p_value, n_boot),
            "reading": stats.reading(test.p_value, test.estimate, "a", "b")}


def operating_points(scores: dict[int, pd.DataFrame], target_far: float = 0.01) -> pd.DataFrame:
    """Fitted on validation, counted on test; NaN where validation has too few impostors to
    show the target (300 cannot show 0.1 %)."""
    rows = []
    for fold, frame in scores.items():
        val, test = _split(frame, "val"), _split(frame, "test")
        point = metrics.operating_point(val["label"], val["score"], target_far, test["label"],
                                        test["score"])._asdict()
        rows.append({"fold": fold, **{name: point[name.lower()] if point["estimable"] else np.nan
                                      for name in ("threshold", "TAR", "FAR")},
                     "validation impostors": point["n_impostors"], "estimable": point["estimable"]})
    return pd.DataFrame(rows).set_index("fold")


def at_far(scores: dict[int, pd.DataFrame], target_far: float) -> str:
    table = operating_points(scores, target_far)
    if not table["estimable"].all():
        return (f"not estimable at FAR {target_far:.1%}: a validation fold holds "
                f"{table['validation impostors'].min()} impostor pairs, fewer than "
                f"{int(np.ceil(1 / target_far))}")
    (tar, tar_se), (far, far_se) = mean_se(table["TAR"]), mean_se(table["FAR"])
    return (f"TAR {tar:.3f} ± {tar_se:.3f} at a FAR of {far:.4f} ± {far_se:.4f} on the test "
            f"folds (target {target_far:.1%}, thresholds fitted on validation)")


def report(model: str, runs: list[Run]) -> dict:
    table, points = fold_table(runs), operating_points(fold_scores(runs), 0.01)
    (accuracy, accuracy_se), (auc, auc_se), (eer, eer_se), (tar, tar_se) = map(
        mean_se, (table["accuracy"], table["auc"], table["eer"], points["TAR"]))
    return {
        "method": f"{model} (this workbook)", "accuracy": accuracy, "se": accuracy_se,
        "category": f"{setting(runs[0].config).title()}, Label-Free Outside Data",
        "folds": len(table), "auc": auc, "auc_se": auc_se, "eer": eer, "eer_se": eer_se,
        "tar_at_far_1pct": tar, "tar_se": tar_se, "far_reached": points["FAR"].mean(),
        "train_minutes": table["train_s"].sum() / 60,
    }


def comparison(ours: dict) -> pd.DataFrame:
    table = pd.concat([published(), pd.DataFrame([ours])[["category", "method", "accuracy",
                                                          "se"]]], ignore_index=True)
    shown = table[table["category"] == ours["category"]].sort_values(
        "accuracy", ascending=False, ignore_index=True)
    return shown.assign(**{"rank in category": shown["accuracy"].rank(
        ascending=False, method="min").astype(int)})


def headline(ours: dict) -> str:
    table = comparison(ours)
    rank = int(table.loc[table["method"] == ours["method"], "rank in category"].iloc[0])
    return (f"{ours['method']}: {ours['accuracy']:.4f} ± {ours['se']:.4f} on View 2 "
            f"({ours['folds']} folds), category \"{ours['category']}\": rank {rank} of "
            f"{len(table)} in that category on LFW's results page.")


def looks() -> pd.DataFrame:
    """Every View 2 run of the named models, oldest first: declared before it runs, its result
    added whatever it shows (docs/guide.md)."""
    table = pd.DataFrame(json.loads(Path(__file__).with_name("view2_declarations.json")
                                    .read_text()))
    return table.set_axis(pd.RangeIndex(1, len(table) + 1, name="look"))


def declared_look(configs: list[RunConfig], policy: str) -> int | None:
    keys = [config.key(policy) for config in configs]
    return next((int(number) for number, row in looks().iterrows()
                 if row.get("run_keys") == keys), None)
