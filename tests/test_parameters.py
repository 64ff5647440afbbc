"""Notebook parameters of the wrong type: one clear error, from the runner or from papermill."""

from pathlib import Path

import papermill
import pytest

from siamlib import parameters

NOTEBOOK_01 = Path(__file__).parents[1] / "notebooks" / "01_data_analysis.ipynb"


@pytest.mark.parametrize(
    ("value", "type_name", "ok"),
    [(3, "int", True), (3, "float", True), (0.5, "float", True), ("five", "int", False),
     (True, "int", False), (True, "bool", True), (2.0, "int", False), ("x", "str", True),
     ({"a": 1}, "SomethingElse", True)],
)
def test_matches(value, type_name, ok):
    assert parameters.matches(value, type_name) is ok


def test_check_names_the_parameter_its_type_and_the_value():
    namespace = {"__annotations__": {"epochs": int, "profile": str}, "epochs": "five",
                 "profile": "cpu"}
    with pytest.raises(TypeError, match=r"parameter 'epochs' must be int, got 'five' \(str\)"):
        parameters.check(namespace)
    parameters.check({**namespace, "epochs": 5})  # no error


def test_papermill_run_directly_stops_at_the_check_with_that_message(tmp_path):
    """papermill itself accepts any value; the notebook's own check stops it right after the
    imports, before any data is touched."""
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(str(NOTEBOOK_01), str(tmp_path / "out.ipynb"),
                                   parameters={"split_seed": "five"}, progress_bar=False,
                                   cwd=str(NOTEBOOK_01.parent))
    assert raised.value.ename == "TypeError"
    assert "parameter 'split_seed' must be int, got 'five' (str)" in raised.value.evalue


@pytest.mark.parametrize(("name", "value", "message"),
                         [("epochs", -5, "parameter 'epochs' must be 0 or more"),
                          ("profile", "nope", "parameter 'profile' must be one of ")])
def test_check_refuses_impossible_values(name, value, message):
    namespace = {"__annotations__": {"epochs": int, "profile": str}, "epochs": 0,
                 "profile": "smoke"}
    with pytest.raises(ValueError, match=message):
        parameters.check({**namespace, name: value})
    parameters.check(namespace)  # no error
