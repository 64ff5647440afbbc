"""Notebook parameters of the wrong type: one clear error, from the runner or from papermill."""

from pathlib import Path

import papermill
import pytest

from siamlib import parameters

NOTEBOOK_01 = Path(__file__).parents[1] / "notebooks" / "01_data_analysis.ipynb"


@pytest.mark.parametrize(
    ("value", "type_name", "wanted"),
    [(3, "int", None), (3, "float", None), (0.5, "float", None), (0, "int", None),
     ("five", "int", "int, got 'five' (str)"), (True, "int", "int, got True (bool)"),
     (True, "bool", None), (1, "bool", "bool, got 1 (int)"), (2.0, "int", "int, got 2.0 (float)"),
     ("x", "str", None), ({"a": 1}, "SomethingElse", None), ("x", "None", None),
     (-1, "int", "0 or more, got -1"), (-0.5, "float", "0 or more, got -0.5")],
)
def test_problem(value, type_name, wanted):
    assert parameters.problem(value, type_name) == wanted


def test_check_names_the_parameter_its_type_and_the_value():
    namespace = {"__annotations__": {"epochs": int, "profile": str}, "epochs": "five",
                 "profile": "cpu"}
    with pytest.raises(parameters.ParameterError,
                       match=r"^parameter 'epochs' must be int, got 'five' \(str\)$"):
        parameters.check(namespace)
    with pytest.raises(parameters.ParameterError, match="parameter 'epochs' must be 0 or more"):
        parameters.check({**namespace, "epochs": -5})
    parameters.check({**namespace, "epochs": 5})  # no error
    parameters.check({"__annotations__": {"epochs": int}})  # annotated, not assigned: no error


def test_papermill_run_directly_stops_at_the_check_with_that_message(tmp_path):
    """papermill itself accepts any value; the notebook's own check stops it right after the
    imports, before any data is touched."""
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(str(NOTEBOOK_01), str(tmp_path / "out.ipynb"),
                                   parameters={"split_seed": "five"}, progress_bar=False,
                                   cwd=str(NOTEBOOK_01.parent))
    assert raised.value.ename == "ParameterError"
    assert "parameter 'split_seed' must be int, got 'five' (str)" in raised.value.evalue
