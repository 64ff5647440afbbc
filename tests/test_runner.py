"""The papermill runner on two tiny generated notebooks: profiles, overrides, failures."""

import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from siamlib import paths, runner


def _notebook(path, *sources, parameters="profile: str = 'auto'  # the profile\nsize: int = 1"):
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def folder(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", "print(f'profile={profile} size={size}')")
    _notebook(nbs / "02_second.ipynb", "x = 1", "raise ValueError('boom in the second')",
              parameters="profile: str = 'auto'  # the profile")
    return nbs


def _printed(path) -> str:
    nb = nbformat.read(path, as_version=4)  # normalises multi-line text to strings
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_runs_selected_notebook_with_profile_and_override(folder, tmp_path):
    out = tmp_path / "out"
    timings = runner.run("smoke", {"size": 5}, out, only=["01"], folder=folder)
    assert [name for name, _ in timings] == ["01_first.ipynb"]
    assert "profile=smoke size=5" in _printed(out / "01_first.ipynb")
    assert (out / "timings.csv").read_text().startswith("notebook,seconds\n01_first.ipynb,")


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_only_smoke_figures_are_kept_away_from_the_committed_ones(folder, tmp_path, monkeypatch,
                                                                   profile):
    monkeypatch.delenv(paths.FIGURES_DIR_ENV, raising=False)
    _notebook(folder / "03_figures.ipynb",
              "import os; print('figures:', os.environ.get('SIAMLIB_FIGURES_DIR'))")
    out = tmp_path / "out"
    runner.run(profile, {}, out, only=["03"], folder=folder)
    expected = out / "figures" if profile == "smoke" else None
    assert f"figures: {expected}" in _printed(out / "03_figures.ipynb")
    assert paths.FIGURES_DIR_ENV not in os.environ  # only the kernels saw it


def test_failing_notebook_is_named_with_its_cell(folder, tmp_path):
    with pytest.raises(runner.NotebookFailed) as failure:
        runner.run("smoke", {}, tmp_path / "out", folder=folder)
    message = str(failure.value)
    # Cell 4 of the executed copy: papermill inserts the injected-parameters cell.
    assert "02_second.ipynb failed in cell 4 of the executed copy" in message
    assert "begins\n    raise ValueError('boom in the second')" in message
    assert message.endswith("ValueError: boom in the second")
    # The first notebook ran before the failure and its executed copy is kept.
    assert "profile=smoke size=1" in _printed(tmp_path / "out" / "01_first.ipynb")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"size": "big"}, "parameter 'size' of 01_first.ipynb must be int, got 'big' (str)"),
        ({"size": True}, "must be int, got True (bool)"),
        ({"colour": 3}, "no notebook has a parameter 'colour'"),
    ],
)
def test_bad_overrides_stop_before_anything_runs(folder, tmp_path, overrides, expected):
    with pytest.raises(runner.RunnerError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        runner.run("smoke", overrides, tmp_path / "out", folder=folder)
    assert not (tmp_path / "out" / "01_first.ipynb").exists()


def test_unknown_profile_and_notebook(folder, tmp_path):
    with pytest.raises(runner.RunnerError, match="unknown profile 'fast'"):
        runner.run("fast", {}, tmp_path, folder=folder)
    with pytest.raises(runner.RunnerError, match=r"no notebook matches \['07'\]"):
        runner.notebooks(folder, only=["07"])


def test_parse_value_reads_python_literals():
    assert runner.parse_value("5") == 5
    assert runner.parse_value("0.001") == 0.001
    assert runner.parse_value("True") is True
    assert runner.parse_value("[1, 2]") == [1, 2]
    assert runner.parse_value("cpu") == "cpu"


def test_main_exit_codes(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner.paths, "project_root", lambda: tmp_path)
    assert runner.main(["--profile", "smoke", "--only", "01"]) == 0
    assert runner.main(["--profile", "smoke", "-p", "size", "x"]) == 2
    assert "must be int" in capsys.readouterr().err
    assert runner.main(["--profile", "smoke"]) == 1
    assert "02_second.ipynb failed in cell 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"size": -5}, "parameter 'size' of 01_first.ipynb must be 0 or more"),
     ({"profile": "nope"}, "parameter 'profile' of 01_first.ipynb must be one of ")],
)
def test_impossible_values_stop_before_any_kernel_starts(folder, tmp_path, overrides, expected,
                                                         monkeypatch):
    started = []
    monkeypatch.setattr(runner.papermill, "execute_notebook", lambda *a, **k: started.append(a))
    with pytest.raises(runner.RunnerError, match=expected):
        runner.run("smoke", overrides, tmp_path / "out", folder=folder)
    assert started == []


def test_a_relative_source_means_the_current_folder(folder, tmp_path, monkeypatch):
    _notebook(folder / "04_source.ipynb", "print(f'source={source}')",
              parameters="profile: str = 'auto'  # the profile\nsource: str = 'lfw-a'  # data")
    monkeypatch.chdir(tmp_path)
    runner.run("smoke", {"source": "faces"}, tmp_path / "out", only=["04"], folder=folder)
    assert f"source={tmp_path / 'faces'}\n" in _printed(tmp_path / "out" / "04_source.ipynb")


def test_folders_that_are_files_and_ctrl_c_give_one_line_and_a_status(folder, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setattr(runner.paths, "project_root", lambda: tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert runner.main(["--profile", "smoke", "--output", str(a_file)]) == 2
    message = f"error: --output names {a_file}, a file; it must be a folder\n"
    assert capsys.readouterr().err == message
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(a_file))
    assert runner.main(["--profile", "smoke"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {paths.DATA_DIR_ENV} names {a_file}, a file")
    monkeypatch.delenv(paths.DATA_DIR_ENV)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.papermill, "execute_notebook", interrupted)
    assert runner.main(["--profile", "smoke", "--only", "01"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted (Ctrl-C)") and "Traceback" not in err


def test_notebooks_run_without_a_time_limit_unless_one_is_given(folder, tmp_path):
    _notebook(folder / "05_budget.ipynb", "print(f'max_minutes={max_minutes}')",
              parameters="profile: str = 'auto'  # the profile\n"
                         "max_minutes: float = 30  # stop before training if longer")
    out = tmp_path / "out"
    # The runner's user chose the profile: no limit (0), and nothing for a notebook without one.
    runner.run("smoke", {}, out, only=["01", "05"], folder=folder)
    assert "max_minutes=0\n" in _printed(out / "05_budget.ipynb")
    assert "profile=smoke size=1" in _printed(out / "01_first.ipynb")
    runner.run("smoke", {"max_minutes": 45}, out, only=["05"], folder=folder)
    assert "max_minutes=45\n" in _printed(out / "05_budget.ipynb")
    with pytest.raises(runner.RunnerError, match=r"max_minutes' of 05_budget.ipynb must be 0 or "
                                                 r"more minutes \(0: no limit\), got -1"):
        runner.run("smoke", {"max_minutes": -1}, out, only=["05"], folder=folder)


def test_main_passes_max_minutes_from_the_command_line(monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "run", lambda profile, overrides, *rest: seen.append(overrides))
    assert runner.main(["--profile", "smoke", "-p", "max_minutes", "90"]) == 0
    assert seen == [{"max_minutes": 90}]
