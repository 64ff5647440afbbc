"""The reference run (tools/reference.py): photos stay out, one code version per manifest,
staleness shows, the README's blocks agree with its records."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from siamlib import runner
from tools import reference

PNG = "iVBORw0KGgo="  # the first bytes of a PNG: what matters is the key, not the picture


def notebook(path: Path, code: list[str], markdown: str = "A lesson.") -> Path:
    cells = [nbformat.v4.new_markdown_cell(markdown)]
    for source in code:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed\n"),
                        nbformat.v4.new_output("display_data", data={"image/png": PNG,
                                                                     "text/plain": "<Figure>"})]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def reference_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "reference"
    folder.mkdir()
    monkeypatch.setattr(reference, "folder", lambda: folder)
    return folder


def test_photos_and_widget_state_leave_the_executed_copy(tmp_path):
    path = notebook(tmp_path / "04_x.ipynb", ['plots.save_fig("04_false_accepts", faces=True)',
                                               "inspector = widgets.PairInspector(test)",
                                               'plots.save_fig("04_confusion_matrix")'])
    reference.without_faces(path)
    cells = nbformat.read(path, as_version=4).cells
    for cell in cells[1:3]:  # photos: text kept, images replaced by a note
        assert cell.outputs[0]["text"] == "printed\n"
        assert cell.outputs[1]["text"] == reference.FACES_REMOVED
    assert "image/png" in cells[3].outputs[1]["data"]  # a chart of numbers stays
    assert "widgets" not in nbformat.read(path, as_version=4).metadata


def test_the_manifest_holds_one_code_version(reference_dir, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "view2_summary.csv").write_text("method,accuracy\nall_pairs,0.87\n")
    first, second = (notebook(tmp_path / f"0{n}_x.ipynb", ["x = 1"]) for n in (1, 2))
    reference.record(first, "cpu", 20.0, 0.0, 0.0, "v1", results)
    reference.record(second, "cpu", 900.5, 840.25, 100.0, "v1", results)
    manifest = json.loads((reference_dir / reference.MANIFEST).read_text())
    assert (manifest["profile"], manifest["code_version"]) == ("cpu", "v1")
    assert manifest["notebooks"]["02_x.ipynb"]["wall_s"] == 900.5
    assert manifest["notebooks"]["02_x.ipynb"]["training_s"] == 840.2  # rounded to 0.1 s
    assert manifest["notebooks"]["02_x.ipynb"]["trained_now_s"] == 100.0
    assert "cores" in manifest["hardware"]
    assert (reference_dir / "results" / "view2_summary.csv").is_file()
    with pytest.raises(ValueError, match="code version v1"):
        reference.record(first, "cpu", 20.0, 0.0, 0.0, "v2", results)
    assert json.loads((reference_dir / reference.MANIFEST).read_text()) == manifest


def test_an_edited_code_cell_makes_the_reference_stale(reference_dir, tmp_path):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    original = notebook(lessons / "01_x.ipynb", ["x = 1", "y = 2"])
    copy = nbformat.read(original, as_version=4)  # as papermill leaves it: parameters injected
    copy.cells.insert(1, nbformat.v4.new_code_cell("profile = 'cpu'",
                                                   metadata={"tags": ["injected-parameters"]}))
    nbformat.write(copy, reference_dir / original.name)
    version = reference.code_version([original])
    assert reference.stale([original]) == []
    notebook(original, ["x = 1", "y = 2"], markdown="Better prose.")  # prose is not code
    assert reference.stale([original]) == [] and reference.code_version([original]) == version
    notebook(original, ["x = 1", "y = 3"])
    assert reference.stale([original]) == ["01_x.ipynb"]
    assert reference.code_version([original]) != version
    assert reference.stale([notebook(lessons / "02_y.ipynb", ["z = 0"])]) == ["02_y.ipynb"]


def test_the_reference_run_needs_a_named_profile(capsys):
    with pytest.raises(runner.RunnerError, match="reference run needs a named profile"):
        reference.run("auto")
    assert reference.main(["run", "--profile", "auto"]) == 2
    assert "named profile" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no -p: the reference run takes the notebooks' defaults
        reference.main(["run", "--profile", "cpu", "-p", "epochs", "2"])


def test_the_reference_run_records_each_notebook_as_it_finishes(reference_dir, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("SIAMLIB_DATA_DIR", str(tmp_path / "data"))

    def run(profile, output, after_each):  # the runner, having executed one notebook
        after_each(notebook(output / "04_x.ipynb", ["inspector = widgets.PairInspector(t)"]), 42.0)

    monkeypatch.setattr(reference.runner, "run", run)
    reference.run("cpu")
    manifest = json.loads((reference_dir / reference.MANIFEST).read_text())
    assert manifest["profile"] == "cpu"
    assert manifest["notebooks"]["04_x.ipynb"]["wall_s"] == 42.0
    outputs = nbformat.read(reference_dir / "04_x.ipynb", as_version=4).cells[1].outputs
    assert outputs[1]["text"] == reference.FACES_REMOVED


def test_a_run_of_other_code_is_refused_before_any_notebook_runs(reference_dir, tmp_path,
                                                                 monkeypatch):
    (reference_dir / reference.MANIFEST).write_text(json.dumps(
        {"profile": "cpu", "code_version": "older", "notebooks": {}}))
    monkeypatch.setattr(reference.runner, "run", lambda *args, **kwargs: pytest.fail("ran"))
    with pytest.raises(ValueError, match="code version older"):
        reference.run("cpu")


def test_the_readme_blocks_are_written_from_the_records(reference_dir, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "final.csv").write_text(
        ",run,val_auc,test_accuracy,test_auc,test_eer,test_n_way,train_s\n"
        "koch,koch,0.7061,0.664,0.706,0.348,0.226,205.7\n"
        "all_pairs,all_pairs,0.9571,0.863,0.9478,0.128,0.782,747.9\n")
    (results / "view2_summary.csv").write_text(
        "method,accuracy,se,category,folds\n"
        "all_pairs (this workbook),0.8725,0.0061,\"Unrestricted, Label-Free Outside Data\",10\n")
    readme = ("# Title\n<!-- reference:view2 -->\nold\n<!-- /reference -->\ntext 0.5\n"
              "<!-- reference:view1 -->\n<!-- /reference -->\n")
    assert reference.with_blocks(readme, reference.readme_blocks()).count(reference.NOT_YET) == 2
    notebook_path = notebook(tmp_path / "03_x.ipynb", ["x = 1"])
    reference.record(notebook_path, "cpu", 3593.0, 3084.0, 3084.0, "v1", results)
    written = reference.with_blocks(readme, reference.readme_blocks())
    assert "| all_pairs | 0.957 | 0.863 | 0.948 | 0.128 | 0.782 | 747.9 |" in written
    assert "| 20 | all_pairs (this workbook) | 0.8725 ± 0.0061 |" in written
    assert "rank 20 of 22" in written and "text 0.5\n" in written and "\nold\n" not in written
    assert reference.with_blocks(written, reference.readme_blocks()) == written


def test_the_readme_agrees_with_the_reference_run():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert reference.with_blocks(readme, reference.readme_blocks()) == readme, (
        "the README's results differ from notebooks/reference/'s records: run "
        "`python -m tools.reference readme` after the reference run")


def test_the_committed_reference_run_shows_the_notebooks_as_they_are():
    """An edit to a notebook's code must not silently leave its executed copy behind: the README
    quotes that copy's results."""
    lessons = sorted((Path(__file__).parent.parent / "notebooks").glob("0*.ipynb"))
    assert len(lessons) == 6
    assert reference.stale(lessons) == [], (
        "these notebooks' code cells differ from their copies in notebooks/reference/: move "
        "notebooks/reference/manifest.json aside and rerun "
        "`python -m tools.reference run --profile cpu`")
