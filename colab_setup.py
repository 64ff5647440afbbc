"""Install siamlib in Colab beside Colab's preinstalled TensorFlow and Keras, never over them.

The notebooks' first cell runs this after cloning the workbook. Pinned TensorFlow versions
fight Colab's (a reinstall breaks its CUDA build or takes minutes), so siamlib is installed
without dependencies, and only the packages this runtime lacks, or has in a version outside
siamlib's range (pyproject.toml), are added, within that range. An unranged install once gave
OpenCV 5, which has no Haar face detector.

The same cell then calls ``place_data``: each notebook opened from its badge gets a runtime of its
own, which forgets LFW-a and every trained run when it ends, so a student may keep them on Google
Drive, where the next notebook finds notebook 03's selection and the runs of 02 and 03.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
DRIVE_DATA = "MyDrive/siamese-workbook/data"  # siamlib's data folder (and so its runs) on Drive
DATA_DIR_ENV = "SIAMLIB_DATA_DIR"  # siamlib.paths.DATA_DIR_ENV; siamlib is not imported here
# import name -> pip name; TensorFlow and Keras are deliberately absent: the runtime's own are used.
REQUIREMENTS = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "cv2": "opencv-python-headless",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "tqdm": "tqdm",
    "ipywidgets": "ipywidgets",
    "filelock": "filelock",
    "pooch": "pooch",
    "optuna": "optuna",
    "optuna_integration": "optuna-integration",
}


def accepted_ranges(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """pip name -> siamlib's requirement for it, e.g. "opencv-python-headless>=4.8,<5"."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {_requirement(spec).name.lower(): spec for spec in dependencies}


def installed_version(module: str, find_spec=importlib.util.find_spec) -> str | None:
    """The version an importable module reports, or None if it cannot be imported."""
    if find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), "__version__", "0")


def packages_to_install(version_of=installed_version, ranges=None) -> list[str]:
    """Requirements (with siamlib's range) of packages missing or outside that range."""
    ranges = ranges or accepted_ranges()
    needed = []
    for module, pip in REQUIREMENTS.items():
        version = version_of(module)
        if version is None or not _requirement(ranges[pip]).specifier.contains(version):
            needed.append(ranges[pip])
    return needed


def _requirement(spec: str):
    """``spec`` parsed by ``packaging``, imported only here: it comes with TensorFlow, and a
    runtime without TensorFlow must still get as far as check_keras's advice."""
    from packaging.requirements import Requirement

    return Requirement(spec)


def check_keras(version=importlib.metadata.version) -> str:
    """The installed Keras version, or a clear error if it is missing or not Keras 3."""
    try:
        keras_version = version("keras")
        version("tensorflow")
    except importlib.metadata.PackageNotFoundError as error:
        raise SystemExit(f"This runtime has no {error.name}; the workbook needs TensorFlow "
                         "2.16+ with Keras 3 (pip install 'tensorflow>=2.16').") from None
    if int(keras_version.split(".")[0]) < 3:
        raise SystemExit(f"Keras {keras_version} is installed; the workbook needs Keras 3 "
                         "(TensorFlow 2.16 or newer).")
    return keras_version


def install_commands(missing: list[str]) -> list[list[str]]:
    """The pip commands to run: siamlib without dependencies, then what is missing."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    commands = [pip + ["--no-deps", "-e", str(ROOT)]]
    if missing:
        commands.append(pip + missing)
    return commands


def place_data(on_drive: bool, root: Path = DRIVE) -> Path | None:
    """Keep siamlib's data folder on Google Drive (``on_drive``) or in this runtime only.

    Runs and results live under the data folder, so setting $SIAMLIB_DATA_DIR in the kernel moves
    them too; siamlib reads it on every call, and the cell sets it before any lesson imports
    siamlib. Drive is mounted only if it is not already (a rerun of the cell asks nothing).
    Returns the folder on Drive, or None when the data stays in the runtime.
    """
    if not on_drive:
        print("This runtime's data and trained runs are lost when it ends, so each notebook "
              "downloads LFW-a and trains or loads what it needs (keep_on_drive = True keeps "
              "them on your Google Drive).")
        return None
    if not (root / "MyDrive").is_dir():
        from google.colab import drive

        try:
            drive.mount(str(root))
        except Exception as error:  # access refused, or Drive unreachable
            raise SystemExit(f"Google Drive was not mounted at {root} ({error}): run this cell "
                             "again and allow access, or set keep_on_drive = False.") from None
    folder = root / DRIVE_DATA
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[DATA_DIR_ENV] = str(folder)
    print(f"LFW-a, trained runs and results now live on your Google Drive in {folder}, "
          "where every notebook set up with keep_on_drive = True finds them.")
    return folder


def main() -> None:
    keras_version = check_keras()
    for command in install_commands(packages_to_install()):
        subprocess.run(command, check=True)
    print(f"siamlib installed beside this runtime's Keras {keras_version}.")


if __name__ == "__main__":
    main()
