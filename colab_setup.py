"""Install siamlib in Colab beside Colab's preinstalled TensorFlow and Keras, never over them.

The notebooks' first cell runs this after cloning the workbook. Pinned TensorFlow versions
fight Colab's (a reinstall breaks its CUDA build or takes minutes), so siamlib is installed
without dependencies and only the packages this runtime lacks are added.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
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
}


def missing_packages(find_spec=importlib.util.find_spec) -> list[str]:
    """pip names of the requirements this runtime cannot import."""
    return [pip for module, pip in REQUIREMENTS.items() if find_spec(module) is None]


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
    """The pip commands to run: siamlib without dependencies, then whatever is missing."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    commands = [pip + ["--no-deps", "-e", str(ROOT)]]
    if missing:
        commands.append(pip + missing)
    return commands


def main() -> None:
    keras_version = check_keras()
    for command in install_commands(missing_packages()):
        subprocess.run(command, check=True)
    print(f"siamlib installed beside this runtime's Keras {keras_version}.")


if __name__ == "__main__":
    main()
