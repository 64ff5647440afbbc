"""Notebook parameters, checked against the types their ``parameters`` cell declares.

papermill injects values without looking at the declared types, so ``-p epochs five`` would
surface as an obscure error deep in training. The runner checks overrides before anything runs;
a notebook run by papermill directly checks its own parameters with ``check(globals())``.
"""

from __future__ import annotations

_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


def matches(value, type_name: str) -> bool:
    """Whether ``value`` fits a parameter declared as ``type_name`` ("int", "float", ...)."""
    expected = _TYPES.get(type_name)
    if expected is None:
        return True  # no annotation, or one we don't model: let the notebook judge
    if isinstance(value, bool) and type_name != "bool":
        return False  # True is an int in Python, but not a number of epochs
    return isinstance(value, expected)


def check(namespace: dict) -> None:
    """One clear TypeError if an annotated parameter in ``namespace`` has the wrong type."""
    for name, annotation in namespace.get("__annotations__", {}).items():
        type_name = getattr(annotation, "__name__", str(annotation))
        if name in namespace and not matches(namespace[name], type_name):
            value = namespace[name]
            raise TypeError(f"parameter {name!r} must be {type_name}, got {value!r} "
                            f"({type(value).__name__})")
