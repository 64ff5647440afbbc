"""environment.yml (the tested pins) and pyproject.toml (the accepted ranges) must agree."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent


def _pins() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip:
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower()] = version.replace(".*", ".0")
    return pins


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return {Requirement(r).name.lower(): Requirement(r) for r in listed}


def test_every_requirement_is_pinned_and_every_pin_is_required():
    pins, requirements = _pins(), _requirements()
    assert set(requirements) - set(pins) == set()
    assert set(pins) - set(requirements) == set()


def test_every_pin_lies_inside_the_accepted_range():
    pins, requirements = _pins(), _requirements()
    outside = {n: (pins[n], str(r.specifier)) for n, r in requirements.items()
               if not r.specifier.contains(Version(pins[n]))}
    assert outside == {}


def test_python_version_agrees():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if str(d).startswith("python="))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(
        Version(python.split("=")[1]))


def test_tensorflow_is_a_range_not_a_pin():
    """Colab ships its own TensorFlow; an exact pin would fight it."""
    spec = _requirements()["tensorflow"].specifier
    assert not any(s.operator == "==" for s in spec)
    assert spec.contains("2.16.0") and spec.contains("2.21.0")
