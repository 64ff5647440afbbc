"""Data, runs and figures live under the project root (papermill, pytest and Colab start in other
folders) unless an environment variable moves them; smoke figures stay out of ``figures/``."""

import os
from pathlib import Path

DATA_DIR_ENV = "SIAMLIB_DATA_DIR"
RUNS_DIR_ENV = "SIAMLIB_RUNS_DIR"
FIGURES_DIR_ENV = "SIAMLIB_FIGURES_DIR"
smoke_run = False  # set by profiles.resolve whenever it picks the smoke profile


def project_root() -> Path:
    """The checkout siamlib was imported from, or the current folder for a plain pip install."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _from_env(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    return _from_env(DATA_DIR_ENV, project_root() / "data")


def runs_dir() -> Path:
    return _from_env(RUNS_DIR_ENV, data_dir() / "runs")


def figures_dir() -> Path:
    return _from_env(FIGURES_DIR_ENV,
                     data_dir() / "smoke-figures" if smoke_run else project_root() / "figures")
