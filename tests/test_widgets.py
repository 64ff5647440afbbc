"""Tests for siamlib.widgets: the pair inspector, driven from Python as a notebook user would."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from siamlib import metrics
from siamlib.images import ImageStore
from siamlib.pairs import PAIR_COLUMNS
from siamlib.widgets import EMPTY_MESSAGE, PairInspector

# Twelve pairs: (name_a, index_a, name_b, index_b, label, score). At threshold 0.5
# (score >= 0.5 accepts): TP = 0, 1, 2, 5 (0.50 is on the threshold, so accepted);
# FN = 3, 4; FP = 6, 7; TN = 8, 9, 10, 11. No two scores are equally far from 0.5,
# so the "all" order below does not hang on floating-point ties.
PAIRS = [
    ("Ann_A", 1, "Ann_A", 2, 1, 0.97),
    ("Bob_B", 1, "Bob_B", 2, 1, 0.71),
    ("Cat_C", 1, "Cat_C", 2, 1, 0.56),
    ("Dan_D", 1, "Dan_D", 2, 1, 0.38),
    ("Eve_E", 1, "Eve_E", 2, 1, 0.09),
    ("Fay_F", 1, "Fay_F", 2, 1, 0.50),
    ("Ann_A", 3, "Bob_B", 3, 0, 0.84),
    ("Cat_C", 3, "Dan_D", 3, 0, 0.63),
    ("Eve_E", 3, "Fay_F", 3, 0, 0.47),
    ("Gus_G", 1, "Hal_H", 1, 0, 0.24),
    ("Ann_A", 1, "Hal_H", 2, 0, 0.02),
    ("Bob_B", 2, "Gus_G", 2, 0, 0.33),
]
COUNTS_AT_HALF = {"tp": 4, "fp": 2, "fn": 2, "tn": 4}
# Farthest from the threshold first: TP/FP highest score first, FN/TN lowest score first,
# "all" by |score - 0.5|: 10 (.48), 0 (.47), 4 (.41), 6 (.34), 9 (.26), 1 (.21), 11 (.17),
# 7 (.13), 3 (.12), 2 (.06), 8 (.03), 5 (0).
ORDER_AT_HALF = {
    "all": [10, 0, 4, 6, 9, 1, 11, 7, 3, 2, 8, 5],
    "TP": [0, 1, 2, 5],
    "FP": [6, 7],
    "FN": [4, 3],
    "TN": [10, 9, 11, 8],
}
FILTER_NAMES = {
    "all": "all",
    "TP": "true accepts (TP)",
    "FP": "false accepts (FP)",
    "FN": "false rejects (FN)",
    "TN": "true rejects (TN)",
}


def image_path(name: str, index: int) -> str:
    return f"lfw/{name}/{name}_{index:04d}.jpg"


@pytest.fixture
def fixture():
    """Pairs, scores, an ImageStore of random 16x16 images and the pixels of each path."""
    rows = [
        (a, i, b, j, image_path(a, i), image_path(b, j), label, 0) for a, i, b, j, label, _ in PAIRS
    ]
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    scores = np.array([score for *_, score in PAIRS])
    # Sorted, as ImageStore.load keeps them: store rows are not in pair order.
    paths = sorted(set(pairs["path_a"]) | set(pairs["path_b"]))
    pixels = np.random.default_rng(0).integers(0, 256, (len(paths), 16, 16), dtype=np.uint8)
    store = ImageStore(paths, pixels, truncated=[])
    truth = dict(zip(paths, pixels))
    return pairs, scores, store, truth


@pytest.fixture
def inspector(fixture):
    pairs, scores, store, _ = fixture
    return PairInspector(pairs, scores, store, threshold=0.5, title="test pairs")


def png(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def option_labels(inspector: PairInspector) -> dict[str, str]:
    return {value: label for label, value in inspector.filter.options}


def assert_shows(inspector: PairInspector, fixture, index: int) -> None:
    """The inspector's images and caption are those of pair ``index``."""
    pairs, _, _, truth = fixture
    pair = pairs.iloc[index]
    assert inspector.current_pair.name == index
    assert inspector.image_a.value == png(truth[pair["path_a"]])
    assert inspector.image_b.value == png(truth[pair["path_b"]])
    assert f"{pair['name_a']}</b> image {pair['index_a']}" in inspector.caption.value
    assert f"{pair['name_b']}</b> image {pair['index_b']}" in inspector.caption.value


