"""siamlib.view2, notebook 06's claim and averaged_roc, and the View 2 protocol: folds, the
ten experiments, the report.

Unit tests use generated folds and hand-made runs; the integration tests read the real
``pairs.txt`` and check, for every experiment, that no person of the test fold reaches
training, validation or threshold fitting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lessons import notebook_function
from scipy.stats import norm, sem

from siamlib import metrics, pairs, profiles, stats, view2
from siamlib.pipeline import identity_batch_dataset
from siamlib.splits import DataConfig, load_splits, view2_experiment
from siamlib.training import Run, RunConfig, TrainConfig

# Notebook 06 defines these two: only that lesson uses them.
claim = notebook_function("06_lfw_benchmark.ipynb", "claim", np=np, pd=pd, norm=norm)
averaged_roc = notebook_function("06_lfw_benchmark.ipynb", "averaged_roc", np=np, pd=pd,
                                 metrics=metrics, sem=sem)


def _fold_frame(n_folds: int = 4, people_per_fold: int = 3) -> pd.DataFrame:
    """Person-disjoint folds: person p<f>_<i> belongs to fold f; 2 same + 2 different pairs."""
    rows = []
    for fold in range(1, n_folds + 1):
        names = [f"p{fold}_{i}" for i in range(people_per_fold)]
        rows += [(names[0], 1, names[0], 2, 1, fold), (names[1], 1, names[1], 2, 1, fold),
                 (names[0], 1, names[1], 1, 0, fold), (names[1], 2, names[2], 1, 0, fold)]
    frame = pd.DataFrame(rows, columns=["name_a", "index_a", "name_b", "index_b", "label", "fold"])
    frame["path_a"] = frame["name_a"]
    frame["path_b"] = frame["name_b"]
    return frame[pairs.PAIR_COLUMNS]


@pytest.mark.parametrize("fold, val_fold", [(1, 2), (3, 4), (4, 1)])
def test_each_experiment_tests_on_its_fold_validates_on_the_next_trains_on_the_rest(fold, val_fold):
    frame = _fold_frame()
    train, val, test = view2_experiment(frame, fold)
    assert set(test["fold"]) == {fold}
    assert set(val["fold"]) == {val_fold}
    assert set(train["fold"]) == {1, 2, 3, 4} - {fold, val_fold}
    assert len(train) + len(val) + len(test) == len(frame)
    assert not pairs.pair_people(test) & (pairs.pair_people(train) | pairs.pair_people(val))


def test_fold_config_puts_the_fold_in_the_key_and_the_name():
    base = RunConfig("all_pairs")
    one, two = view2.fold_config(base, 1), view2.fold_config(base, 2)
    assert (one.data.view2_fold, two.data.view2_fold) == (1, 2)
    assert len({base.key(), one.key(), two.key()}) == 3
    assert one.name == "all_pairs-view2-fold01"
    assert one.model == base.model and one.train == base.train


@pytest.mark.parametrize("changes, message", [
    ({"view2_fold": 0}, "or 1-10.*got 0"),
    ({"view2_fold": 11}, "or 1-10.*got 11"),
    ({"view2_fold": 1, "source": "/some/faces"}, "with source='lfw-a'.*source is '/some/faces'"),
])
def test_a_bad_view2_fold_is_one_clear_error(changes, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**changes)


def test_mean_se_is_lfws_formula():
    accuracies = [0.80, 0.82, 0.78, 0.84, 0.76, 0.80, 0.82, 0.78, 0.81, 0.79]
    mean, se = view2.mean_se(accuracies)
    by_hand = np.sqrt(sum((a - 0.80) ** 2 for a in accuracies) / 9) / np.sqrt(10)
    assert mean == pytest.approx(0.80)
    assert se == pytest.approx(by_hand)
    assert se == pytest.approx(0.00745356, abs=1e-8)  # sqrt(0.005 / 9) / sqrt(10)


def _run(fold: int, val_scores, test_scores, labels=(1, 1, 0, 0)) -> Run:
    """A finished run as train() would return it, without a network; pair i is of person
    f<fold>p<i> (and a second person for a different pair), so no two pairs share anyone."""
    people = [f"f{fold}p{i}" for i in range(len(labels))]
    pair_paths = {"path_a": [f"a{i}" for i in range(len(labels))],
                  "path_b": [f"b{i}" for i in range(len(labels))], "name_a": people,
                  "name_b": [p if same else f"{p}x" for p, same in zip(people, labels)]}
    scores = pd.concat([
        pd.DataFrame({"label": labels, "score": val_scores, "split": "val", **pair_paths}),
        pd.DataFrame({"label": labels, "score": test_scores, "split": "test", **pair_paths}),
    ], ignore_index=True)
    config = view2.fold_config(RunConfig("koch"), fold)
    info = {"epochs_run": 3, "best_epoch": 2, "wall_time_s": 60.0 * fold}
    return Run(config, Path("."), None, pd.DataFrame(), scores, info)


def test_fold_table_decides_each_test_fold_at_its_validation_threshold():
    # Validation separates at 0.5; fold 1's test is then 3 of 4 right, fold 2's 4 of 4.
    runs = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.45, 0.2, 0.1]),
            _run(2, [0.9, 0.6, 0.4, 0.1], [0.8, 0.7, 0.3, 0.2])]
    table = view2.fold_table(runs)
    assert table.index.tolist() == [1, 2]
    assert table["threshold"].tolist() == pytest.approx([0.5, 0.5])
    assert table["accuracy"].tolist() == [0.75, 1.0]
    assert table["auc"].tolist() == [1.0, 1.0]
    assert table["train_s"].tolist() == [60.0, 120.0]


def _noisy_runs(folds=(1, 2, 3), n: int = 300, shift: float = 1.0, seed: int = 0):
    """Runs whose val and test scores are the label times ``shift`` plus standard normal noise,
    ``n`` pairs a fold, half of them same-person."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], n // 2)
    return [_run(fold, rng.normal(size=n) + shift * labels, rng.normal(size=n) + shift * labels,
                 labels) for fold in folds]


