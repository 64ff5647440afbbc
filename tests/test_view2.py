"""siamlib.view2 and the View 2 protocol: folds, the ten experiments, the report.

Unit tests use generated folds and hand-made runs; the integration tests read the real
``pairs.txt`` and check, for every experiment, that no person of the test fold reaches
training, validation or threshold fitting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siamlib import metrics, pairs, profiles, view2
from siamlib.pipeline import identity_batch_dataset
from siamlib.splits import DataConfig, load_splits, view2_experiment
from siamlib.training import Run, RunConfig, TrainConfig


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
    """A finished run as train() would return it, without a network."""
    pair_paths = {"path_a": [f"a{i}" for i in range(len(labels))],
                  "path_b": [f"b{i}" for i in range(len(labels))]}
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


def test_report_gives_mean_se_the_category_and_pooled_tar_with_its_impostors():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], 150)
    runs = [_run(fold, rng.random(300) + labels, rng.random(300) + labels * 0.8, labels)
            for fold in (1, 2, 3)]
    row = view2.report("koch", runs)
    accuracies = view2.fold_table(runs)["accuracy"]
    assert row["accuracy"] == pytest.approx(accuracies.mean())
    assert row["se"] == pytest.approx(accuracies.std(ddof=1) / np.sqrt(3))
    assert (row["method"], row["setting"]) == ("koch (this workbook)", "image-restricted")
    assert (row["folds"], row["impostor_pairs"]) == (3, 450)
    pooled = view2.pooled_scores(runs)
    # The pooled ROC's highest point at FAR <= 1% (450 impostors: 4 false accepts at most).
    curve = metrics.roc(pooled["label"], pooled["score"])
    assert row["tar_at_far_1pc"] == pytest.approx(curve.tar[curve.far <= 0.01].max())
    assert row["train_minutes"] == pytest.approx(6.0)


def test_paired_comparison_counts_the_pairs_the_models_disagree_on():
    # Fold 1: a gets 4 of 4, b 3 of 4 (its test pair 2 scores 0.45 < 0.5); fold 2: both 4 of 4.
    a = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.8, 0.2, 0.1]),
         _run(2, [0.9, 0.6, 0.4, 0.1], [0.8, 0.7, 0.3, 0.2])]
    b = [_run(1, [0.9, 0.6, 0.4, 0.1], [0.9, 0.45, 0.2, 0.1]),
         _run(2, [0.9, 0.6, 0.4, 0.1], [0.8, 0.7, 0.3, 0.2])]
    result = view2.paired_comparison(a, b)
    assert result["accuracy difference"] == pytest.approx(0.125)
    assert result["se"] == pytest.approx(np.std([0.25, 0.0], ddof=1) / np.sqrt(2))
    assert (result["folds a better"], result["a right, b wrong"], result["a wrong, b right"]) \
        == (1, 1, 0)
    assert result["McNemar p"] == pytest.approx(1.0)  # one discordant pair proves nothing


def test_averaged_roc_averages_each_folds_tar_at_equal_far():
    perfect = _run(1, [0.9, 0.8, 0.2, 0.1], [0.9, 0.8, 0.2, 0.1])
    # Test scores 0.9 (same), 0.8 (different), 0.7 (same), 0.1 (different): at FAR < 0.5 only
    # the first same pair is accepted, TAR 0.5.
    mixed = _run(2, [0.9, 0.8, 0.2, 0.1], [0.9, 0.7, 0.8, 0.1])
    curve = view2.averaged_roc([perfect, mixed], far_grid=[0.0, 0.25, 0.5, 1.0])
    assert curve["tar"].tolist() == pytest.approx([0.75, 0.75, 1.0, 1.0])
    assert curve["tar_se"].iloc[0] == pytest.approx(np.std([1.0, 0.5], ddof=1) / np.sqrt(2))


def test_setting_is_lfws_name_for_what_training_learned_from():
    assert view2.setting(profiles.PROFILES["cpu"].koch) == "image-restricted"
    assert view2.setting(profiles.PROFILES["cpu"].all_pairs) == "unrestricted"
    assert view2.setting(RunConfig("x", train=TrainConfig(sampling="unrestricted"))) == \
        "unrestricted"


def test_comparison_labels_every_row_with_its_category():
    row = {"method": "all_pairs (this workbook)", "accuracy": 0.8, "se": 0.01,
           "setting": "unrestricted", "outside data": "label-free outside data"}
    table = view2.comparison([row])
    assert len(table) == len(view2.PUBLISHED) + 1
    assert table["accuracy"].is_monotonic_increasing
    assert table[["setting", "outside data"]].notna().all().all()
    wolf = table[table["method"].str.contains("Wolf")].iloc[0]
    assert (wolf["accuracy"], wolf["se"]) == (0.8683, 0.0034)


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
