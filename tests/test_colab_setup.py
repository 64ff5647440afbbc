"""The Colab setup script's logic: keep the runtime's TensorFlow/Keras, add what is missing."""

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
import colab_setup  # noqa: E402


def test_installs_siamlib_without_dependencies_and_never_tensorflow():
    commands = colab_setup.install_commands(["seaborn"])
    assert commands[0][-3:] == ["--no-deps", "-e", str(colab_setup.ROOT)]
    assert commands[1][-1] == "seaborn"
    assert not any("tensorflow" in arg or "keras" in arg for c in commands for arg in c)


def test_only_missing_packages_are_installed():
    def find_spec(module):
        return None if module in ("cv2", "skimage") else importlib.util.find_spec("json")

    assert colab_setup.missing_packages(find_spec) == ["opencv-python-headless", "scikit-image"]
    assert colab_setup.install_commands([])[1:] == []


def test_keras_2_runtime_is_refused_with_advice():
    versions = {"keras": "2.15.0", "tensorflow": "2.15.1"}
    with pytest.raises(SystemExit, match="needs Keras 3"):
        colab_setup.check_keras(versions.__getitem__)


def test_missing_tensorflow_is_refused_with_advice():
    def version(name):
        if name == "tensorflow":
            raise importlib.metadata.PackageNotFoundError(name)
        return "3.10.0"

    with pytest.raises(SystemExit, match="no tensorflow"):
        colab_setup.check_keras(version)


def test_any_keras_3_runtime_is_accepted():
    for keras_version in ("3.3.3", "3.10.0", "3.15.1"):
        versions = {"keras": keras_version, "tensorflow": "2.19.0"}
        assert colab_setup.check_keras(versions.__getitem__) == keras_version