def test_report_gives_mean_se_the_category_and_the_validation_fitted_tar():
    runs = _noisy_runs()
    row = view2.report("koch", runs)
    accuracies = view2.fold_table(runs)["accuracy"]
    assert row["accuracy"] == pytest.approx(accuracies.mean())
    assert row["se"] == pytest.approx(accuracies.std(ddof=1) / np.sqrt(3))
    assert (row["method"], row["category"]) == ("koch (this workbook)",
                                                "Image-Restricted, Label-Free Outside Data")
    points = view2.operating_points(view2.fold_scores(runs), 0.01)
    assert row["tar_at_far_1pct"] == pytest.approx(points["TAR"].mean())
    assert row["train_minutes"] == pytest.approx(6.0)


def test_the_operating_point_is_fitted_on_validation_and_counted_on_test():
    # Validation: impostor scores 0..299 (each once), genuine scores 1000: the FAR-1% threshold
    # lets in at most 3 impostors (297, 298, 299), so it sits above 296. Test: impostors
    # 290..589 and genuines 0..299: 293 impostors (297..589) pass, and 3 genuines.
    val_labels = np.r_[np.ones(300), np.zeros(300)].astype(int)
    val = np.r_[np.full(300, 1000.0), np.arange(300.0)]
    test = np.r_[np.arange(300.0), np.arange(290.0, 590.0)]
    run = _run(1, val, test, val_labels)
    table = view2.operating_points(view2.fold_scores([run]), 0.01)
    assert 296 < table.loc[1, "threshold"] <= 297
    assert table.loc[1, "FAR"] == pytest.approx(293 / 300)  # far off the target: shown, honest
    assert table.loc[1, "TAR"] == pytest.approx(3 / 300)
    assert table.loc[1, "validation impostors"] == 300
    rare = view2.operating_points(view2.fold_scores([run]), 0.001)  # 300 cannot show 0.1 %
    assert not rare.loc[1, "estimable"] and np.isnan(rare.loc[1, "TAR"])
    assert "not estimable at FAR 0.1%" in view2.at_far(view2.fold_scores([run]), 0.001)


def test_on_known_distributions_the_fitted_operating_point_lands_near_its_target():
    runs = _noisy_runs(folds=range(1, 11), n=2000, shift=2.0, seed=3)
    table = view2.operating_points(view2.fold_scores(runs), 0.01)
    # Normal scores: the threshold for FAR 1% is z = 2.326; TAR = P(N(2, 1) > 2.326) = 0.372.
    assert table["FAR"].mean() == pytest.approx(0.01, abs=0.004)
    assert table["TAR"].mean() == pytest.approx(0.372, abs=0.04)


