"""Run every notebook in order with papermill, under one profile.

    python -m siamlib.runner --profile smoke                  # CI: all notebooks in minutes
    python -m siamlib.runner --profile cpu -p epochs 5        # an instructor's override
    python -m siamlib.runner --profile gpu --only 02 03       # some notebooks only

Executed notebooks go to ``outputs/<profile>/``, wall times to ``timings.csv``. Bad input stops
the run before any kernel starts, with one line and status 2; a failing cell is named, status 1.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Callable
from pathlib import Path

import papermill

from siamlib import parameters, paths
from siamlib.profiles import PROFILES
from siamlib.search import URL_ENV, masked


class RunnerError(ValueError):
    """A run that cannot start; the message names the input at fault and what to give instead."""


class NotebookFailed(RuntimeError):
    """A cell raised; the message names the notebook, the cell and the error."""


def notebooks(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    folder = folder or paths.project_root() / "notebooks"
    if not (found := sorted(folder.glob("[0-9][0-9]_*.ipynb"))):
        raise RunnerError(f"no numbered notebooks in {folder}")
    if unknown := [o for o in only or [] if not any(nb.stem.startswith(o) for nb in found)]:
        raise RunnerError(f"no notebook matches {unknown}; have {[nb.stem for nb in found]}")
    return [nb for nb in found if not only or any(nb.stem.startswith(o) for o in only)]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameters(selected: list[Path], overrides: dict) -> dict[Path, dict]:
    """Per notebook, the overrides its ``parameters`` cell declares, checked against their types
    (papermill itself injects anything)."""
    declared = {nb: papermill.inspect_notebook(str(nb)) for nb in selected}
    for name, value in overrides.items():
        if isinstance(value, str) and masked(value) != value:
            raise RunnerError(f"-p {name}: a URL with a password would be saved in the executed "
                              f"notebooks; put it in the environment ({URL_ENV}) instead")
        if not (owners := [nb for nb in selected if name in declared[nb]]):
            raise RunnerError(f"no notebook has a parameter {name!r}")
        for nb in owners:
            spec = declared[nb][name]
            if wanted := parameters.problem(value, spec["inferred_type_name"]):
                raise RunnerError(f"parameter {name!r} of {nb.name} must be {wanted}"
                                  + (f"; {name}: {spec['help']}" if spec["help"] else ""))
    return {nb: {k: v for k, v in overrides.items() if k in declared[nb]} for nb in selected}


def run(profile: str, overrides: dict | None = None, output: Path | None = None,
        only: list[str] | None = None, folder: Path | None = None,
        after_each: Callable[[Path, float], None] | None = None) -> list[tuple[str, float]]:
    """(notebook, seconds) per notebook; ``after_each(executed copy, seconds)`` as each finishes
    (the reference run records it then: tools/reference.py)."""
    overrides = dict(overrides or {})
    profile = overrides.pop("profile", profile)  # -p profile is --profile, said another way
    if profile not in (*PROFILES, "auto"):
        raise RunnerError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)} or auto")
    selected = notebooks(folder, only)
    if isinstance(source := overrides.get("source"), str) and source not in ("", "lfw-a"):
        # The kernels run in notebooks/: a relative path means the caller's current folder.
        overrides["source"] = str(Path(source).expanduser().resolve())
    per_notebook = check_parameters(selected, overrides)
    output = Path(output) if output else paths.project_root() / "outputs" / profile
    for what, place in (("--output", output), (paths.DATA_DIR_ENV, paths.data_dir()),
                        (paths.RUNS_DIR_ENV, paths.runs_dir())):
        if place.exists() and not place.is_dir():
            raise RunnerError(f"{what} names {place}, a file; it must be a folder")
    timings = []
    try:
        output.mkdir(parents=True, exist_ok=True)
        for nb in selected:
            started = time.time()
            print(f"▶ {nb.name} (profile {profile})", flush=True)
            try:
                papermill.execute_notebook(nb, output / nb.name, cwd=nb.parent, progress_bar=False,
                                           parameters={"profile": profile, **per_notebook[nb]})
            except papermill.PapermillExecutionError as error:
                raise NotebookFailed(
                    f"{nb.name} failed in cell {error.exec_count} of the executed copy "
                    f"{output / nb.name}, the cell that begins\n    "
                    f"{(error.source.strip().splitlines() or [''])[0]}\n"
                    f"{error.ename}: {error.evalue}") from None
            timings.append((nb.name, time.time() - started))
            print(f"  done in {timings[-1][1]:.0f} s", flush=True)
            if after_each:
                after_each(output / nb.name, timings[-1][1])
        lines = [f"{name},{seconds:.1f}" for name, seconds in timings]
        (output / "timings.csv").write_text("\n".join(["notebook,seconds", *lines, ""]))
    except OSError as error:  # read-only, full, or someone else's
        raise RunnerError(f"cannot write {error.filename or output} ({error.strerror}); give "
                          "--output a folder you can write, with free space") from None
    print(f"All {len(timings)} notebooks ran in {sum(s for _, s in timings):.0f} s; "
          f"executed copies in {output}")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamlib.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", help=f"one of {sorted(PROFILES)} or auto")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="override a notebook parameter")
    parser.add_argument("--output", type=Path, help="folder for executed notebooks")
    parser.add_argument("--only", nargs="+", help="notebook numbers or names, e.g. 01 03")
    args = parser.parse_args(argv)
    try:
        run(args.profile, {name: parse_value(value) for name, value in args.parameter},
            args.output, args.only)
    except (RunnerError, NotebookFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, RunnerError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
