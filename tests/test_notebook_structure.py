"""Every numbered notebook: one parameters cell first thing after setup, saved clean."""

import json
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_all_six_lessons_are_there():
    assert [nb.stem[:2] for nb in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_with_a_profile(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    declared = papermill.inspect_notebook(str(notebook))
    assert declared["profile"]["default"] == '"auto"'
    # papermill must parse every line: each parameter has a type and a help comment.
    lines = [line for line in "".join(tagged[0]["source"]).splitlines() if line.strip()]
    assert len(declared) == len(lines)
    assert all(p["inferred_type_name"] != "None" and p["help"] for p in declared.values())


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_without_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_starts_with_title_badge_and_colab_setup(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    title, setup = "".join(cells[0]["source"]), "".join(cells[1]["source"])
    assert title.startswith("# ") and "colab.research.google.com" in title
    assert f"notebooks/{notebook.name}" in title
    assert f"](reference/{notebook.name})" in title  # the reference run's executed copy
    assert 'if "google.colab" in sys.modules:' in setup and "colab_setup.py" in setup