# --- outcomes and counts ----------------------------------------------------------------------


def test_counts_at_threshold_half_by_hand(inspector):
    assert inspector.outcome_counts == COUNTS_AT_HALF
    assert "TP 4 · FP 2 · FN 2 · TN 4" in inspector.counts.value
    assert "accuracy 66.7%" in inspector.counts.value  # (4 + 4) / 12
    assert option_labels(inspector) == {
        "all": "all: 12",
        "TP": "true accepts (TP): 4",
        "FP": "false accepts (FP): 2",
        "FN": "false rejects (FN): 2",
        "TN": "true rejects (TN): 4",
    }


@pytest.mark.parametrize("kind", ["TP", "FP", "FN", "TN"])
def test_each_filter_shows_only_pairs_with_that_outcome(inspector, fixture, kind):
    pairs, scores, _, _ = fixture
    inspector.filter.value = kind
    expected = np.flatnonzero(metrics.outcome(pairs["label"], scores, 0.5) == kind)
    assert sorted(inspector.visible_indices) == expected.tolist()
    assert inspector.current_pair["outcome"] == kind
    assert_shows(inspector, fixture, inspector.visible_indices[0])


def test_all_filter_shows_every_pair(inspector):
    assert inspector.filter.value == "all"
    assert sorted(inspector.visible_indices) == list(range(len(PAIRS)))


@pytest.mark.parametrize("kind", list(ORDER_AT_HALF))
def test_pairs_are_shown_farthest_from_threshold_first(inspector, kind):
    inspector.filter.value = kind
    assert inspector.visible_indices.tolist() == ORDER_AT_HALF[kind]


def test_caption_gives_label_score_and_coloured_outcome(inspector):
    inspector.filter.value = "FP"  # first: pair 6, different people scored 0.84
    caption = inspector.caption.value
    assert "different people" in caption and "score 0.840" in caption
    assert "false accept (FP), error" in caption and "#c62828" in caption
    inspector.filter.value = "TP"  # first: pair 0, the same person scored 0.97
    caption = inspector.caption.value
    assert "same person" in caption and "score 0.970" in caption
    assert "true accept (TP), correct" in caption and "#2e7d32" in caption


def test_current_pair_carries_score_and_outcome(inspector, fixture):
    pairs, scores, _, _ = fixture
    inspector.filter.value = "FN"
    pair = inspector.current_pair
    assert pair.name == 4
    assert pair[PAIR_COLUMNS].tolist() == pairs.iloc[4].tolist()
    assert pair["score"] == scores[4] and pair["outcome"] == "FN"


# --- the threshold ----------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.02, 0.3, 0.355, 0.5, 0.6, 0.9, 0.97])
def test_threshold_updates_counts_and_option_labels(inspector, fixture, threshold):
    pairs, scores, _, _ = fixture
    inspector.filter.value = "FP"
    inspector.threshold.value = threshold
    outcomes = metrics.outcome(pairs["label"], scores, threshold)
    expected = {kind: int(np.sum(outcomes == kind.upper())) for kind in ("tp", "fp", "fn", "tn")}
    assert inspector.outcome_counts == expected
    assert option_labels(inspector) == {
        key: f"{name}: {len(PAIRS) if key == 'all' else expected[key.lower()]}"
        for key, name in FILTER_NAMES.items()
    }
    assert f"at threshold {threshold:.3f}" in inspector.counts.value
    assert f"TP {expected['tp']} · FP {expected['fp']}" in inspector.counts.value
    # Relabelling the options must not lose the chosen filter.
    assert inspector.filter.value == "FP"
    assert sorted(inspector.visible_indices) == np.flatnonzero(outcomes == "FP").tolist()


