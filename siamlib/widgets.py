"""An interactive pair inspector: look at the faces behind the numbers, one outcome at a time.

Accuracy says how many pairs a network gets wrong, not which or why. ``PairInspector`` shows the
two images of each pair with its label, score and outcome, filtered to one outcome (say, false
accepts), with a threshold slider that moves pairs between outcomes as it moves.

Within a filter, pairs are shown farthest from the threshold first: the decisions the network
was surest of. For false accepts and true accepts that is the highest score first, for false
rejects and true rejects the lowest score first, and under "all" it is ``|score - threshold|``,
largest first; ties keep the order of ``pairs``. The confident errors come first because they
are the instructive ones: a pair just across the threshold is a coin toss, a different-person
pair scored 0.98 says what the network has learnt to look at.

Everything is plain ipywidgets state, so it can be driven from Python (as the tests do) and
constructed without a browser, e.g. while papermill executes a notebook.
"""

from __future__ import annotations

import html
from contextlib import contextmanager

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd

from siamlib import SAME, metrics
from siamlib.images import ImageStore
from siamlib.pairs import PAIR_COLUMNS

ALL = "all"
OUTCOMES = ("TP", "FP", "FN", "TN")
FILTER_NAMES = {
    ALL: "all",
    "TP": "true accepts (TP)",
    "FP": "false accepts (FP)",
    "FN": "false rejects (FN)",
    "TN": "true rejects (TN)",
}
OUTCOME_NAMES = {
    "TP": "true accept",
    "FP": "false accept",
    "FN": "false reject",
    "TN": "true reject",
}
CORRECT_COLOUR, ERROR_COLOUR = "#2e7d32", "#c62828"
EMPTY_MESSAGE = "no pairs with this outcome at this threshold"
IMAGE_SIDE = "160px"  # a 105-pixel face is too small to judge on a laptop screen


