"""Finished runs to share: an instructor trains once, students import the archive and load.

Each run's ``COMPLETE`` marker records its files' SHA-256, so the ``.tar.gz`` needs no manifest:
each run is checked against its marker, and its folder name against its config's cache key (else
``train`` would load another configuration's weights). docs/guide.md, "Sharing trained runs".
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import re
import sys
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path

from siamlib import paths, training
from siamlib.device import compute_policy
from siamlib.files import checksums, staged
from siamlib.training import COMPLETE, RunConfig

LOADED_FILES = ("config.json", "model.weights.h5", "history.csv", "scores.csv")  # by load_run
POLICIES = ("float32", "mixed_float16")  # the numeric policies a run's key may be computed under
RUN_FOLDER = re.compile(r"[^.].*-[0-9a-f]{12}")  # <name>-<key>: not hidden, not set aside


class RunsArchiveError(Exception):
    """An archive that cannot be written or imported; the message names the problem."""


def finished_runs(runs_root=None) -> list[Path]:
    root = Path(runs_root or paths.runs_dir())
    return sorted(folder for folder in (root.iterdir() if root.is_dir() else ())
                  if RUN_FOLDER.fullmatch(folder.name) and (folder / COMPLETE).is_file())


def export_runs(archive, runs_root=None) -> Path:
    """Every finished run to ``archive``; one it cannot vouch for is left out, saying why."""
    archive, root = Path(archive), Path(runs_root or paths.runs_dir())
    if not archive.name.lower().endswith(".tar.gz"):
        raise RunsArchiveError(f"{archive}: the archive's name must end in .tar.gz")
    shared = {}
    for folder in finished_runs(root):
        try:
            if checked := _checked(folder):
                shared[folder] = checked
        except RunsArchiveError as reason:
            warnings.warn(f"skipped {reason}", stacklevel=2)
    if not shared:
        raise RunsArchiveError(f"nothing to export: no finished runs in {root} can be shared")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        with staged(archive, folder=False) as partial, tarfile.open(partial, "w:gz") as out:
            for folder in shared:
                out.add(folder, folder.name)
    except OSError as error:
        raise _one_line(error, archive, "write it elsewhere or change the folder's "
                        "permissions") from None
    for folder, (info, policy) in shared.items():
        print(f"exported {folder.name} (policy {policy}, Keras {info.get('keras')})")
    print(f"{len(shared)} run(s) -> {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return archive


def import_runs(archive, runs_root=None) -> dict[str, str]:
    """``{folder name: "imported", "identical" or "kept"}``. Every run is checked before any
    moves, in the nearest folder that exists, so a refusal writes nothing, not even the runs
    folder."""
    archive, root = Path(archive), Path(runs_root or paths.runs_dir())
    if not archive.is_file():
        raise RunsArchiveError(f"{archive}: no such archive")
    nearest = next(folder for folder in (root, *root.parents) if folder.is_dir())
    try:
        with tempfile.TemporaryDirectory(prefix=".import-", dir=nearest) as staging:
            with tarfile.open(archive) as source:
                source.extractall(staging, filter="data")  # a link inside is an unlisted file
            if not (folders := sorted(Path(staging).iterdir())):
                raise RunsArchiveError("it holds no runs")
            for folder in folders:
                if not (folder.is_dir() and RUN_FOLDER.fullmatch(folder.name)):
                    raise RunsArchiveError(f"not a runs archive: {folder.name} is not a run folder")
            usable = {folder: checked for folder in folders if (checked := _checked(folder))}
            root.mkdir(parents=True, exist_ok=True)
            return {folder.name: _placed(folder, root / folder.name, *checked)
                    for folder, checked in usable.items()}
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        reason = str(error).partition("\n")[0]  # tarfile's message lists each method it tried
        what = ("unsafe member refused" if isinstance(error, tarfile.FilterError)  # a TarError
                else "damaged or not an archive")
        raise RunsArchiveError(f"{archive}: {what} ({reason}); nothing was imported") from None
    except RunsArchiveError as error:
        raise RunsArchiveError(f"{archive}: {error}; nothing was imported") from None
    except OSError as error:
        if error.filename == str(archive):
            raise _one_line(error, archive, "change its permissions") from None
        raise _one_line(error, root, "choose another runs folder (--runs-dir) or change its "
                        "permissions") from None


def _checked(folder: Path) -> tuple[dict, str] | None:
    """A shareable run's marker and its key's policy; None, with a warning, for a run of an
    identity folder this machine lacks (its key hashes that folder's files)."""
    if not (folder / COMPLETE).is_file():
        raise RunsArchiveError(f"{folder.name}: no {COMPLETE} marker: not a finished run")
    if not (problems := training.run_problems(folder)):  # a readable marker with checksums
        info = json.loads((folder / COMPLETE).read_text())
        present = {path.relative_to(folder).as_posix() for path in folder.rglob("*")}
        problems = [*(f"{name} (missing)" for name in LOADED_FILES if name not in info["files"]),
                    *(f"{name} (not in its {COMPLETE} checksums)" for name in sorted(
                        present - set(info["files"]) - {COMPLETE}) if not (folder / name).is_dir())]
    if problems:
        raise RunsArchiveError(f"{folder.name}: damaged: {', '.join(problems)}")
    try:
        config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunsArchiveError(f"{folder.name}: config.json is not a run config "
                               f"({error})") from None
    try:
        keys = {f"{config.name}-{config.key(policy)}": policy for policy in POLICIES}
    except (OSError, ValueError) as error:
        warnings.warn(f"skipped {folder.name}: it was trained on the identity folder "
                      f"{config.data.source}, which this machine does not have ({error})",
                      stacklevel=3)
        return None
    if folder.name not in keys:
        raise RunsArchiveError(f"{folder.name}: its folder name is not the cache key of its "
                               f"config.json ({' or '.join(keys)}): its files belong to another "
                               "configuration")
    return info, keys[folder.name]


def _placed(run: Path, target: Path, info: dict, policy: str) -> str:
    """Never over a sound finished run of that name."""
    name = target.name
    if training.finished(target):
        same = checksums(target) == checksums(run)
        print(f"skipped {name}: already here, identical" if same else f"kept {name}: a different "
              "finished run of the same configuration is already here and is not overwritten "
              f"(delete {target} and import again to take the archive's)")
        return "identical" if same else "kept"
    why = training.set_aside(target)
    run.rename(target)
    print(f"imported {name}" + (f" (the folder of that name {why})" if why else ""))
    training.warn_if_other_keras(name, info)
    if policy != compute_policy():
        warnings.warn(f"run {name} was trained under the {policy} policy; this machine computes "
                      f"in {compute_policy()}, so its notebooks will train their own", stacklevel=4)
    return "imported"


def _one_line(error: OSError, place: Path, fix: str) -> Exception:
    if error.errno == errno.ENOSPC:
        return RunsArchiveError(f"{place}: the disk is full; free some space or choose another "
                                "place")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunsArchiveError(f"{place}: {(error.strerror or 'not allowed').lower()}; {fix}")
    return error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamlib.runs", description="Share finished "
                                     "training runs: export them to one archive, import it.")
    parser.add_argument("command", choices=("export", "import"))
    parser.add_argument("archive", help="the archive (.tar.gz)")
    parser.add_argument("--runs-dir", help=f"default: ${paths.RUNS_DIR_ENV} or data/runs")
    args = parser.parse_args(argv)
    try:
        (export_runs if args.command == "export" else import_runs)(args.archive, args.runs_dir)
    except RunsArchiveError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"  # one line, no source
    sys.exit(main())
