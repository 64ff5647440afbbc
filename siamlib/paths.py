"""Where the workbook keeps its data, trained runs and figures.

Paths are anchored at the project root (the folder holding ``pyproject.toml`` and ``siamlib/``),
never at the current directory: papermill, pytest and Colab all start from different folders.
Each location can be moved with an environment variable.

A smoke run's figures mean nothing, so they never replace the committed ones in ``figures/``:
``profiles.resolve`` sets ``smoke_run`` when it picks the smoke profile (however it was chosen:
a notebook parameter, the runner, or ``$SIAMLIB_PROFILE``), and its figures then go to a scratch
folder under the data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SIAMLIB_DATA_DIR"
RUNS_DIR_ENV = "SIAMLIB_RUNS_DIR"
FIGURES_DIR_ENV = "SIAMLIB_FIGURES_DIR"
smoke_run = False  # set by profiles.resolve: figures go to <data dir>/smoke-figures


def project_root() -> Path:
    """The checkout siamlib was imported from, or the current folder for a plain pip install."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "siamlib").is_dir():
        return here
    return Path.cwd()


def _from_env(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Where data sets are made ready (``data/``; ``$SIAMLIB_DATA_DIR`` overrides)."""
    return _from_env(DATA_DIR_ENV, project_root() / "data")


def runs_dir() -> Path:
    """Where trained runs are cached (``data/runs``; ``$SIAMLIB_RUNS_DIR`` overrides)."""
    return _from_env(RUNS_DIR_ENV, data_dir() / "runs")


def figures_dir() -> Path:
    """Where notebooks save their figures (``figures/``, or ``<data dir>/smoke-figures`` in a
    smoke run; ``$SIAMLIB_FIGURES_DIR`` overrides both)."""
    return _from_env(FIGURES_DIR_ENV,
                     data_dir() / "smoke-figures" if smoke_run else project_root() / "figures")