def test_fold_paired_tests_respect_folds_and_people():
    # Fold 1: a gets 4 of 4, b 3 of 4 (its test pair 2 scores 0.45 < 0.5); fold 2: both 4 of 4.
    a = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.8, 0.2, 0.1]),
         _run(2, [0.9, 0.6, 0.4, 0.1], [0.8, 0.7, 0.3, 0.2])]
    b = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.45, 0.2, 0.1]),
         _run(2, [0.9, 0.6, 0.4, 0.1], [0.8, 0.7, 0.3, 0.2])]
    with pytest.warns(UserWarning, match="fewer than the 20 a cluster bootstrap needs"):
        result = view2.fold_paired(view2.fold_scores(a), view2.fold_scores(b), n_boot=200)
    assert result["fold difference (mean)"] == pytest.approx(0.125)
    assert result["fold difference (SE)"] == pytest.approx(np.std([0.25, 0.0], ddof=1) / np.sqrt(2))
    assert (result["folds a better"], result["folds b better"]) == (1, 0)
    assert result["pooled difference"] == pytest.approx(1 / 8)
    other = view2.fold_scores(b)
    other[1] = other[1].assign(path_a="elsewhere")
    with pytest.raises(ValueError, match="fold 1: the methods scored other test pairs"):
        view2.fold_paired(view2.fold_scores(a), other)


