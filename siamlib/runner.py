"""Run every notebook in order with papermill, under one profile.

    python -m siamlib.runner --profile smoke                  # CI: all notebooks in minutes
    python -m siamlib.runner --profile cpu -p epochs 5        # an instructor's override
    python -m siamlib.runner --profile gpu --only 02 03       # some notebooks only

Executed notebooks go to ``outputs/<profile>/`` (``--output`` to change it) with each
notebook's wall time printed and saved to ``timings.csv``. Whoever runs the runner chose the
profile, so notebooks run without a time limit (``max_minutes = 0``, see ``siamlib.budget``)
unless one is given: ``-p max_minutes 60``. A smoke run's figures are noise, so
they go to ``figures/`` there too, never over the committed ones (unless
``$SIAMLIB_FIGURES_DIR`` says otherwise). Overrides are checked against each
notebook's ``parameters`` cell before anything runs: an unknown name or a value of the wrong
type stops the run with one clear message. A failing cell stops the run and is named.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path
from unittest import mock

import papermill
import papermill.exceptions

from siamlib import parameters, paths
from siamlib.profiles import PROFILES

NOTEBOOKS_DIR = "notebooks"
# Given to every notebook that declares them, unless overridden: no time limit (the notebooks'
# own default, 30 minutes, is for a student in Colab; whoever runs the runner chose the profile).
RUNNER_DEFAULTS = {"max_minutes": 0}


class RunnerError(ValueError):
    """A run that cannot start: unknown profile, notebook or parameter, or a wrong type."""


class NotebookFailed(RuntimeError):
    """A cell raised; the message names the notebook, the cell and the error."""


def notebooks(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order, optionally those named in ``only``."""
    folder = folder or paths.project_root() / NOTEBOOKS_DIR
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = [n for n in found if any(n.stem.startswith(o) for o in only)]
        unknown = [o for o in only if not any(n.stem.startswith(o) for n in found)]
        if unknown:
            raise RunnerError(f"no notebook matches {unknown}; have {[n.stem for n in found]}")
        found = wanted
    if not found:
        raise RunnerError(f"no numbered notebooks in {folder}")
    return found


def parse_value(text: str):
    """A command-line value as Python: numbers, booleans, None, lists; anything else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameters(notebook_paths: list[Path], overrides: dict,
                     defaults: dict | None = None) -> dict[Path, dict]:
    """Per notebook, the overrides it declares, type-checked against its ``parameters`` cell,
    on top of the ``defaults`` (``RUNNER_DEFAULTS``) it declares."""
    defaults = RUNNER_DEFAULTS if defaults is None else defaults
    declared = {nb: papermill.inspect_notebook(str(nb)) for nb in notebook_paths}
    for name, value in overrides.items():
        owners = [nb for nb, params in declared.items() if name in params]
        if not owners:
            raise RunnerError(f"no notebook has a parameter {name!r}")
        for nb in owners:
            type_name = declared[nb][name]["inferred_type_name"]
            if not parameters.matches(value, type_name):
                raise RunnerError(
                    f"parameter {name!r} of {nb.name} must be {type_name}, "
                    f"got {value!r} ({type(value).__name__})"
                )
            if (wanted := parameters.problem(name, value)) is not None:
                raise RunnerError(f"parameter {name!r} of {nb.name} must be {wanted}, "
                                  f"got {value!r}")
    return {nb: {k: v for k, v in {**defaults, **overrides}.items() if k in declared[nb]}
            for nb in declared}


def run(
    profile: str,
    overrides: dict | None = None,
    output: Path | None = None,
    only: list[str] | None = None,
    folder: Path | None = None,
) -> list[tuple[str, float]]:
    """Execute the notebooks in order; returns (notebook, seconds) per notebook."""
    if profile not in PROFILES and profile != "auto":
        raise RunnerError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    selected = notebooks(folder, only)
    overrides = dict(overrides or {})
    source = overrides.get("source")
    if isinstance(source, str) and source not in ("", "lfw-a"):
        # The kernels run in notebooks/: a relative path means the caller's current folder.
        overrides["source"] = str(Path(source).expanduser().resolve())
    per_notebook = check_parameters(selected, overrides)
    output = Path(output) if output else paths.project_root() / "outputs" / profile
    for what, folder_path in (("--output", output), (paths.DATA_DIR_ENV, paths.data_dir()),
                              (paths.RUNS_DIR_ENV, paths.runs_dir())):
        if folder_path.exists() and not folder_path.is_dir():
            raise RunnerError(f"{what} names {folder_path}, a file; it must be a folder")
    output.mkdir(parents=True, exist_ok=True)
    timings = []
    for nb in selected:
        started = time.perf_counter()
        print(f"▶ {nb.name} (profile {profile})", flush=True)
        try:
            with mock.patch.dict(os.environ, _kernel_environment(profile, output)):
                papermill.execute_notebook(
                    str(nb),
                    str(output / nb.name),
                    parameters={"profile": profile, **per_notebook[nb]},
                    cwd=str(nb.parent),
                    progress_bar=False,
                )
        except papermill.exceptions.PapermillExecutionError as error:
            first_line = error.source.strip().splitlines()[0] if error.source.strip() else ""
            raise NotebookFailed(
                f"{nb.name} failed in cell {error.exec_count} of the executed copy "
                f"{output / nb.name}, the cell that begins\n    {first_line}\n"
                f"{error.ename}: {error.evalue}"
            ) from None
        seconds = time.perf_counter() - started
        timings.append((nb.name, seconds))
        print(f"  done in {seconds:.0f} s", flush=True)
    lines = ["notebook,seconds"] + [f"{name},{seconds:.1f}" for name, seconds in timings]
    (output / "timings.csv").write_text("\n".join(lines) + "\n")
    print(f"All {len(timings)} notebooks ran in {sum(s for _, s in timings):.0f} s; "
          f"executed copies in {output}")
    return timings


def _kernel_environment(profile: str, output: Path) -> dict[str, str]:
    """What the notebooks' kernels get on top of this process's environment."""
    if profile == "smoke" and paths.FIGURES_DIR_ENV not in os.environ:
        return {paths.FIGURES_DIR_ENV: str(output / "figures")}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamlib.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto",
                        help=f"one of {sorted(PROFILES)} or auto (default: auto)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="override a notebook parameter")
    parser.add_argument("--output", type=Path, help="folder for executed notebooks")
    parser.add_argument("--only", nargs="+", help="notebook numbers or names, e.g. 01 03")
    args = parser.parse_args(argv)
    overrides = {name: parse_value(value) for name, value in args.parameter}
    try:
        run(args.profile, overrides, args.output, args.only)
    except RunnerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): the notebook running was stopped; finished runs are kept",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
