"""The Colab setup script's logic: keep the runtime's TensorFlow/Keras, add what is missing,
and keep data and runs on Google Drive when the student asks."""

import importlib.metadata
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
import colab_setup  # noqa: E402
from siamlib import paths  # noqa: E402


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


# --- keeping data and runs on Google Drive ----------------------------------------------------


@pytest.fixture
def google_drive(tmp_path, monkeypatch):
    """A simulated ``google.colab``: ``drive.mount(root)`` links ``root/MyDrive`` to one folder
    standing in for the student's Drive, which outlives every runtime; the list records each
    mount."""
    cloud = tmp_path / "my-google-drive"
    cloud.mkdir()
    mounts = []

    def mount(root):
        mounts.append(root)
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / "MyDrive").symlink_to(cloud, target_is_directory=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    # place_data sets $SIAMLIB_DATA_DIR in os.environ, as it must in a kernel. Setting each
    # variable first makes monkeypatch restore this process's own value (or its absence) at the
    # end: a value leaked from here once sent the notebooks run later by nbval to this folder.
    for variable in (paths.DATA_DIR_ENV, paths.RUNS_DIR_ENV):
        monkeypatch.setenv(variable, "unset by the google_drive fixture")
        monkeypatch.delenv(variable)
    return cloud, mounts


def test_keep_on_drive_mounts_once_and_moves_data_and_runs_there(tmp_path, google_drive, capsys):
    cloud, mounts = google_drive
    root = tmp_path / "runtime-03" / "drive"
    folder = colab_setup.place_data(True, root)
    assert mounts == [str(root)]
    assert folder == root / "MyDrive" / "siamese-workbook" / "data" and folder.is_dir()
    assert os.environ[paths.DATA_DIR_ENV] == str(folder)
    assert paths.data_dir() == folder.resolve() == (cloud / "siamese-workbook" / "data")
    assert paths.runs_dir().is_relative_to(paths.data_dir())
    assert str(folder) in capsys.readouterr().out
    assert colab_setup.place_data(True, root) == folder  # the cell run again: no second mount
    assert mounts == [str(root)]


def test_the_next_notebook_finds_what_the_previous_one_kept_on_drive(tmp_path, google_drive,
                                                                       monkeypatch):
    _, mounts = google_drive
    colab_setup.place_data(True, tmp_path / "runtime-03" / "drive")
    run = paths.runs_dir() / "selected" / "weights.txt"
    run.parent.mkdir(parents=True)
    run.write_text("trained in notebook 03")
    monkeypatch.delenv(paths.DATA_DIR_ENV)  # notebook 04 opens in a fresh runtime
    assert not run.is_relative_to(paths.runs_dir())
    colab_setup.place_data(True, tmp_path / "runtime-04" / "drive")
    assert len(mounts) == 2
    assert (paths.runs_dir() / "selected" / "weights.txt").read_text() == "trained in notebook 03"


def test_without_the_switch_data_stays_in_the_runtime_and_the_student_is_told(google_drive,
                                                                              capsys):
    _, mounts = google_drive
    assert colab_setup.place_data(False) is None
    assert mounts == [] and paths.DATA_DIR_ENV not in os.environ
    said = capsys.readouterr().out
    assert "lost when it ends" in said and said.count("\n") == 1


def test_refused_drive_access_says_how_to_go_on(tmp_path, google_drive):
    def refuse(root):
        raise ValueError("mount failed")

    sys.modules["google.colab"].drive.mount = refuse
    with pytest.raises(SystemExit, match="mount failed.*allow access, or set keep_on_drive = Fa"):
        colab_setup.place_data(True, tmp_path / "drive")
    assert paths.DATA_DIR_ENV not in os.environ


def test_colab_setup_names_siamlibs_data_folder_variable():
    assert colab_setup.DATA_DIR_ENV == paths.DATA_DIR_ENV


def test_the_six_setup_cells_are_identical_and_offer_the_drive_switch():
    notebooks = sorted((colab_setup.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    setups = {"".join(json.loads(path.read_text())["cells"][1]["source"]) for path in notebooks}
    assert len(notebooks) == 6 and len(setups) == 1
    [setup] = setups
    lines = setup.splitlines()
    [switch] = [line for line in lines if line.startswith("keep_on_drive = ")]
    assert switch.startswith("keep_on_drive = False  # True: keep LFW-a and runs on your Google")
    insert = lines.index('    sys.path.insert(0, "/content/workbook")')
    assert lines[insert + 1:] == ["    import colab_setup", "",
                                  "    colab_setup.place_data(keep_on_drive)"]
