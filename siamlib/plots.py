"""Figures more than one notebook draws, in one consistent style, saved under ``figures/``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from siamlib import SAME, paths

SAME_COLOUR, DIFFERENT_COLOUR = "#1b9e77", "#d95f02"
FACES = "faces"  # figures/faces/: figures showing LFW-a photos; git-ignored, never committed


def use_style() -> None:
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight"})


def save_fig(name: str, fig=None, faces: bool = False) -> None:
    """``faces=True`` (photos shown) saves into ``figures/faces/``: LFW-a is not ours to share."""
    folder = paths.figures_dir() / FACES if faces else paths.figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (fig or plt.gcf()).savefig(folder / f"{name}.png")


def pair_gallery(store, pairs: pd.DataFrame, title: str = "", scores=None):
    """Pairs in columns of four, first image above the second, titled in the truth's colour."""
    rows = max(1, -(-len(pairs) // 4))
    fig, axes = plt.subplots(2 * rows, 4, figsize=(8.4, 4.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    columns = axes.reshape(rows, 2, 4).swapaxes(1, 2).reshape(-1, 2)  # (top, bottom) per pair
    for i, ((top, bottom), pair) in enumerate(zip(columns, pairs.itertuples(index=False))):
        colour = SAME_COLOUR if pair.label == SAME else DIFFERENT_COLOUR
        score = "" if scores is None else f"\nscore {scores[i]:.3f}"
        for ax, path, name, below in ((top, pair.path_a, pair.name_a, ""),
                                      (bottom, pair.path_b, pair.name_b, score)):
            ax.imshow(store.pixels[store.rows([path])[0]], cmap="gray", vmin=0, vmax=255)
            name = name.replace("_", " ")
            ax.set_title((name if len(name) <= 18 else name[:17] + "…") + below, fontsize=8,
                         color=colour)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict[str, pd.DataFrame], title: str = "Learning curves"):
    """AUC is what early stopping watches: dotted lines mark each run's best validation epoch."""
    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (name, history), colour in zip(histories.items(), sns.color_palette()):
        epochs = np.arange(1, len(history) + 1)
        for ax, metric in ((loss_ax, "loss"), (auc_ax, "auc")):
            ax.plot(epochs, history[metric], color=colour, ls="--", label=f"{name} train")
            ax.plot(epochs, history[f"val_{metric}"], color=colour, label=f"{name} validation")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        auc_ax.axvline(int(history["val_auc"].idxmax()) + 1, color=colour, ls=":", lw=1)
    # Nets' L2 penalties can differ tenfold: a log scale then, else a plain one (a log axis
    # inside one decade labels its ticks 10.1, 10.1, 10.1).
    losses = pd.concat([history[["loss", "val_loss"]] for history in histories.values()])
    spans_a_decade = losses.max().max() > 10 * losses.min().min()
    loss_ax.set(xlabel="epoch", ylabel="loss (incl. L2 penalty)", title="loss",
                yscale="log" if spans_a_decade else "linear")
    if spans_a_decade:  # 0.1, 1, 10 labelled; the ticks between them would crowd
        loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        loss_ax.yaxis.set_minor_formatter(NullFormatter())
    auc_ax.set(xlabel="epoch", ylabel="AUC", title="AUC (dotted: best validation epoch)")
    auc_ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_histogram(labels, scores, threshold: float, ax, title: str):
    labels, scores = np.asarray(labels), np.asarray(scores)
    bins = np.linspace(scores.min(), scores.max(), 40)
    ax.hist(scores[labels == SAME], bins=bins, alpha=0.6, color=SAME_COLOUR, label="same person")
    ax.hist(scores[labels != SAME], bins=bins, alpha=0.6, color=DIFFERENT_COLOUR,
            label="different people")
    ax.axvline(threshold, color="k", ls=":", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score (higher = same)", ylabel="pairs", title=title)
    ax.legend(fontsize=8)
