"""Notebook parameters, checked against the types their ``parameters`` cell declares.

papermill injects values without looking at the declared types, so ``-p epochs five`` would
surface as an obscure error deep in training. The runner checks overrides before anything runs;
a notebook run by papermill directly checks its own parameters with ``check(globals())``.
Values are checked too (``problem``): ``profile`` names a profile, and an int parameter is a
count or a seed (epochs, trials, bins, folds: 0 means the profile's value), never negative,
and ``max_minutes`` is 0 (no limit) or more.
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


def problem(name: str, value) -> str | None:
    """What ``value`` of a well-typed parameter ``name`` must be instead, or None if it is fine."""
    if name == "profile":
        from siamlib.profiles import PROFILES  # here: the runner checks before importing TF

        if value not in (*PROFILES, "auto"):
            return f"one of {sorted(PROFILES)} or 'auto'"
    elif name == "max_minutes":
        if value < 0:
            return "0 or more minutes (0: no limit)"
    elif isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return "0 or more (a count or a seed; 0 means the profile's value)"
    return None


def check(namespace: dict) -> None:
    """One clear TypeError (or ValueError) if an annotated parameter in ``namespace`` has the
    wrong type (or an impossible value)."""
    for name, annotation in namespace.get("__annotations__", {}).items():
        type_name = getattr(annotation, "__name__", str(annotation))
        if name not in namespace:
            continue
        value = namespace[name]
        if not matches(value, type_name):
            raise TypeError(f"parameter {name!r} must be {type_name}, got {value!r} "
                            f"({type(value).__name__})")
        if (wanted := problem(name, value)) is not None:
            raise ValueError(f"parameter {name!r} must be {wanted}, got {value!r}")
