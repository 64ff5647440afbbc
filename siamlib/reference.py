"""The reference run: the six notebooks executed under one profile at one version of the code,
committed in ``notebooks/reference/`` so that a reader sees every result without running
anything, and the README's numbers have records to be checked against.

``python -m siamlib.runner --profile cpu --reference`` writes it. Trained runs may come from the
run cache of an earlier sitting, and notebooks may be executed in several sittings, as long as
the code did not change in between: ``manifest.json`` records the code version (a hash of
siamlib and the notebooks' code cells) with each notebook, and ``record`` refuses to mix two
versions. Photos of LFW-a are not ours to redistribute: cells that show them keep their text
output and lose their images, and widget state (which can hold photos) is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import nbformat

from siamlib import paths
from siamlib.training import COMPLETE

MANIFEST = "manifest.json"
FACES_REMOVED = "[a figure of LFW-a photos: not committed (they are not ours to share); run the " \
                "notebook to see it]\n"
# A code cell showing photos: it saves a figure to the ignored figures/faces/, or shows widgets.
SHOWS_FACES = ("faces=True", "PairInspector")


def folder() -> Path:
    return paths.project_root() / "notebooks" / "reference"


def code_cells(notebook: Path) -> list[str]:
    """The notebook's code cells as written (papermill's injected parameter cell left out)."""
    cells = nbformat.read(notebook, as_version=4).cells
    return [cell.source for cell in cells if cell.cell_type == "code"
            and "injected-parameters" not in cell.metadata.get("tags", [])]


def code_version(notebooks: list[Path]) -> str:
    """Hash of siamlib's sources and the notebooks' code cells: what a result depends on."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for source in sorted([*package.glob("*.py"), *package.glob("*.json"), *package.glob("*.csv")]):
        digest.update(source.name.encode() + source.read_bytes())
    for notebook in sorted(notebooks):
        digest.update(notebook.name.encode() + json.dumps(code_cells(notebook)).encode())
    return digest.hexdigest()[:16]


def without_faces(executed: Path) -> None:
    """Drop the images of cells that show photos, and all widget state, from ``executed``."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type != "code" or not any(mark in cell.source for mark in SHOWS_FACES):
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if any(key.startswith("image/") or "widget" in key for key in data):
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=FACES_REMOVED))
            else:
                kept.append(output)
        cell.outputs = kept
    nbformat.write(notebook, executed)


def record(notebook: Path, profile: str, wall_s: float, training_s: float, version: str,
           results: Path) -> None:
    """Add one executed notebook to the manifest (refusing a second code version) and copy its
    profile's result tables beside it."""
    manifest_path = folder() / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest and (manifest["code_version"], manifest["profile"]) != (version, profile):
        raise ValueError(f"notebooks/reference/ holds a run of code version "
                         f"{manifest['code_version']} under {manifest['profile']!r}; this is "
                         f"{version} under {profile!r}. Move its manifest.json aside to start "
                         "a new reference run")
    manifest.update({"profile": profile, "code_version": version, "commit": _commit(),
                     "hardware": hardware()})
    manifest.setdefault("notebooks", {})[notebook.name] = {
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": round(wall_s, 1), "training_s": round(training_s, 1)}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    if results.is_dir():
        shutil.copytree(results, folder() / "results", dirs_exist_ok=True)


def training_s(run_folders) -> float:
    """Seconds the runs in ``run_folders`` trained, as each recorded when it finished."""
    return sum(json.loads((run / COMPLETE).read_text())["wall_time_s"] for run in run_folders)


def stale(notebooks: list[Path]) -> list[str]:
    """The notebooks whose code cells differ from their reference copy (or have none)."""
    return [notebook.name for notebook in notebooks
            if not (copy := folder() / notebook.name).is_file()
            or code_cells(copy) != code_cells(notebook)]


def hardware() -> str:
    """CPU model and cores, memory and accelerator: machines here differ, so results say."""
    from siamlib.device import device_report

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor() or platform.machine()) if Path("/proc/cpuinfo").exists() \
        else platform.processor() or platform.machine()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; {device_report()}"


def _commit() -> str:
    """HEAD's commit, marked "+changes" when the tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=paths.project_root(), capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" +changes" if git("status", "--porcelain", "--", "siamlib", "notebooks")
                   else "")
