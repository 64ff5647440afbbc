"""The reference run: the notebooks executed under one profile at one code version (in several
sittings, perhaps), committed so a reader sees every result without running anything, with the
records the README's results blocks come from. LFW-a's photos are not ours to share: they stay out.
A maintainer's tool, so it lives outside siamlib (no notebook imports it):

    python -m tools.reference run --profile cpu    # execute into notebooks/reference/
    python -m tools.reference readme               # write README.md's results blocks
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd

import siamlib
from siamlib import paths, runner, runs, view2
from siamlib.device import cpu_model, device_report
from siamlib.files import short_hash
from siamlib.profiles import PROFILES, results_dir
from siamlib.training import COMPLETE

MANIFEST = "manifest.json"
FACES_REMOVED = "[a figure of LFW-a photos: not committed (they are not ours to share); run the " \
                "notebook to see it]\n"
# A code cell showing photos: it saves a figure to the ignored figures/faces/, or shows widgets.
SHOWS_FACES = ("faces=True", "PairInspector")


def folder() -> Path:
    return paths.project_root() / "notebooks" / "reference"


def code_cells(notebook: Path) -> list[str]:
    cells = nbformat.read(notebook, as_version=4).cells
    return [cell.source for cell in cells if cell.cell_type == "code"
            and "injected-parameters" not in cell.metadata.get("tags", [])]


def code_version(notebooks: list[Path]) -> str:
    sources = [path for path in Path(siamlib.__file__).parent.iterdir()
               if path.suffix in (".py", ".json", ".csv")]
    return short_hash({**{path.name: path.read_text() for path in sources},
                       **{notebook.name: code_cells(notebook) for notebook in notebooks}})


def without_faces(executed: Path) -> None:
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata.pop("widgets", None)
    note = nbformat.v4.new_output("stream", name="stdout", text=FACES_REMOVED)
    for cell in notebook.cells:
        if cell.cell_type == "code" and any(mark in cell.source for mark in SHOWS_FACES):
            cell.outputs = [note if any(key.startswith("image/") or "widget" in key
                                        for key in output.get("data", {})) else output
                            for output in cell.outputs]
    nbformat.write(notebook, executed)


def manifest_of(version: str, profile: str) -> dict:
    """The records so far; those of another code version or profile are refused."""
    manifest_path = folder() / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest and (manifest["code_version"], manifest["profile"]) != (version, profile):
        raise ValueError(f"notebooks/reference/ holds a run of code version "
                         f"{manifest['code_version']} under {manifest['profile']!r}; this is "
                         f"{version} under {profile!r}. Move its manifest.json aside to start "
                         "a new reference run")
    return manifest


def record(notebook: Path, profile: str, wall_s: float, training_s: float,
           trained_now_s: float, version: str, results: Path) -> None:
    """``training_s``: what the runs it was first to use took to train (a notebook that loads its
    runs still owes a reader their cost); ``trained_now_s``: the part trained now."""
    manifest_path, manifest = folder() / MANIFEST, manifest_of(version, profile)
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=paths.project_root(), capture_output=True,
                              text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "siamlib", "notebooks",
                  ":!notebooks/reference")  # the run's own output is not a change of code
    commit = (git("rev-parse", "--short", "HEAD") or "unknown") + (" +changes" if changed else "")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    manifest.update({"profile": profile, "code_version": version, "commit": commit,
                     "hardware": f"{cpu_model()}, {os.cpu_count()} cores, {memory:.0f} GiB; "
                                 f"{device_report()}"})  # machines here differ: results say which
    manifest.setdefault("notebooks", {})[notebook.name] = {
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": round(wall_s, 1), "training_s": round(training_s, 1),
        "trained_now_s": round(trained_now_s, 1)}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    if results.is_dir():
        shutil.copytree(results, folder() / "results", dirs_exist_ok=True)


def training_s(run_folders) -> float:
    return sum(json.loads((run / COMPLETE).read_text())["wall_time_s"] for run in run_folders)


def stale(notebooks: list[Path]) -> list[str]:
    return [notebook.name for notebook in notebooks
            if not (copy := folder() / notebook.name).is_file()
            or code_cells(copy) != code_cells(notebook)]


def run(profile: str) -> None:
    """Each notebook with its own defaults, recorded as it finishes, so a run over several sittings
    adds up (the run cache carries what earlier sittings trained)."""
    if profile not in PROFILES:
        raise runner.RunnerError(f"the reference run needs a named profile, one of "
                                 f"{sorted(PROFILES)}; got {profile!r}")
    version, counted = code_version(runner.notebooks()), set()
    manifest_of(version, profile)  # refused before a notebook overwrites a committed copy
    trained_before = set(runs.finished_runs())

    def after_each(executed: Path, seconds: float) -> None:
        nonlocal trained_before
        started, finished = time.time() - seconds, runs.finished_runs()
        # Loading a run touches its marker: the runs this notebook was first to use.
        used = {run for run in finished if (run / COMPLETE).stat().st_mtime >= started} - counted
        counted.update(used)
        without_faces(executed)
        record(executed, profile, seconds, training_s(used),
               training_s(set(finished) - trained_before), version,
               results_dir(PROFILES[profile]))
        trained_before = set(finished)

    runner.run(profile, output=folder(), after_each=after_each)


# The README's blocks written from the records: "<!-- reference:NAME -->" ... "<!-- /reference -->".
BLOCK = re.compile(r"(<!-- reference:(\w+) -->\n)(.*?)(<!-- /reference -->)", re.DOTALL)
OURS = "all_pairs (this workbook)"  # the workbook's row of notebook 06's View 2 summary
NOT_YET = "(filled from the reference run's records: not run yet at this version)\n"


def readme_blocks() -> dict[str, str]:
    manifest_path, results, blocks = folder() / MANIFEST, folder() / "results", {}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        times = pd.DataFrame(manifest["notebooks"]).T.sort_index()
        seconds = ["wall_s", "training_s", "trained_now_s"]
        times.loc["all of them"] = {**times[seconds].sum(), "finished": ""}
        minutes = (times[seconds].astype(float) / 60).map("{:.1f}".format).set_axis(
            ["wall (min)", "training (min)", "of it in this execution (min)"], axis=1)
        times = minutes.assign(finished=times["finished"]).reset_index(names="notebook")
        blocks["times"] = (f"Reference run: profile `{manifest['profile']}`, commit "
                           f"`{manifest['commit']}`, {manifest['hardware']}. Training: what "
                           "the runs each notebook was first to use took to train, in this "
                           "execution or in an earlier sitting at the same run keys (the run "
                           "cache carries them).\n\n" + _markdown(times))
    if (summary := results / "view2_summary.csv").is_file():
        ours = {**pd.read_csv(summary).set_index("method").loc[OURS].to_dict(), "method": OURS}
        table = view2.comparison(ours)
        table["accuracy ± SE"] = [f"{a:.4f} ± {e:.4f}" for a, e in zip(table["accuracy"],
                                                                      table["se"])]
        blocks["view2"] = (view2.headline(ours) + "\n\n"
                           + _markdown(table[["rank in category", "method", "accuracy ± SE"]]))
    if (final := results / "final.csv").is_file():
        shown = {"val_auc": "validation AUC", "test_accuracy": "DevTest accuracy",
                 "test_auc": "DevTest AUC", "test_eer": "DevTest EER",
                 "test_n_way": "10-way one-shot", "train_s": "train_s"}
        table = pd.read_csv(final, index_col=0)[[*shown]].rename(columns=shown)
        blocks["view1"] = _markdown(table.round(3).reset_index(names="run"))
    return {name: blocks.get(name, NOT_YET) for name in ("times", "view2", "view1")}


def _markdown(table: pd.DataFrame) -> str:
    rows = [list(table.columns), ["---"] * len(table.columns), *table.astype(str).values.tolist()]
    return "".join("| " + " | ".join(map(str, row)) + " |\n" for row in rows)


def with_blocks(readme: str, blocks: dict[str, str]) -> str:
    return BLOCK.sub(lambda m: m[1] + blocks.get(m[2], m[3]) + m[4], readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "readme"))
    parser.add_argument("--profile", default="cpu", help=f"for run: one of {sorted(PROFILES)}")
    args = parser.parse_args(argv)
    if args.command == "readme":
        readme = paths.project_root() / "README.md"
        readme.write_text(with_blocks(readme.read_text(), readme_blocks()))
        print(f"{readme}: results blocks written from {folder() / MANIFEST}")
        return 0
    try:
        run(args.profile)
    except (runner.RunnerError, runner.NotebookFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1 if isinstance(error, runner.NotebookFailed) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
