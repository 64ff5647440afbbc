"""Notebook parameters checked against the types their ``parameters`` cell declares: papermill
injects values unchecked, so ``-p epochs five`` would fail obscurely deep in training."""

_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


class UserError(Exception):
    """An expected mistake a notebook shows alone (``_render_traceback_``), not in a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ParameterError(UserError, ValueError):
    """A notebook parameter of the wrong type or with an impossible value."""


def problem(value, type_name: str) -> str | None:
    expected = _TYPES.get(type_name)
    # True is an int in Python, but not a number of epochs.
    if expected and (isinstance(value, bool) != (type_name == "bool")
                     or not isinstance(value, expected)):
        return f"{type_name}, got {value!r} ({type(value).__name__})"
    if expected in (int, (int, float)) and value < 0:  # counts, seeds, minutes or rates
        return f"0 or more, got {value!r}"


def check(namespace: dict) -> None:
    """``check(globals())`` in a notebook: the runner's check, for papermill run directly."""
    for name, annotation in namespace.get("__annotations__", {}).items():
        type_name = getattr(annotation, "__name__", str(annotation))
        if name in namespace and (wanted := problem(namespace[name], type_name)):
            raise ParameterError(f"parameter {name!r} must be {wanted}")
