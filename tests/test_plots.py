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