def test_threshold_keeps_the_current_pair_while_it_stays_in_the_filter(inspector, fixture):
    inspector.filter.value = "FP"
    inspector.next_button.click()
    assert inspector.current_pair.name == 7  # different people, 0.63
    inspector.threshold.value = 0.6  # 0.63 is still a false accept
    assert inspector.current_pair.name == 7 and inspector.position.value == 1
    assert "at threshold 0.600" in inspector.caption.value
    inspector.threshold.value = 0.7  # now a true reject: it leaves the filter
    assert inspector.visible_indices.tolist() == [6]
    assert inspector.position.value == 0
    assert_shows(inspector, fixture, 6)


def test_threshold_moves_the_current_pair_to_its_new_place_under_all(inspector):
    inspector.position.value = ORDER_AT_HALF["all"].index(5)  # pair 5, score 0.50: last
    # At 0.02 the order by |score - 0.02| is 0, 6, 1, 7, 2, 5, 8, 3, 11, 9, 4, 10.
    inspector.threshold.value = 0.02
    assert inspector.current_pair.name == 5
    assert inspector.position.value == 5
    assert inspector.current_pair["outcome"] == "TP"


def test_threshold_outside_the_scores_widens_the_slider(fixture):
    pairs, scores, store, _ = fixture
    inspector = PairInspector(pairs, scores, store, threshold=1.5)
    assert inspector.threshold.value == 1.5 and inspector.threshold.max == 1.5
    assert inspector.threshold.min == scores.min()
    assert inspector.outcome_counts == {"tp": 0, "fp": 0, "fn": 6, "tn": 6}


def test_slider_spans_the_scores_with_a_round_step(inspector, fixture):
    _, scores, _, _ = fixture
    assert (inspector.threshold.min, inspector.threshold.max) == (scores.min(), scores.max())
    assert inspector.threshold.step == 0.001  # span 0.95: at least 200 stops
    assert inspector.threshold.readout_format == ".3f"


# --- navigation -------------------------------------------------------------------------------


def test_buttons_and_slider_move_through_the_filter(inspector, fixture):
    inspector.filter.value = "TN"  # order 10, 9, 11, 8
    assert_shows(inspector, fixture, 10)
    assert inspector.position_label.value == "1 of 4"
    assert inspector.prev_button.disabled and not inspector.next_button.disabled
    inspector.next_button.click()
    assert_shows(inspector, fixture, 9)
    assert inspector.position_label.value == "2 of 4"
    inspector.position.value = 3
    assert_shows(inspector, fixture, 8)
    assert inspector.position_label.value == "4 of 4"
    assert inspector.next_button.disabled and not inspector.prev_button.disabled
    inspector.prev_button.click()
    assert_shows(inspector, fixture, 11)
    inspector.position.value = 0
    assert_shows(inspector, fixture, 10)


def test_next_on_the_last_pair_and_prev_on_the_first_stay_put(inspector, fixture):
    inspector.filter.value = "FN"  # order 4, 3
    inspector.prev_button.click()
    assert_shows(inspector, fixture, 4)
    inspector.next_button.click()
    inspector.next_button.click()
    assert_shows(inspector, fixture, 3)
    assert inspector.position.value == 1


def test_changing_filter_starts_at_its_first_pair(inspector, fixture):
    inspector.filter.value = "TP"
    inspector.next_button.click()
    inspector.next_button.click()
    inspector.filter.value = "TN"
    assert inspector.position.value == 0
    assert_shows(inspector, fixture, 10)