def test_a_method_that_rejects_every_pair_is_compared_at_its_infinite_threshold():
    # b's validation scores are best rejected outright: its threshold is +inf, 2 of 4 right.
    a = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.8, 0.2, 0.1])]
    b = [_run(1, [0.1, 0.2, 0.8, 0.9], [0.1, 0.2, 0.8, 0.9])]
    assert metrics.threshold_for_max_accuracy([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == np.inf
    with pytest.warns(UserWarning, match="fewer than the 20 a cluster bootstrap needs"):
        result = view2.fold_paired(view2.fold_scores(a), view2.fold_scores(b), n_boot=200)
    assert result["fold difference (mean)"] == pytest.approx(0.5)


def test_a_clearly_better_method_is_measured_and_noise_is_not():
    better = view2.fold_scores(_noisy_runs(range(1, 11), shift=2.0, seed=1))
    worse = {fold: frame.assign(score=frame["score"] * 0.2
                                + np.random.default_rng(0).normal(size=len(frame)))
             for fold, frame in better.items()}
    result = view2.fold_paired(better, worse, n_boot=400)
    assert result["folds a better"] >= 9 and result["reading"] == "a better"
    assert result["p (people resampled)"] == "≤ 0.005"  # no resample on the far side: the floor
    same = view2.fold_paired(better, better, n_boot=400)
    assert same["reading"] == "no measured difference" and same["pooled difference"] == 0


def test_the_cluster_bootstrap_widens_when_pairs_share_people():
    rng = np.random.default_rng(0)
    labels = np.tile([1, 0], 200)

    def margins(correct):  # decided pairs as scores over a threshold of 0: >= 0 is accepted
        return np.where(correct, 1.0, -1.0) * np.where(labels == 1, 1.0, -1.0)

    correct_a, correct_b = rng.random(400) < 0.8, rng.random(400) < 0.75
    alone = stats.paired_difference(labels, margins(correct_a), margins(correct_b),
                                    np.arange(400), n_boot=500, metric="accuracy", threshold=0.0)
    assert alone.estimate == pytest.approx(correct_a.mean() - correct_b.mean())
    # 400 pairs in 20 clusters of 20 whose pairs are all right or all wrong together.
    clusters = np.repeat(np.arange(20), 20)
    tied_a, tied_b = margins(correct_a[clusters * 20]), margins(correct_b[clusters * 20])
    shared = stats.paired_difference(labels, tied_a, tied_b, clusters, n_boot=500,
                                     metric="accuracy", threshold=0.0)
    assert (shared.high - shared.low) > 2 * (alone.high - alone.low)


@pytest.mark.parametrize("difference, se, equivalent", [
    (0.000, 0.002, True),  # tight, centred: inside ±0.01
    (0.000, 0.008, False),  # centred but noisy: not shown equivalent
    (0.008, 0.002, False),  # tight but near the margin: the upper test fails
])
def test_tost_claims_equivalence_only_inside_the_margin(difference, se, equivalent):
    # Two SEs of se / sqrt(2) make the difference's SE se.
    ours = {"method": "ours", "accuracy": 0.87 + difference, "se": se / np.sqrt(2)}
    row = pd.Series({"method": "them", "category": "c", "accuracy": 0.87, "se": se / np.sqrt(2)})
    assert (": equivalent within ±0.010" in claim(ours, row, 0.01)) == equivalent


def test_claims_are_computed_from_the_numbers():
    ours = {"method": "ours", "accuracy": 0.8725, "se": 0.0061}
    row = pd.Series({"method": "them", "category": "c", "accuracy": 0.8950, "se": 0.0051})
    assert "lower by 0.0225" in claim(ours, row)
    level = row.copy()
    level["accuracy"], level["se"] = 0.8733, 0.0055
    assert "no measured difference" in claim(ours, level)
    assert "not shown equivalent" in claim(ours, level)
    tight = {"method": "ours", "accuracy": 0.8735, "se": 0.001}
    level["se"] = 0.001
    assert "equivalent within ±0.010" in claim(tight, level)


def test_averaged_roc_averages_each_folds_tar_at_equal_far():
    perfect = _run(1, [0.9, 0.8, 0.2, 0.1], [0.9, 0.8, 0.2, 0.1])
    # Test scores 0.9 (same), 0.8 (different), 0.7 (same), 0.1 (different): at FAR < 0.5 only
    # the first same pair is accepted, TAR 0.5.
    mixed = _run(2, [0.9, 0.8, 0.2, 0.1], [0.9, 0.7, 0.8, 0.1])
    scores = view2.fold_scores([perfect, mixed])
    curve = averaged_roc(scores, far_grid=[0.0, 0.25, 0.5, 1.0])
    assert curve["tar"].tolist() == pytest.approx([0.75, 0.75, 1.0, 1.0])
    assert curve["tar_se"].iloc[0] == pytest.approx(np.std([1.0, 0.5], ddof=1) / np.sqrt(2))
    # By default the curve starts where each fold has one impostor to support it: 1/2 here.
    assert averaged_roc(scores)["far"].min() == pytest.approx(0.5)


def test_setting_is_lfws_name_for_what_training_learned_from():
    assert view2.setting(profiles.PROFILES["cpu"].koch) == "image-restricted"
    assert view2.setting(profiles.PROFILES["cpu"].all_pairs) == "unrestricted"
    assert view2.setting(RunConfig("x", train=TrainConfig(sampling="unrestricted"))) == \
        "unrestricted"


def test_published_rows_are_lfws_as_issue_24_checked_them():
    table = view2.published().set_index(["category", "method"])
    label_free = "Unrestricted, Label-Free Outside Data"
    for category, method, accuracy, se in [
        (label_free, "Combined multishot, aligned", 0.8950, 0.0051),
        (label_free, "combined PLDA, funneled & aligned", 0.9007, 0.0051),
        (label_free, "ConvNet-RBM", 0.9175, 0.0048),
        (label_free, "high-dim LBP", 0.9318, 0.0107),
        (label_free, "MDML-DCPs", 0.9558, 0.0034),
        (label_free, "LDML-MkNN, funneled", 0.8750, 0.0040),
        (label_free, "LBP PLDA, aligned", 0.8733, 0.0055),
        ("Image-Restricted, Label-Free Outside Data",
         "Combined b/g samples based methods, aligned", 0.8683, 0.0034),
        ("Image-Restricted, No Outside Data", "V1-like/MKL, funneled", 0.7935, 0.0055),
    ]:
        assert tuple(table.loc[(category, method)]) == (accuracy, se), method
    assert table.groupby(level="category").size().to_dict() == {
        "Image-Restricted, No Outside Data": 15, "Image-Restricted, Label-Free Outside Data": 28,
        label_free: 21, "Unrestricted, Labeled Outside Data": 80}


def test_the_comparison_ranks_the_workbook_within_its_own_category():
    ours = {"method": "all_pairs (this workbook)", "accuracy": 0.8725, "se": 0.0061,
            "category": "Unrestricted, Label-Free Outside Data", "folds": 10}
    table = view2.comparison(ours)
    assert set(table["category"]) == {"Unrestricted, Label-Free Outside Data"}
    assert table["accuracy"].is_monotonic_decreasing
    mine = table[table["method"] == ours["method"]].iloc[0]
    assert mine["rank in category"] == 20  # below LDML-MkNN's 0.8750 and LBP PLDA's 0.8733
    assert 'category "Unrestricted, Label-Free Outside Data": rank 20 of 22' in \
        view2.headline(ours)


def test_every_declared_look_is_complete_and_the_current_runs_are_declared():
    looks = view2.looks()
    assert looks["date"].is_monotonic_increasing
    ran = looks[looks["accuracy"].notna()]
    assert ran["se"].notna().all()
    declared = looks[looks["declared_before_run"]]
    assert declared["run_keys"].map(len).eq(10).all()  # the ten experiments' keys
    cpu = profiles.PROFILES["cpu"]
    for model in view2.MODELS:  # the named models' View 2 runs today are a declared look
        look = view2.declared_look(cpu.view2_runs(model), "float32")
        assert look is not None, f"declare {model}'s View 2 runs before running them"
        assert looks.loc[look, "model"] == model and looks.loc[look, "profile"] == "cpu"
    assert view2.declared_look(profiles.PROFILES["smoke"].view2_runs("all_pairs"), "float32") \
        is None


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_profile_benchmarks_both_models_on_distinct_folds(name):
    profile = profiles.PROFILES[name]
    for model in view2.MODELS:
        configs = profile.view2_runs(model)
        assert len(configs) == profile.view2_folds
        assert [c.data.view2_fold for c in configs] == list(range(1, profile.view2_folds + 1))
        base = getattr(profile, model)
        assert all(c.model == base.model and c.data.preprocess == base.data.preprocess
                   for c in configs)
        assert configs[0].train.sampling == base.train.sampling
    assert profiles.PROFILES["smoke"].view2_folds == 2
    assert profiles.PROFILES["cpu"].view2_folds == profiles.PROFILES["gpu"].view2_folds == 10


# --- the real pairs.txt -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_view2(lfw_dataset) -> pd.DataFrame:
    return pairs.read_view2(lfw_dataset / "pairs.txt", lfw_dataset / "images")


@pytest.mark.integration
def test_real_view2_has_ten_person_disjoint_folds_of_300_and_300(real_view2):
    counts = real_view2.groupby(["fold", "label"]).size()
    assert counts.tolist() == [300] * 20
    people = [len(p) for p in pairs.fold_people(real_view2).values()]
    assert people == [435, 409, 397, 423, 422, 419, 443, 443, 439, 451]
    assert sum(people) == len(pairs.pair_people(real_view2)) == 4_281


@pytest.mark.integration
@pytest.mark.parametrize("fold", range(1, 11))
def test_no_person_of_the_test_fold_is_in_its_training_or_validation_pairs(fold, real_view2):
    train, val, test = view2_experiment(real_view2, fold)
    test_people = pairs.fold_people(real_view2)[fold]
    assert pairs.pair_people(test) == test_people
    assert (len(train), len(val), len(test)) == (4800, 600, 600)
    assert not pairs.pair_people(train) & test_people
    assert not pairs.pair_people(val) & test_people


@pytest.mark.integration
@pytest.mark.parametrize("fold", [1, 10])  # 10: validation wraps round to fold 1
def test_no_person_of_the_test_fold_reaches_training_validation_or_threshold(fold, real_view2):
    splits = load_splits(DataConfig(view2_fold=fold), progress=False)
    test_people = pairs.fold_people(real_view2)[fold]
    assert pairs.pair_people(splits.test) == test_people
    assert set(splits.val["fold"]) == {fold % 10 + 1}
    # Training: the given pairs (image-restricted) and the people whose photos the
    # unrestricted samplers draw from; validation: early stopping and the threshold.
    assert not pairs.pair_people(splits.train) & test_people
    assert not splits.train_people & test_people
    assert not pairs.pair_people(splits.val) & test_people
    # What the all_pairs model actually trains on: the photos of its identity batches.
    stream = identity_batch_dataset(splits.store, splits.train_people, 32, 4, seed=fold)
    drawn = {name for _, (_, rows) in stream.take(20) for name in splits.store.names[rows.numpy()]}
    assert len(drawn) > 400 and drawn <= splits.train_people  # 20 batches of 32 people


def test_chosen_models_reads_a_comma_separated_list_in_order_and_refuses_unknown_names():
    assert view2.chosen_models("koch,all_pairs") == ["koch", "all_pairs"]
    assert view2.chosen_models(" all_pairs ") == ["all_pairs"]
    assert view2.chosen_models("all_pairs,all_pairs,koch") == ["all_pairs", "koch"]
    for bad in ("", "kock", "koch,resnet"):
        with pytest.raises(ValueError, match="comma-separated list of koch, all_pairs"):
            view2.chosen_models(bad)
