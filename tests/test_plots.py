"""Figures that show photos go where git cannot pick them up; learning curves and notebook 05's
DET axes draw what they say."""

import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from lessons import notebook_function  # noqa: E402
from scipy.stats import norm  # noqa: E402

from siamlib import metrics, paths, plots  # noqa: E402

det_axes = notebook_function("05_threshold_eer.ipynb", "det_axes", norm=norm)
det_line = notebook_function("05_threshold_eer.ipynb", "det_line", norm=norm, metrics=metrics)


def test_figures_with_faces_go_to_a_git_ignored_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, str(tmp_path))
    fig = plt.figure()
    plots.save_fig("chart", fig)
    plots.save_fig("gallery", fig, faces=True)
    plt.close(fig)
    assert (tmp_path / "chart.png").is_file()
    assert (tmp_path / plots.FACES / "gallery.png").is_file()
    root = paths.project_root()
    ignored = root / "figures" / plots.FACES / "gallery.png"
    check = subprocess.run(["git", "check-ignore", "-q", str(ignored)], cwd=root)
    assert check.returncode == 0, "figures/faces/ must be git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", str(root / "figures" / "chart.png")],
                          cwd=root).returncode == 1


def test_learning_curves_mark_the_epoch_whose_weights_were_kept():
    import pandas as pd

    history = pd.DataFrame({"loss": [3.0, 2.0, 1.0], "val_loss": [3.0, 2.5, 2.6],
                            "auc": [0.6, 0.7, 0.8], "val_auc": [0.6, 0.75, 0.7]})
    fig = plots.learning_curves({"run": history})
    auc_ax = fig.axes[1]
    marker = [line for line in auc_ax.get_lines() if line.get_linestyle() == ":"]
    assert len(marker) == 1 and list(marker[0].get_xdata()) == [2, 2]  # epochs count from 1
    plt.close(fig)


@pytest.mark.parametrize("losses, scale",
                         [([10.22, 10.1, 9.98], "linear"), ([9.0, 0.3, 0.04], "log")])
def test_learning_curves_label_every_loss_tick_apart(losses, scale):
    """Koch's loss carries an L2 penalty of about 10 that moves by 0.2 over training: on a log
    axis its ticks all read 10.1. Within a decade the axis is plain; over one, logarithmic."""
    import pandas as pd

    history = pd.DataFrame({"loss": losses, "val_loss": losses, "auc": [0.5, 0.6, 0.7],
                            "val_auc": [0.5, 0.6, 0.7]})
    fig = plots.learning_curves({"run": history})
    fig.canvas.draw()
    loss_ax = fig.axes[0]
    assert loss_ax.get_yscale() == scale
    low, high = loss_ax.get_ylim()
    shown = [tick.get_text() for tick in loss_ax.get_yticklabels()
             if tick.get_text() and low <= tick.get_position()[1] <= high]
    assert len(shown) >= 2 and len(shown) == len(set(shown)), shown
    assert not any(tick.get_text() for tick in loss_ax.yaxis.get_ticklabels(minor=True))
    assert all(float(tick) == int(tick) for tick in loss_ax.get_xticks()), "epochs are whole"
    plt.close(fig)


def test_det_axes_put_rates_on_the_probit_scale():
    fig, ax = plt.subplots()
    det_axes(ax)
    # 0.1% sits at the probit -3.090 and 80% at 0.842; the axes run from one to the other.
    assert ax.get_xlim() == pytest.approx((-3.0902, 0.8416), abs=1e-4)
    assert ax.get_ylim() == ax.get_xlim()
    np.testing.assert_allclose(
        ax.get_xticks(), norm.ppf([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]))
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "0.1%", "0.5%", "1%", "2%", "5%", "10%", "20%", "40%", "60%", "80%"]
    (diagonal,) = ax.get_lines()  # FAR = FRR, where a curve crosses at its EER
    np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
    plt.close(fig)


def test_det_line_leaves_out_rates_of_zero():
    # Six pairs: same 0.9, 0.8, 0.4, different 0.7, 0.3, 0.1. Accepting from 0.7 down gives
    # FAR 1/3 and FRR 1/3; every other threshold has a zero rate (no probit), so one point stays.
    fig, ax = plt.subplots()
    det_axes(ax)
    (line,) = det_line(ax, [1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.7, 0.3, 0.1], color="red")
    np.testing.assert_allclose(line.get_xdata(), [-0.4307], atol=1e-4)  # probit of 1/3
    np.testing.assert_allclose(line.get_ydata(), [-0.4307], atol=1e-4)
    assert line.get_color() == "red"
    plt.close(fig)

