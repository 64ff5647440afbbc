"""Figures that show photos go where git cannot pick them up."""

import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from siamlib import paths, plots  # noqa: E402


def test_figures_with_faces_go_to_a_git_ignored_folder(tmp_path):
    fig = plt.figure()
    plots.save_fig("chart", fig, folder=tmp_path)
    plots.save_fig("gallery", fig, folder=tmp_path, faces=True)
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
