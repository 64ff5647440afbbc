"""Functions the notebooks define, for unit tests of lesson code.

A formula only one lesson uses lives in that notebook, where the student reads it (siamlib holds
what several notebooks need). Its tests take the ``def`` alone out of the notebook and compile it
with the names the test gives, so it cannot lean on other notebook variables.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def notebook_function(notebook: str, name: str, **namespace):
    """``name`` as the first code cell of ``notebook`` that defines it has it."""
    for cell in json.loads((NOTEBOOKS / notebook).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # IPython's own syntax (the Colab cell's !pip)
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                exec(compile(ast.Module([node], []), f"{notebook}: {name}", "exec"), namespace)
                return namespace[name]
    raise LookupError(f"{notebook} defines no function {name!r}")
