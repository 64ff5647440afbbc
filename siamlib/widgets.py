"""An interactive pair inspector: the faces behind the numbers, one outcome at a time, farthest
from the threshold first (a different-person pair scored 0.98 says what the network has learnt).
Plain ipywidgets state, so Python can drive it and papermill build it without a browser.
"""

import html

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd

from siamlib import SAME, metrics
from siamlib.pairs import PAIR_COLUMNS

OUTCOME_NAMES = dict(TP="true accept", FP="false accept", FN="false reject", TN="true reject")
EMPTY_MESSAGE = "no pairs with this outcome at this threshold"


class PairInspector:
    """Code can drive the widgets and read ``current_pair`` (None when the filter is empty),
    ``visible_indices`` (``.iloc`` positions, in the order shown) and ``outcome_counts``."""

    def __init__(self, pairs: pd.DataFrame, scores, store, threshold, title: str = ""):
        # Bad input gets one error here, not a traceback from deep in a widget's callback.
        if missing := [column for column in PAIR_COLUMNS if column not in pairs.columns]:
            raise ValueError(f"pairs lack the column(s) {missing}; a pair set has {PAIR_COLUMNS}")
        scores = pd.to_numeric(np.ravel(scores), errors="coerce")  # text counts as NaN
        self._labels, self._scores = metrics.checked(pairs["label"], scores, both_classes=False)
        if not np.isfinite(number := pd.to_numeric(pd.Series([threshold]), errors="coerce")[0]):
            raise ValueError(f"threshold must be a finite number, got {threshold!r} "
                             "(operating_point gives +inf when no threshold meets its FAR target)")
        try:
            self._faces = [store.pixels[store.rows(pairs[f"path_{side}"])] for side in "ab"]
        except KeyError as missing:
            raise ValueError(f"{missing.args[0]}; build it from these pairs' paths") from None
        self._table, self._title = pairs.assign(score=self._scores), f"{title}: " * bool(title)
        low, high = min(self._scores.min(), number), max(self._scores.max(), number)
        # A power of ten giving at least 200 stops across the scores, so readouts stay round.
        step = 10 ** np.floor(np.log10((high - low) / 200)) if high > low else 0.001
        self.threshold = widgets.FloatSlider(
            number, min=low, max=high, step=step, readout_format=".3f", description="threshold",
            style={"description_width": "initial"}, layout={"width": "480px"})
        self.filter = widgets.ToggleButtons(style={"button_width": "auto"})
        self.counts, self.caption = widgets.HTML(), widgets.HTML()
        self.prev_button = widgets.Button(description="◀ prev")
        self.next_button = widgets.Button(description="next ▶")
        position = self.position = widgets.IntSlider(max=0, readout=False, description="pair")
        self.position_label = widgets.Label()
        # A 105-pixel face is too small to judge at its own size.
        self.image_a, self.image_b = (widgets.Image(format="png", layout={
            "width": "160px", "height": "160px"}) for _ in "ab")
        self.widget = widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>")] * bool(title) + [
            self.filter, self.threshold, self.counts,
            widgets.HBox([self.prev_button, position, self.next_button, self.position_label]),
            widgets.HBox([self.image_a, self.image_b]), self.caption])
        for control in (self.threshold, self.filter, position):
            control.observe(self._refresh, names="value")
        # The slider clamps at its ends: prev/next stop there.
        self.prev_button.on_click(lambda _: setattr(position, "value", position.value - 1))
        self.next_button.on_click(lambda _: setattr(position, "value", position.value + 1))
        self._row, self._busy = -1, False  # the pair on screen, as a position in ``pairs``
        self._refresh()

    def _repr_mimebundle_(self, **kwargs):
        # Where no widget can be drawn (a static copy of an executed notebook): the counts.
        text = f"PairInspector: {self._title}{len(self._table)} pairs, {self.counts.value}"
        return self.widget._repr_mimebundle_(**kwargs) | {"text/plain": text}

    def _refresh(self, change=None) -> None:
        """Everything after any control moved, as one step."""
        if self._busy:
            return  # an echo of a change made below (new filter labels reset the filter)
        self._busy, moved = True, change and change["owner"]
        threshold, chosen = self.threshold.value, self.filter.value or "all"
        outcomes = self._table["outcome"] = metrics.outcome(self._labels, self._scores, threshold)
        tally = {kind: int(np.sum(outcomes == kind)) for kind in OUTCOME_NAMES}
        self.outcome_counts = {kind.lower(): n for kind, n in tally.items()}
        self.filter.options = [(f"all: {len(outcomes)}", "all")] + [
            (f"{OUTCOME_NAMES[kind]}s ({kind}): {n}", kind) for kind, n in tally.items()]
        self.filter.value = chosen
        order = np.argsort(-abs(self._scores - threshold), kind="stable")  # farthest first
        self.visible_indices = order[(outcomes[order] == chosen) | (chosen == "all")]
        total, shown = len(self.visible_indices), self.visible_indices.tolist()
        self.position.max = max(total - 1, 0)
        self.position.disabled = not total
        if moved is not self.position:  # a new filter starts at its first pair; a new threshold
            keep = moved is self.threshold and self._row in shown  # keeps the one on screen
            self.position.value = shown.index(self._row) if keep else 0
        counts = " · ".join(f"{kind} {n}" for kind, n in tally.items())
        self.counts.value = (f"at threshold {threshold:.3f}: {counts} · accuracy "
                             f"{(tally['TP'] + tally['TN']) / len(outcomes):.1%}")
        self._busy = False
        at = self.position.value
        self._row = self.visible_indices[at] if total else -1
        self.current_pair = pair = self._table.iloc[self._row] if total else None
        self.position_label.value = f"{min(at + 1, total)} of {total}"
        self.prev_button.disabled, self.next_button.disabled = at == 0, at >= total - 1
        for image, faces in zip((self.image_a, self.image_b), self._faces):
            # An empty Image draws as a broken-image icon: hide the frames instead.
            image.layout.visibility = "visible" if total else "hidden"
            image.value = cv2.imencode(".png", faces[self._row])[1].tobytes() if total else b""
        if not total:
            self.caption.value = f"<i>{EMPTY_MESSAGE}</i>"
            return
        kind = pair["outcome"]
        verdict, colour = ("correct", "#2e7d32") if kind in ("TP", "TN") else ("error", "#c62828")
        people = " &nbsp;|&nbsp; ".join(f"<b>{html.escape(str(pair[f'name_{side}']))}</b> image "
                                        f"{pair[f'index_{side}']}" for side in "ab")
        # The outcome is spelt out as well as coloured: red and green look alike to many.
        self.caption.value = (
            f"{people}<br>{'same person' if pair['label'] == SAME else 'different people'} · "
            f"score {pair['score']:.3f} · <b style='color:{colour}'>{OUTCOME_NAMES[kind]} "
            f"({kind}), {verdict}</b> at threshold {threshold:.3f}")
