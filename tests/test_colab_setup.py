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


def test_only_missing_or_out_of_range_packages_are_installed_within_siamlibs_range():
    ranges = colab_setup.accepted_ranges()
    present = {module: "99.0" if module == "cv2" else None for module in ["cv2", "skimage"]}
    versions = {module: present.get(module, "1000.0") for module in colab_setup.REQUIREMENTS}
    # Ranges capped above (numpy <3, filelock <5, optuna <6, pooch <2): versions inside them.
    inside = {"numpy": "2.1.3", "filelock": "4.3.0", "optuna": "5.0.0",
              "optuna_integration": "5.0.0", "pooch": "1.9.0"}
    needed = colab_setup.packages_to_install(
        lambda module: inside.get(module, versions[module]), ranges)
    assert needed == [ranges["opencv-python-headless"], ranges["scikit-image"]]
    assert needed[0] == "opencv-python-headless>=4.8,<5"
    assert colab_setup.install_commands([])[1:] == []


def test_every_requirement_has_a_range_in_pyproject_and_every_dependency_is_installed():
    ranges = colab_setup.accepted_ranges()
    assert set(colab_setup.REQUIREMENTS.values()) <= set(ranges)
    # Colab brings its own TensorFlow and Keras; everything else siamlib needs is installed
    # (optuna once was not, so notebook 03 failed on import in a fresh runtime).
    assert set(ranges) - set(colab_setup.REQUIREMENTS.values()) == {"tensorflow", "keras"}
    assert "tensorflow" in ranges and "tensorflow" not in colab_setup.REQUIREMENTS.values()


def test_installed_version_reads_the_module():
    assert colab_setup.installed_version("json", lambda module: None) is None
    import numpy

    assert colab_setup.installed_version("numpy") == numpy.__version__


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