def test_empty_filter_shows_a_message(inspector, fixture):
    assert inspector.image_a.layout.visibility == "visible"
    inspector.threshold.value = 0.02  # everything is accepted: no rejects at all
    inspector.filter.value = "FN"
    assert inspector.visible_indices.tolist() == []
    assert inspector.current_pair is None
    assert EMPTY_MESSAGE in inspector.caption.value
    assert inspector.image_a.value == b"" and inspector.image_b.value == b""
    assert inspector.image_a.layout.visibility == inspector.image_b.layout.visibility == "hidden"
    assert inspector.position_label.value == "0 of 0"
    assert inspector.position.disabled
    assert inspector.prev_button.disabled and inspector.next_button.disabled
    inspector.next_button.click()  # nothing to move to, and nothing fails
    assert inspector.current_pair is None
    inspector.threshold.value = 0.5  # the false rejects are back
    assert not inspector.position.disabled
    assert_shows(inspector, fixture, 4)


# --- display and inputs -----------------------------------------------------------------------


def test_notebook_display_is_the_widget_with_a_readable_text_fallback(inspector):
    bundle = inspector._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == inspector.widget.model_id
    assert bundle["text/plain"] == (
        "PairInspector: test pairs: 12 pairs, at threshold 0.500: "
        "TP 4 · FP 2 · FN 2 · TN 4 · accuracy 66.7%"
    )
    assert "test pairs" in inspector.widget.children[0].value


def break_pairs(pairs, scores, store, what):
    if what == "short scores":
        return pairs, scores[:-1], store, 0.5
    if what == "missing column":
        return pairs.drop(columns="path_b"), scores, store, 0.5
    if what == "image not in store":
        return pairs.assign(path_a="lfw/Nobody/Nobody_0001.jpg"), scores, store, 0.5
    if what == "one image of path_b not in store":
        path_b = pairs["path_b"].where(pairs.index != 7, "lfw/Nobody/Nobody_0002.jpg")
        return pairs.assign(path_b=path_b), scores, store, 0.5
    if what == "missing image path":
        return pairs.assign(path_a=pairs["path_a"].where(pairs.index != 2)), scores, store, 0.5
    if what == "bad label":
        return pairs.assign(label=2), scores, store, 0.5
    if what == "NaN score":
        return pairs, np.where(np.arange(len(scores)) == 3, np.nan, scores), store, 0.5
    if what == "text scores":
        return pairs, ["high"] * len(scores), store, 0.5
    if what == "NaN threshold":
        return pairs, scores, store, float("nan")
    if what == "infinite threshold":
        return pairs, scores, store, float("inf")
    if what == "no threshold":
        return pairs, scores, store, None
    if what == "text threshold":
        return pairs, scores, store, "half"
    if what == "no pairs":
        return pairs.iloc[:0], scores[:0], store, 0.5
    if what == "no pairs, scores of another set":
        return pairs.iloc[:0], scores, store, 0.5
    if what == "empty table":
        return pd.DataFrame(), [], store, 0.5
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what, message",
    [
        ("short scores", r"same length, got shapes \(12,\) and \(11,\)"),
        ("missing column", r"lack the column\(s\) \['path_b'\]"),
        ("image not in store", "Nobody_0001.jpg is not in this ImageStore; build"),
        ("one image of path_b not in store", "Nobody_0002.jpg is not in this ImageStore"),
        ("missing image path", "nan is not in this ImageStore"),
        ("bad label", "labels must be 1 .same person. or 0"),
        ("NaN score", r"scores contain 1 NaN and 0 infinite value\(s\)"),
        ("text scores", "scores contain 12 NaN"),
        ("NaN threshold", "threshold must be a finite number, got nan"),
        ("infinite threshold", "operating_point gives .inf"),
        ("no threshold", "threshold must be a finite number, got None"),
        ("text threshold", "threshold must be a finite number, got 'half'"),
        ("no pairs", "must be non-empty"),
        ("no pairs, scores of another set", "must be non-empty"),
        ("empty table", r"lack the column\(s\)"),
    ],
)
def test_invalid_inputs_raise_value_error(fixture, what, message):
    pairs, scores, store, _ = fixture
    with pytest.raises(ValueError, match=message):
        PairInspector(*break_pairs(pairs, scores, store, what))