class PairInspector:
    """Browse a scored pair set by outcome, at a threshold the student can move.

    Arguments:
        pairs: a pair set with ``PAIR_COLUMNS`` (label 1 = same person).
        scores: one score per row of ``pairs``, higher = more likely the same person.
        store: an ``ImageStore`` holding every image the pairs name.
        threshold: where to start; pairs with ``score >= threshold`` are accepted. A threshold
            outside the scores' range is allowed (one fitted on validation may be) and widens
            the slider to include it.
        title: shown above the inspector, e.g. which model and split the scores are from.

    The widgets are public attributes so that code can drive them: ``filter``, ``threshold``,
    ``position`` (0-based, within the current filter), ``prev_button``, ``next_button``,
    ``position_label`` ("k of n"), ``image_a``, ``image_b``, ``caption`` and ``counts``.
    ``prev``/``next`` stop at the ends of the filter (and are disabled there) rather than wrap,
    so reaching the end is noticeable.
    When the threshold moves the current pair stays on screen if it is still in the filter;
    otherwise the first pair of the filter is shown.
    """

    def __init__(
        self,
        pairs: pd.DataFrame,
        scores,
        store: ImageStore,
        threshold: float,
        title: str = "",
    ):
        scores = _checked_scores(pairs, scores)
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise ValueError(
                f"threshold must be a finite number, got {threshold} (threshold_at_far gives "
                "+inf when no threshold meets the FAR target: there is nothing to inspect)"
            )
        self._table = pairs.assign(score=scores)
        self._rows_a = _store_rows(store, pairs["path_a"])
        self._rows_b = _store_rows(store, pairs["path_b"])
        self._store = store
        self._title = title
        self._quiet = False

        low, high = min(scores.min(), threshold), max(scores.max(), threshold)
        self.threshold = widgets.FloatSlider(
            value=threshold,
            min=low,
            max=high,
            step=_slider_step(high - low),
            readout_format=".3f",
            description="threshold",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="480px"),
        )
        self._set_outcomes()
        self.filter = widgets.ToggleButtons(
            options=self._filter_options(), style={"button_width": "auto"}
        )
        self.counts = widgets.HTML(self._counts_text())
        self.prev_button = widgets.Button(description="◀ prev")
        self.next_button = widgets.Button(description="next ▶")
        self.position = widgets.IntSlider(min=0, max=0, readout=False, description="pair")
        self.position_label = widgets.Label()
        square = {"width": IMAGE_SIDE, "height": IMAGE_SIDE}
        self.image_a = widgets.Image(format="png", layout=widgets.Layout(**square))
        self.image_b = widgets.Image(format="png", layout=widgets.Layout(**square))
        self.caption = widgets.HTML()
        rows = [
            self.filter,
            self.threshold,
            self.counts,
            widgets.HBox([self.prev_button, self.position, self.next_button, self.position_label]),
            widgets.HBox([self.image_a, self.image_b]),
            self.caption,
        ]
        if title:
            rows.insert(0, widgets.HTML(f"<b>{html.escape(title)}</b>"))
        self.widget = widgets.VBox(rows)

        self.threshold.observe(self._on_threshold, names="value")
        self.filter.observe(self._on_filter, names="value")
        self.position.observe(self._on_position, names="value")
        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(+1))
        self._refilter(keep=None)

    # --- what the widget shows --------------------------------------------------------------

    @property
    def current_pair(self) -> pd.Series | None:
        """The pair on screen (its ``pairs`` row plus ``score`` and ``outcome``), or None when
        the filter is empty. The row's name is its index label in ``pairs``."""
        if not len(self._visible):
            return None
        return self._table.iloc[self._visible[self.position.value]]

    @property
    def visible_indices(self) -> np.ndarray:
        """Positions in ``pairs`` (for ``.iloc`` and ``scores``) of the filter's pairs, in the
        order they are shown."""
        return self._visible.copy()

    @property
    def outcome_counts(self) -> dict[str, int]:
        """``tp, fp, fn, tn`` at the current threshold, as ``metrics.confusion_at`` gives them."""
        return dict(self._counts)

    def _repr_mimebundle_(self, **kwargs):
        # Where no widget can be drawn (a static copy of an executed notebook) the counts are
        # printed instead of ipywidgets' repr of the container.
        bundle = self.widget._repr_mimebundle_(**kwargs)
        title = f"{self._title}: " if self._title else ""
        pairs = f"{len(self._table)} pairs"
        bundle["text/plain"] = f"PairInspector: {title}{pairs}, {self._counts_text()}"
        return bundle

    # --- reacting to the controls -----------------------------------------------------------

    def _on_threshold(self, _change) -> None:
        kept = self._visible[self.position.value] if len(self._visible) else None
        self._set_outcomes()
        self.counts.value = self._counts_text()
        with self._quietly():
            # Replacing the options resets the selection to the first one; put it back.
            chosen = self.filter.value
            self.filter.options = self._filter_options()
            self.filter.value = chosen
        self._refilter(keep=kept)

    def _on_filter(self, _change) -> None:
        if not self._quiet:
            self._refilter(keep=None)

    def _on_position(self, _change) -> None:
        if not self._quiet:
            self._show()

    def _step(self, delta: int) -> None:
        self.position.value = int(np.clip(self.position.value + delta, 0, self.position.max))

    @contextmanager
    def _quietly(self):
        """Change several controls as one step, without redrawing after each half-done change."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    # --- state ------------------------------------------------------------------------------

    def _set_outcomes(self) -> None:
        labels, scores, threshold = self._table["label"], self._table["score"], self._threshold
        self._table["outcome"] = metrics.outcome(labels, scores, threshold)
        self._counts = metrics.confusion_at(labels, scores, threshold)
        self._accuracy = metrics.accuracy_at(labels, scores, threshold)

    @property
    def _threshold(self) -> float:
        return float(self.threshold.value)

    def _refilter(self, keep: int | None) -> None:
        """Recompute the filter's pairs and their order, staying on pair ``keep`` if it is among
        them."""
        chosen = self.filter.value
        outcomes = self._table["outcome"].to_numpy()
        members = np.flatnonzero(outcomes == chosen) if chosen != ALL else np.arange(len(outcomes))
        distance = np.abs(self._table["score"].to_numpy()[members] - self._threshold)
        self._visible = members[np.argsort(-distance, kind="stable")]
        at = np.flatnonzero(self._visible == keep)
        with self._quietly():
            self.position.max = max(len(self._visible) - 1, 0)
            self.position.value = int(at[0]) if len(at) else 0
            self.position.disabled = not len(self._visible)
        self._show()

    def _show(self) -> None:
        total, at = len(self._visible), self.position.value
        self.position_label.value = f"{at + 1 if total else 0} of {total}"
        self.prev_button.disabled = not total or at == 0
        self.next_button.disabled = not total or at == total - 1
        pair = self.current_pair
        # An empty Image draws as a broken-image icon: hide the pair of frames instead.
        for image in (self.image_a, self.image_b):
            image.layout.visibility = "hidden" if pair is None else "visible"
        if pair is None:
            self.image_a.value = self.image_b.value = b""
            self.caption.value = f"<i>{EMPTY_MESSAGE}</i>"
            return
        row = self._visible[at]
        self.image_a.value = _png(self._store.pixels[self._rows_a[row]])
        self.image_b.value = _png(self._store.pixels[self._rows_b[row]])
        self.caption.value = self._caption_html(pair)

    # --- text -------------------------------------------------------------------------------

    def _filter_options(self) -> list[tuple[str, str]]:
        counts = {ALL: len(self._table)} | {kind: self._counts[kind.lower()] for kind in OUTCOMES}
        return [(f"{FILTER_NAMES[key]}: {counts[key]}", key) for key in (ALL, *OUTCOMES)]

    def _counts_text(self) -> str:
        counts = " · ".join(f"{kind} {self._counts[kind.lower()]}" for kind in OUTCOMES)
        return f"at threshold {self._threshold:.3f}: {counts} · accuracy {self._accuracy:.1%}"

    def _caption_html(self, pair: pd.Series) -> str:
        kind = pair["outcome"]
        correct = kind in ("TP", "TN")
        colour = CORRECT_COLOUR if correct else ERROR_COLOUR
        # The outcome is spelt out as well as coloured: red and green look alike to many.
        verdict = f"{OUTCOME_NAMES[kind]} ({kind}), {'correct' if correct else 'error'}"
        truth = "same person" if pair["label"] == SAME else "different people"
        return (
            f"<b>{html.escape(str(pair['name_a']))}</b> image {pair['index_a']}"
            f" &nbsp;|&nbsp; <b>{html.escape(str(pair['name_b']))}</b> image {pair['index_b']}"
            f"<br>{truth} · score {pair['score']:.3f} · "
            f'<b style="color:{colour}">{verdict}</b> at threshold {self._threshold:.3f}'
        )


def _checked_scores(pairs: pd.DataFrame, scores) -> np.ndarray:
    missing = [column for column in PAIR_COLUMNS if column not in pairs.columns]
    if missing:
        raise ValueError(f"pairs lack the column(s) {missing}; a pair set has {PAIR_COLUMNS}")
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(pairs),):
        raise ValueError(
            f"scores must hold one value per pair: {len(pairs)} pairs but scores of shape "
            f"{scores.shape}"
        )
    if not len(pairs):
        raise ValueError("no pairs given: there is nothing to inspect")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores contain {int((~np.isfinite(scores)).sum())} NaN/inf value(s)")
    return scores


def _store_rows(store: ImageStore, image_paths: pd.Series) -> np.ndarray:
    try:
        return store.rows(image_paths)
    except KeyError as missing:
        raise ValueError(
            f"{missing.args[0]}; build the ImageStore from the paths of these pairs"
        ) from None


def _slider_step(span: float) -> float:
    """A power of ten giving at least 200 stops across the scores, so readouts stay round."""
    if span <= 0:
        return 0.001
    return float(10 ** np.floor(np.log10(span / 200)))


def _png(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"cv2 could not encode an image of shape {pixels.shape} as PNG")
    return encoded.tobytes()
